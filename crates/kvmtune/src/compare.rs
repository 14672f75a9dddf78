//! `kvmtune compare`: did a change help? Two stat logs, two recorded reports, two bundles'
//! stat windows, or two windows of one log, compared per domain (logic:
//! `kvmtune_kvmstat::compare`; rules: docs/compare.md).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::cli::{Cli, CompareArgs};
use crate::output::{Exit, Style, human, print_doc, print_text};
use kvmtune_kvmstat::compare::{
    COMPARE_SCHEMA, COMPARE_VERSION, Comparison, Range, Verdict, Window, compare,
};
use kvmtune_kvmstat::live::Frame;

/// What one input holds.
enum Input {
    Frames(Vec<Frame>),
    Report(Window),
}

/// The stat window of a bundle, as frames.
pub fn bundle_frames(path: &Path) -> Result<Vec<Frame>> {
    let b = kvmtune_bundle::Bundle::read(path)?;
    let Some(text) = &b.stat_jsonl else {
        let why = b
            .manifest
            .stat
            .as_ref()
            .and_then(|s| s.error.clone())
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        bail!(
            "bundle {} holds no stat window{why}: live statistics need a running libvirt, or a bundle made with `kvmtune snapshot --stat-seconds N`",
            path.display()
        );
    };
    let name = format!("{} ({})", path.display(), kvmtune_bundle::STAT_ENTRY);
    Ok(kvmtune_kvmstat::log::parse_log(text.as_bytes(), &name)?)
}

/// A stat log (JSON Lines), a bundle (.tar.gz with a stat window), or a recorded
/// perf/kvm_stat report, told apart by their first bytes.
fn read_input(path: &Path, label: &str) -> Result<Input> {
    let bytes = kvmtune_host::fsio::read_input(path, kvmtune_host::fsio::max_input())?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(Input::Frames(bundle_frames(path)?));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not text (not a stat log or report)", path.display()))?;
    if text.trim_start().starts_with('{') {
        let name = path.display().to_string();
        return Ok(Input::Frames(kvmtune_kvmstat::log::parse_log(
            text.as_bytes(),
            &name,
        )?));
    }
    let rec = kvmtune_kvmstat::perf::parse(&text).with_context(|| {
        format!(
            "{}: not a kvmtune stat log, bundle, perf kvm stat or kvm_stat report",
            path.display()
        )
    })?;
    let ps = kvmtune_kvmstat::exits::profiles(&rec, label);
    Window::from_profiles(label, &ps)
        .map_err(|e| anyhow::anyhow!(e))
        .map(Input::Report)
}

fn window(input: Input, label: &str, only: &[String]) -> Window {
    match input {
        Input::Frames(f) => {
            let mut w = Window::from_frames(label, &f);
            if !only.is_empty() {
                w.subjects.retain(|n, _| only.contains(n));
            }
            w
        }
        Input::Report(w) => w,
    }
}

fn range(s: &str, flag: &str) -> Result<Range> {
    Range::parse(s).map_err(|e| anyhow::anyhow!("{flag} {e}"))
}

pub fn run(cli: &Cli, args: &CompareArgs) -> Result<Exit> {
    let windows = args.before_window.is_some() || args.after_window.is_some();
    if windows && (args.before_window.is_none() || args.after_window.is_none()) {
        bail!("--before and --after go together: two windows of one log");
    }
    let (b, a) = match (args.files.as_slice(), windows) {
        ([_], false) => bail!(
            "compare BEFORE AFTER, or compare LOG --before T1..T2 --after T3..T4 (one file: give the two windows)"
        ),
        ([one], true) => {
            let frames = match read_input(one, "log")? {
                Input::Frames(f) => f,
                Input::Report(_) => bail!(
                    "{}: --before/--after choose windows of a stat log; a report is one window",
                    one.display()
                ),
            };
            two_windows(&frames, &one.display().to_string(), args)?
        }
        ([], true) => {
            let Some(bundle) = &cli.from else {
                bail!(
                    "compare: give the BEFORE and AFTER files (or one log with --before/--after)"
                );
            };
            let frames = bundle_frames(bundle)?;
            two_windows(&frames, &bundle.display().to_string(), args)?
        }
        ([before, after], false) => {
            let (lb, la) = (before.display().to_string(), after.display().to_string());
            (
                window(read_input(before, &lb)?, &lb, &args.domains),
                window(read_input(after, &la)?, &la, &args.domains),
            )
        }
        ([_, _], true) => bail!("--before/--after choose windows of one log: give one file"),
        _ => bail!(
            "compare BEFORE AFTER (two stat logs, bundles or reports), or LOG --before T1..T2 --after T3..T4"
        ),
    };
    for d in &args.domains {
        if !b.subjects.contains_key(d) && !a.subjects.contains_key(d) {
            bail!("no figures of domain {d} in either window");
        }
    }
    if b.subjects.is_empty() || a.subjects.is_empty() {
        bail!(
            "nothing to compare: {} has no domain figures",
            if b.subjects.is_empty() {
                &b.label
            } else {
                &a.label
            }
        );
    }
    let c = compare(&b, &a).map_err(|e| anyhow::anyhow!(e))?;
    if cli.json {
        print_doc(COMPARE_SCHEMA, COMPARE_VERSION, &c)?;
    } else {
        print_text(&render(&c, &Style::of(cli)))?;
    }
    Ok(Exit::findings_if(
        c.domains.iter().any(|d| d.verdict == Verdict::Worse),
    ))
}

