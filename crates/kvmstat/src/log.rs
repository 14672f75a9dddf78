//! Logs of `kvmtune stat --json` (one [`Frame`] a line), read back and merged into one
//! mean [`VmFigures`] per domain.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use crate::live::{Frame, STAT_SCHEMA, VmFigures};

/// Why a log cannot be read. `name` is the file (or stream) as the user named it.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot read {name}")]
    Read {
        name: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{name}: line {line}: not a kvmtune stat JSON line")]
    Json {
        name: String,
        line: usize,
        #[source]
        error: serde_json::Error,
    },
    #[error("{name}: line {line}: kind is {kind:?}, not kvmtune.stat")]
    Kind {
        name: String,
        line: usize,
        kind: String,
    },
    #[error("{name}: no kvmtune stat lines")]
    Empty { name: String },
    #[error("{name}: line {line}: {field} is {value}: not a figure kvmtune stat writes")]
    Absurd {
        name: String,
        line: usize,
        field: String,
        value: String,
    },
    /// Not a regular file, over the input cap, not text, or unreadable.
    #[error(transparent)]
    Input(#[from] kvmtune_host::fsio::ReadError),
}

/// The frames of a log: one JSON [`Frame`] a line, blank lines skipped. `name` names the
/// input in errors; a line numbers from 1.
pub fn parse_log(input: impl BufRead, name: &str) -> Result<Vec<Frame>, LogError> {
    let mut frames = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|error| LogError::Read {
            name: name.to_string(),
            error,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Frame = serde_json::from_str(&line).map_err(|error| LogError::Json {
            name: name.to_string(),
            line: i + 1,
            error,
        })?;
        if f.kind != STAT_SCHEMA {
            return Err(LogError::Kind {
                name: name.to_string(),
                line: i + 1,
                kind: f.kind,
            });
        }
        if let Some((field, value)) = absurd(&f) {
            return Err(LogError::Absurd {
                name: name.to_string(),
                line: i + 1,
                field,
                value,
            });
        }
        frames.push(f);
    }
    if frames.is_empty() {
        return Err(LogError::Empty {
            name: name.to_string(),
        });
    }
    Ok(frames)
}

/// The largest figure a stat log may hold: no rate, percentage, count or size kvmtune stat
/// measures comes near it, and means over such figures cannot overflow.
pub const MAX_FIGURE: f64 = 1e15;

/// The first number of a frame that no measurement can give (not finite, or beyond
/// [`MAX_FIGURE`]), with its JSON path.
fn absurd(f: &Frame) -> Option<(String, String)> {
    fn walk(v: &serde_json::Value, path: &mut String) -> Option<(String, String)> {
        match v {
            serde_json::Value::Number(n) => {
                let x = n.as_f64()?;
                (!x.is_finite() || x.abs() > MAX_FIGURE).then(|| (path.clone(), n.to_string()))
            }
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let r = walk(x, path);
                path.truncate(len);
                r
            }),
            serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
                let len = path.len();
                path.push('.');
                path.push_str(
                    &k.chars()
                        .take(40)
                        .collect::<String>()
                        .escape_debug()
                        .to_string(),
                );
                let r = walk(x, path);
                path.truncate(len);
                r
            }),
            _ => None,
        }
    }
    let v = serde_json::to_value(f).ok()?;
    let mut path = String::new();
    walk(&v, &mut path).map(|(p, x)| (p.trim_start_matches('.').to_string(), x))
}

/// The frames of a log file (see [`parse_log`]): a regular file under the input cap
/// (`KVMTUNE_MAX_INPUT`); a FIFO or a device is refused, not waited on.
pub fn read_log(path: &Path) -> Result<Vec<Frame>, LogError> {
    let name = path.display().to_string();
    let text = kvmtune_host::fsio::read_input_text(path).map_err(|e| match e {
        kvmtune_host::fsio::ReadError::Io { source, .. } => LogError::Read {
            name: name.clone(),
            error: source,
        },
        other => LogError::Input(other),
    })?;
    parse_log(text.as_bytes(), &name)
}

