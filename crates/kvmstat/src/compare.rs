//! Whether a change helped: two windows of figures (two `kvmtune stat --json` logs, two
//! windows of one log, or two recorded `perf kvm stat`/`kvm_stat` reports) compared per
//! domain and per metric, with a significance test on the variation between intervals.
//!
//! The rules (docs/compare.md):
//! - Every interval of a window is one sample (a stat frame, a perf live table, a kvm_stat
//!   block). A metric's change is **significant** when both windows have at least
//!   [`MIN_INTERVALS`] samples and Welch's t-test gives p < [`ALPHA`], and the means differ by
//!   at least [`MIN_CHANGE_PCT`] % and by more than the metric's noise floor
//!   ([`CPU_FLOOR_PCT`] points of CPU, [`EXITS_FLOOR`] exits/s).
//! - With a single sample on either side the variation between intervals is unknown: only a
//!   change of [`SINGLE_SAMPLE_CHANGE_PCT`] % or more is called significant (for sample counts
//!   also beyond 3 standard deviations of a Poisson count, 3·√(before+after)).
//! - Better is: less overhead, fewer exits (every kind). Host and guest CPU are judged
//!   `lower`/`higher`, not better or worse: less CPU is better only when the guest did the
//!   same work.
//! - A domain's overall verdict: `improved` when some metric improved and none got worse,
//!   `worse` when some got worse and none improved, and when both, the verdict of its
//!   headline metric (overhead %, else all exits); `no significant change` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::Serialize;

use crate::exits::{ExitKind, ExitProfile};
use crate::live::{Frame, VmFigures, profile};

pub const COMPARE_SCHEMA: &str = "kvmtune.compare";
pub const COMPARE_VERSION: u32 = 1;
/// Two-sided significance level of Welch's t-test.
pub const ALPHA: f64 = 0.01;
/// Samples each window needs for the t-test.
pub const MIN_INTERVALS: usize = 2;
/// A smaller relative change is never significant.
pub const MIN_CHANGE_PCT: f64 = 5.0;
/// A smaller change of a CPU figure (percentage points) is never significant.
pub const CPU_FLOOR_PCT: f64 = 0.5;
/// A smaller change of an exit rate (exits/s) is never significant.
pub const EXITS_FLOOR: f64 = 10.0;
/// With one sample on a side, the relative change needed.
pub const SINGLE_SAMPLE_CHANGE_PCT: f64 = 50.0;

/// The verdict words, the same in text and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "improved")]
    Improved,
    #[serde(rename = "worse")]
    Worse,
    #[serde(rename = "no significant change")]
    NoSignificantChange,
    /// A significant change of a figure that is neither better nor worse by itself (CPU).
    #[serde(rename = "lower")]
    Lower,
    #[serde(rename = "higher")]
    Higher,
    /// Measured in one window only.
    #[serde(rename = "not comparable")]
    NotComparable,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Worse => "worse",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::Lower => "lower",
            Verdict::Higher => "higher",
            Verdict::NotComparable => "not comparable",
        }
    }
}

/// Which direction is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Better {
    Lower,
    /// Neither: said as lower/higher.
    Neutral,
}

/// A metric compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    HostCpu,
    GuestCpu,
    Overhead,
    Exits,
    Kind(ExitKind),
}

impl Metric {
    /// The JSON id: `host_cpu_pct`, `io_exits`, ...
    pub fn id(self) -> String {
        match self {
            Metric::HostCpu => "host_cpu_pct".into(),
            Metric::GuestCpu => "guest_cpu_pct".into(),
            Metric::Overhead => "overhead_pct".into(),
            Metric::Exits => "exits".into(),
            Metric::Kind(k) => format!(
                "{}_exits",
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "other".into())
            ),
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Metric::HostCpu => "host CPU",
            Metric::GuestCpu => "guest CPU",
            Metric::Overhead => "overhead",
            Metric::Exits => "all exits",
            Metric::Kind(k) => match k {
                ExitKind::Io => "IO exits",
                ExitKind::Mmio => "MMIO exits",
                ExitKind::Msr => "MSR exits",
                ExitKind::Apic => "APIC exits",
                ExitKind::Halt => "HLT exits",
                ExitKind::PageFault => "EPT/NPF faults",
                ExitKind::Pause => "PAUSE exits",
                ExitKind::ExternalInterrupt => "external-interrupt exits",
                ExitKind::InterruptWindow => "interrupt-window exits",
                ExitKind::Emulation => "emulated instructions",
                ExitKind::Hypercall => "hypercalls",
                ExitKind::Userspace => "exits to user space",
                ExitKind::Exception => "guest exceptions",
                ExitKind::ShadowMmu => "shadow-paging exits",
                ExitKind::DataAbort => "data aborts",
                ExitKind::Wfx => "WFx exits",
                ExitKind::Other => "other exits",
            },
        }
    }
    pub fn better(self) -> Better {
        match self {
            Metric::HostCpu | Metric::GuestCpu => Better::Neutral,
            _ => Better::Lower,
        }
    }
    fn is_cpu(self) -> bool {
        matches!(self, Metric::HostCpu | Metric::GuestCpu | Metric::Overhead)
    }
}

