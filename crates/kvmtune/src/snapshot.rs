//! `kvmtune snapshot`: capture a host and its libvirt domains into a support bundle.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use kvmtune_bundle::{Bundle, LibvirtCapture};
use kvmtune_core::inventory::capture_libvirt;
use kvmtune_host::{Recorder, RootDir, Source};

use crate::cli::{Cli, SnapshotArgs};
use crate::output::{self, Exit, print_text};

#[derive(Serialize)]
struct SnapshotReport<'a> {
    path: String,
    origin: &'a str,
    host_files: usize,
    unknown_fields: usize,
    libvirt_uri: Option<&'a str>,
    libvirt_error: Option<&'a str>,
    libvirt_errors: &'a [String],
    domains: Vec<&'a str>,
    running: usize,
    /// The stat window recorded with --stat-seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    stat: Option<&'a kvmtune_bundle::StatWindow>,
}

/// `snapshot` on several hosts: `-o DIR`, one bundle per host (`DIR/HOST.tar.gz`, HOST the
/// inventory's name or the URI's server), captured in parallel.
pub fn run_many(
    cli: &Cli,
    args: &SnapshotArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    if args.no_libvirt {
        bail!("--no-libvirt captures this machine's files: leave out -c/--hosts");
    }
    if output::is_stdout(&args.output) {
        bail!("several hosts make several bundles: -o DIR, not standard output");
    }
    let dir = args.output.clone();
    kvmtune_host::fsio::create_dir(&dir, 0o700).with_context(|| {
        format!(
            "-o {}: one bundle per host goes into this directory",
            dir.display()
        )
    })?;
    let files = bundle_names(&hosts);
    let args = args.clone();
    crate::multi::run(
        cli,
        hosts,
        "snapshot",
        Box::new(move |cli, h| {
            let name = files
                .iter()
                .find(|(uri, _)| *uri == h.uri)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| "host.tar.gz".to_string());
            let mut a = args.clone();
            a.output = dir.join(name);
            run(cli, &a)
        }),
    )
}

/// One bundle file name per host URI: the inventory's name or the URI's server, made safe
/// for a file name (letters, digits, `.`, `-`, `_`), numbered when two hosts share one.
fn bundle_names(hosts: &[kvmtune_core::fleet::HostEntry]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for h in hosts {
        if out.iter().any(|(u, _)| *u == h.uri) {
            continue;
        }
        let label = h
            .name
            .clone()
            .unwrap_or_else(|| kvmtune_core::fleet::uri_host(&h.uri));
        let mut safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.is_empty() || safe.starts_with('.') {
            safe.insert_str(0, "host");
        }
        let mut name = format!("{safe}.tar.gz");
        let mut n = 2;
        while out.iter().any(|(_, f)| *f == name) {
            name = format!("{safe}-{n}.tar.gz");
            n += 1;
        }
        out.push((h.uri.clone(), name));
    }
    out
}

