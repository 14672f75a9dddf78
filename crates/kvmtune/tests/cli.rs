#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The CLI surface: help documents exit codes, completions and man pages are generated.

mod common;
use common::*;

#[test]
fn help_documents_exit_codes_and_global_options() {
    let out = kvmtune(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let h = stdout(&out);
    for s in [
        "Exit codes:",
        "--json",
        "--root",
        "--connect",
        "--from",
        "--color",
        "host",
        "snapshot",
        "completions",
        "manpage",
    ] {
        assert!(h.contains(s), "--help lacks {s}");
    }
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = kvmtune(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let s = stdout(&out);
        assert!(
            s.contains("snapshot") && s.contains("kvmtune"),
            "{shell} completion lacks commands"
        );
    }
    let j = json(&kvmtune(&["completions", "bash", "--json"]));
    assert_eq!(j["shell"], "bash");
}

#[test]
fn manpage_renders_and_writes_one_page_per_command() {
    let out = kvmtune(&["manpage"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with(".ie"), "roff output");
    let dir = tempfile::tempdir().unwrap();
    let out = kvmtune(&["manpage", "-o", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    for page in ["kvmtune.1", "kvmtune-host.1", "kvmtune-snapshot.1"] {
        assert!(dir.path().join(page).exists(), "{page} missing");
    }
}

#[test]
fn root_and_from_conflict() {
    let out = kvmtune(&["--root", "/", "--from", "x.tar.gz", "host"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verbose_shows_every_cpu_and_module_parameter() {
    let root = hosts_dir().join("c-epyc-sparse/root");
    let plain = stdout(&kvmtune(&["--root", root.to_str().unwrap(), "host"]));
    let verbose = stdout(&kvmtune(&["--root", root.to_str().unwrap(), "-v", "host"]));
    assert!(!plain.contains("sev_es=N"));
    assert!(verbose.contains("sev_es=N"), "all kvm_amd parameters");
    assert!(
        verbose
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["23", "no", "-", "-", "-", "-"]),
        "offline CPU 23 row:\n{verbose}"
    );
}

/// `kvmtune ... | head`: a reader that is gone ends every command quietly, never with
/// "kvmtune: error: ... Broken pipe" and exit 2.
#[test]
fn a_closed_output_ends_every_command_quietly() {
    let root = hosts_dir().join("b-book-2socket/root");
    let root = root.to_str().unwrap();
    let report = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/perf-kvm-stat");
    let report = std::fs::read_dir(&report)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_file())
        .unwrap();
    let report = report.to_str().unwrap();
    let seed = fixture_domain();
    let seed = seed.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--root", root, "host"],
        vec!["--root", root, "host", "--json"],
        vec!["--root", root, "host", "--check", "--json"],
        vec!["rules"],
        vec!["rules", "--json"],
        vec!["explain", "disk-cache"],
        vec!["explain", "exit-io-storm", "--json"],
        vec!["diagnose", "--perf-report", report, "--json"],
        vec!["diagnose", "--perf-report", report],
        vec!["manpage"],
        vec!["completions", "bash"],
        vec!["audit", "--root", root, "--host", seed],
        vec!["audit", "--json", seed],
        vec!["audit", "--fix", "--diff", seed],
    ];
    for args in cases {
        for _ in 0..3 {
            let mut child = std::process::Command::new(bin())
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // close the read end before kvmtune writes
            drop(child.stdout.take());
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !err.contains("Broken pipe") && !err.contains("error"),
                "{args:?}: {err}"
            );
            assert_ne!(out.status.code(), Some(2), "{args:?}: {err}");
        }
    }
}

/// One voice: every command's --json is one document (or, for stat, one per line) that
/// starts with `kind` and `version`.
#[test]
fn every_command_speaks_json_in_one_envelope() {
    let d = tempfile::tempdir().unwrap();
    let root = hosts_dir().join("b-book-2socket/root");
    let root = root.to_str().unwrap();
    let seed = fixture_domain();
    let seed = seed.to_str().unwrap();
    let report = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kvmstat/tests/fixtures/seed004-before.txt");
    let bundle = d.path().join("b.tar.gz");
    let journal = d.path().join("journal");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--root", root, "host"], "kvmtune.host"),
        (
            vec!["--root", root, "host", "--check"],
            "kvmtune.host-check",
        ),
        (vec!["audit", seed], "kvmtune.audit"),
        (vec!["--root", root, "plan", seed], "kvmtune.plan-report"),
        (
            vec!["diagnose", "--perf-report", report.to_str().unwrap()],
            "kvmtune.diagnose",
        ),
        (
            vec![
                "--root",
                root,
                "snapshot",
                "--no-libvirt",
                "-o",
                bundle.to_str().unwrap(),
            ],
            "kvmtune.snapshot",
        ),
        (
            vec!["history", "--journal", journal.to_str().unwrap()],
            "kvmtune.history",
        ),
        (vec!["rules"], "kvmtune.rules"),
        (vec!["explain", "disk-cache"], "kvmtune.rule"),
        (vec!["completions", "bash"], "kvmtune.completions"),
        (vec!["manpage"], "kvmtune.manpage"),
        (
            vec!["-c", "test:///default", "stat", "-n", "1", "-i", "0.1"],
            "kvmtune.stat",
        ),
    ];
    for (args, kind) in cases {
        let mut a = vec!["--json"];
        a.extend(args.iter().copied());
        let o = kvmtune(&a);
        assert_ne!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        let out = stdout(&o);
        let first = out.lines().next().unwrap_or_default();
        // stat writes JSON Lines; every other command one document
        let v: serde_json::Value = if kind == "kvmtune.stat" {
            serde_json::from_str(first).unwrap()
        } else {
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{a:?}: {e}: {out}"))
        };
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(v["kind"], kind, "{a:?}");
        assert!(v["version"].as_u64().is_some_and(|n| n >= 1), "{a:?}");
        if kind != "kvmtune.stat" {
            // written by the one envelope: kind and version come first
            let text = out.trim_start();
            assert!(
                text.starts_with(&format!("{{\n  \"kind\": \"{kind}\",\n  \"version\":")),
                "{a:?}: {}",
                &text[..text.len().min(80)]
            );
        }
        assert!(keys.len() > 2, "{a:?}");
    }
}

/// One of the repository's fixture domains (an XML file with findings).
fn fixture_domain() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/domains")
        .read_dir()
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "xml"))
        .unwrap()
}
