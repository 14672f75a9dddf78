#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recorded reports: every sample of `shared/corpus/perf-kvm-stat` parses and its numbers
//! agree with the text; seed 004's before/after tables diagnose as the seed tells.

use std::path::{Path, PathBuf};

use kvmtune_kvmstat::diagnose::{Limits, diagnose};
use kvmtune_kvmstat::exits::profiles;
use kvmtune_kvmstat::perf::{KvmStatLayout, Recorded, TableKind, parse};

fn corpus_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/perf-kvm-stat");
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!(
            "skipped: {} is absent (shared/ is not beside the checkout)",
            d.display()
        );
        None
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// Every number parsed must be printed, as perf prints it, in the text; and the columns must
/// agree with each other: Samples% with Total Samples, Time% with the averages, the sum of
/// the rows with the total.
fn check_against_text(name: &str, text: &str, rec: &Recorded) {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for t in &rec.perf {
        assert!(!t.rows.is_empty(), "{name}: empty table at line {}", t.line);
        for r in &t.rows {
            let mut printed = vec![
                r.samples.to_string(),
                format!("{:.2}%", r.samples_pct),
                format!("{:.2}%", r.time_pct),
            ];
            if t.compact {
                // perf 6.x prints times as whole nanoseconds
                let ns = |us: f64| format!("{:.0}", us * 1000.0);
                printed.push(ns(r.avg_us));
                printed.extend(r.min_us.map(ns));
                printed.extend(r.max_us.map(ns));
                printed.extend(r.time_ns.map(|v| v.to_string()));
                // the total time is samples x mean
                let total = r.time_ns.unwrap();
                assert_eq!(total, (r.samples as f64 * r.avg_us * 1000.0).round() as u64);
            } else {
                printed.push(format!("{:.2}us", r.avg_us));
                printed.extend(r.min_us.map(|v| format!("{v:.2}us")));
                printed.extend(r.max_us.map(|v| format!("{v:.2}us")));
            }
            printed.extend(r.stddev_pct.map(|v| format!("{v:.2}%")));
            for p in printed {
                assert!(
                    flat.contains(&p),
                    "{name}: {} {p} is not in the text",
                    r.key
                );
            }
            if let Some(total) = t.total_samples {
                let pct = 100.0 * r.samples as f64 / total as f64;
                assert!(
                    (pct - r.samples_pct).abs() <= 0.0051,
                    "{name}: {} Samples% {} vs {pct:.4}",
                    r.key,
                    r.samples_pct
                );
            }
            if let (Some(mn), Some(mx)) = (r.min_us, r.max_us) {
                assert!(
                    mn <= r.avg_us && r.avg_us <= mx,
                    "{name}: {} min/avg/max",
                    r.key
                );
            }
        }
        let sum: u64 = t.rows.iter().map(|r| r.samples).sum();
        let pct_sum: f64 = t.rows.iter().map(|r| r.samples_pct).sum();
        if let Some(total) = t.total_samples {
            assert!(sum <= total, "{name}: rows sum {sum} > total {total}");
            if (pct_sum - 100.0).abs() < 0.05 {
                assert_eq!(sum, total, "{name}: table at line {}", t.line);
            }
        }
        if let Some(tt) = t.total_time_us {
            for r in t
                .rows
                .iter()
                .filter(|r| r.avg_us >= 1.0 && r.time_pct >= 1.0)
            {
                let est = 100.0 * r.samples as f64 * r.avg_us / tt;
                assert!(
                    (est - r.time_pct).abs() <= 0.02 + r.time_pct * 0.01,
                    "{name}: {} Time% {} vs samples*avg/total {est:.3}",
                    r.key,
                    r.time_pct
                );
            }
        }
    }
    for b in &rec.kvm_stat {
        if b.layout == KvmStatLayout::Log {
            check_log(name, text, b);
            continue;
        }
        for r in &b.rows {
            assert!(
                flat.contains(&format!("{} {}", r.name, r.total)),
                "{name}: {}",
                r.name
            );
            if let Some(v) = r.per_sec {
                assert!(v <= r.total as f64, "{name}: {} rate above total", r.name);
            }
        }
        if let Some(total) = b.total {
            let sum: u64 = b.rows.iter().map(|r| r.total).sum();
            assert_eq!(sum, total, "{name}: kvm_stat Total row");
            for r in &b.rows {
                let pct = 100.0 * r.total as f64 / total as f64;
                assert!(
                    (pct - r.pct.unwrap()).abs() <= 0.051,
                    "{name}: {} %Total",
                    r.name
                );
            }
        }
        if let Some(rate) = b.total_per_sec {
            let sum: f64 = b.rows.iter().filter_map(|r| r.per_sec).sum();
            assert!(
                (sum - rate).abs() <= b.rows.len() as f64,
                "{name}: rate sum {sum} vs {rate}"
            );
        }
    }
}

