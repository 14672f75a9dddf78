//! `kvmtune stat`: live per-VM figures each interval, as text, JSON Lines or CSV.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cli::{Cli, StatArgs, StatFormat};
use crate::output::{Exit, Style, print_text};
use kvmtune_core::watch::{Watch, check_interval};
use kvmtune_kvmstat::live::{Frame, VmFigures};

fn opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".into(),
    }
}

/// Exit rates as whole numbers per second (one precision for the column).
fn exits_cell(d: &VmFigures, f: impl Fn(&kvmtune_kvmstat::live::ExitRates) -> f64) -> String {
    d.exits
        .as_ref()
        .map(|e| format!("{:.0}", f(e)))
        .unwrap_or_else(|| "-".into())
}

/// What a frame's table needs explained under it, once.
#[derive(Default)]
struct Notes {
    guest_above_host: bool,
    no_exits: bool,
    no_remote: bool,
    no_cpu: bool,
}

pub fn render_text(fr: &Frame, vcpus: bool, st: &Style) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        st.bold(&format!("{}  interval {:.2} s", fr.time, fr.interval_s))
    );
    let _ = writeln!(
        s,
        "{:<24} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>7}",
        "DOMAIN",
        "HOST%",
        "GUEST%",
        "OVH%",
        "EMU%",
        "DELAY%",
        "EXITS/s",
        "IO/s",
        "MMIO/s",
        "HLT/s",
        "EMUL/s",
        "REMOTE%"
    );
    let mut notes = Notes::default();
    for d in &fr.domains {
        let remote = d
            .memory
            .as_ref()
            .and_then(|m| m.remote_share)
            .map(|r| r * 100.0);
        // guest time and host time come from different counters: say so where they cross
        let crossed =
            matches!((d.guest_cpu_pct, d.host_cpu_pct), (Some(g), Some(h)) if g > h + 0.05);
        if crossed {
            notes.guest_above_host = true;
        }
        if d.exits.is_none() {
            notes.no_exits = true;
        }
        if remote.is_none() {
            notes.no_remote = true;
        }
        if [
            d.host_cpu_pct,
            d.guest_cpu_pct,
            d.overhead_pct,
            d.emulator_cpu_pct,
            d.delay_pct,
        ]
        .iter()
        .any(Option::is_none)
        {
            notes.no_cpu = true;
        }
        let guest = if crossed {
            format!("{}*", opt(d.guest_cpu_pct, 1))
        } else {
            opt(d.guest_cpu_pct, 1)
        };
        let _ = writeln!(
            s,
            "{:<24} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>7}",
            d.name,
            opt(d.host_cpu_pct, 1),
            guest,
            opt(d.overhead_pct, 1),
            opt(d.emulator_cpu_pct, 1),
            opt(d.delay_pct, 1),
            exits_cell(d, |e| e.total),
            exits_cell(d, |e| e.io),
            exits_cell(d, |e| e.mmio),
            exits_cell(d, |e| e.halt),
            exits_cell(d, |e| e.insn_emulation),
            opt(remote, 0),
        );
        if vcpus {
            for v in &d.vcpu {
                let _ = writeln!(
                    s,
                    "  vcpu {:<17} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}  last cpu {}",
                    v.id,
                    opt(v.cpu_pct, 1),
                    opt(v.guest_pct, 1),
                    "",
                    "",
                    opt(v.delay_pct, 1),
                    v.exits_per_s
                        .map(|x| format!("{x:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    v.last_cpu
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                );
            }
        }
    }
    if notes.guest_above_host {
        let _ = writeln!(
            s,
            "* GUEST% above HOST%: guest time is the kernel's per-thread guest ticks, host time the threads' CPU time from /proc (or libvirt); counted at tick resolution over a short interval they can cross by a few percent"
        );
    }
    let mut dash = Vec::new();
    if notes.no_exits {
        dash.push("exit columns: no KVM exit counters (a TCG domain, or libvirt/QEMU too old)");
    }
    if notes.no_remote {
        dash.push("REMOTE%: no per-node memory figures (one NUMA node, a remote host, or numa_maps not read yet)");
    }
    if notes.no_cpu {
        dash.push("CPU columns: not measurable this interval (no /proc for a remote host, or the first interval)");
    }
    if !dash.is_empty() {
        let _ = writeln!(s, "- = {}", dash.join("; "));
    }
    for n in &fr.appeared {
        let _ = writeln!(s, "+ {n} started (figures from the next interval)");
    }
    for n in &fr.restarted {
        let _ = writeln!(
            s,
            "~ {n} restarted (counters reset; figures from the next interval)"
        );
    }
    for n in &fr.vanished {
        let _ = writeln!(s, "- {n} stopped");
    }
    s
}

pub const CSV_HEADER: &str = "time,interval_s,domain,id,pid,vcpus,host_cpu_pct,guest_cpu_pct,\
overhead_pct,emulator_cpu_pct,delay_pct,exits_per_s,io_exits_per_s,mmio_exits_per_s,\
halt_exits_per_s,irq_exits_per_s,insn_emulation_per_s,halt_poll_pct,remote_share,balloon_kib,rss_kib";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn render_csv(fr: &Frame) -> String {
    let mut s = String::new();
    let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let u = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for d in &fr.domains {
        let e = d.exits.as_ref();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            fr.time,
            fr.interval_s,
            csv_field(&d.name),
            u(d.id.map(u64::from)),
            u(d.pid.map(u64::from)),
            d.vcpus,
            o(d.host_cpu_pct),
            o(d.guest_cpu_pct),
            o(d.overhead_pct),
            o(d.emulator_cpu_pct),
            o(d.delay_pct),
            o(e.map(|e| e.total)),
            o(e.map(|e| e.io)),
            o(e.map(|e| e.mmio)),
            o(e.map(|e| e.halt)),
            o(e.map(|e| e.irq)),
            o(e.map(|e| e.insn_emulation)),
            o(d.halt_poll_pct),
            o(d.memory.as_ref().and_then(|m| m.remote_share)),
            u(d.balloon_kib),
            u(d.rss_kib),
        );
    }
    s
}

