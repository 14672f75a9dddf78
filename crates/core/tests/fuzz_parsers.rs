#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A mutation fuzzer for every parser of untrusted input other than domain XML (which has
//! its own, crates/rules/tests/fuzz.rs): recorded perf/kvm_stat reports, `stat --json`
//! logs, plan files, journal entries and step logs, support bundles, and host files under
//! a `--root` tree. Each mutated input must be parsed or refused with an error: never a
//! panic, never a hang.
//!
//! Every run takes a fresh seed (printed first, so a failure can be replayed with
//! KVMTUNE_FUZZ_SEED=N); KVMTUNE_FUZZ_SECS sets the time for all targets together
//! (default 5). The seed corpus holds the hostile cases of issue 17 (absurd plans, escaping
//! journal paths, empty report tables, overflowing numbers).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FRAGMENTS: &[&str] = &[
    "",
    "0",
    "-1",
    "18446744073709551616",
    "1e999",
    "NaN",
    "inf",
    "\u{0}",
    "\u{feff}",
    "é",
    "\n",
    "\r\n",
    "\t",
    " ",
    ":",
    ",",
    "%",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "/../",
    "/..",
    "//",
    "null",
    "true",
    "99999",
    "4294967296",
    "+-",
    "us",
    "Total",
    "VM-EXIT",
    "Samples",
    "Event",
];

struct Rng(fastrand::Rng);

impl Rng {
    fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..self.0.usize(1..4) {
            let at = if v.is_empty() {
                0
            } else {
                self.0.usize(0..v.len())
            };
            match self.0.u8(0..7) {
                0 if !v.is_empty() => v[at] ^= 1 << self.0.u8(0..8),
                1 if !v.is_empty() => {
                    let end = (at + self.0.usize(1..32)).min(v.len());
                    v.drain(at..end);
                }
                2 if !v.is_empty() => {
                    let end = (at + self.0.usize(1..64)).min(v.len());
                    let chunk = v[at..end].to_vec();
                    let to = self.0.usize(0..=v.len());
                    v.splice(to..to, chunk);
                }
                3 => {
                    let f = FRAGMENTS[self.0.usize(0..FRAGMENTS.len())].as_bytes();
                    v.splice(at..at, f.iter().copied());
                }
                4 => v.truncate(at),
                5 if !v.is_empty() => {
                    // replace a run of digits by a huge or negative number
                    let f = ["99999999999999999999999", "-7", "0", "4294967295"]
                        [self.0.usize(0..4)]
                    .as_bytes();
                    let end = (at + 1).min(v.len());
                    v.splice(at..end, f.iter().copied());
                }
                _ => {
                    // duplicate a whole line
                    if let Some(nl) = v[at..].iter().position(|b| *b == b'\n') {
                        let start = v[..at]
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |p| p + 1);
                        let line = v[start..at + nl + 1].to_vec();
                        v.splice(start..start, line);
                    }
                }
            }
        }
        v
    }
}

fn corpus_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Run `f` on mutations of `seeds` for `budget`; returns the number of inputs tried.
fn run(
    name: &str,
    rng: &mut Rng,
    seeds: &[Vec<u8>],
    budget: Duration,
    mut f: impl FnMut(&[u8]),
) -> usize {
    assert!(!seeds.is_empty(), "{name}: no seed inputs");
    for s in seeds {
        f(s);
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        let base = &seeds[rng.0.usize(0..seeds.len())];
        let m = rng.mutate(base);
        f(&m);
        n += 1;
    }
    n
}

const PLAN: &str = r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"vm","base_sha256":"00",
"vcpus":2,"vcpupin":{"0":"1","1":"2-3"},"emulatorpin":"0","numatune":{"mode":"strict","nodeset":"0"},
"memtune":{"hard_limit_kib":8388608},"current_memory_kib":1048576,
"cells":[{"id":0,"cpus":"0-1","memory_kib":1048576,"nodeset":"0"}],"topology":[1,2,1],
"reasons":["planner"]}],"host":{"ksm.merge_across_nodes":"0","numa_balancing":"0"}}"#;

const HOSTILE_PLANS: &[&str] = &[
    r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"vm","vcpus":0}]}"#,
    r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"vm","vcpupin":{"99999":"1"}}]}"#,
    r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"vm","numatune":{"mode":"bogus","nodeset":"99"}}]}"#,
    r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"vm","current_memory_kib":0}]}"#,
    r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"vm","config_xml":"<domain><name>other</name></domain>"}]}"#,
];

const DOMAIN: &str = "<domain type='kvm'><name>vm</name><memory>2097152</memory>\
    <currentMemory>2097152</currentMemory><vcpu placement='static'>4</vcpu>\
    <os><type arch='x86_64' machine='q35'>hvm</type></os></domain>";

