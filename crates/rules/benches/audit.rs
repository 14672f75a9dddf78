#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Audit throughput on libvirt's 837 test domains, one thread, every rule on, against the
//! book's 2-socket host fixture; then virt-xml-validate and xmllint on the same files for
//! scale. Run: `bench/audit-corpus` (or `cargo bench -p kvmtune-rules --bench audit`).
//! KVMTUNE_BENCH_SECS sets the measuring time (default 10).

use kvmtune_domain::{Document, Domain};
use kvmtune_host::Host;
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Level, Peer, Severity};
use std::path::Path;
use std::time::{Duration, Instant};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds this thread has run on a CPU (/proc/thread-self/schedstat), 0 if unknown.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = root.join("../shared/corpus/libvirt-domains");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .expect("../shared/corpus/libvirt-domains")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let host: Host = serde_json::from_str(
        &std::fs::read_to_string(
            root.join("tests/fixtures/hosts/b-book-2socket/expected-host.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // every rule on, at its own severity
    let mut profile = Profile::load("server").unwrap();
    for r in audit::rules() {
        let l = match r.meta.severity {
            Severity::Info => Level::Info,
            Severity::Warn => Level::Warn,
            Severity::Error => Level::Error,
        };
        profile.rules.insert(r.meta.id.to_string(), l);
    }
    let secs: u64 = std::env::var("KVMTUNE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // parse + view + every rule: what `kvmtune audit FILE` does per domain
    let audit_one = |t: &str| {
        let doc = Document::parse(t).unwrap();
        let d = Domain::from_doc(&doc).unwrap();
        let peers = [Peer {
            domain: &d,
            active: true,
        }];
        audit::audit(&Cx {
            doc: &doc,
            d: &d,
            profile: &profile,
            host: Some(&host),
            caps: None,
            peers: &peers,
            memo: Default::default(),
        })
    };
    let start = Instant::now();
    let (mut domains, mut findings, mut rounds) = (0u64, 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(secs) {
        for t in &texts {
            let f = audit_one(t);
            findings += f.len() as u64;
            domains += 1;
        }
        rounds += 1;
    }
    let el = start.elapsed().as_secs_f64();
    let rate = domains as f64 / el;
    println!(
        "kvmtune audit: {domains} domains ({rounds} passes over {} files, {:.1} MiB) in {el:.2}s on 1 thread",
        texts.len(),
        bytes as f64 / 1048576.0
    );
    println!(
        "kvmtune audit: {rate:.0} domains/s/core, {:.1} µs/domain, {:.1} findings/domain, peak RSS {} MiB",
        1e6 / rate,
        findings as f64 / domains as f64,
        peak_rss_kib() / 1024
    );

    // real-world sizes: the four wild domains (5-10 KB each, dumpxml of running guests)
    let wild: Vec<String> = (|| {
        let mut v: Vec<_> = std::fs::read_dir(root.join("../shared/corpus/wild-domains"))
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        v.sort();
        Some(
            v.iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .collect(),
        )
    })()
    .unwrap_or_default();
    if !wild.is_empty() {
        let wb: usize = wild.iter().map(String::len).sum();
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(secs.div_ceil(3)) {
            for t in &wild {
                std::hint::black_box(audit_one(t));
                n += 1;
            }
        }
        let r = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "kvmtune audit: wild domains ({} files, {:.1} KiB average): {r:.0} domains/s/core",
            wild.len(),
            wb as f64 / wild.len() as f64 / 1024.0
        );
    }

    // where the time goes: parse alone, parse + typed view, and the whole audit
    let split = |label: &str, set: &[String]| {
        if set.is_empty() {
            return;
        }
        let budget = Duration::from_millis((secs * 1000 / 6).max(300));
        // CPU time of this thread, not wall time: other builds share the machine
        let rate = |f: &dyn Fn(&str)| {
            let start = Instant::now();
            let cpu0 = thread_cpu_ns();
            let mut n = 0u64;
            while start.elapsed() < budget {
                for t in set {
                    f(t);
                    n += 1;
                }
            }
            (thread_cpu_ns() - cpu0) as f64 / 1e3 / n as f64
        };
        let p = rate(&|t| {
            std::hint::black_box(Document::parse(t).unwrap());
        });
        let v = rate(&|t| {
            let doc = Document::parse(t).unwrap();
            std::hint::black_box(Domain::from_doc(&doc).unwrap());
        });
        let a = rate(&|t| {
            std::hint::black_box(audit_one(t));
        });
        println!(
            "split ({label}, CPU time): parse {p:.1} µs, typed view {:.1} µs, rules {:.1} µs; total {a:.1} µs/domain = {:.0} domains/CPU-s",
            v - p,
            a - v,
            1e6 / a
        );
    };
    split("corpus", &texts);
    split("wild", &wild);

    // for scale: the validators an admin would run on the same files
    let sample: Vec<&std::path::PathBuf> = files.iter().step_by(8).collect();
    let t = Instant::now();
    let mut ok = 0;
    for f in &sample {
        if let Ok(s) = std::process::Command::new("virt-xml-validate")
            .arg(f)
            .arg("domain")
            .output()
        {
            ok += usize::from(s.status.success());
        } else {
            println!("virt-xml-validate: not installed");
            return;
        }
    }
    let vxv = sample.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "virt-xml-validate: {} files ({ok} valid) at {vxv:.1} files/s (one process per file)",
        sample.len()
    );
    let t = Instant::now();
    let schema = root.join("../shared/corpus/libvirt-schemas/domain.rng");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(&schema)
        .args(&files)
        .output();
    if out.is_ok() {
        let x = files.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "xmllint --relaxng (one process, all {} files): {x:.0} files/s",
            files.len()
        );
        println!(
            "ratio: kvmtune audit is {:.0}x virt-xml-validate and {:.1}x batch xmllint (domains/s per core)",
            rate / vxv,
            rate / x
        );
    }
}
