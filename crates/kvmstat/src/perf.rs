//! Recorded exit statistics as people post them: `perf kvm stat report` and `perf kvm stat
//! live` tables (vmexit, mmio, ioport and msr events; the table with Min/Max columns, the
//! older one without, and perf 6.x's compact `Event name  Samples  Sample%  Time(ns) ...`
//! table; exit names of every architecture perf supports), and `kvm_stat` output (the
//! `-1`/`--once` batch lines, the curses summary with %Total and CurAvg/s, with or without
//! blank lines between rows, the old "kvm statistics" screen, and the `-l` log in its plain
//! and CSV forms).
//!
//! The parser is tolerant of what mail and forums do to such text: quote prefixes (`> >>`),
//! rows wrapped after any column, collapsed whitespace, shell prompts and diagnostic lines
//! (`unknown kvm exit code:...`) between rows.

use serde::Serialize;

/// Which `perf kvm stat --event=` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Vmexit,
    Mmio,
    Ioport,
    Msr,
}

/// One row of a `perf kvm stat` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfRow {
    /// The exit reason (`IO_INSTRUCTION`, `io`, `DE excp`), or the access key (`0x70:POUT`,
    /// `0xfee00380:W`, `0x6e0:W`).
    pub key: String,
    pub samples: u64,
    pub samples_pct: f64,
    pub time_pct: f64,
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
    pub avg_us: f64,
    /// The `( +- N% )` spread of the average, when printed.
    pub stddev_pct: Option<f64>,
    /// perf 6.x's compact table: the row's total handling time in ns (its `Time(ns)`).
    pub time_ns: Option<u64>,
}

/// One `perf kvm stat` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfTable {
    pub kind: TableKind,
    /// The key column's header as printed (`VM-EXIT`, `MMIO Access`, ...).
    pub key_header: String,
    /// What was analysed: `all VMs, all VCPUs`, `VCPU 0`, `pid(s) 1234, all VCPUs`.
    pub scope: Option<String>,
    /// The time line `perf kvm stat live` prints above each table.
    pub timestamp: Option<String>,
    /// Whether the table has the Min Time and Max Time columns (perf 3.14 and later).
    pub min_max: bool,
    /// perf 6.x's compact table (`Event name  Samples  Sample%  Time(ns)  Time%  Max
    /// Time(ns)  Min Time(ns)  Mean Time(ns)`): times in ns, the kind read from the keys.
    pub compact: bool,
    pub rows: Vec<PerfRow>,
    pub total_samples: Option<u64>,
    pub total_time_us: Option<f64>,
    /// The 1-based line of the table's header in the input.
    pub line: usize,
    /// Lines perf printed between the rows (`unknown kvm exit code:131072 on VMX`).
    pub notes: Vec<String>,
}

/// Which `kvm_stat` layout a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KvmStatLayout {
    /// `kvm_stat -1` / `--once`: `NAME TOTAL DELTA`, the delta over one second.
    Batch,
    /// The curses screen of kvm_stat 4.x and later: `Event Total %Total CurAvg/s`.
    Summary,
    /// The old python screen headed `kvm statistics`: `NAME TOTAL RATE`.
    Classic,
    /// `kvm_stat -l` (log mode, like vmstat): a line of counter names, then one line of
    /// deltas per interval (newer versions start it with a date and time); `-l -c` writes
    /// the same as CSV with a `timestamp` column.
    Log,
}

/// One `kvm_stat` counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvmStatRow {
    /// `kvm_exit`, `kvm_exit(IO_INSTRUCTION)`, `io_exits`, ...
    pub name: String,
    pub total: u64,
    /// Events per second as kvm_stat printed it.
    pub per_sec: Option<f64>,
    /// The %Total column of the summary layout.
    pub pct: Option<f64>,
}

/// One `kvm_stat` screen or batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvmStatBlock {
    pub layout: KvmStatLayout,
    pub rows: Vec<KvmStatRow>,
    /// The summary layout's `Total` row: the sum of totals and of rates.
    pub total: Option<u64>,
    pub total_per_sec: Option<f64>,
    pub line: usize,
    /// The log layout: how many intervals were summed into `total`, and their length in
    /// seconds (from the time stamps, or kvm_stat's 1 s when the lines carry none).
    pub intervals: Option<usize>,
    pub interval_s: Option<f64>,
}

impl KvmStatBlock {
    fn new(layout: KvmStatLayout, line: usize) -> KvmStatBlock {
        KvmStatBlock {
            layout,
            rows: Vec::new(),
            total: None,
            total_per_sec: None,
            line,
            intervals: None,
            interval_s: None,
        }
    }
}

/// Everything found in a recorded report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recorded {
    pub perf: Vec<PerfTable>,
    pub kvm_stat: Vec<KvmStatBlock>,
}