/// `--format csv --vcpus`: one row per vCPU per interval instead of one per domain.
pub const VCPU_CSV_HEADER: &str =
    "time,interval_s,domain,vcpu,cpu_pct,guest_pct,delay_pct,exits_per_s,last_cpu";

pub fn render_vcpu_csv(fr: &Frame) -> String {
    let mut s = String::new();
    let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for d in &fr.domains {
        for v in &d.vcpu {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{}",
                fr.time,
                fr.interval_s,
                csv_field(&d.name),
                v.id,
                o(v.cpu_pct),
                o(v.guest_pct),
                o(v.delay_pct),
                o(v.exits_per_s),
                v.last_cpu.map(|c| c.to_string()).unwrap_or_default(),
            );
        }
    }
    s
}

/// Sleep until `start + n * interval` (no drift over a long run).
pub fn sleep_until(start: Instant, n: u64, interval: Duration) {
    let target = start + interval.mul_f64(n as f64);
    let now = Instant::now();
    if target > now {
        std::thread::sleep(target - now);
    }
}

pub fn run(cli: &Cli, args: &StatArgs) -> Result<Exit> {
    let interval = check_interval(args.interval)?;
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let style = Style::of(cli);
    let format = if cli.json {
        StatFormat::Jsonl
    } else {
        args.format
    };
    let mut only = args.domains.clone();
    only.extend(args.domain.iter().cloned());
    let mut watch = Watch::open(&crate::origin(cli), only, args.numa_interval)?;
    watch.idle_rule(None);
    let start = Instant::now();
    let mut prev = watch.take()?;
    let mut out = std::io::stdout().lock();
    if format == StatFormat::Csv {
        let header = if args.vcpus {
            VCPU_CSV_HEADER
        } else {
            CSV_HEADER
        };
        writeln!(out, "{header}").context("cannot write to stdout")?;
    }
    let mut n = 0u64;
    loop {
        n += 1;
        sleep_until(start, n, interval);
        let cur = watch.take()?;
        let fr = watch.frame(&prev, &cur);
        let text = match format {
            StatFormat::Text => render_text(&fr, args.vcpus, &style),
            StatFormat::Jsonl => {
                let mut line = serde_json::to_string(&fr).context("cannot encode JSON")?;
                line.push('\n');
                line
            }
            StatFormat::Csv if args.vcpus => render_vcpu_csv(&fr),
            StatFormat::Csv => render_csv(&fr),
        };
        let w = out
            .write_all(crate::output::terminal_safe(&text).as_bytes())
            .and_then(|_| out.flush());
        match w {
            Ok(()) => {}
            // `kvmtune stat | head`: the reader is gone, which ends the run normally
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(Exit::Clean),
            Err(e) => return Err(e).context("cannot write to stdout"),
        }
        prev = cur;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(Exit::Clean);
        }
    }
}

/// What one host's sampling thread sends: its index, the interval number (0: it could not
/// start) and the frame or its error.
type HostFrame = (usize, u64, std::result::Result<Frame, String>);

