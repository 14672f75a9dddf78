//! Several hosts at once: which hosts a run is about (`-c` repeated, `--hosts FILE`), the
//! parallel gathering (kvmtune-core's fleet module), `kvmtune fleet`'s table, and the exit
//! rule every multi-host command shares: 2 only when no host answered.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{Cli, FleetArgs};
use crate::output::{self, Exit, Style, print_text};
use kvmtune_core::fleet::{self as core_fleet, Figures, HostEntry, Outcome, RunOptions, Survey};
use kvmtune_profile::Counts;
use kvmtune_rules::Check;
use kvmtune_rules::audit::Severity;

pub const KIND: &str = "kvmtune.fleet";
pub const VERSION: u32 = 1;

/// The hosts of this run when there are several (`--hosts`, or `-c` more than once); `None`
/// for a single-host run, which keeps its usual behaviour.
pub fn hosts(cli: &Cli) -> Result<Option<Vec<HostEntry>>> {
    let mut hosts = match &cli.hosts {
        Some(file) => core_fleet::read_inventory(file)?,
        None if cli.connects.len() > 1 => Vec::new(),
        None => return Ok(None),
    };
    if cli.hosts.is_none() || cli.connect_given {
        hosts.extend(cli.connects.iter().map(|u| HostEntry::uri(u)));
    }
    if cli.root.is_some() || cli.from.is_some() {
        bail!(
            "--root and --from describe one host; several hosts (-c repeated, --hosts) are read through libvirt"
        );
    }
    // every profile the inventory names must load: a typo is an error of the run, not of
    // one host
    let label = cli
        .hosts
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    for h in &hosts {
        if let Some(p) = &h.profile {
            kvmtune_rules::load_profile(p)
                .with_context(|| format!("--hosts {label} line {}: profile {p}", h.line))?;
        }
    }
    Ok(Some(hosts))
}

/// The command names that work on one host only, for the refusal.
pub fn refuse(command: &str, n: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "{command} works on one host; {n} hosts were given (-c repeated or --hosts): {}",
        match command {
            "exporter" =>
                "run one exporter per host, next to its libvirtd (Prometheus scrapes each)",
            _ => "`kvmtune stat` shows several hosts' live figures",
        }
    )
}

/// What one host gives a multi-host command.
pub struct Answer {
    pub survey: Survey,
    /// Where the host facts came from.
    pub source: String,
    /// `host --check`: the checks, with the profile they were judged with.
    pub checks: Option<(String, Vec<Check>)>,
}

/// Read every host in parallel: its inventory, and its audit (`audit`) and host checks
/// (`check`: the profile when the host's inventory entry names none).
pub fn gather(
    cli: &Cli,
    hosts: &[HostEntry],
    profile: Vec<String>,
    audit: bool,
    check: Option<String>,
) -> Vec<Outcome<Answer>> {
    let opts = RunOptions {
        parallel: cli.parallel as usize,
        timeout: Duration::from_secs(cli.host_timeout),
    };
    core_fleet::run(hosts, opts, move |h| {
        let survey = core_fleet::survey(h, &profile, audit).map_err(|e| e.to_string())?;
        let source = survey.inventory.host_origin.clone();
        let checks = match &check {
            Some(default) => {
                let name = h.profile.as_deref().unwrap_or(default);
                let p = kvmtune_rules::load_profile(name).map_err(|e| e.to_string())?;
                let host = survey
                    .inventory
                    .host
                    .as_ref()
                    .ok_or_else(|| "no host facts".to_string())?;
                Some((p.name.clone(), kvmtune_rules::check_host(host, &p)))
            }
            None => None,
        };
        Ok(Answer {
            survey,
            source,
            checks,
        })
    })
}

/// How a host is called: the inventory's name, else its hostname, else its URI's server.
pub fn display_name(h: &HostEntry, figures: Option<&Figures>) -> String {
    h.name
        .clone()
        .or_else(|| figures.and_then(|f| f.hostname.clone()))
        .unwrap_or_else(|| core_fleet::uri_host(&h.uri))
}

/// One row of the fleet table (`hosts[]` of `kvmtune.fleet`).
#[derive(Serialize)]
pub struct Row {
    pub host: String,
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
    pub elapsed_ms: u64,
    /// The profile the host was audited with (none with --no-audit or a failed host).
    pub profile: Option<String>,
    /// Findings by severity; none with --no-audit or a failed host.
    pub findings: Option<Counts>,
    /// Inputs of the host that could not be read (domains without XML, bad metadata).
    pub input_errors: Vec<String>,
    #[serde(flatten)]
    pub figures: Option<Figures>,
}