/// A kvm_stat log block: each counter's total is the sum of its column, recomputed from
/// the text, and its rate that sum over the intervals' time.
fn check_log(name: &str, text: &str, b: &kvmtune_kvmstat::perf::KvmStatBlock) {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let csv = lines[0].contains(',');
    let split = |l: &str| -> Vec<String> {
        if csv {
            l.split(',').map(|s| s.trim().to_string()).collect()
        } else {
            l.split_whitespace().map(str::to_string).collect()
        }
    };
    let mut head = split(lines[0]);
    if head[0] == "timestamp" {
        head.remove(0);
    }
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| split(l)).collect();
    let skip = if csv { 1 } else { 2 };
    assert_eq!(b.intervals, Some(rows.len()), "{name}");
    for (i, r) in b.rows.iter().enumerate() {
        assert_eq!(r.name, head[i], "{name}");
        let sum: u64 = rows
            .iter()
            .map(|v| v[skip + i].parse::<u64>().unwrap())
            .sum();
        assert_eq!(r.total, sum, "{name}: {}", r.name);
        let secs = b.interval_s.unwrap() * rows.len() as f64;
        assert!(
            (r.per_sec.unwrap() - sum as f64 / secs).abs() < 1e-6,
            "{name}"
        );
    }
}

#[test]
fn every_corpus_sample_parses_and_agrees_with_its_text() {
    let Some(dir) = corpus_dir() else { return };
    // what each sample holds, counted by hand from the text:
    // (file prefix, perf tables as (kind, rows, total samples), kvm_stat blocks as (layout, rows))
    type Expect = (
        &'static str,
        &'static [(TableKind, usize, Option<u64>)],
        &'static [(KvmStatLayout, usize)],
    );
    let expect: &[Expect] = &[
        ("01-", &[(TableKind::Vmexit, 7, Some(27549))], &[]),
        (
            "03-",
            &[
                (TableKind::Vmexit, 4, Some(1027227)),
                (TableKind::Vmexit, 4, Some(219802)),
                (TableKind::Vmexit, 6, Some(255363)),
            ],
            &[],
        ),
        ("05-", &[(TableKind::Vmexit, 9, Some(25898))], &[]),
        (
            "06-",
            &[
                (TableKind::Vmexit, 9, Some(98202)),
                (TableKind::Mmio, 4, Some(65057)),
                (TableKind::Ioport, 1, Some(383)),
                (TableKind::Vmexit, 9, Some(10914)),
            ],
            &[],
        ),
        ("09-", &[], &[(KvmStatLayout::Summary, 10)]),
        (
            "12-",
            &[],
            &[(KvmStatLayout::Classic, 5), (KvmStatLayout::Classic, 7)],
        ),
    ];
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        expect.len(),
        "a new corpus sample needs its expectations here"
    );
    for (path, (prefix, tables, blocks)) in files.iter().zip(expect) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(prefix), "{name} vs {prefix}");
        let text = std::fs::read_to_string(path).unwrap();
        let rec = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<_> = rec
            .perf
            .iter()
            .map(|t| (t.kind, t.rows.len(), t.total_samples))
            .collect();
        assert_eq!(got, tables.to_vec(), "{name}");
        let got: Vec<_> = rec
            .kvm_stat
            .iter()
            .map(|b| (b.layout, b.rows.len()))
            .collect();
        assert_eq!(got, blocks.to_vec(), "{name}");
        check_against_text(&name, &text, &rec);
    }
}