/// `stat` on several hosts: one sampling thread per host on the same clock; each interval's
/// frames are shown together, grouped by host (text), with `host` and `uri` on every line
/// (JSON Lines) or as the first columns (CSV). A host that cannot be reached, or stops
/// answering, is reported once and the others go on; a host late by more than
/// `--host-timeout` misses that interval.
pub fn run_many(
    cli: &Cli,
    args: &StatArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    use std::sync::mpsc;
    let interval = check_interval(args.interval)?;
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let style = Style::of(cli);
    let format = if cli.json {
        StatFormat::Jsonl
    } else {
        args.format
    };
    let mut only = args.domains.clone();
    only.extend(args.domain.iter().cloned());
    let labels: Vec<String> = hosts
        .iter()
        .map(|h| crate::fleet::display_name(h, None))
        .collect();
    let (tx, rx) = mpsc::channel::<HostFrame>();
    let start = Instant::now();
    for (i, h) in hosts.iter().enumerate() {
        let tx = tx.clone();
        let origin = kvmtune_core::inventory::Origin {
            connect: h.uri.clone(),
            root: None,
            from: None,
        };
        let only = only.clone();
        let (numa, count) = (args.numa_interval, args.count);
        std::thread::Builder::new()
            .name(format!("stat-{i}"))
            .spawn(move || sample_host(i, &origin, only, numa, count, start, interval, &tx))
            .context("cannot start a sampling thread")?;
    }
    drop(tx);
    let timeout = Duration::from_secs(cli.host_timeout.max(1));
    let n_hosts = hosts.len();
    let mut alive = vec![true; n_hosts];
    let mut answered = vec![false; n_hosts];
    let mut early: Vec<HostFrame> = Vec::new();
    if format == StatFormat::Csv {
        let header = if args.vcpus {
            VCPU_CSV_HEADER
        } else {
            CSV_HEADER
        };
        if let Err(e) = print_text(&format!("host,uri,{header}\n")) {
            return quiet_end(e);
        }
    }
    let mut n = 0u64;
    loop {
        n += 1;
        let deadline = start + interval.mul_f64(n as f64) + timeout;
        let mut got: Vec<Option<std::result::Result<Frame, String>>> =
            (0..n_hosts).map(|_| None).collect();
        let mut keep = Vec::new();
        for m in early.drain(..) {
            if m.1 == n {
                got[m.0] = Some(m.2);
            } else if m.1 > n {
                keep.push(m);
            }
        }
        early = keep;
        while (0..n_hosts).any(|i| alive[i] && got[i].is_none()) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok((i, m, r)) if m == 0 || m == n => got[i] = Some(r),
                Ok(m) if m.1 > n => early.push(m),
                Ok(_) => {} // a late frame of an interval already shown
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut text = String::new();
        for i in 0..n_hosts {
            if !alive[i] {
                continue;
            }
            let (label, uri) = (&labels[i], &hosts[i].uri);
            let r = got[i].take().unwrap_or_else(|| {
                Err(format!(
                    "no figures within {} s of the interval (host timeout)",
                    timeout.as_secs()
                ))
            });
            let late = r.as_ref().is_err_and(|e| e.ends_with("(host timeout)"));
            match &r {
                Ok(_) => answered[i] = true,
                Err(_) if late => {}
                Err(_) => alive[i] = false,
            }
            text.push_str(&host_frame(format, args.vcpus, &style, label, uri, &r)?);
        }
        if let Err(e) = print_text(&text) {
            return quiet_end(e);
        }
        if !alive.iter().any(|a| *a) || args.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    if !answered.iter().any(|a| *a) {
        crate::output::error(&format!("stat: no host answered ({n_hosts} tried)"));
        return Ok(Exit::Error);
    }
    Ok(Exit::findings_if(alive.iter().any(|a| !a)))
}

/// `kvmtune stat | head`: the reader is gone, which ends the run normally.
fn quiet_end(e: anyhow::Error) -> Result<Exit> {
    if crate::output::is_broken_pipe(&e) {
        Ok(Exit::Clean)
    } else {
        Err(e)
    }
}

/// One host's sampling loop (a thread of `run_many`).
#[allow(clippy::too_many_arguments)]
fn sample_host(
    i: usize,
    origin: &kvmtune_core::inventory::Origin,
    only: Vec<String>,
    numa: Option<u64>,
    count: Option<u64>,
    start: Instant,
    interval: Duration,
    tx: &std::sync::mpsc::Sender<HostFrame>,
) {
    let one = |e: kvmtune_core::Error| crate::one_line(&anyhow::Error::from(e));
    let mut watch = match Watch::open(origin, only, numa) {
        Ok(w) => w,
        Err(e) => {
            let _ = tx.send((i, 0, Err(one(e))));
            return;
        }
    };
    watch.idle_rule(None);
    let mut prev = match watch.take() {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send((i, 0, Err(one(e))));
            return;
        }
    };
    let mut n = 0u64;
    loop {
        n += 1;
        sleep_until(start, n, interval);
        let r = watch.take().map(|cur| {
            let fr = watch.frame(&prev, &cur);
            prev = cur;
            fr
        });
        let failed = r.is_err();
        if tx.send((i, n, r.map_err(one))).is_err() || failed {
            return;
        }
        if count.is_some_and(|c| n >= c) {
            return;
        }
    }
}