pub fn rows(hosts: &[HostEntry], outcomes: &[Outcome<Answer>]) -> Vec<Row> {
    hosts
        .iter()
        .zip(outcomes)
        .map(|(h, o)| {
            let elapsed_ms = o.elapsed.as_millis() as u64;
            match &o.result {
                Ok(a) => Row {
                    host: display_name(h, Some(&a.survey.figures)),
                    uri: h.uri.clone(),
                    name: h.name.clone(),
                    ok: true,
                    error: None,
                    elapsed_ms,
                    profile: a.survey.audit.as_ref().map(|_| a.survey.profile.clone()),
                    findings: a.survey.findings(),
                    input_errors: a
                        .survey
                        .audit
                        .as_ref()
                        .map(|r| r.errors.clone())
                        .unwrap_or_else(|| a.survey.inventory.errors.clone()),
                    figures: Some(a.survey.figures.clone()),
                },
                Err(e) => Row {
                    host: display_name(h, None),
                    uri: h.uri.clone(),
                    name: h.name.clone(),
                    ok: false,
                    error: Some(e.clone()),
                    elapsed_ms,
                    profile: None,
                    findings: None,
                    input_errors: Vec::new(),
                    figures: None,
                },
            }
        })
        .collect()
}

/// The fleet's totals.
#[derive(Serialize)]
pub struct Summary {
    pub hosts: usize,
    pub answered: usize,
    pub failed: usize,
    /// Findings of every host together (none with --no-audit).
    pub findings: Option<Counts>,
}

pub fn summary(rows: &[Row]) -> Summary {
    let answered = rows.iter().filter(|r| r.ok).count();
    let mut total: Option<Counts> = None;
    for c in rows.iter().filter_map(|r| r.findings) {
        let t = total.get_or_insert_with(Counts::default);
        t.error += c.error;
        t.warn += c.warn;
        t.info += c.info;
    }
    Summary {
        hosts: rows.len(),
        answered,
        failed: rows.len() - answered,
        findings: total,
    }
}

/// The exit rule of every multi-host command: 2 when no host answered; 1 when a host
/// failed (or had unreadable inputs) or `findings`; else 0.
pub fn exit(rows: &[Row], findings: bool) -> Exit {
    if !rows.iter().any(|r| r.ok) {
        return Exit::Error;
    }
    let failed = rows.iter().any(|r| !r.ok || !r.input_errors.is_empty());
    Exit::findings_if(failed || findings)
}

/// KiB as M or G (binary units): 128M, 1.5G, 24G.
fn mem(kib: u64) -> String {
    let m = kib as f64 / 1024.0;
    let g = m / 1024.0;
    if kib == 0 {
        "0".into()
    } else if g >= 10.0 {
        format!("{g:.0}G")
    } else if g >= 1.0 {
        format!("{g:.1}G")
    } else {
        format!("{:.0}M", m.max(1.0))
    }
}

fn pool_size(kib: u64) -> String {
    if kib >= 1024 * 1024 && kib.is_multiple_of(1024 * 1024) {
        format!("{}G", kib / (1024 * 1024))
    } else if kib >= 1024 && kib.is_multiple_of(1024) {
        format!("{}M", kib / 1024)
    } else {
        format!("{kib}K")
    }
}

/// The fleet table as text: one row per host; a failed host's row ends with its error.
pub fn render(rows: &[Row], st: &Style) -> String {
    let header = [
        "HOST",
        "URI",
        "STATE",
        "DOMAINS",
        "VCPU:THREADS",
        "MEMORY",
        "FINDINGS E/W/I",
        "KSM SAVED",
        "HUGEPAGES FREE/TOTAL",
    ];
    // (cells, whether the last cell is a failed host's error: not aligned, not counted)
    let mut table: Vec<(Vec<String>, bool)> =
        vec![(header.iter().map(|s| s.to_string()).collect(), false)];
    for r in rows {
        let mut cells = vec![
            output::safe(&r.host).into_owned(),
            output::safe(&r.uri).into_owned(),
        ];
        let Some(f) = &r.figures else {
            let e = r.error.as_deref().unwrap_or("failed");
            cells.push(format!("error: {}", output::one_line(e)));
            table.push((cells, true));
            continue;
        };
        cells.push(if r.input_errors.is_empty() {
            "ok".into()
        } else {
            format!("ok, {} unreadable", r.input_errors.len())
        });
        cells.push(format!("{}/{}", f.running, f.defined));
        cells.push(match (f.host_threads, f.vcpu_ratio) {
            (Some(t), Some(x)) => format!("{}:{t} ({x:.2})", f.vcpus_running),
            _ => format!("{}:?", f.vcpus_running),
        });
        cells.push(match f.host_memory_kib {
            Some(t) => format!("{}/{}", mem(f.memory_running_kib), mem(t)),
            None => format!("{}/?", mem(f.memory_running_kib)),
        });
        cells.push(match &r.findings {
            Some(c) => format!("{}/{}/{}", c.error, c.warn, c.info),
            None => "-".into(),
        });
        cells.push(match f.ksm_saved_bytes {
            Some(b) => mem(b / 1024),
            None => "?".into(),
        });
        cells.push(if f.hugepages.is_empty() {
            "none".into()
        } else {
            f.hugepages
                .iter()
                .map(|p| format!("{}/{} x{}", p.free, p.total, pool_size(p.size_kib)))
                .collect::<Vec<_>>()
                .join(", ")
        });
        table.push((cells, false));
    }
    let mut widths = vec![0usize; header.len()];
    for (row, failed) in &table {
        let n = if *failed { row.len() - 1 } else { row.len() };
        for (i, c) in row.iter().take(n).enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (k, (row, _)) in table.iter().enumerate() {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}", w = widths[i]));
            }
        }
        let line = line.trim_end();
        if k == 0 {
            out.push_str(&st.bold(line));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    let s = summary(rows);
    out.push_str(&format!(
        "{} host(s): {} answered, {} failed{}\n",
        s.hosts,
        s.answered,
        s.failed,
        match s.findings {
            Some(c) => format!(
                "; findings: {} error, {} warn, {} info",
                c.error, c.warn, c.info
            ),
            None => String::new(),
        }
    ));
    out
}