/// One interval's figures of one subject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub values: BTreeMap<Metric, f64>,
}

impl Sample {
    /// A live interval of one VM. Exit metrics only when the VM has KVM counters (a TCG
    /// domain has none: it is compared on CPU alone).
    pub fn from_figures(f: &VmFigures) -> Sample {
        let mut values = BTreeMap::new();
        if let Some(v) = f.host_cpu_pct {
            values.insert(Metric::HostCpu, v);
        }
        if let Some(v) = f.guest_cpu_pct {
            values.insert(Metric::GuestCpu, v);
        }
        if let Some(v) = f.overhead_pct {
            values.insert(Metric::Overhead, v);
        }
        if f.exits.is_some() {
            let p = profile(f, "");
            values.insert(Metric::Exits, p.total);
            for k in ALL_KINDS {
                values.insert(Metric::Kind(k), p.kind(k));
            }
        }
        Sample { values }
    }

    /// One table or block of a recorded report.
    pub fn from_profile(p: &ExitProfile) -> Sample {
        let mut values = BTreeMap::new();
        if let Some(c) = &p.cpu {
            values.insert(Metric::HostCpu, c.host_pct);
            values.insert(Metric::GuestCpu, c.guest_pct);
            values.insert(Metric::Overhead, (c.host_pct - c.guest_pct).max(0.0));
        }
        values.insert(Metric::Exits, p.total);
        for k in ALL_KINDS {
            values.insert(Metric::Kind(k), p.kind(k));
        }
        Sample { values }
    }
}

const ALL_KINDS: [ExitKind; 17] = [
    ExitKind::Io,
    ExitKind::Mmio,
    ExitKind::Msr,
    ExitKind::Apic,
    ExitKind::Halt,
    ExitKind::PageFault,
    ExitKind::Pause,
    ExitKind::ExternalInterrupt,
    ExitKind::InterruptWindow,
    ExitKind::Emulation,
    ExitKind::Hypercall,
    ExitKind::Userspace,
    ExitKind::Exception,
    ExitKind::ShadowMmu,
    ExitKind::DataAbort,
    ExitKind::Wfx,
    ExitKind::Other,
];

/// Every kind is compared: a kind added to [`ExitKind`] must be added here too.
#[cfg(test)]
#[test]
fn all_kinds_lists_every_exit_kind() {
    for k in ALL_KINDS {
        // an exhaustive match: a new kind fails to compile here until it is listed above
        match k {
            ExitKind::Io
            | ExitKind::Mmio
            | ExitKind::Msr
            | ExitKind::Apic
            | ExitKind::Halt
            | ExitKind::PageFault
            | ExitKind::Pause
            | ExitKind::ExternalInterrupt
            | ExitKind::InterruptWindow
            | ExitKind::Emulation
            | ExitKind::Hypercall
            | ExitKind::Userspace
            | ExitKind::Exception
            | ExitKind::ShadowMmu
            | ExitKind::DataAbort
            | ExitKind::Wfx
            | ExitKind::Other => {}
        }
    }
    let mut v = ALL_KINDS.to_vec();
    v.sort_by_key(|k| format!("{k:?}"));
    v.dedup();
    assert_eq!(v.len(), ALL_KINDS.len());
}

/// A window: each subject's samples, and whether exits are sample counts over an unknown
/// time (perf reports) rather than rates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub label: String,
    pub counts: bool,
    pub subjects: BTreeMap<String, Vec<Sample>>,
}