/// One host's part of an interval, in the output format.
fn host_frame(
    format: StatFormat,
    vcpus: bool,
    style: &Style,
    label: &str,
    uri: &str,
    r: &std::result::Result<Frame, String>,
) -> Result<String> {
    let prefix = format!("{},{},", csv_field(label), csv_field(uri));
    Ok(match (format, r) {
        (StatFormat::Text, Ok(fr)) => format!(
            "{}\n{}",
            style.bold(&format!("== {label} ({uri}) ==")),
            render_text(fr, vcpus, style)
        ),
        (StatFormat::Text, Err(e)) => format!(
            "{}\nerror: {}\n\n",
            style.bold(&format!("== {label} ({uri}) ==")),
            crate::output::one_line(e)
        ),
        (StatFormat::Jsonl, Ok(fr)) => {
            let mut v = serde_json::to_value(fr).context("cannot encode JSON")?;
            if let Some(o) = v.as_object_mut() {
                o.insert("host".into(), serde_json::json!(label));
                o.insert("uri".into(), serde_json::json!(uri));
            }
            let mut line = serde_json::to_string(&v).context("cannot encode JSON")?;
            line.push('\n');
            line
        }
        (StatFormat::Jsonl, Err(e)) => {
            let mut line = serde_json::to_string(&serde_json::json!({
                "host": label, "uri": uri, "error": e,
            }))
            .context("cannot encode JSON")?;
            line.push('\n');
            line
        }
        (StatFormat::Csv, Ok(fr)) => {
            let rows = if vcpus {
                render_vcpu_csv(fr)
            } else {
                render_csv(fr)
            };
            rows.lines().map(|l| format!("{prefix}{l}\n")).collect()
        }
        // CSV has no place for an error: it goes to stderr
        (StatFormat::Csv, Err(e)) => {
            crate::output::error(&format!("{label}: {e}"));
            String::new()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_above_host_is_marked_and_dashes_are_explained_once() {
        let fr = Frame {
            time: "t".into(),
            interval_s: 1.0,
            domains: vec![
                VmFigures {
                    name: "a".into(),
                    host_cpu_pct: Some(1.0),
                    guest_cpu_pct: Some(2.0),
                    ..VmFigures::default()
                },
                VmFigures {
                    name: "b".into(),
                    host_cpu_pct: Some(3.0),
                    guest_cpu_pct: Some(2.0),
                    ..VmFigures::default()
                },
            ],
            ..Frame::default()
        };
        let text = render_text(&fr, false, &Style::plain());
        assert!(text.contains("2.0*"), "{text}");
        assert_eq!(text.matches('*').count(), 2, "one mark, one note: {text}");
        assert!(text.contains("* GUEST% above HOST%"), "{text}");
        assert_eq!(text.matches("- = ").count(), 1, "{text}");
        assert!(text.contains("no KVM exit counters"), "{text}");
    }

    #[test]
    fn csv_with_vcpus_writes_one_row_per_vcpu() {
        let fr = Frame {
            time: "t".into(),
            interval_s: 1.0,
            domains: vec![VmFigures {
                name: "a".into(),
                vcpu: vec![
                    kvmtune_kvmstat::live::VcpuFigures {
                        id: 0,
                        cpu_pct: Some(1.5),
                        last_cpu: Some(3),
                        ..Default::default()
                    },
                    kvmtune_kvmstat::live::VcpuFigures {
                        id: 1,
                        ..Default::default()
                    },
                ],
                ..VmFigures::default()
            }],
            ..Frame::default()
        };
        let rows = render_vcpu_csv(&fr);
        let lines: Vec<&str> = rows.lines().collect();
        assert_eq!(lines.len(), 2, "{rows}");
        assert_eq!(lines[0], "t,1,a,0,1.500,,,,3");
        for l in lines {
            assert_eq!(l.split(',').count(), VCPU_CSV_HEADER.split(',').count());
        }
    }

    #[test]
    fn csv_rows_match_the_header() {
        let fr = Frame {
            time: "t".into(),
            interval_s: 1.0,
            domains: vec![VmFigures {
                name: "a,b".into(),
                host_cpu_pct: Some(1.5),
                ..VmFigures::default()
            }],
            ..Frame::default()
        };
        let row = render_csv(&fr);
        assert!(row.contains("\"a,b\""));
        // a quoted comma is not a field separator
        let fields = row.trim().replace("\"a,b\"", "x").split(',').count();
        assert_eq!(fields, CSV_HEADER.split(',').count());
    }
}