/// Report text quoted in an error: at most 40 characters, control characters escaped (a
/// report is untrusted input; an error must stay one short line).
fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {message}")]
    At { line: usize, message: String },
    #[error(
        "line {line}: no perf kvm stat table and no kvm_stat output found (the first line reads '{text}')"
    )]
    Nothing { line: usize, text: String },
    #[error("the input is empty: no perf kvm stat table and no kvm_stat output found")]
    Empty,
}

/// Remove mail quote prefixes (`> `, `>>>> `, `> >> `) and trailing blanks.
fn unquote(line: &str) -> &str {
    let mut s = line.trim_end();
    loop {
        let t = s.trim_start();
        match t.strip_prefix('>') {
            Some(rest) => s = rest,
            None => return s,
        }
    }
}

/// A finite number (`inf`, `NaN` and `1e999` parse as f64 but are no figure).
fn finite(t: &str) -> Option<f64> {
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn parse_pct(t: &str) -> Option<f64> {
    finite(t.strip_suffix('%')?)
}

fn parse_us(t: &str) -> Option<f64> {
    finite(t.strip_suffix("us")?)
}

/// A number the report prints that this parser cannot hold: digits beyond u64, or a float
/// that is infinite or not a number. `Some(what)` names the trouble.
fn overflow(t: &str) -> Option<&'static str> {
    let body = t.trim_end_matches('%').trim_end_matches("us");
    if body.is_empty() {
        return None;
    }
    if body.bytes().all(|b| b.is_ascii_digit()) && body.parse::<u64>().is_err() {
        return Some("a count larger than 2^64");
    }
    match body.parse::<f64>() {
        Ok(v) if !v.is_finite() => Some("a number that is infinite or not a number"),
        _ => None,
    }
}

/// The first token of a table row that overflows, as an error naming its line.
fn check_overflow(tokens: &[(String, usize)]) -> Result<(), ParseError> {
    for (t, line) in tokens {
        if let Some(what) = overflow(t) {
            return Err(ParseError::At {
                line: *line,
                message: format!("{what}: {}", excerpt(t)),
            });
        }
    }
    Ok(())
}

fn is_timestamp(t: &str) -> bool {
    // `15:52:35.709821`
    let mut parts = t.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && h.bytes().all(|b| b.is_ascii_digit())
        && m.bytes().all(|b| b.is_ascii_digit())
        && s.split_once('.').is_some_and(|(a, b)| {
            a.len() == 2 && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        })
}

fn kind_of(header: &str) -> Option<TableKind> {
    let h = header.to_ascii_lowercase();
    // arm64's `perf kvm stat report --event=trap` heads its ESR classes `TRAP-EVENT`
    if h.contains("vm-exit") || h.contains("vmexit") || h.contains("trap-event") {
        Some(TableKind::Vmexit)
    } else if h.contains("mmio") {
        Some(TableKind::Mmio)
    } else if h.contains("io port") || h.contains("ioport") {
        Some(TableKind::Ioport)
    } else if h.contains("msr") {
        Some(TableKind::Msr)
    } else {
        None
    }
}

/// `Total Samples:70746, Total events handled time:1789115.74us.`
fn parse_total(line: &str) -> Option<(u64, Option<f64>)> {
    let rest = line.trim().strip_prefix("Total Samples:")?;
    let (n, rest) = rest.split_once(',').unwrap_or((rest, ""));
    let samples = n.trim().parse().ok()?;
    let time = rest
        .split_once(':')
        .and_then(|(_, t)| parse_us(t.trim().trim_end_matches('.')));
    Some((samples, time))
}

/// Rows of one table from its body tokens. A key may hold spaces (AMD's `DE excp`): it runs
/// up to the first token that starts `SAMPLES PCT% PCT%`.
fn parse_rows(tokens: &[(String, usize)], min_max: bool) -> Result<Vec<PerfRow>, ParseError> {
    let mut rows = Vec::new();
    let mut i = 0;
    let n = tokens.len();
    let starts_numbers = |j: usize| {
        j + 2 < n
            && tokens[j].0.parse::<u64>().is_ok()
            && parse_pct(&tokens[j + 1].0).is_some()
            && parse_pct(&tokens[j + 2].0).is_some()
    };
    while i < n {
        let start = i;
        let mut j = i + 1;
        while j < n && !starts_numbers(j) {
            j += 1;
        }
        let line = tokens[start].1;
        if j >= n {
            return Err(ParseError::At {
                line,
                message: format!(
                    "cannot read a table row starting '{}'",
                    excerpt(&tokens[start].0)
                ),
            });
        }
        let key = tokens[start..j]
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let bad = |what: &str| ParseError::At {
            line,
            message: format!("row '{}': {what}", excerpt(&key)),
        };
        // starts_numbers(j) guarantees these three
        let samples = tokens[j].0.parse().map_err(|_| bad("samples"))?;
        let samples_pct = parse_pct(&tokens[j + 1].0).ok_or_else(|| bad("samples%"))?;
        let time_pct = parse_pct(&tokens[j + 2].0).ok_or_else(|| bad("time%"))?;
        let mut k = j + 3;
        let mut us = |what: &str| -> Result<f64, ParseError> {
            let v = tokens
                .get(k)
                .and_then(|t| parse_us(&t.0))
                .ok_or_else(|| bad(what))?;
            k += 1;
            Ok(v)
        };
        let (min_us, max_us) = if min_max {
            (Some(us("min time")?), Some(us("max time")?))
        } else {
            (None, None)
        };
        let avg_us = us("avg time")?;
        let mut stddev_pct = None;
        if tokens.get(k).is_some_and(|t| t.0 == "(" || t.0 == "(+-") {
            k += 1;
            if tokens.get(k).is_some_and(|t| t.0 == "+-") {
                k += 1;
            }
            stddev_pct = tokens.get(k).and_then(|t| parse_pct(&t.0));
            if stddev_pct.is_some() {
                k += 1;
            }
            // mail clients lose the closing parenthesis with the wrap
            if tokens.get(k).is_some_and(|t| t.0 == ")") {
                k += 1;
            }
        }
        rows.push(PerfRow {
            key,
            samples,
            samples_pct,
            time_pct,
            min_us,
            max_us,
            avg_us,
            stddev_pct,
            time_ns: None,
        });
        i = k;
    }
    Ok(rows)
}