pub fn run(cli: &Cli, args: &SnapshotArgs) -> Result<Exit> {
    if cli.from.is_some() {
        bail!("snapshot captures a host; it cannot read from a bundle (--from)");
    }
    if args.stat_seconds.is_some_and(|n| !(1..=3600).contains(&n)) {
        bail!("--stat-seconds must be between 1 and 3600");
    }
    // a remote host: its facts as its libvirt reports them, no host file (this machine's
    // files must never be bundled with another host's domains)
    let remote = !args.no_libvirt && !kvmtune_libvirt::is_local(&cli.connect) && cli.root.is_none();
    let base = match &cli.root {
        Some(r) => {
            if !r.is_dir() {
                bail!("--root {}: not a directory", r.display());
            }
            RootDir::new(r)
        }
        None => RootDir::live(),
    };
    let rec = Recorder::new(base.clone());
    let (origin, host, mut libvirt) = if remote {
        let origin = format!("libvirt {} (a remote host: no host files)", cli.connect);
        let lv = kvmtune_libvirt::Libvirt::open(&cli.connect, false)
            .or_else(|_| kvmtune_libvirt::Libvirt::open(&cli.connect, true))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let facts = lv.node_facts();
        let host = kvmtune_core::remote::host_from_libvirt(&facts);
        let mut libvirt = capture_libvirt(&cli.connect);
        libvirt.node_facts =
            Some(serde_json::to_string_pretty(&facts).context("cannot serialize the node facts")?);
        (origin, host, libvirt)
    } else {
        let host = kvmtune_host::collect(&rec);
        let libvirt = if args.no_libvirt {
            LibvirtCapture {
                error: Some("not captured (--no-libvirt)".into()),
                ..LibvirtCapture::default()
            }
        } else {
            capture_libvirt(&cli.connect)
        };
        (base.describe(), host, libvirt)
    };
    let host_json =
        serde_json::to_string_pretty(&host).context("cannot serialize the host view")?;
    if !args.secrets {
        redact_domains(&mut libvirt);
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut bundle = Bundle::new(
        origin.clone(),
        rec.capture(),
        libvirt,
        Some(host_json),
        created,
    );
    if let Some(n) = args.stat_seconds {
        let (jsonl, frames, error) = stat_window(cli, n);
        if let Some(e) = &error {
            output::warning(&format!("--stat-seconds: {e}"));
        }
        bundle = bundle.with_stat(n, jsonl, frames, error);
    }
    // `-o -` (or /dev/stdout): the bundle goes to standard output, the summary to stderr
    let to_stdout = output::is_stdout(&args.output);
    if to_stdout {
        let bytes = bundle.to_bytes().context("cannot build the bundle")?;
        output::write_output(&args.output, &bytes, kvmtune_host::fsio::PRIVATE_FILE)?;
    } else {
        bundle.write(&args.output)?;
    }
    let left_out: Vec<&String> = bundle
        .manifest
        .capture
        .file_errors
        .iter()
        .filter(|(_, why)| why.to_string().contains("not put in the bundle"))
        .map(|(p, _)| p)
        .collect();

    let lv = &bundle.manifest.libvirt;
    let report = SnapshotReport {
        path: args.output.display().to_string(),
        origin: &origin,
        host_files: bundle.manifest.host_files.len(),
        unknown_fields: host.unknown.len(),
        libvirt_uri: lv.uri.as_deref(),
        libvirt_error: lv.error.as_deref(),
        libvirt_errors: &lv.errors,
        domains: lv.domains.iter().map(|d| d.name.as_str()).collect(),
        running: lv.domains.iter().filter(|d| d.active).count(),
        stat: bundle.manifest.stat.as_ref(),
    };
    if to_stdout {
        // stdout holds the bundle: the summary is a note on stderr
        output::note(&format!(
            "wrote a bundle to standard output: {} host files, {} domains",
            report.host_files,
            report.domains.len()
        ));
    } else if cli.json {
        output::print_doc("kvmtune.snapshot", 1, &report)?;
    } else {
        let t = format!(
            "wrote {}: {} host files from {}, {} domains ({} running){}\n",
            report.path,
            report.host_files,
            origin,
            report.domains.len(),
            report.running,
            report
                .stat
                .map(|w| format!(", a stat window of {} interval(s)", w.frames))
                .unwrap_or_default()
        );
        // Warnings go to stderr, so stdout stays the one-line summary.
        for p in &left_out {
            output::warning(&format!(
                "{p}: larger than {} bytes; not put in the bundle",
                kvmtune_bundle::MAX_ENTRY
            ));
        }
        if let Some(e) = report.libvirt_error {
            output::warning(&format!("libvirt not captured: {e}"));
        }
        for e in report.libvirt_errors {
            output::warning(&format!("libvirt: partial capture: {e}"));
        }
        print_text(&t)?;
    }
    Ok(Exit::Clean)
}

/// `--stat-seconds N`: N one-second intervals of every running domain, as `kvmtune stat
/// --json` lines; what was recorded before a failure is kept, with the failure.
fn stat_window(cli: &Cli, secs: u64) -> (String, u64, Option<String>) {
    let mut jsonl = String::new();
    let mut frames = 0u64;
    let r = (|| -> Result<()> {
        let mut watch = kvmtune_core::watch::Watch::open(&crate::origin(cli), Vec::new(), None)?;
        let interval = std::time::Duration::from_secs(1);
        let start = std::time::Instant::now();
        let mut prev = watch.take()?;
        for n in 1..=secs {
            crate::stat::sleep_until(start, n, interval);
            let cur = watch.take()?;
            let fr = watch.frame(&prev, &cur);
            jsonl.push_str(&serde_json::to_string(&fr).context("cannot encode a frame")?);
            jsonl.push('\n');
            frames += 1;
            prev = cur;
        }
        Ok(())
    })();
    (jsonl, frames, r.err().map(|e| crate::one_line(&e)))
}

/// Replace the secrets of every captured domain XML with `***` (see
/// `kvmtune_domain::secrets`): a bundle is made to be shared.
fn redact_domains(lv: &mut LibvirtCapture) {
    for d in &mut lv.domains {
        for x in [&mut d.inactive_xml, &mut d.live_xml].into_iter().flatten() {
            *x = kvmtune_domain::secrets::redact(x);
        }
    }
}

#[cfg(test)]
mod many_tests {
    use super::*;
    use kvmtune_core::fleet::HostEntry;

    #[test]
    fn bundle_names_are_safe_and_distinct() {
        let mut a = HostEntry::uri("qemu+ssh://root@db1.example/system");
        a.name = Some("../etc/passwd".into());
        let b = HostEntry::uri("qemu+tcp://db1.example/system");
        let c = HostEntry::uri("qemu+tls://db1.example/system");
        let names = bundle_names(&[a, b, c]);
        assert_eq!(names[0].1, "host.._etc_passwd.tar.gz");
        assert_eq!(names[1].1, "db1.example.tar.gz");
        assert_eq!(names[2].1, "db1.example-2.tar.gz");
        for (_, f) in &names {
            assert!(!f.contains('/'), "{f}");
        }
    }
}