impl Window {
    /// A window of stat frames: one sample per frame a domain is in.
    pub fn from_frames(label: &str, frames: &[Frame]) -> Window {
        let mut subjects: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for fr in frames {
            for d in &fr.domains {
                subjects
                    .entry(d.name.clone())
                    .or_default()
                    .push(Sample::from_figures(d));
            }
        }
        Window {
            label: label.to_string(),
            counts: false,
            subjects,
        }
    }

    /// A window of a recorded report: its profiles (one per perf table or kvm_stat block)
    /// are the samples of one subject, `report`. Fails when it mixes rates and counts.
    pub fn from_profiles(label: &str, ps: &[ExitProfile]) -> Result<Window, String> {
        let rates = ps.iter().filter(|p| p.per_sec).count();
        if rates != 0 && rates != ps.len() {
            return Err(format!(
                "{label}: mixes rates (kvm_stat) and sample counts (perf): compare like with like"
            ));
        }
        Ok(Window {
            label: label.to_string(),
            counts: rates == 0,
            subjects: BTreeMap::from([(
                "report".to_string(),
                ps.iter().map(Sample::from_profile).collect(),
            )]),
        })
    }
}

/// The frames of a log between two times (inclusive; a frame's time is its interval's end),
/// or between two frame numbers (1-based, inclusive).
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Frames(usize, usize),
    Times(SystemTime, SystemTime),
}

impl Range {
    /// `T1..T2` with RFC 3339 times (`2026-11-30T21:00:00Z`), or `N..M` frame numbers.
    pub fn parse(s: &str) -> Result<Range, String> {
        let (a, b) = s
            .split_once("..")
            .ok_or_else(|| format!("{s}: not a range START..END"))?;
        let (a, b) = (a.trim(), b.trim());
        if let (Ok(x), Ok(y)) = (a.parse::<usize>(), b.parse::<usize>()) {
            if x == 0 || y < x {
                return Err(format!(
                    "{s}: frame numbers count from 1 and END must not be before START"
                ));
            }
            return Ok(Range::Frames(x, y));
        }
        let t = |v: &str| {
            humantime::parse_rfc3339_weak(v).map_err(|e| {
                format!("{s}: {v} is neither a frame number nor an RFC 3339 time ({e})")
            })
        };
        let (x, y) = (t(a)?, t(b)?);
        if y < x {
            return Err(format!("{s}: END is before START"));
        }
        Ok(Range::Times(x, y))
    }

    /// The frames of the range.
    pub fn select(&self, frames: &[Frame]) -> Vec<Frame> {
        frames
            .iter()
            .enumerate()
            .filter(|(i, f)| match self {
                Range::Frames(a, b) => (*a..=*b).contains(&(i + 1)),
                Range::Times(a, b) => {
                    humantime::parse_rfc3339_weak(&f.time).is_ok_and(|t| *a <= t && t <= *b)
                }
            })
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// Mean, standard deviation (n-1) and count of a metric in a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(xs: &[f64]) -> Option<Stats> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Stats { mean, sd, n })
    }
}

/// One metric of one subject, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    /// `host_cpu_pct`, `overhead_pct`, `exits`, `io_exits`, ...
    pub metric: String,
    pub label: &'static str,
    /// `%` (of one host CPU), `exits/s`, or `samples` (a perf report's counts).
    pub unit: &'static str,
    pub better: Better,
    pub before: Option<Stats>,
    pub after: Option<Stats>,
    /// (after - before) / before, in %; absent when before is 0.
    pub change_pct: Option<f64>,
    pub significant: bool,
    /// How significance was judged: `welch`, `single-sample`, or why it was not.
    pub test: String,
    /// Welch's two-sided p-value, when the t-test ran.
    pub p_value: Option<f64>,
    pub verdict: Verdict,
}

/// One domain (or report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectChange {
    pub domain: String,
    pub before_intervals: usize,
    pub after_intervals: usize,
    pub verdict: Verdict,
    /// The significant changes, as `IO exits -99.9%, improved`.
    pub summary: Vec<String>,
    pub metrics: Vec<MetricChange>,
    pub notes: Vec<String>,
}

