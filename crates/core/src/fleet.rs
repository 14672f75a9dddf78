//! Many hosts at once: the host inventory (`--hosts FILE`), a bounded parallel run of one job
//! per host with a per-host timeout, and the figures of the fleet table.
//!
//! A host that cannot be reached, refuses the login or does not answer in time is a failed
//! row with its one-line error; the others go on. A job that times out keeps its thread
//! (libvirt offers no way to abandon a call), but its result is dropped. Results come back
//! in the inventory's order. No async runtime: one std thread per running job, at most
//! `parallel` at a time.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use kvmtune_host::Host;
use kvmtune_profile::Counts;

use crate::audit::AuditReport;
use crate::inventory::{Inventory, Origin, Select};
use crate::profiles::Profiles;
use crate::{Error, Result};

/// One host of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostEntry {
    /// The name the inventory gives it (TOML `name`); else the host's own hostname is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The libvirt URI.
    pub uri: String,
    /// Its default profile (TOML `profile`); else the command's `--profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The line of the inventory file it was given on (0: the command line).
    #[serde(skip)]
    pub line: usize,
}

impl HostEntry {
    pub fn uri(uri: &str) -> HostEntry {
        HostEntry {
            name: None,
            uri: uri.to_string(),
            profile: None,
            line: 0,
        }
    }
}

/// Read a host inventory: one URI per line (blank lines and `#` comments ignored), or TOML
/// `[[host]]` tables with `name`, `uri` and an optional `profile`. The file is read as an
/// untrusted input (a regular file under the input cap, UTF-8); anything malformed is one
/// line naming the file and the line.
pub fn read_inventory(path: &Path) -> Result<Vec<HostEntry>> {
    use kvmtune_host::fsio::{ReadError, read_input_text};
    let label = path.display().to_string();
    let text = read_input_text(path).map_err(|e| match e {
        ReadError::NotText { .. } => Error::msg(format!(
            "--hosts {label}: not UTF-8 text (one URI per line, or TOML [[host]] tables)"
        )),
        other => Error::msg(format!("--hosts: {other}")),
    })?;
    parse_inventory(&text, &label)
}

/// Parse a host inventory's text (see [`read_inventory`]); `label` names it in errors.
pub fn parse_inventory(text: &str, label: &str) -> Result<Vec<HostEntry>> {
    let err = |line: usize, what: &str| Error::msg(format!("--hosts {label} line {line}: {what}"));
    let is_toml = text.lines().any(|l| l.trim_start().starts_with('['));
    let mut hosts: Vec<HostEntry> = Vec::new();
    if !is_toml {
        for (i, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            check_uri(line).map_err(|w| err(i + 1, &w))?;
            hosts.push(HostEntry {
                line: i + 1,
                ..HostEntry::uri(line)
            });
        }
    } else {
        // a TOML subset: [[host]] tables of string keys, which is all an inventory needs;
        // anything else is refused with its line rather than guessed at
        let mut current: Option<HostEntry> = None;
        let finish = |h: Option<HostEntry>, hosts: &mut Vec<HostEntry>| -> Result<()> {
            if let Some(h) = h {
                if h.uri.is_empty() {
                    return Err(err(h.line, "[[host]] without a uri"));
                }
                hosts.push(h);
            }
            Ok(())
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                if strip_comment(line).trim() != "[[host]]" {
                    return Err(err(n, "expected [[host]] (the only table of an inventory)"));
                }
                finish(current.take(), &mut hosts)?;
                current = Some(HostEntry {
                    line: n,
                    ..HostEntry::uri("")
                });
                continue;
            }
            let Some(h) = current.as_mut() else {
                return Err(err(n, "a key outside a [[host]] table"));
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(n, "expected KEY = \"VALUE\""));
            };
            let key = key.trim();
            let value = toml_string(value.trim()).map_err(|w| err(n, &w))?;
            let slot = match key {
                "uri" => {
                    check_uri(&value).map_err(|w| err(n, &w))?;
                    if !h.uri.is_empty() {
                        return Err(err(n, "uri given twice"));
                    }
                    h.uri = value;
                    continue;
                }
                "name" => &mut h.name,
                "profile" => &mut h.profile,
                other => {
                    return Err(err(
                        n,
                        &format!("unknown key {other:?} (name, uri and profile are known)"),
                    ));
                }
            };
            if value.is_empty() || value.chars().any(char::is_control) {
                return Err(err(n, &format!("{key}: empty or with control characters")));
            }
            if slot.replace(value).is_some() {
                return Err(err(n, &format!("{key} given twice")));
            }
        }
        finish(current.take(), &mut hosts)?;
    }
    if hosts.is_empty() {
        return Err(Error::msg(format!("--hosts {label}: no host in it")));
    }
    Ok(hosts)
}

