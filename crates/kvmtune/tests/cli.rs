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