/// Mean figures of each domain over the frames of a log, by name, with the number of
/// frames it is in. The CPU figures and KVM counters are means; the rest is the last frame's.
pub fn merge_frames(frames: &[Frame]) -> Vec<(VmFigures, usize)> {
    let mut by: BTreeMap<String, Vec<&VmFigures>> = BTreeMap::new();
    for f in frames {
        for d in &f.domains {
            by.entry(d.name.clone()).or_default().push(d);
        }
    }
    let mean = |v: &[&VmFigures], g: &dyn Fn(&VmFigures) -> Option<f64>| {
        let xs: Vec<f64> = v.iter().filter_map(|d| g(d)).collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    by.into_values()
        .filter_map(|v| {
            let last = (*v.last()?).clone();
            let mut kvm: BTreeMap<String, f64> = BTreeMap::new();
            for d in &v {
                for (k, x) in &d.kvm {
                    *kvm.entry(k.clone()).or_default() += x / v.len() as f64;
                }
            }
            let merged = VmFigures {
                host_cpu_pct: mean(&v, &|d| d.host_cpu_pct),
                guest_cpu_pct: mean(&v, &|d| d.guest_cpu_pct),
                overhead_pct: mean(&v, &|d| d.overhead_pct),
                emulator_cpu_pct: mean(&v, &|d| d.emulator_cpu_pct),
                delay_pct: mean(&v, &|d| d.delay_pct),
                halt_poll_pct: mean(&v, &|d| d.halt_poll_pct),
                kvm,
                ..last
            };
            Some((merged, v.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::STAT_VERSION;

    fn vm(name: &str, host: Option<f64>, exits: f64, rss: u64) -> VmFigures {
        VmFigures {
            name: name.into(),
            host_cpu_pct: host,
            guest_cpu_pct: Some(10.0),
            rss_kib: Some(rss),
            kvm: BTreeMap::from([("exits".to_string(), exits)]),
            ..VmFigures::default()
        }
    }

    fn frame(domains: Vec<VmFigures>) -> Frame {
        Frame {
            kind: STAT_SCHEMA.into(),
            version: STAT_VERSION,
            time: "2026-01-01T00:00:00.000Z".into(),
            interval_s: 1.0,
            domains,
            ..Frame::default()
        }
    }

    fn line(f: &Frame) -> String {
        serde_json::to_string(f).unwrap()
    }

    #[test]
    fn reads_a_good_log_with_blank_lines() {
        let a = frame(vec![vm("a", Some(50.0), 100.0, 1)]);
        let b = frame(vec![vm("b", None, 0.0, 2)]);
        let text = format!("{}\n\n   \n{}\n", line(&a), line(&b));
        let frames = parse_log(text.as_bytes(), "x.jsonl").unwrap();
        assert_eq!(frames, [a, b]);
    }

    #[test]
    fn a_line_of_another_kind_is_refused() {
        let mut other = frame(vec![]);
        other.kind = "kvmtune.audit".into();
        let text = format!("{}\n{}\n", line(&frame(vec![])), line(&other));
        let e = parse_log(text.as_bytes(), "x.jsonl").unwrap_err();
        assert!(matches!(e, LogError::Kind { line: 2, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "x.jsonl: line 2: kind is \"kvmtune.audit\", not kvmtune.stat"
        );
    }

    #[test]
    fn bad_json_names_the_line() {
        let text = format!("\n{}\n{{not json\n", line(&frame(vec![])));
        let e = parse_log(text.as_bytes(), "x.jsonl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.jsonl: line 3: not a kvmtune stat JSON line"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn an_empty_log_is_an_error() {
        let e = parse_log("\n\n".as_bytes(), "x.jsonl").unwrap_err();
        assert_eq!(e.to_string(), "x.jsonl: no kvmtune stat lines");
        let e = parse_log("".as_bytes(), "y").unwrap_err();
        assert!(matches!(e, LogError::Empty { .. }));
    }

    #[test]
    fn a_missing_file_is_named() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("none.jsonl");
        let e = read_log(&p).unwrap_err();
        assert_eq!(e.to_string(), format!("cannot read {}", p.display()));
        std::fs::write(&p, format!("{}\n", line(&frame(vec![])))).unwrap();
        assert_eq!(read_log(&p).unwrap().len(), 1);
    }

    #[test]
    fn a_fifo_or_device_is_refused_not_waited_on() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("log.jsonl");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let e = read_log(&fifo).unwrap_err().to_string();
        assert!(e.contains("log.jsonl") && e.contains("a FIFO"), "{e}");
        let e = read_log(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("device node"), "{e}");
    }

    #[test]
    fn merge_means_and_counts() {
        let frames = [
            frame(vec![vm("a", Some(40.0), 100.0, 1), vm("b", None, 10.0, 5)]),
            frame(vec![vm("a", None, 300.0, 2)]),
            frame(vec![vm("a", Some(80.0), 200.0, 3)]),
        ];
        let m = merge_frames(&frames);
        assert_eq!(m.len(), 2);
        let (a, n) = &m[0];
        assert_eq!((a.name.as_str(), *n), ("a", 3));
        // a missing figure is left out of the mean; counters are divided by every frame
        assert_eq!(a.host_cpu_pct, Some(60.0));
        assert_eq!(a.guest_cpu_pct, Some(10.0));
        assert_eq!(a.kvm["exits"], 200.0);
        // the rest is the last frame's
        assert_eq!(a.rss_kib, Some(3));
        let (b, n) = &m[1];
        assert_eq!((b.name.as_str(), *n), ("b", 1));
        assert_eq!(b.host_cpu_pct, None);
        assert!(merge_frames(&[]).is_empty());
    }

    #[test]
    fn figures_no_measurement_gives_are_refused_with_their_line() {
        let ok = line(&frame(vec![vm("a", Some(12.5), 100.0, 1)]));
        let mut bad = vm("a", Some(1e308), 100.0, 1);
        bad.overhead_pct = Some(1e308);
        let huge = line(&frame(vec![bad]));
        let text = format!("{ok}\n{huge}\n");
        let e = parse_log(text.as_bytes(), "x.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.jsonl: line 2: domains[0].host_cpu_pct is 1e+308"),
            "{e}"
        );
        assert!(parse_log(format!("{ok}\n{ok}\n").as_bytes(), "x.jsonl").is_ok());
    }
}