#[test]
fn corpus_values_read_back_exactly() {
    let Some(dir) = corpus_dir() else { return };
    let read = |prefix: &str| {
        let p = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap();
        parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    // unknown-exit diagnostic lines between rows are kept as notes, not rows
    let r = read("01-");
    let t = &r.perf[0];
    assert_eq!(t.notes.len(), 5);
    assert_eq!(t.rows[0].key, "INVLPG");
    assert_eq!(t.rows[1].max_us, Some(1663159.36));
    assert_eq!(t.total_time_us, Some(20043311.08));
    // a mail-wrapped row with the closing parenthesis lost
    let r = read("03-");
    let row = &r.perf[0].rows[3];
    assert_eq!(
        (row.key.as_str(), row.samples, row.max_us, row.avg_us),
        ("VMCALL", 17819, Some(15.64), 4.20)
    );
    assert_eq!(row.stddev_pct, Some(0.33));
    // the 2013 layout without Min/Max and its per-vCPU scope
    let r = read("06-");
    assert!(!r.perf[0].min_max);
    assert_eq!(r.perf[3].scope.as_deref(), Some("VCPU 0"));
    assert_eq!(r.perf[2].rows[0].key, "0xc090:POUT");
    // kvm_stat: the summary's rates, and the old screen's reason rows
    let r = read("09-");
    let b = &r.kvm_stat[0];
    assert_eq!(
        (b.total, b.total_per_sec),
        (Some(22521394), Some(1199967.0))
    );
    assert_eq!(b.rows[3].name, "kvm_msr");
    assert_eq!(b.rows[3].per_sec, Some(92289.0));
    let r = read("12-");
    assert_eq!(r.kvm_stat[1].rows[3].name, "kvm_exit(EXCEPTION_NMI)");
    assert_eq!(r.kvm_stat[1].rows[3].per_sec, Some(330604.0));
}

#[test]
fn corpus_diagnoses_name_the_known_causes() {
    let Some(dir) = corpus_dir() else { return };
    let lim = Limits::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut seen = Vec::new();
    for p in &files {
        let rec = parse(&std::fs::read_to_string(p).unwrap()).unwrap();
        let name = p.file_name().unwrap().to_string_lossy()[..3].to_string();
        let rules: Vec<_> = profiles(&rec, &name)
            .iter()
            .flat_map(|p| diagnose(p, &lim))
            .map(|d| d.rule)
            .collect();
        seen.push((name, rules));
    }
    let of = |prefix: &str| &seen.iter().find(|(n, _)| n.starts_with(prefix)).unwrap().1;
    // 03: a Windows guest with 924k MSR writes (the thread is about synthetic timers)
    assert!(
        of("03-").iter().all(|r| *r == "exit-msr-storm"),
        "{:?}",
        of("03-")
    );
    assert_eq!(of("03-").len(), 3);
    // 09: after migration the guest spins: 92k MSR events/s of 277k exits/s, each with a
    // kvm_hv_timer_state change (the APIC timer reprogrammed) and an injected interrupt
    assert_eq!(of("09-"), &["exit-timer-storm"]);
    // 01: a PVM guest under shadow paging: INVLPG is 68.75% of the samples
    assert_eq!(of("01-"), &["exit-shadow-paging"]);
    // 12: the debugfs screen (616k exits/s, no reasons) is only a high rate; the tracepoint
    // screen (EXCEPTION_NMI and kvm_page_fault at 330k/s each, nothing else) is a hung guest
    assert_eq!(of("12-"), &["exit-rate-high", "exit-guest-loop"]);
    // 05 (sysbench in a healthy guest) and 06 (Windows 7, moderate APIC traffic): nothing
    assert!(of("05-").is_empty(), "{:?}", of("05-"));
    assert!(of("06-").is_empty(), "{:?}", of("06-"));
}

#[test]
fn seed_004_before_is_an_io_storm_pointing_at_the_clock_and_after_is_clean() {
    let lim = Limits::default();
    let before = parse(&fixture("seed004-before.txt")).unwrap();
    let ps = profiles(&before, "before");
    assert_eq!(ps.len(), 1);
    let d = diagnose(&ps[0], &lim);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].rule, "exit-io-storm");
    assert!(d[0].message.contains("78.7%"), "{}", d[0].message);
    assert!(d[0].audit_rules.contains(&"clock-windows"));
    assert!(d[0].fix.contains("hypervclock") && d[0].fix.contains("hpet"));
    assert!(d[0].figures.iter().any(|f| f.value == 55654.0));

    let after = parse(&fixture("seed004-after.txt")).unwrap();
    let ps = profiles(&after, "after");
    let d = diagnose(&ps[0], &lim);
    assert!(d.is_empty(), "after the fix nothing is alarming: {d:?}");
}