/// How significance was judged (the constants of this module).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub test: &'static str,
    pub alpha: f64,
    pub min_intervals: usize,
    pub min_change_pct: f64,
    pub cpu_floor_pct: f64,
    pub exits_floor_per_s: f64,
    pub single_sample_change_pct: f64,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule {
            test: "Welch's t-test on per-interval values, two-sided",
            alpha: ALPHA,
            min_intervals: MIN_INTERVALS,
            min_change_pct: MIN_CHANGE_PCT,
            cpu_floor_pct: CPU_FLOOR_PCT,
            exits_floor_per_s: EXITS_FLOOR,
            single_sample_change_pct: SINGLE_SAMPLE_CHANGE_PCT,
        }
    }
}

/// The comparison of two windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub before: String,
    pub after: String,
    /// Exits are sample counts over unknown times (perf reports), not rates.
    pub counts: bool,
    pub rule: Rule,
    pub domains: Vec<SubjectChange>,
    /// Domains in one window only.
    pub only_before: Vec<String>,
    pub only_after: Vec<String>,
    pub notes: Vec<String>,
}

/// ln Γ(x) (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The continued fraction of the regularized incomplete beta function (Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// Two-sided p-value of Student's t with `df` degrees of freedom.
pub fn t_p_value(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    inc_beta(df / 2.0, 0.5, df / (df + t * t)).clamp(0.0, 1.0)
}

/// Welch's t-test: the two-sided p-value that the means are equal. Two constant windows
/// give 0 when their means differ, 1 when they do not.
pub fn welch(a: &Stats, b: &Stats) -> f64 {
    let (va, vb) = (a.sd.powi(2) / a.n as f64, b.sd.powi(2) / b.n as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return if a.mean == b.mean { 1.0 } else { 0.0 };
    }
    let t = (b.mean - a.mean) / se2.sqrt();
    let df = se2.powi(2)
        / (va.powi(2) / (a.n as f64 - 1.0).max(1.0) + vb.powi(2) / (b.n as f64 - 1.0).max(1.0));
    t_p_value(t, df)
}

fn judge(m: Metric, before: Option<Stats>, after: Option<Stats>, counts: bool) -> MetricChange {
    let unit = if m.is_cpu() {
        "%"
    } else if counts {
        "samples"
    } else {
        "exits/s"
    };
    let mut c = MetricChange {
        metric: m.id(),
        label: m.label(),
        unit,
        better: m.better(),
        before,
        after,
        change_pct: None,
        significant: false,
        test: String::new(),
        p_value: None,
        verdict: Verdict::NotComparable,
    };
    let (Some(a), Some(b)) = (before, after) else {
        c.test = "measured in one window only".into();
        return c;
    };
    let diff = b.mean - a.mean;
    c.change_pct = (a.mean.abs() > 0.0).then(|| diff / a.mean * 100.0);
    let rel = c
        .change_pct
        .map(f64::abs)
        .unwrap_or(if diff == 0.0 { 0.0 } else { f64::INFINITY });
    let floor = if m.is_cpu() {
        CPU_FLOOR_PCT
    } else if counts {
        0.0
    } else {
        EXITS_FLOOR
    };
    let material = diff.abs() > floor && rel >= MIN_CHANGE_PCT;
    c.significant = if a.n >= MIN_INTERVALS && b.n >= MIN_INTERVALS {
        let p = welch(&a, &b);
        c.p_value = Some(p);
        c.test = format!("welch p={}", fmt_p(p));
        material && p < ALPHA
    } else {
        let big = rel >= SINGLE_SAMPLE_CHANGE_PCT;
        let poisson = !counts || diff.abs() > 3.0 * (a.mean + b.mean).sqrt();
        c.test = "single-sample".into();
        material && big && poisson
    };
    c.verdict = match (c.significant, m.better(), diff < 0.0) {
        (false, _, _) => Verdict::NoSignificantChange,
        (true, Better::Lower, true) => Verdict::Improved,
        (true, Better::Lower, false) => Verdict::Worse,
        (true, Better::Neutral, true) => Verdict::Lower,
        (true, Better::Neutral, false) => Verdict::Higher,
    };
    c
}