/// A line without its `#` comment (URIs have no `#` a libvirt URI would need).
fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

/// A libvirt URI, roughly: `scheme:` then something, no spaces or control characters.
fn check_uri(uri: &str) -> std::result::Result<(), String> {
    let ok_scheme = uri.split_once(':').is_some_and(|(s, rest)| {
        !s.is_empty()
            && !rest.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !ok_scheme || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let shown: String = uri.chars().take(60).collect();
        return Err(format!(
            "not a libvirt URI: {:?} (expected e.g. qemu+ssh://root@host/system)",
            shown
        ));
    }
    Ok(())
}

/// A TOML basic ("...") or literal ('...') string, then nothing but an optional comment.
fn toml_string(v: &str) -> std::result::Result<String, String> {
    let bad = || "expected a quoted string".to_string();
    let mut chars = v.chars();
    let quote = chars.next().ok_or_else(bad)?;
    if quote != '"' && quote != '\'' {
        return Err(bad());
    }
    let mut out = String::new();
    let mut closed = false;
    while let Some(c) = chars.next() {
        if c == quote {
            closed = true;
            break;
        }
        if c == '\\' && quote == '"' {
            match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('t') => out.push('\t'),
                _ => return Err("an escape other than \\\" \\\\ \\t".to_string()),
            }
            continue;
        }
        out.push(c);
    }
    if !closed {
        return Err("an unterminated string".to_string());
    }
    let rest: String = chars.collect();
    let rest = rest.trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("unexpected text after the string: {rest:?}"));
    }
    Ok(out)
}

/// How a fleet run goes: at most `parallel` hosts at a time, each given `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub parallel: usize,
    pub timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            parallel: 8,
            timeout: Duration::from_secs(30),
        }
    }
}

/// One host's outcome: the job's value, or its one-line error; and how long it took.
#[derive(Debug)]
pub struct Outcome<T> {
    pub result: std::result::Result<T, String>,
    pub elapsed: Duration,
}

/// Run `job` for every host, at most `opts.parallel` at a time, each within `opts.timeout`.
/// The outcomes are in the order of `hosts`. A job that panics or outlives its timeout is a
/// failed outcome; a timed-out job's thread is left to finish on its own and its result is
/// dropped.
pub fn run<T, F>(hosts: &[HostEntry], opts: RunOptions, job: F) -> Vec<Outcome<T>>
where
    T: Send + 'static,
    F: Fn(&HostEntry) -> std::result::Result<T, String> + Send + Sync + 'static,
{
    let job = Arc::new(job);
    let n = hosts.len();
    let parallel = opts.parallel.max(1);
    let (tx, rx) = mpsc::channel::<(usize, std::result::Result<T, String>)>();
    let mut out: Vec<Option<Outcome<T>>> = (0..n).map(|_| None).collect();
    // index -> (started, deadline) of the jobs running
    let mut running: Vec<(usize, Instant, Instant)> = Vec::new();
    let mut next = 0;
    let mut done = 0;
    while done < n {
        while running.len() < parallel && next < n {
            let i = next;
            next += 1;
            let host = hosts[i].clone();
            let job = Arc::clone(&job);
            let tx = tx.clone();
            let started = Instant::now();
            let spawned = std::thread::Builder::new()
                .name(format!("fleet-{i}"))
                .spawn(move || {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&host)))
                        .unwrap_or_else(|_| Err("internal error: the host's job panicked".into()));
                    // the receiver is gone when the run ended without us (a timeout)
                    let _ = tx.send((i, r));
                });
            match spawned {
                Ok(_) => running.push((i, started, started + opts.timeout)),
                Err(e) => {
                    out[i] = Some(Outcome {
                        result: Err(format!("cannot start a thread: {e}")),
                        elapsed: Duration::ZERO,
                    });
                    done += 1;
                }
            }
        }
        let Some(soonest) = running.iter().map(|r| r.2).min() else {
            continue;
        };
        let wait = soonest.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((i, result)) => {
                if let Some(pos) = running.iter().position(|r| r.0 == i) {
                    let (_, started, _) = running.remove(pos);
                    out[i] = Some(Outcome {
                        result,
                        elapsed: started.elapsed(),
                    });
                    done += 1;
                }
            }
            Err(_) => {
                let now = Instant::now();
                let secs = opts.timeout.as_secs_f64();
                running.retain(|&(i, started, deadline)| {
                    if deadline > now {
                        return true;
                    }
                    out[i] = Some(Outcome {
                        result: Err(format!(
                            "no answer within {secs:.0} s (--host-timeout); {} is left behind",
                            hosts[i].uri
                        )),
                        elapsed: started.elapsed(),
                    });
                    done += 1;
                    false
                });
            }
        }
    }
    out.into_iter()
        .map(|o| {
            o.unwrap_or(Outcome {
                result: Err("internal error: no outcome".into()),
                elapsed: Duration::ZERO,
            })
        })
        .collect()
}