#[test]
fn own_fixtures_amd_ports_and_kvm_stat_once() {
    let lim = Limits::default();
    let rec = parse(&fixture("amd-windows-rtc-storm.txt")).unwrap();
    assert_eq!(rec.perf.len(), 2);
    assert_eq!(rec.perf[0].rows[5].key, "DE excp");
    let ps = profiles(&rec, "amd");
    assert_eq!(ps[0].io_ports[0].0, "0x70:POUT");
    let d = diagnose(&ps[0], &lim);
    assert_eq!(d[0].rule, "exit-io-storm");
    assert!(d[0].message.contains("RTC"), "{}", d[0].message);
    check_against_text("amd", &fixture("amd-windows-rtc-storm.txt"), &rec);

    let rec = parse(&fixture("kvm_stat-once.txt")).unwrap();
    assert_eq!(rec.kvm_stat[0].layout, KvmStatLayout::Batch);
    let ps = profiles(&rec, "once");
    assert!(ps[0].per_sec);
    assert_eq!(ps[0].total, 61019.0);
    let rules: Vec<_> = diagnose(&ps[0], &lim).iter().map(|d| d.rule).collect();
    // the emulated NIC's MMIO goes on to QEMU: one diagnosis, not two
    assert_eq!(rules, ["exit-userspace-storm"]);
}

fn rules_of(name: &str) -> Vec<Vec<&'static str>> {
    let text = fixture(name);
    let rec = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_against_text(name, &text, &rec);
    profiles(&rec, name)
        .iter()
        .map(|p| {
            diagnose(p, &Limits::default())
                .iter()
                .map(|d| d.rule)
                .collect()
        })
        .collect()
}

#[test]
fn perf_6_compact_tables_are_read_and_their_kind_comes_from_the_keys() {
    let rec = parse(&fixture("perf6-compact.txt")).unwrap();
    let kinds: Vec<_> = rec
        .perf
        .iter()
        .map(|t| (t.kind, t.rows.len(), t.compact))
        .collect();
    assert_eq!(
        kinds,
        [(TableKind::Vmexit, 5, true), (TableKind::Msr, 4, true)]
    );
    let r = &rec.perf[0].rows[0];
    assert_eq!(
        (r.key.as_str(), r.samples, r.samples_pct, r.time_ns),
        ("MSR_WRITE", 412000, 79.54, Some(535600000))
    );
    assert_eq!(
        (r.max_us, r.min_us, r.avg_us),
        (Some(48.21), Some(0.42), 1.3)
    );
    assert_eq!(rec.perf[1].scope.as_deref(), Some("all VMs, all VCPUs"));
    // 0x6e0 (TSC deadline) is 95% of the MSR accesses: a timer storm, not a bare MSR storm
    let rules = rules_of("perf6-compact.txt");
    assert_eq!(rules, [vec!["exit-timer-storm"]]);
    let p = &profiles(&rec, "x")[0];
    let d = &diagnose(p, &Limits::default())[0];
    assert!(d.message.contains("IA32_TSC_DEADLINE"), "{}", d.message);
    assert!(d.message.contains("x2APIC ICR"), "{}", d.message);
}