fn fmt_p(p: f64) -> String {
    if p < 0.0001 {
        "<0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// `IO exits -99.9%, improved` (or `+12.0 points` where the before value is 0).
pub fn change_phrase(c: &MetricChange) -> String {
    let ch = match (c.change_pct, c.before, c.after) {
        (Some(p), _, _) => format!("{p:+.1}%"),
        (None, Some(a), Some(b)) => format!("{:+.1} {}", b.mean - a.mean, c.unit),
        _ => String::new(),
    };
    format!("{} {ch}, {}", c.label, c.verdict.word())
}

fn overall(metrics: &[MetricChange]) -> Verdict {
    let any = |v: Verdict| metrics.iter().any(|m| m.verdict == v);
    match (any(Verdict::Improved), any(Verdict::Worse)) {
        (true, false) => Verdict::Improved,
        (false, true) => Verdict::Worse,
        (true, true) => {
            let head = metrics
                .iter()
                .find(|m| m.metric == "overhead_pct" && m.verdict != Verdict::NotComparable)
                .or_else(|| metrics.iter().find(|m| m.metric == "exits"));
            match head.map(|m| m.verdict) {
                Some(v @ (Verdict::Improved | Verdict::Worse)) => v,
                _ => Verdict::NoSignificantChange,
            }
        }
        (false, false) => Verdict::NoSignificantChange,
    }
}

/// Compare two windows, subject by subject (domains by name).
pub fn compare(before: &Window, after: &Window) -> Result<Comparison, String> {
    if before.counts != after.counts {
        return Err(format!(
            "{} has {} and {} has {}: compare like with like",
            before.label,
            if before.counts {
                "sample counts (perf)"
            } else {
                "rates"
            },
            after.label,
            if after.counts {
                "sample counts (perf)"
            } else {
                "rates"
            },
        ));
    }
    let counts = before.counts;
    let mut out = Comparison {
        before: before.label.clone(),
        after: after.label.clone(),
        counts,
        rule: Rule::default(),
        domains: Vec::new(),
        only_before: Vec::new(),
        only_after: Vec::new(),
        notes: Vec::new(),
    };
    if counts {
        out.notes.push(
            "perf reports hold sample counts over a recording time they do not print: the \
             counts are compared as if both recordings lasted as long"
                .into(),
        );
    }
    for (name, bs) in &before.subjects {
        let Some(as_) = after.subjects.get(name) else {
            out.only_before.push(name.clone());
            continue;
        };
        let metrics: BTreeSet<Metric> = bs
            .iter()
            .chain(as_)
            .flat_map(|s| s.values.keys().copied())
            .collect();
        let series = |ss: &[Sample], m: Metric| {
            Stats::of(
                &ss.iter()
                    .filter_map(|s| s.values.get(&m).copied())
                    .collect::<Vec<_>>(),
            )
        };
        let mut changes: Vec<MetricChange> = Vec::new();
        for m in metrics {
            let c = judge(m, series(bs, m), series(as_, m), counts);
            // an exit kind that never happened on either side says nothing
            let zero = |s: Option<Stats>| s.is_none_or(|s| s.mean == 0.0);
            if matches!(m, Metric::Kind(_)) && zero(c.before) && zero(c.after) {
                continue;
            }
            changes.push(c);
        }
        let mut notes = Vec::new();
        if bs.len() < MIN_INTERVALS || as_.len() < MIN_INTERVALS {
            notes.push(format!(
                "one sample in a window: the variation between intervals is unknown, so only \
                 changes of {SINGLE_SAMPLE_CHANGE_PCT:.0}% or more are called significant"
            ));
        }
        if !changes.iter().any(|c| c.metric == "exits") {
            notes.push(
                "no KVM exit counters (a TCG domain, or libvirt/QEMU too old): compared on CPU only"
                    .into(),
            );
        }
        let summary = changes
            .iter()
            .filter(|c| c.significant)
            .map(change_phrase)
            .collect();
        out.domains.push(SubjectChange {
            domain: name.clone(),
            before_intervals: bs.len(),
            after_intervals: as_.len(),
            verdict: overall(&changes),
            summary,
            metrics: changes,
            notes,
        });
    }
    out.only_after = after
        .subjects
        .keys()
        .filter(|n| !before.subjects.contains_key(*n))
        .cloned()
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::ExitRates;

    fn vm(name: &str, host: f64, io: Option<f64>) -> VmFigures {
        VmFigures {
            name: name.into(),
            host_cpu_pct: Some(host),
            guest_cpu_pct: Some(host * 0.9),
            overhead_pct: Some(host * 0.1),
            exits: io.map(|io| ExitRates {
                total: io + 100.0,
                io,
                ..ExitRates::default()
            }),
            kvm: io
                .map(|io| {
                    BTreeMap::from([
                        ("exits".to_string(), io + 100.0),
                        ("io_exits".to_string(), io),
                    ])
                })
                .unwrap_or_default(),
            ..VmFigures::default()
        }
    }

    fn frames(xs: &[(f64, Option<f64>)]) -> Vec<Frame> {
        xs.iter()
            .enumerate()
            .map(|(i, (h, io))| Frame {
                kind: crate::live::STAT_SCHEMA.into(),
                time: format!("2026-11-30T21:00:{:02}Z", i),
                interval_s: 1.0,
                domains: vec![vm("a", *h, *io)],
                ..Frame::default()
            })
            .collect()
    }

    fn metric<'a>(c: &'a SubjectChange, id: &str) -> &'a MetricChange {
        c.metrics.iter().find(|m| m.metric == id).unwrap()
    }

    #[test]
    fn p_values_match_the_t_table() {
        // two-sided critical values: t(10) 2.228 at 0.05, t(5) 4.032 at 0.01, t(30) 2.750
        assert!((t_p_value(2.228, 10.0) - 0.05).abs() < 1e-3);
        assert!((t_p_value(4.032, 5.0) - 0.01).abs() < 1e-3);
        assert!((t_p_value(2.750, 30.0) - 0.01).abs() < 1e-3);
        assert!((t_p_value(0.0, 7.0) - 1.0).abs() < 1e-9);
        assert!(t_p_value(50.0, 3.0) < 1e-4);
    }

    #[test]
    fn a_clear_drop_is_improved_and_noise_is_not() {
        let b = frames(&[
            (90.0, Some(5000.0)),
            (95.0, Some(5200.0)),
            (92.0, Some(4900.0)),
        ]);
        let a = frames(&[(10.0, Some(50.0)), (12.0, Some(60.0)), (11.0, Some(40.0))]);
        let c = compare(&Window::from_frames("b", &b), &Window::from_frames("a", &a)).unwrap();
        let d = &c.domains[0];
        assert_eq!(d.verdict, Verdict::Improved);
        assert_eq!(metric(d, "io_exits").verdict, Verdict::Improved);
        assert_eq!(metric(d, "host_cpu_pct").verdict, Verdict::Lower);
        assert_eq!(metric(d, "overhead_pct").verdict, Verdict::Improved);
        assert!(
            d.summary.iter().any(|s| s.starts_with("IO exits -99.")),
            "{:?}",
            d.summary
        );
        // the same window twice, and one that only wobbles
        let w = frames(&[
            (50.0, Some(1000.0)),
            (55.0, Some(1100.0)),
            (45.0, Some(900.0)),
        ]);
        let v = frames(&[
            (52.0, Some(1050.0)),
            (48.0, Some(950.0)),
            (51.0, Some(1000.0)),
        ]);
        for (x, y) in [(&w, &w), (&w, &v)] {
            let c = compare(&Window::from_frames("x", x), &Window::from_frames("y", y)).unwrap();
            let d = &c.domains[0];
            assert_eq!(d.verdict, Verdict::NoSignificantChange, "{d:?}");
            assert!(d.metrics.iter().all(|m| !m.significant));
            assert!(d.summary.is_empty());
        }
    }

    #[test]
    fn more_exits_is_worse_and_mixed_goes_by_overhead() {
        let b = frames(&[(10.0, Some(50.0)), (12.0, Some(60.0)), (11.0, Some(40.0))]);
        let a = frames(&[
            (90.0, Some(5000.0)),
            (95.0, Some(5200.0)),
            (92.0, Some(4900.0)),
        ]);
        let c = compare(&Window::from_frames("b", &b), &Window::from_frames("a", &a)).unwrap();
        assert_eq!(c.domains[0].verdict, Verdict::Worse);
        assert_eq!(
            metric(&c.domains[0], "host_cpu_pct").verdict,
            Verdict::Higher
        );
        let m = |id: &str, v| MetricChange {
            metric: id.into(),
            label: "x",
            unit: "%",
            better: Better::Lower,
            before: None,
            after: None,
            change_pct: None,
            significant: true,
            test: String::new(),
            p_value: None,
            verdict: v,
        };
        assert_eq!(
            overall(&[
                m("io_exits", Verdict::Worse),
                m("overhead_pct", Verdict::Improved)
            ]),
            Verdict::Improved
        );
        assert_eq!(
            overall(&[
                m("io_exits", Verdict::Improved),
                m("msr_exits", Verdict::Worse)
            ]),
            Verdict::NoSignificantChange
        );
    }

    #[test]
    fn tcg_domains_compare_on_cpu_and_windows_of_one_log() {
        let all = frames(&[
            (100.0, None),
            (99.0, None),
            (101.0, None),
            (0.5, None),
            (0.4, None),
            (0.6, None),
        ]);
        let r1 = Range::parse("1..3").unwrap();
        let r2 = Range::parse("2026-11-30T21:00:03Z..2026-11-30T21:00:05Z").unwrap();
        let (b, a) = (r1.select(&all), r2.select(&all));
        assert_eq!((b.len(), a.len()), (3, 3));
        let c = compare(&Window::from_frames("b", &b), &Window::from_frames("a", &a)).unwrap();
        let d = &c.domains[0];
        assert!(d.metrics.iter().all(|m| !m.metric.contains("exits")));
        assert!(d.notes.iter().any(|n| n.contains("CPU only")));
        assert_eq!(metric(d, "host_cpu_pct").verdict, Verdict::Lower);
        assert!(Range::parse("3..1").is_err());
        assert!(Range::parse("0..1").is_err());
        assert!(Range::parse("x").is_err());
        assert!(Range::parse("a..b").is_err());
    }

    #[test]
    fn single_samples_need_a_large_change() {
        let one = |h: f64, io: f64| frames(&[(h, Some(io))]);
        let c = compare(
            &Window::from_frames("b", &one(50.0, 1000.0)),
            &Window::from_frames("a", &one(45.0, 700.0)),
        )
        .unwrap();
        let d = &c.domains[0];
        assert_eq!(d.verdict, Verdict::NoSignificantChange);
        assert_eq!(metric(d, "io_exits").test, "single-sample");
        assert!(d.notes.iter().any(|n| n.contains("50%")));
        let c = compare(
            &Window::from_frames("b", &one(50.0, 1000.0)),
            &Window::from_frames("a", &one(50.0, 100.0)),
        )
        .unwrap();
        assert_eq!(metric(&c.domains[0], "io_exits").verdict, Verdict::Improved);
    }

    #[test]
    fn domains_in_one_window_and_rates_against_counts() {
        let b = Window::from_frames("b", &frames(&[(1.0, None)]));
        let mut a = b.clone();
        a.subjects = BTreeMap::from([("z".to_string(), vec![Sample::default()])]);
        let c = compare(&b, &a).unwrap();
        assert_eq!(
            (c.only_before.clone(), c.only_after.clone()),
            (vec!["a".to_string()], vec!["z".to_string()])
        );
        a.counts = true;
        assert!(compare(&b, &a).unwrap_err().contains("like with like"));
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["rule"]["alpha"], 0.01);
    }

    #[test]
    fn seed_004_before_and_after_tables() {
        let w = |label: &str, text: &str| {
            let rec = crate::perf::parse(text).unwrap();
            Window::from_profiles(label, &crate::exits::profiles(&rec, label)).unwrap()
        };
        let b = w(
            "before",
            include_str!("../tests/fixtures/seed004-before.txt"),
        );
        let a = w("after", include_str!("../tests/fixtures/seed004-after.txt"));
        let c = compare(&b, &a).unwrap();
        assert!(c.counts);
        let d = &c.domains[0];
        assert_eq!(d.domain, "report");
        let io = metric(d, "io_exits");
        assert_eq!(io.unit, "samples");
        assert_eq!(io.test, "single-sample");
        assert_eq!(io.verdict, Verdict::Improved);
        assert_eq!(change_phrase(io), "IO exits -99.9%, improved");
        assert!(d.summary.contains(&"IO exits -99.9%, improved".to_string()));
        assert_eq!(d.verdict, Verdict::Improved);
        // 7 EPT_MISCONFIG samples before and after: no change
        assert_eq!(
            metric(d, "mmio_exits").verdict,
            Verdict::NoSignificantChange
        );
    }

    #[test]
    fn verdict_words_are_the_same_in_json() {
        for v in [
            Verdict::Improved,
            Verdict::Worse,
            Verdict::NoSignificantChange,
            Verdict::Lower,
            Verdict::Higher,
            Verdict::NotComparable,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.word());
        }
    }
}