struct Open {
    kind: TableKind,
    key_header: String,
    scope: Option<String>,
    timestamp: Option<String>,
    min_max: bool,
    line: usize,
    tokens: Vec<(String, usize)>,
    notes: Vec<String>,
    /// The header was wrapped: skip lines until the one holding `Avg`.
    header_open: bool,
}

impl Open {
    fn close(self, total: Option<(u64, Option<f64>)>) -> Result<PerfTable, ParseError> {
        check_overflow(&self.tokens)?;
        let rows = parse_rows(&self.tokens, self.min_max)?;
        if rows.is_empty() {
            return Err(ParseError::At {
                line: self.line,
                message: format!("the {} table has a header and no rows", self.key_header),
            });
        }
        Ok(PerfTable {
            kind: self.kind,
            key_header: self.key_header,
            scope: self.scope,
            timestamp: self.timestamp,
            min_max: self.min_max,
            compact: false,
            rows,
            total_samples: total.map(|t| t.0),
            total_time_us: total.and_then(|t| t.1),
            line: self.line,
            notes: self.notes,
        })
    }
}

/// A kvm_stat counter name: `kvm_exit`, `kvm_exit(IO_INSTRUCTION)`, `io_exits`,
/// `kvm_exit(DE excp)` is not printed by kvm_stat (it uses `EXCP_BASE`).
fn is_counter_name(t: &str) -> bool {
    let (base, arg) = match t.split_once('(') {
        Some((b, rest)) => match rest.strip_suffix(')') {
            Some(a) => (b, Some(a)),
            None => return false,
        },
        None => (t, None),
    };
    !base.is_empty()
        && base.starts_with(|c: char| c.is_ascii_lowercase())
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && arg.is_none_or(|a| {
            !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// A number perf 6.x prints as a percentage, with or without its `%`.
fn pct_or_num(t: &str) -> Option<f64> {
    parse_pct(t).or_else(|| finite(t))
}

/// One row of perf 6.x's compact table from a line's tokens: `KEY.. SAMPLES SAMPLE% TIME_NS
/// TIME% MAX_NS MIN_NS MEAN_NS`. `None` when the tokens are not (yet) a whole row.
fn compact_row(tokens: &[(String, usize)]) -> Option<PerfRow> {
    let n = tokens.len();
    if n < 8 {
        return None;
    }
    let j = n - 7;
    let t = |i: usize| tokens[j + i].0.as_str();
    let samples = t(0).parse::<u64>().ok()?;
    let samples_pct = pct_or_num(t(1))?;
    let time_ns = t(2).parse::<u64>().ok()?;
    let time_pct = pct_or_num(t(3))?;
    let max = t(4).parse::<u64>().ok()?;
    let min = t(5).parse::<u64>().ok()?;
    let mean = finite(t(6))?;
    let key = tokens[..j]
        .iter()
        .map(|t| t.0.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Some(PerfRow {
        key,
        samples,
        samples_pct,
        time_pct,
        min_us: Some(min as f64 / 1000.0),
        max_us: Some(max as f64 / 1000.0),
        avg_us: mean / 1000.0,
        stddev_pct: None,
        time_ns: Some(time_ns),
    })
}

/// `0x6e0:W` -> (0x6e0, "W").
pub fn split_key(key: &str) -> Option<(u64, &str)> {
    let (addr, access) = key.split_once(':')?;
    let hex = addr.strip_prefix("0x")?;
    Some((u64::from_str_radix(hex, 16).ok()?, access))
}

/// Whether an index is in a range the x86 MSR space uses (architectural and model-specific
/// MSRs, Hyper-V's synthetic MSRs, KVM's paravirtual MSRs, AMD's 0xc000_0000 and
/// 0xc001_0000 blocks).
pub fn msr_like(index: u64) -> bool {
    index < 0x2000
        || (0x4000_0000..=0x4000_0fff).contains(&index)
        || (0x4b56_4d00..=0x4b56_4dff).contains(&index)
        || (0xc000_0000..=0xc000_3fff).contains(&index)
        || (0xc001_0000..=0xc001_ffff).contains(&index)
}

/// The kind of a compact table: perf 6.x prints `Event name` over every table, so the keys
/// tell (`0x70:POUT` ports, `0x6e0:W` MSRs, `0xfee00380:W` MMIO, names for exits).
fn compact_kind(rows: &[PerfRow]) -> TableKind {
    let keys: Vec<Option<(u64, &str)>> = rows.iter().map(|r| split_key(&r.key)).collect();
    if keys
        .iter()
        .all(|k| k.is_some_and(|(_, a)| a == "POUT" || a == "PIN"))
    {
        TableKind::Ioport
    } else if keys
        .iter()
        .all(|k| k.is_some_and(|(_, a)| a == "R" || a == "W"))
    {
        if keys.iter().flatten().all(|(i, _)| msr_like(*i)) {
            TableKind::Msr
        } else {
            TableKind::Mmio
        }
    } else {
        TableKind::Vmexit
    }
}

struct Compact {
    scope: Option<String>,
    timestamp: Option<String>,
    line: usize,
    rows: Vec<PerfRow>,
    pending: Vec<(String, usize)>,
}

impl Compact {
    fn close(self, total: Option<(u64, Option<f64>)>) -> Result<PerfTable, ParseError> {
        if let Some((_, l)) = self.pending.first() {
            return Err(ParseError::At {
                line: *l,
                message: format!(
                    "cannot read a table row starting '{}'",
                    excerpt(&self.pending[0].0)
                ),
            });
        }
        if self.rows.is_empty() {
            return Err(ParseError::At {
                line: self.line,
                message: "the Event name table has a header and no rows".to_string(),
            });
        }
        Ok(PerfTable {
            kind: compact_kind(&self.rows),
            key_header: "Event name".to_string(),
            scope: self.scope,
            timestamp: self.timestamp,
            min_max: true,
            compact: true,
            rows: self.rows,
            total_samples: total.map(|t| t.0),
            total_time_us: total.and_then(|t| t.1),
            line: self.line,
            notes: Vec::new(),
        })
    }
}

/// Debugfs counter names of kvm_stat (and of `/sys/kernel/debug/kvm`) that are not
/// `kvm_*` tracepoints: enough of them marks a line as a `kvm_stat -l` banner.
const DEBUGFS_NAMES: &[&str] = &[
    "exits",
    "fpu_reload",
    "halt_exits",
    "halt_successful_poll",
    "halt_attempted_poll",
    "halt_poll_invalid",
    "halt_wakeup",
    "host_state_reload",
    "hypercalls",
    "insn_emulation",
    "insn_emulation_fail",
    "io_exits",
    "irq_exits",
    "irq_injections",
    "irq_window_exits",
    "mmio_exits",
    "mmu_cache_miss",
    "mmu_flooded",
    "mmu_pde_zapped",
    "mmu_pte_write",
    "mmu_recycled",
    "mmu_shadow_zapped",
    "mmu_unsync",
    "nmi_injections",
    "nmi_window_exits",
    "pf_fixed",
    "pf_guest",
    "remote_tlb_flush",
    "request_irq_exits",
    "signal_exits",
    "tlb_flush",
    "invlpg",
    "efer_reload",
    "largepages",
];

/// A `kvm_stat -l` banner: counter names only (space- or comma-separated, CSV with a
/// leading `timestamp`), at least two, most of them KVM's.
fn log_banner(t: &str) -> Option<(Vec<String>, bool)> {
    let csv = t.contains(',');
    let mut names: Vec<&str> = if csv {
        t.split(',').map(str::trim).collect()
    } else {
        t.split_whitespace().collect()
    };
    if csv && names.first() == Some(&"timestamp") {
        names.remove(0);
    }
    if names.len() < 2 || !names.iter().all(|n| is_counter_name(n)) {
        return None;
    }
    let kvm = names
        .iter()
        .filter(|n| {
            n.starts_with("kvm_") || DEBUGFS_NAMES.contains(&n.split('(').next().unwrap_or(""))
        })
        .count();
    (kvm * 2 > names.len()).then(|| (names.iter().map(|n| n.to_string()).collect(), csv))
}

/// Seconds of a `YYYY-MM-DD HH:MM:SS` time stamp (since 1970, UTC taken as local: only
/// differences matter).
fn log_stamp(date: &str, time: &str) -> Option<i64> {
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, m, dd], [h, mi, s]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    // a year outside 1..=9999 is no time stamp (and would overflow the arithmetic below)
    if !(1..=9999).contains(y)
        || !(1..=12).contains(m)
        || !(1..=31).contains(dd)
        || !(0..=23).contains(h)
        || !(0..=59).contains(mi)
        || !(0..=60).contains(s)
    {
        return None;
    }
    // days from civil (Howard Hinnant's algorithm)
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

struct Log {
    names: Vec<String>,
    csv: bool,
    line: usize,
    sums: Vec<u64>,
    n: usize,
    stamps: Vec<i64>,
}

impl Log {
    /// One line of deltas: `Some(Ok)` when taken, `None` when the line is no statline.
    fn take(&mut self, t: &str, lineno: usize) -> Option<Result<(), ParseError>> {
        let fields: Vec<&str> = if self.csv {
            t.split(',').map(str::trim).collect()
        } else {
            t.split_whitespace().collect()
        };
        let (stamp, values) = match fields.as_slice() {
            [ts, rest @ ..] if self.csv && ts.contains(':') => {
                let mut dt = ts.split_whitespace();
                (
                    dt.next().zip(dt.next()).and_then(|(d, t)| log_stamp(d, t)),
                    rest,
                )
            }
            [d, tm, rest @ ..] if !self.csv && d.contains('-') && tm.contains(':') => {
                (log_stamp(d, tm), rest)
            }
            all => (None, all),
        };
        if values.is_empty() || !values.iter().all(|v| v.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        if let Err(e) = check_overflow(
            &values
                .iter()
                .map(|v| (v.to_string(), lineno))
                .collect::<Vec<_>>(),
        ) {
            return Some(Err(e));
        }
        if values.len() != self.names.len() {
            return Some(Err(ParseError::At {
                line: lineno,
                message: format!(
                    "a kvm_stat log line with {} values under a header of {} counters",
                    values.len(),
                    self.names.len()
                ),
            }));
        }
        for (sum, v) in self.sums.iter_mut().zip(values) {
            let v: u64 = v.parse().unwrap_or(0);
            match sum.checked_add(v) {
                Some(s) => *sum = s,
                None => {
                    return Some(Err(ParseError::At {
                        line: lineno,
                        message: "the kvm_stat log's counts add up beyond 2^64".to_string(),
                    }));
                }
            }
        }
        self.n += 1;
        self.stamps.extend(stamp);
        Some(Ok(()))
    }

    fn close(self) -> Result<KvmStatBlock, ParseError> {
        if self.n == 0 {
            return Err(ParseError::At {
                line: self.line,
                message: "a kvm_stat log header with no rows".to_string(),
            });
        }
        let interval = if self.stamps.is_empty() {
            // kvm_stat -l before time stamps were added sleeps one second per line
            Some(1.0)
        } else if self.stamps.len() == self.n && self.n >= 2 {
            let span = self.stamps[self.n - 1] - self.stamps[0];
            (span > 0).then(|| span as f64 / (self.n - 1) as f64)
        } else {
            None
        };
        let mut b = KvmStatBlock::new(KvmStatLayout::Log, self.line);
        b.intervals = Some(self.n);
        b.interval_s = interval;
        b.rows = self
            .names
            .into_iter()
            .zip(self.sums)
            .map(|(name, total)| KvmStatRow {
                name,
                total,
                per_sec: interval.map(|i| total as f64 / (self.n as f64 * i)),
                pct: None,
            })
            .collect();
        Ok(b)
    }
}

/// The first line that is not blank or a comment, for an error about the whole input.
fn nothing(text: &str) -> ParseError {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, unquote(l).trim()))
        .find(|(_, t)| !t.is_empty() && !t.starts_with('#'))
        .map(|(line, t)| ParseError::Nothing {
            line,
            text: excerpt(t),
        })
        .unwrap_or(ParseError::Empty)
}

fn flush_kvm(kvm: &mut Option<KvmStatBlock>, out: &mut Recorded) -> Result<(), ParseError> {
    if let Some(b) = kvm.take() {
        match b.layout {
            // a lone `name 1 2` line is not a batch
            KvmStatLayout::Batch if b.rows.len() < 2 => {}
            KvmStatLayout::Summary | KvmStatLayout::Classic if b.rows.is_empty() => {
                return Err(ParseError::At {
                    line: b.line,
                    message: "a kvm_stat header with no rows".to_string(),
                });
            }
            _ => out.kvm_stat.push(b),
        }
    }
    Ok(())
}

/// Parse a recorded report. Fails on a table row that cannot be read, a table header with
/// no rows, a number that overflows, or when the text holds neither a perf table nor
/// kvm_stat output; every error names its line.
pub fn parse(text: &str) -> Result<Recorded, ParseError> {
    let mut out = Recorded::default();
    let mut open: Option<Open> = None;
    let mut compact: Option<Compact> = None;
    let mut log: Option<Log> = None;
    let mut scope: Option<String> = None;
    let mut timestamp: Option<String> = None;
    let mut kvm: Option<KvmStatBlock> = None;

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = unquote(raw);
        let t = line.trim();
        if t.starts_with('#') || t.starts_with('$') {
            continue;
        }
        if let Some(c) = compact.as_mut() {
            if t.starts_with("Total Samples:") {
                check_overflow(
                    &t.split([':', ',', ' '])
                        .map(|w| (w.trim_end_matches('.').to_string(), lineno))
                        .collect::<Vec<_>>(),
                )?;
                if let Some(c) = compact.take() {
                    out.perf.push(c.close(parse_total(t))?);
                }
                continue;
            }
            if t.is_empty() {
                continue;
            }
            let words: Vec<(String, usize)> = t
                .split_whitespace()
                .map(|w| (w.to_string(), lineno))
                .collect();
            let numeric = words.iter().any(|w| pct_or_num(&w.0).is_some());
            let new_table = t.starts_with("Analyze events")
                || t.contains("Samples%")
                || t.contains("Sample%")
                || is_timestamp(t);
            if !new_table && (numeric || !c.pending.is_empty()) {
                check_overflow(&words)?;
                c.pending.extend(words);
                if let Some(row) = compact_row(&c.pending) {
                    c.rows.push(row);
                    c.pending.clear();
                } else if c.pending.len() > 24 {
                    let (w, l) = &c.pending[0];
                    return Err(ParseError::At {
                        line: *l,
                        message: format!("cannot read a table row starting '{}'", excerpt(w)),
                    });
                }
                continue;
            }
            if let Some(c) = compact.take() {
                out.perf.push(c.close(None)?);
            }
        }
        if let Some(o) = open.as_mut() {
            if o.header_open {
                if t.contains("Avg") {
                    o.header_open = false;
                }
                continue;
            }
            if t.starts_with("Total Samples:") {
                check_overflow(
                    &t.split([':', ',', ' '])
                        .map(|w| (w.trim_end_matches('.').to_string(), lineno))
                        .collect::<Vec<_>>(),
                )?;
            }
            if let Some(total) = parse_total(t) {
                if let Some(o) = open.take() {
                    out.perf.push(o.close(Some(total))?);
                }
                continue;
            }
            if t.starts_with("unknown kvm exit code") || t.starts_with("Warning:") {
                o.notes.push(t.to_string());
                continue;
            }
            let starts_new = t.starts_with("Analyze events")
                || t.contains("Samples%")
                || t.contains("Sample%")
                || is_timestamp(t);
            if !starts_new && !t.starts_with('=') {
                o.tokens
                    .extend(t.split_whitespace().map(|w| (w.to_string(), lineno)));
                continue;
            }
            // a table without its Total line (cut short by the poster)
            if let Some(o) = open.take() {
                out.perf.push(o.close(None)?);
            }
        }
        if let Some(l) = log.as_mut() {
            if t.is_empty() {
                continue;
            }
            match l.take(t, lineno) {
                Some(r) => {
                    r?;
                    continue;
                }
                None => {
                    // the banner repeats every 20 lines
                    if log_banner(t).is_some_and(|(names, _)| names == l.names) {
                        continue;
                    }
                    if let Some(l) = log.take() {
                        out.kvm_stat.push(l.close()?);
                    }
                }
            }
        }
        if t.is_empty() {
            // blank lines between rows are kept by mail and by copying a curses screen:
            // they end no kvm_stat block
            continue;
        }
        if is_timestamp(t) {
            flush_kvm(&mut kvm, &mut out)?;
            timestamp = Some(t.to_string());
            continue;
        }
        if let Some(s) = t.strip_prefix("Analyze events for ") {
            flush_kvm(&mut kvm, &mut out)?;
            scope = Some(s.trim_end_matches(':').to_string());
            continue;
        }
        if t.starts_with("Event name") && t.contains("Sample") {
            flush_kvm(&mut kvm, &mut out)?;
            compact = Some(Compact {
                scope: scope.take(),
                timestamp: timestamp.take(),
                line: lineno,
                rows: Vec::new(),
                pending: Vec::new(),
            });
            continue;
        }
        if t.contains("Samples%") || (t.contains("Samples") && t.contains("Time%")) {
            flush_kvm(&mut kvm, &mut out)?;
            let key_header = t.split("Samples").next().unwrap_or("").trim().to_string();
            let kind = kind_of(&key_header).ok_or_else(|| ParseError::At {
                line: lineno,
                message: format!("unknown perf kvm stat table '{}'", excerpt(&key_header)),
            })?;
            open = Some(Open {
                kind,
                key_header,
                scope: scope.take(),
                timestamp: timestamp.take(),
                min_max: t.contains("Min"),
                line: lineno,
                tokens: Vec::new(),
                notes: Vec::new(),
                header_open: !t.contains("Avg"),
            });
            continue;
        }
        // kvm_stat
        let words: Vec<&str> = t.split_whitespace().collect();
        if let [name, rest @ ..] = words.as_slice()
            && (is_counter_name(name) || *name == "Total")
        {
            check_overflow(
                &rest
                    .iter()
                    .map(|w| (w.to_string(), lineno))
                    .collect::<Vec<_>>(),
            )?;
        }
        if t == "kvm statistics" {
            flush_kvm(&mut kvm, &mut out)?;
            kvm = Some(KvmStatBlock::new(KvmStatLayout::Classic, lineno));
            continue;
        }
        if words.first() == Some(&"Event") && words.contains(&"Total") {
            flush_kvm(&mut kvm, &mut out)?;
            kvm = Some(KvmStatBlock::new(KvmStatLayout::Summary, lineno));
            continue;
        }
        if let Some((names, csv)) = log_banner(t) {
            flush_kvm(&mut kvm, &mut out)?;
            log = Some(Log {
                sums: vec![0; names.len()],
                names,
                csv,
                line: lineno,
                n: 0,
                stamps: Vec::new(),
            });
            continue;
        }
        if let Some(b) = kvm.as_mut()
            && b.layout == KvmStatLayout::Summary
        {
            if words.first() == Some(&"Total") {
                b.total = words.get(1).and_then(|w| w.parse().ok());
                b.total_per_sec = words.last().and_then(|w| w.parse().ok());
                flush_kvm(&mut kvm, &mut out)?;
                continue;
            }
            if let [name, total, rest @ ..] = words.as_slice()
                && is_counter_name(name)
                && let Ok(total) = total.parse::<u64>()
            {
                let (pct, per_sec) = match rest {
                    [p, r] => (p.parse().ok(), r.parse().ok()),
                    [r] => (None, r.parse().ok()),
                    _ => (None, None),
                };
                b.rows.push(KvmStatRow {
                    name: name.to_string(),
                    total,
                    per_sec,
                    pct,
                });
                continue;
            }
            flush_kvm(&mut kvm, &mut out)?;
            continue;
        }
        if let [name, total, rate] = words.as_slice()
            && is_counter_name(name)
            && let (Ok(total), Ok(rate)) = (total.parse::<u64>(), rate.parse::<f64>())
        {
            // a name seen again starts the next `kvm_stat -1` run
            if kvm
                .as_ref()
                .is_some_and(|b| b.rows.iter().any(|r| r.name == *name))
            {
                flush_kvm(&mut kvm, &mut out)?;
            }
            let b = kvm.get_or_insert_with(|| KvmStatBlock::new(KvmStatLayout::Batch, lineno));
            b.rows.push(KvmStatRow {
                name: name.to_string(),
                total,
                per_sec: Some(rate),
                pct: None,
            });
            continue;
        }
        // anything else ends a kvm_stat block
        flush_kvm(&mut kvm, &mut out)?;
    }
    if let Some(o) = open.take() {
        out.perf.push(o.close(None)?);
    }
    if let Some(c) = compact.take() {
        out.perf.push(c.close(None)?);
    }
    if let Some(l) = log.take() {
        out.kvm_stat.push(l.close()?);
    }
    flush_kvm(&mut kvm, &mut out)?;
    if out.perf.is_empty() && out.kvm_stat.is_empty() {
        return Err(nothing(text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_time_stamps_are_no_time_stamps_not_an_overflow() {
        assert_eq!(log_stamp("1970-01-01", "00:00:01"), Some(1));
        assert!(log_stamp("2024-02-29", "23:59:60").is_some());
        for (d, t) in [
            ("9223372036854775807-01-01", "00:00:00"),
            ("-9223372036854775807-01-01", "00:00:00"),
            ("2024-01-01", "9223372036854775807:00:00"),
            ("2024-01-01", "-1:00:00"),
            ("2024-13-01", "00:00:00"),
            ("0-01-01", "00:00:00"),
        ] {
            assert_eq!(log_stamp(d, t), None, "{d} {t}");
        }
    }

    const SEED_BEFORE: &str = "15:52:35.709821
Analyze events for all VMs, all VCPUs:
VM-EXIT Samples Samples% Time% Min Time Max Time Avg time
IO_INSTRUCTION 55654 78.67% 42.39% 3.54us 74.94us 13.63us ( +- 0.24% )
MSR_READ 7114 10.06% 0.74% 1.46us 16.58us 1.87us ( +- 0.30% )
Total Samples:62768, Total events handled time:1789115.74us.
";

    #[test]
    fn reads_a_live_table_with_collapsed_whitespace() {
        let r = parse(SEED_BEFORE).unwrap();
        assert_eq!(r.perf.len(), 1);
        let t = &r.perf[0];
        assert_eq!(t.kind, TableKind::Vmexit);
        assert!(t.min_max);
        assert_eq!(t.timestamp.as_deref(), Some("15:52:35.709821"));
        assert_eq!(t.scope.as_deref(), Some("all VMs, all VCPUs"));
        assert_eq!(t.rows[0].key, "IO_INSTRUCTION");
        assert_eq!(t.rows[0].samples, 55654);
        assert_eq!(t.rows[0].max_us, Some(74.94));
        assert_eq!(t.rows[1].stddev_pct, Some(0.30));
        assert_eq!(t.total_samples, Some(62768));
        assert_eq!(t.total_time_us, Some(1789115.74));
    }

    #[test]
    fn amd_keys_may_hold_spaces_and_old_tables_have_no_min_max() {
        let text = "Analyze events for all VCPUs:\n\n             VM-EXIT    Samples  Samples%     Time%         Avg time\n\n\
                    DE excp        10    50.00%    10.00%      1.00us ( +-   1.00% )\n\
                    io        10    50.00%    90.00%      9.00us ( +-   1.00% )\n\nTotal Samples:20, Total events handled time:100.00us.\n";
        let r = parse(text).unwrap();
        let t = &r.perf[0];
        assert!(!t.min_max);
        assert_eq!(t.rows[0].key, "DE excp");
        assert_eq!(t.rows[1].key, "io");
        assert_eq!(t.rows[1].min_us, None);
    }

    #[test]
    fn kvm_stat_once_is_a_batch() {
        let text = "kvm_entry                                    1234       100\nkvm_exit                                     1233        99\nkvm_exit(HLT)                                  33         9\n";
        let r = parse(text).unwrap();
        assert_eq!(r.kvm_stat.len(), 1);
        let b = &r.kvm_stat[0];
        assert_eq!(b.layout, KvmStatLayout::Batch);
        assert_eq!(b.rows[2].name, "kvm_exit(HLT)");
        assert_eq!(b.rows[2].per_sec, Some(9.0));
    }

    #[test]
    fn bad_rows_and_empty_input_are_errors() {
        let text = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\nHLT 12 x% 1% 1us 2us 3us\nTotal Samples:12, Total events handled time:1.00us.\n";
        let e = parse(text).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(
            parse("hello\nworld\n").unwrap_err().to_string(),
            "line 1: no perf kvm stat table and no kvm_stat output found (the first line reads 'hello')"
        );
        assert_eq!(
            parse("\n# only a comment\n").unwrap_err(),
            ParseError::Empty
        );
        let e = parse(
            "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\nHLT 12 50.00% 1.00% 1us\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("HLT"), "{e}");
        let e = parse("Bogus Samples Samples% Time% Avg time\n").unwrap_err();
        assert!(e.to_string().contains("Bogus"), "{e}");
    }

    #[test]
    fn errors_quote_a_short_escaped_excerpt_only() {
        let huge = "x".repeat(1_000_000);
        let text = format!(
            "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n{huge}\x1b]0; 12 50.00% 1.00% 1us\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.len() < 200, "{} bytes", e.len());
        assert!(!e.contains('\x1b'), "{e}");
    }

    #[test]
    fn a_table_with_a_header_and_no_rows_is_refused() {
        let e = parse("VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n\nTotal Samples:0, Total events handled time:0.00us.\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: the VM-EXIT table has a header and no rows"
        );
        let e = parse("# perf\n\n  MMIO Access Samples Samples% Time% Avg time\n").unwrap_err();
        assert!(
            e.to_string().starts_with("line 3: the MMIO Access table"),
            "{e}"
        );
    }

    #[test]
    fn numbers_that_overflow_are_refused_naming_the_line() {
        let head = "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n";
        for (row, want) in [
            (
                "HLT 18446744073709551616 50.00% 1.00% 1us 2us 3us",
                "larger than 2^64",
            ),
            ("HLT 12 inf% 1.00% 1us 2us 3us", "infinite or not a number"),
            ("HLT 12 50.00% NaN% 1us 2us 3us", "infinite or not a number"),
            (
                "HLT 12 50.00% 1.00% 1us 1e999us 3us",
                "infinite or not a number",
            ),
        ] {
            let e = parse(&format!(
                "{head}MSR_READ 1 1.00% 1.00% 1us 1us 1us\n{row}\n"
            ))
            .unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("line 3: ") && msg.contains(want),
                "{row}: {msg}"
            );
            assert!(!msg.contains('\n'));
        }
        let e = parse(&format!(
            "{head}HLT 12 50.00% 1.00% 1us 2us 3us\nTotal Samples:99999999999999999999999, Total events handled time:1.00us.\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 3: a count larger than 2^64"),
            "{e}"
        );
        let e = parse("kvm_entry 1 2\nkvm_exit 99999999999999999999 1\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: a count larger"), "{e}");
        let e = parse("kvm_entry 1 2\nkvm_exit 5 inf\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2: a number that is infinite"),
            "{e}"
        );
    }

    #[test]
    fn unquotes_mail() {
        assert_eq!(unquote("> >>>>   exits  1 2").trim(), "exits  1 2");
        assert_eq!(unquote("  plain"), "  plain");
    }
}