/// One domain as the fleet table counts it.
#[derive(Debug, Clone, Serialize)]
pub struct DomainLine {
    pub name: String,
    pub active: bool,
    pub vcpus: u32,
    pub memory_kib: u64,
}

/// A hugepage pool of the host, all nodes together.
#[derive(Debug, Clone, Serialize)]
pub struct PoolLine {
    pub size_kib: u64,
    pub total: u64,
    pub free: u64,
}

/// The figures of one host's row.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The host's own name, as its libvirt (or this machine, for a local URI) reports it.
    pub hostname: Option<String>,
    /// Domains running and defined (defined includes running ones).
    pub running: usize,
    pub defined: usize,
    /// vCPUs of the running domains, from their definitions.
    pub vcpus_running: u64,
    /// The host's hardware threads (online logical CPUs).
    pub host_threads: Option<u64>,
    /// vCPUs of running domains per host thread.
    pub vcpu_ratio: Option<f64>,
    /// Memory of the running domains (their `<memory>`), KiB.
    pub memory_running_kib: u64,
    pub host_memory_kib: Option<u64>,
    /// Memory KSM saves (pages_sharing × 4 KiB), bytes; none when unknown.
    pub ksm_saved_bytes: Option<u64>,
    /// Hugepage pools with pages (or none configured: empty).
    pub hugepages: Vec<PoolLine>,
    pub domains: Vec<DomainLine>,
}