#[test]
fn parsers_of_untrusted_input_never_panic() {
    let seed = std::env::var("KVMTUNE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let secs: f64 = std::env::var("KVMTUNE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    // printed first: a failing run shows it; replay with KVMTUNE_FUZZ_SEED
    eprintln!("fuzz_parsers: KVMTUNE_FUZZ_SEED={seed} KVMTUNE_FUZZ_SECS={secs}");
    let mut rng = Rng(fastrand::Rng::with_seed(seed));
    let each = Duration::from_secs_f64(secs / 6.0);
    let mut tried = Vec::new();

    // recorded perf kvm stat / kvm_stat reports
    let mut reports = files_in(&corpus_dir("../../../shared/corpus/perf-kvm-stat"));
    reports.extend(files_in(&corpus_dir("../kvmstat/tests/fixtures")));
    reports.push(b"Analyze events for all VMs, all VCPUs:\n\n VM-EXIT    Samples  Samples%     Time%    Min Time    Max Time         Avg time\n\nTotal Samples:0, Total events handled time:0.00us.\n".to_vec());
    tried.push((
        "perf reports",
        run("perf", &mut rng, &reports, each, |b| {
            let _ = kvmtune_kvmstat::perf::parse(&String::from_utf8_lossy(b));
        }),
    ));

    // stat --json logs
    let frame = r#"{"kind":"kvmtune.stat","version":1,"time":"t","interval_s":1.0,"domains":[{"name":"a","host_cpu_pct":12.5,"kvm":{"exits":100.0}}]}"#;
    let logs = vec![format!("{frame}\n{frame}\n").into_bytes(), b"\n\n".to_vec()];
    tried.push((
        "stat logs",
        run("logs", &mut rng, &logs, each, |b| {
            if let Ok(frames) = kvmtune_kvmstat::log::parse_log(b, "fuzz.jsonl") {
                let _ = kvmtune_kvmstat::log::merge_frames(&frames);
            }
        }),
    ));

    // plan files, applied to a domain's XML
    let mut plans: Vec<Vec<u8>> = vec![PLAN.as_bytes().to_vec()];
    plans.extend(HOSTILE_PLANS.iter().map(|p| p.as_bytes().to_vec()));
    tried.push((
        "plan files",
        run("plans", &mut rng, &plans, each, |b| {
            let Ok(p) = serde_json::from_slice::<kvmtune_apply::plan::Plan>(b) else {
                return;
            };
            for d in &p.domains {
                let _ = kvmtune_apply::plan::apply_to_xml(DOMAIN, d);
            }
        }),
    ));

    // journal entries and step logs
    let entries: Vec<Vec<u8>> = vec![
        br#"{"id":"0001-x","created":"t","command":["kvmtune"],"uri":"qemu:///system","root":"/","domains":[],"host":[{"key":"numa_balancing","path":"/proc/sys/kernel/numa_balancing","old":"1"}],"files":[{"path":"/../victim/x","old":null}],"steps":[]}"#.to_vec(),
        b"begin 1\nok 1\nbegin 2\nfail 2: libvirt: a: b: c\nbegin 3".to_vec(),
    ];
    tried.push((
        "journal entries",
        run("journal", &mut rng, &entries, each, |b| {
            let _ = serde_json::from_slice::<kvmtune_apply::journal::Entry>(b);
            let _ = kvmtune_apply::journal::parse_step_marks(&String::from_utf8_lossy(b));
        }),
    ));

    // support bundles: a real one, mutated byte by byte, read back
    let dir = tempfile::tempdir().unwrap();
    let tree = corpus_dir("../../tests/fixtures/hosts/b-book-2socket/root");
    let rec = kvmtune_host::Recorder::new(kvmtune_host::RootDir::new(&tree));
    let _ = kvmtune_host::collect(&rec);
    let good = dir.path().join("good.tar.gz");
    kvmtune_bundle::Bundle::new(
        "fuzz".into(),
        rec.capture(),
        kvmtune_bundle::LibvirtCapture::default(),
        None,
        0,
    )
    .write(&good)
    .unwrap();
    let bundles = vec![std::fs::read(&good).unwrap()];
    let target = dir.path().join("m.tar.gz");
    tried.push((
        "bundles",
        run("bundles", &mut rng, &bundles, each, |b| {
            std::fs::write(&target, b).unwrap();
            if let Ok(bundle) = kvmtune_bundle::Bundle::read(&target) {
                let _ = kvmtune_host::collect(&bundle.source());
            }
        }),
    ));

    // host files under a --root tree: one file of a copied fixture mutated at a time
    let root = dir.path().join("root");
    copy_tree(&tree, &root);
    let files: Vec<PathBuf> = [
        "proc/cpuinfo",
        "proc/meminfo",
        "proc/cmdline",
        "sys/devices/system/node/online",
        "sys/devices/system/cpu/online",
        "sys/kernel/mm/transparent_hugepage/enabled",
    ]
    .iter()
    .map(|f| root.join(f))
    .filter(|p| p.is_file())
    .collect();
    let originals: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < each {
        let i = rng.0.usize(0..files.len());
        std::fs::write(&files[i], rng.mutate(&originals[i])).unwrap();
        let h = kvmtune_host::collect(&kvmtune_host::RootDir::new(&root));
        let _ = kvmtune_rules::check_host(&h, &kvmtune_rules::load_profile("server").unwrap());
        std::fs::write(&files[i], &originals[i]).unwrap();
        n += 1;
    }
    tried.push(("host files", n));

    eprintln!("fuzz_parsers: seed {seed}: {tried:?}");
    for (what, n) in tried {
        assert!(n > 0 || secs < 0.5, "{what}: no mutated input tried");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
        if ft.is_dir() {
            copy_tree(&p, &t);
        } else if ft.is_symlink() {
            let l = std::fs::read_link(&p).unwrap();
            let _ = std::os::unix::fs::symlink(l, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}