fn two_windows(frames: &[Frame], name: &str, args: &CompareArgs) -> Result<(Window, Window)> {
    let (Some(rb), Some(ra)) = (&args.before_window, &args.after_window) else {
        bail!("one log: give --before T1..T2 and --after T3..T4");
    };
    let fb = range(rb, "--before")?.select(frames);
    let fa = range(ra, "--after")?.select(frames);
    for (f, w) in [(&fb, rb), (&fa, ra)] {
        if f.is_empty() {
            bail!("{name}: no interval in the window {w}");
        }
    }
    Ok((
        window(Input::Frames(fb), &format!("{name} [{rb}]"), &args.domains),
        window(Input::Frames(fa), &format!("{name} [{ra}]"), &args.domains),
    ))
}

fn cell(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if unit == "%" => format!("{v:.1}"),
        Some(v) => human(v),
        None => "-".into(),
    }
}

/// The comparison as text: per domain its verdict, the significant changes, and a table
/// of every metric (mean ± sd before and after, change, verdict).
pub fn render(c: &Comparison, st: &Style) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "before: {}", c.before);
    let _ = writeln!(s, "after:  {}", c.after);
    for n in &c.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for d in &c.domains {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{}: {}  ({} vs {} intervals)",
            st.bold(&crate::output::safe(&d.domain)),
            st.bold(d.verdict.word()),
            d.before_intervals,
            d.after_intervals
        );
        if !d.summary.is_empty() {
            s.push_str(&st.wrap("  ", 2, &d.summary.join("; ")));
        }
        let _ = writeln!(
            s,
            "  {:<26} {:>15} {:>15} {:>9}  VERDICT",
            "METRIC", "BEFORE", "AFTER", "CHANGE"
        );
        for m in &d.metrics {
            let unit = if m.unit == "%" { " %" } else { "" };
            let ms = |x: Option<kvmtune_kvmstat::compare::Stats>| match x {
                Some(x) if x.n > 1 => format!(
                    "{}±{}",
                    cell(Some(x.mean), m.unit),
                    cell(Some(x.sd), m.unit)
                ),
                Some(x) => cell(Some(x.mean), m.unit),
                None => "-".into(),
            };
            let change = m
                .change_pct
                .map(|p| format!("{p:+.1}%"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "  {:<26} {:>15} {:>15} {:>9}  {} ({})",
                format!("{}{unit}", m.label),
                ms(m.before),
                ms(m.after),
                change,
                m.verdict.word(),
                m.test
            );
        }
        for n in &d.notes {
            s.push_str(&st.wrap("  note: ", 8, n));
        }
    }
    for n in &c.only_before {
        let _ = writeln!(s, "\n{}: only in the before window", crate::output::safe(n));
    }
    for n in &c.only_after {
        let _ = writeln!(s, "\n{}: only in the after window", crate::output::safe(n));
    }
    let _ = writeln!(
        s,
        "\nsignificant: Welch's t-test p < {} and a change of {}% or more (one sample a side: {}% or more); \
         better is less overhead and fewer exits; CPU is only lower or higher (docs/compare.md)",
        c.rule.alpha, c.rule.min_change_pct, c.rule.single_sample_change_pct
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_004_renders_its_verdict() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let w = |f: &str| {
            let p = Path::new(dir).join("../kvmstat/tests/fixtures").join(f);
            match read_input(&p, f).unwrap() {
                Input::Report(w) => w,
                Input::Frames(_) => panic!("a report"),
            }
        };
        let c = compare(&w("seed004-before.txt"), &w("seed004-after.txt")).unwrap();
        let t = render(&c, &Style::plain());
        assert!(t.contains("report: improved"), "{t}");
        assert!(t.contains("IO exits -99.9%, improved"), "{t}");
        assert!(t.contains("sample counts"), "{t}");
    }

    fn args(before: Option<&str>, after: Option<&str>) -> CompareArgs {
        CompareArgs {
            files: Vec::new(),
            before_window: before.map(str::to_string),
            after_window: after.map(str::to_string),
            domains: Vec::new(),
        }
    }

    #[test]
    fn windows_of_one_log_and_what_is_refused() {
        let frame = |t: &str, host: f64| {
            let mut f = Frame {
                kind: kvmtune_kvmstat::live::STAT_SCHEMA.into(),
                time: t.into(),
                interval_s: 1.0,
                ..Frame::default()
            };
            f.domains.push(kvmtune_kvmstat::live::VmFigures {
                name: "vm".into(),
                host_cpu_pct: Some(host),
                ..Default::default()
            });
            f
        };
        let frames = vec![
            frame("2026-11-30T10:00:01Z", 90.0),
            frame("2026-11-30T10:00:02Z", 91.0),
            frame("2026-11-30T10:00:03Z", 10.0),
            frame("2026-11-30T10:00:04Z", 11.0),
        ];
        let (b, a) = two_windows(&frames, "log", &args(Some("1..2"), Some("3..4"))).unwrap();
        assert_eq!((b.subjects["vm"].len(), a.subjects["vm"].len()), (2, 2));
        assert!(b.label.ends_with("[1..2]"));
        let e = two_windows(&frames, "log", &args(Some("1..2"), Some("9..10")))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "log: no interval in the window 9..10");
        let e = two_windows(&frames, "log", &args(Some("x"), Some("3..4")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--before x: not a range"), "{e}");
        // a log file is told from a report by its first byte
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        let text: String = frames
            .iter()
            .map(|f| serde_json::to_string(f).unwrap() + "\n")
            .collect();
        std::fs::write(&p, text).unwrap();
        assert!(matches!(read_input(&p, "x").unwrap(), Input::Frames(f) if f.len() == 4));
        std::fs::write(&p, "hello\n").unwrap();
        let e = read_input(&p, "x").err().unwrap().to_string();
        assert!(e.contains("not a kvmtune stat log, bundle"), "{e}");
    }
}