#[test]
fn a_kvm_stat_summary_with_blank_lines_between_rows_is_a_userspace_storm() {
    let rec = parse(&fixture("kvm_stat-summary-blank-lines.txt")).unwrap();
    assert_eq!(rec.kvm_stat.len(), 1);
    let b = &rec.kvm_stat[0];
    assert_eq!((b.layout, b.rows.len()), (KvmStatLayout::Summary, 6));
    assert_eq!(b.rows[2].name, "kvm_userspace_exit");
    assert_eq!(b.rows[2].per_sec, Some(1390000.0));
    let rules = rules_of("kvm_stat-summary-blank-lines.txt");
    assert_eq!(rules, [vec!["exit-userspace-storm"]]);
    let p = &profiles(&rec, "x")[0];
    let d = &diagnose(p, &Limits::default())[0];
    assert!(d.message.contains("1390000/s"), "{}", d.message);
    assert!(d.message.contains("to name the device"), "{}", d.message);
}

#[test]
fn kvm_stat_logs_plain_and_csv() {
    let rec = parse(&fixture("kvm_stat-log.txt")).unwrap();
    let b = &rec.kvm_stat[0];
    assert_eq!(b.layout, KvmStatLayout::Log);
    assert_eq!((b.intervals, b.interval_s), (Some(3), Some(3.0)));
    assert_eq!(b.rows[2].name, "kvm_exit(EXCEPTION_NMI)");
    assert_eq!(b.rows[2].total, 991812 + 991800 + 991690);
    // a hung guest: a WARN, not the INFO of a high exit rate
    assert_eq!(rules_of("kvm_stat-log.txt"), [vec!["exit-guest-loop"]]);

    let rec = parse(&fixture("kvm_stat-log.csv")).unwrap();
    let b = &rec.kvm_stat[0];
    assert_eq!(
        (b.layout, b.intervals, b.interval_s),
        (KvmStatLayout::Log, Some(2), Some(1.0))
    );
    assert_eq!(b.rows[1].per_sec, Some(1150.0));
    assert_eq!(rules_of("kvm_stat-log.csv"), [Vec::<&str>::new()]);
}

#[test]
fn arm64_data_aborts_and_riscv_names_are_sorted_into_kinds() {
    assert_eq!(rules_of("arm64-trap-dabt.txt"), [vec!["exit-data-abort"]]);
    let rec = parse(&fixture("arm64-trap-dabt.txt")).unwrap();
    let p = &profiles(&rec, "x")[0];
    assert_eq!(
        p.kind(kvmtune_kvmstat::exits::ExitKind::DataAbort),
        662310.0 + 190.0
    );
    assert_eq!(p.kind(kvmtune_kvmstat::exits::ExitKind::Wfx), 4100.0);
    // an idle RISC-V guest: every name has a kind, nothing alarming
    assert_eq!(rules_of("riscv-idle.txt"), [Vec::<&str>::new()]);
    let rec = parse(&fixture("riscv-idle.txt")).unwrap();
    let p = &profiles(&rec, "x")[0];
    assert_eq!(p.kind(kvmtune_kvmstat::exits::ExitKind::Other), 0.0);
}

#[test]
fn headers_without_rows_and_unrecognisable_files_name_their_line() {
    for (text, want) in [
        (
            "# c\n Event                                         Total %Total CurAvg/s\n\n",
            "line 2: a kvm_stat header with no rows",
        ),
        (
            "kvm statistics\n\n",
            "line 1: a kvm_stat header with no rows",
        ),
        (
            "kvm_entry kvm_exit kvm_userspace_exit\n",
            "line 1: a kvm_stat log header with no rows",
        ),
        (
            "Event name   Samples   Sample%   Time(ns)   Time%   Max Time(ns)   Min Time(ns)   Mean Time(ns)\n\n",
            "line 1: the Event name table has a header and no rows",
        ),
        (
            "kvm_entry kvm_exit\n 1 2 3\n",
            "line 2: a kvm_stat log line with 3 values under a header of 2 counters",
        ),
        (
            "kvm_entry kvm_exit\n 1 99999999999999999999\n",
            "line 2: a count larger than 2^64",
        ),
        ("\n\nsome prose\n", "line 3: no perf kvm stat table"),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}
