//! Recorded exit statistics as people post them: `perf kvm stat report` and `perf kvm stat
//! live` tables (vmexit, mmio, ioport and msr events; the table with Min/Max columns and the
//! older one without; VMX and SVM names), and `kvm_stat` output (the `-1`/`--once` batch
//! lines, the curses summary with %Total and CurAvg/s, and the old "kvm statistics" screen).
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
    #[error("no perf kvm stat table and no kvm_stat output found")]
    Nothing,
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
    if h.contains("vm-exit") || h.contains("vmexit") {
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

/// Parse a recorded report. Fails on a table row that cannot be read, or when the text
/// holds neither a perf table nor kvm_stat output.
pub fn parse(text: &str) -> Result<Recorded, ParseError> {
    let mut out = Recorded::default();
    let mut open: Option<Open> = None;
    let mut scope: Option<String> = None;
    let mut timestamp: Option<String> = None;
    let mut kvm: Option<KvmStatBlock> = None;

    let flush_kvm = |kvm: &mut Option<KvmStatBlock>, out: &mut Recorded| {
        if let Some(b) = kvm.take() {
            // a lone `name 1 2` line is not a batch
            if !b.rows.is_empty() && (b.layout != KvmStatLayout::Batch || b.rows.len() >= 2) {
                out.kvm_stat.push(b);
            }
        }
    };

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = unquote(raw);
        let t = line.trim();
        if t.starts_with('#') || t.starts_with('$') {
            continue;
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
            let starts_new =
                t.starts_with("Analyze events") || t.contains("Samples%") || is_timestamp(t);
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
        if t.is_empty() {
            if kvm
                .as_ref()
                .is_some_and(|b| b.layout == KvmStatLayout::Batch)
            {
                flush_kvm(&mut kvm, &mut out);
            }
            continue;
        }
        if is_timestamp(t) {
            flush_kvm(&mut kvm, &mut out);
            timestamp = Some(t.to_string());
            continue;
        }
        if let Some(s) = t.strip_prefix("Analyze events for ") {
            flush_kvm(&mut kvm, &mut out);
            scope = Some(s.trim_end_matches(':').to_string());
            continue;
        }
        if t.contains("Samples%") || (t.contains("Samples") && t.contains("Time%")) {
            flush_kvm(&mut kvm, &mut out);
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
            flush_kvm(&mut kvm, &mut out);
            kvm = Some(KvmStatBlock {
                layout: KvmStatLayout::Classic,
                rows: Vec::new(),
                total: None,
                total_per_sec: None,
                line: lineno,
            });
            continue;
        }
        if words.first() == Some(&"Event") && words.contains(&"Total") {
            flush_kvm(&mut kvm, &mut out);
            kvm = Some(KvmStatBlock {
                layout: KvmStatLayout::Summary,
                rows: Vec::new(),
                total: None,
                total_per_sec: None,
                line: lineno,
            });
            continue;
        }
        if let Some(b) = kvm.as_mut()
            && b.layout == KvmStatLayout::Summary
        {
            if words.first() == Some(&"Total") {
                b.total = words.get(1).and_then(|w| w.parse().ok());
                b.total_per_sec = words.last().and_then(|w| w.parse().ok());
                flush_kvm(&mut kvm, &mut out);
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
            flush_kvm(&mut kvm, &mut out);
            continue;
        }
        if let [name, total, rate] = words.as_slice()
            && is_counter_name(name)
            && let (Ok(total), Ok(rate)) = (total.parse::<u64>(), rate.parse::<f64>())
        {
            let b = kvm.get_or_insert_with(|| KvmStatBlock {
                layout: KvmStatLayout::Batch,
                rows: Vec::new(),
                total: None,
                total_per_sec: None,
                line: lineno,
            });
            b.rows.push(KvmStatRow {
                name: name.to_string(),
                total,
                per_sec: Some(rate),
                pct: None,
            });
            continue;
        }
        // anything else ends a kvm_stat block
        flush_kvm(&mut kvm, &mut out);
    }
    if let Some(o) = open.take() {
        out.perf.push(o.close(None)?);
    }
    flush_kvm(&mut kvm, &mut out);
    if out.perf.is_empty() && out.kvm_stat.is_empty() {
        return Err(ParseError::Nothing);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse("hello\nworld\n").unwrap_err(), ParseError::Nothing);
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