#[derive(Serialize)]
struct FleetDoc<'a> {
    parallel: u32,
    host_timeout_s: u64,
    audit: bool,
    summary: Summary,
    hosts: &'a [Row],
}

pub fn fail_on(s: Option<&str>) -> Result<Severity> {
    match s {
        Some(s) => Severity::parse(s)
            .with_context(|| format!("--fail-on {s}: expected info, warn or error")),
        None => Ok(Severity::Warn),
    }
}

/// Whether a count has a finding at least `fail_on`.
pub fn counts_reach(c: &Counts, fail_on: Severity) -> bool {
    match fail_on {
        Severity::Error => c.error > 0,
        Severity::Warn => c.error + c.warn > 0,
        Severity::Info => c.error + c.warn + c.info > 0,
    }
}

/// `kvmtune fleet`.
pub fn run(cli: &Cli, args: &FleetArgs, hosts: Option<Vec<HostEntry>>) -> Result<Exit> {
    let fail_on = fail_on(args.fail_on.as_deref())?;
    // the profile must load before any host is contacted
    kvmtune_rules::load_profile(&args.profile)?;
    let hosts = match hosts {
        Some(h) => h,
        None => {
            if cli.root.is_some() || cli.from.is_some() {
                bail!("fleet reads hosts through libvirt; --root and --from describe one host");
            }
            vec![HostEntry::uri(&cli.connect)]
        }
    };
    let outcomes = gather(
        cli,
        &hosts,
        vec![args.profile.clone()],
        !args.no_audit,
        None,
    );
    let rows = rows(&hosts, &outcomes);
    let findings = rows
        .iter()
        .filter_map(|r| r.findings.as_ref())
        .any(|c| counts_reach(c, fail_on));
    if cli.json {
        output::print_doc(
            KIND,
            VERSION,
            &FleetDoc {
                parallel: cli.parallel,
                host_timeout_s: cli.host_timeout,
                audit: !args.no_audit,
                summary: summary(&rows),
                hosts: &rows,
            },
        )?;
    } else {
        print_text(&render(&rows, &Style::of(cli)))?;
    }
    let code = exit(&rows, findings);
    if code == Exit::Error {
        output::error(&format!("no host answered ({} tried)", rows.len()));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ok: bool, findings: Option<Counts>) -> Row {
        Row {
            host: "h".into(),
            uri: "test:///default".into(),
            name: None,
            ok,
            error: (!ok).then(|| "unreachable".to_string()),
            elapsed_ms: 1,
            profile: None,
            findings,
            input_errors: Vec::new(),
            figures: None,
        }
    }

    #[test]
    fn exit_is_2_only_when_no_host_answered() {
        assert_eq!(
            exit(&[row(false, None), row(false, None)], false),
            Exit::Error
        );
        assert_eq!(
            exit(&[row(true, None), row(false, None)], false),
            Exit::Findings
        );
        assert_eq!(
            exit(&[row(true, None), row(true, None)], false),
            Exit::Clean
        );
        assert_eq!(exit(&[row(true, None)], true), Exit::Findings);
        let c = Counts {
            error: 0,
            warn: 1,
            info: 0,
        };
        assert!(counts_reach(&c, Severity::Warn) && !counts_reach(&c, Severity::Error));
    }

    #[test]
    fn a_failed_row_shows_its_error_on_its_line() {
        let t = render(&[row(false, None)], &Style::plain());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[1].contains("error: unreachable"), "{t}");
        assert!(lines[2].contains("1 host(s): 0 answered, 1 failed"), "{t}");
    }
}