/// The fleet figures of one host's inventory (every domain of it).
pub fn figures(inv: &Inventory) -> Figures {
    let domains: Vec<DomainLine> = inv
        .domains
        .iter()
        .map(|p| DomainLine {
            name: p.domain.name.clone(),
            active: p.active,
            vcpus: p.domain.vcpus(),
            memory_kib: p.domain.memory(),
        })
        .collect();
    let running: Vec<&DomainLine> = domains.iter().filter(|d| d.active).collect();
    let vcpus_running: u64 = running.iter().map(|d| u64::from(d.vcpus)).sum();
    let memory_running_kib = running.iter().map(|d| d.memory_kib).sum();
    let host = inv.host.as_ref();
    let host_threads = host.and_then(threads);
    let vcpu_ratio = host_threads
        .filter(|t| *t > 0)
        .map(|t| vcpus_running as f64 / t as f64);
    Figures {
        hostname: host.and_then(|h| h.hostname.clone()),
        running: running.len(),
        defined: domains.len(),
        vcpus_running,
        host_threads,
        vcpu_ratio,
        memory_running_kib,
        host_memory_kib: host.and_then(|h| h.memory.total_kib),
        ksm_saved_bytes: host
            .and_then(|h| h.memory.ksm.as_ref())
            .and_then(|k| k.saved_bytes),
        hugepages: host
            .map(|h| {
                h.memory
                    .hugepages
                    .iter()
                    .filter(|p| p.total > 0)
                    .map(|p| PoolLine {
                        size_kib: p.size_kib,
                        total: p.total,
                        free: p.free,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        domains,
    }
}

fn threads(h: &Host) -> Option<u64> {
    h.cpu.threads.map(u64::from).or_else(|| {
        let n = h.online_cpus().iter().count() as u64;
        (n > 0).then_some(n)
    })
}

/// What one host gives a fleet command: its inventory (every domain), the row's figures,
/// and the audit with the host's profile when asked.
#[derive(Debug)]
pub struct Survey {
    pub inventory: Inventory,
    pub figures: Figures,
    /// The profile the host was judged with.
    pub profile: String,
    pub audit: Option<AuditReport>,
}

impl Survey {
    /// Findings by severity (none without an audit).
    pub fn findings(&self) -> Option<Counts> {
        self.audit.as_ref().map(|a| a.summary)
    }
}

/// The `--profile` arguments for one host: its inventory profile replaces the plain NAME,
/// and NAME=DOMAIN arguments are kept only for domains the host has (the others belong to
/// other hosts).
pub fn profile_args(entry: &HostEntry, args: &[String], inv: &Inventory) -> Vec<String> {
    let mut out: Vec<String> = args
        .iter()
        .filter(|a| match a.split_once('=') {
            Some((_, d)) => inv.domains.iter().any(|p| p.domain.name == d),
            None => entry.profile.is_none(),
        })
        .cloned()
        .collect();
    if let Some(p) = &entry.profile {
        out.push(p.clone());
    }
    out
}

/// Gather one host (every domain) and, when `audit`, audit it with its profile.
pub fn survey(entry: &HostEntry, profile: &[String], audit: bool) -> Result<Survey> {
    let origin = Origin::local(&entry.uri);
    let sel = Select {
        targets: Vec::new(),
        all: true,
        host_for_files: false,
    };
    let inventory = Inventory::gather(&origin, &sel)
        .map_err(|e| Error::msg(short_error(&entry.uri, &e.to_string())))?;
    let figures = figures(&inventory);
    let profiles =
        Profiles::from_args(&profile_args(entry, profile, &inventory))?.with_metadata(&inventory);
    let profile = profiles.default_profile().name.clone();
    let audit = audit.then(|| crate::audit::audit_with(&inventory, &profiles));
    Ok(Survey {
        inventory,
        figures,
        profile,
        audit,
    })
}

/// An error of one host without its URI, which its row shows already.
pub fn short_error(uri: &str, e: &str) -> String {
    e.replace(&format!("libvirt {uri}: "), "")
        .replace(&format!(" to {uri}"), "")
        .replace(uri, "(its URI)")
}

/// A short name for a host from its URI: the server part (`web1`, `10.0.0.2:2222`), or
/// `localhost` for a local URI.
pub fn uri_host(uri: &str) -> String {
    let rest = uri.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let server = authority.rsplit('@').next().unwrap_or("");
    if server.is_empty() {
        "localhost".to_string()
    } else {
        server.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inventory_is_uris_or_host_tables() {
        let h = parse_inventory(
            "# fleet\n\nqemu+ssh://root@a/system\n  qemu+tcp://10.0.0.2/system # b\n",
            "f",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].uri, "qemu+tcp://10.0.0.2/system");
        assert_eq!(h[1].line, 4);
        let t = parse_inventory(
            "# fleet\n[[host]]\nname = \"web1\"\nuri = 'qemu+ssh://root@web1/system?keyfile=/k'\n\
             profile = \"latency\" # fast\n\n[[host]]\nuri = \"qemu:///system\"\n",
            "f",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name.as_deref(), Some("web1"));
        assert_eq!(t[0].profile.as_deref(), Some("latency"));
        assert_eq!(t[0].uri, "qemu+ssh://root@web1/system?keyfile=/k");
        assert_eq!(t[1].name, None);
    }

    #[test]
    fn a_malformed_inventory_names_the_line() {
        for (text, line) in [
            ("qemu:///system\nnot a uri\n", 2),
            ("[[host]]\nuri = qemu:///system\n", 2),
            ("[[host]]\nname = \"a\"\n", 1),
            ("[[host]]\nuri = \"qemu:///system\"\ncolour = \"red\"\n", 3),
            ("[hosts]\n", 1),
            ("uri = \"x:y\"\n[[host]]\n", 1),
            ("[[host]]\nuri = \"a:b\" trailing\n", 2),
            ("[[host]]\nuri = \"a:b\"\nuri = \"c:d\"\n", 3),
            ("[[host]]\nuri = \"a:b\nx\n", 2),
        ] {
            let e = parse_inventory(text, "inv").unwrap_err().to_string();
            assert!(e.contains(&format!("inv line {line}:")), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(
            parse_inventory("# nothing\n\n", "inv")
                .unwrap_err()
                .to_string()
                .contains("no host")
        );
    }

    #[test]
    fn hosts_are_named_after_their_uri_and_errors_lose_it() {
        assert_eq!(
            uri_host("qemu+ssh://root@web1:2222/system?keyfile=/k"),
            "web1:2222"
        );
        assert_eq!(uri_host("qemu+tcp://10.0.0.2/system"), "10.0.0.2");
        assert_eq!(uri_host("qemu:///system"), "localhost");
        let u = "qemu+tcp://h/system";
        assert_eq!(
            short_error(
                u,
                "libvirt qemu+tcp://h/system: libvirt: cannot connect to qemu+tcp://h/system: refused"
            ),
            "libvirt: cannot connect: refused"
        );
    }

    #[test]
    fn host_profiles_replace_the_default_and_keep_their_own_domains() {
        let inv = Inventory::default();
        let e = HostEntry {
            profile: Some("latency".into()),
            ..HostEntry::uri("test:///default")
        };
        let args = vec!["dense".to_string(), "desktop=nowhere".to_string()];
        assert_eq!(profile_args(&e, &args, &inv), vec!["latency".to_string()]);
        assert_eq!(
            profile_args(&HostEntry::uri("x:y"), &args, &inv),
            vec!["dense".to_string()]
        );
    }

    #[test]
    fn runs_are_bounded_ordered_and_time_out() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hosts: Vec<HostEntry> = (0..6)
            .map(|i| HostEntry::uri(&format!("test:///h{i}")))
            .collect();
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (n2, m2) = (Arc::clone(&now), Arc::clone(&most));
        let opts = RunOptions {
            parallel: 2,
            timeout: Duration::from_millis(800),
        };
        let started = Instant::now();
        let out = run(&hosts, opts, move |h| {
            let c = n2.fetch_add(1, Ordering::SeqCst) + 1;
            m2.fetch_max(c, Ordering::SeqCst);
            if h.uri.ends_with("h1") {
                std::thread::sleep(Duration::from_secs(5));
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            n2.fetch_sub(1, Ordering::SeqCst);
            if h.uri.ends_with("h3") {
                return Err("refused".to_string());
            }
            if h.uri.ends_with("h4") {
                panic!("boom");
            }
            Ok(h.uri.clone())
        });
        assert!(started.elapsed() < Duration::from_secs(4), "did not wait");
        assert_eq!(out.len(), 6);
        assert_eq!(out[0].result.as_deref(), Ok("test:///h0"));
        assert!(out[1].result.as_ref().unwrap_err().contains("no answer"));
        assert_eq!(out[3].result.as_ref().unwrap_err(), "refused");
        assert!(out[4].result.as_ref().unwrap_err().contains("panicked"));
        assert_eq!(out[5].result.as_deref(), Ok("test:///h5"));
        // a timed-out job no longer counts, so at most 3 ran at once, usually 2
        assert!(most.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn the_test_driver_surveys_like_a_host() {
        let s = survey(&HostEntry::uri("test:///default"), &[], true).unwrap();
        assert_eq!(s.figures.defined, s.inventory.domains.len());
        assert!(s.figures.defined >= 1);
        assert!(s.audit.is_some());
        assert_eq!(s.profile, "server");
    }
}
