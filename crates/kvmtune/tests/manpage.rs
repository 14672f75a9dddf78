#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The man pages: `kvmtune manpage -o DIR` writes kvmtune.1 and one kvmtune-COMMAND.1 per
//! command; each renders with `man --warnings` without a warning and has its sections.
//! Skipped where `man` is missing (Debian: man-db, groff-base), unless KVMTUNE_REQUIRE_LAB=1.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

const COMMANDS: &[&str] = &[
    "host",
    "snapshot",
    "audit",
    "apply",
    "plan",
    "stat",
    "compare",
    "top",
    "diagnose",
    "history",
    "rollback",
    "rules",
    "explain",
    "completions",
    "manpage",
    "fleet",
    "exporter",
    "report",
];

fn write_pages(dir: &Path) {
    let out = kvmtune(&["manpage", "-o", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn one_page_per_command_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    write_pages(dir.path());
    let mut found: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = COMMANDS.iter().map(|c| format!("kvmtune-{c}.1")).collect();
    want.push("kvmtune.1".into());
    want.sort();
    assert_eq!(found, want);
    // stdout: the main page, the same as kvmtune.1
    let out = kvmtune(&["manpage"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        std::fs::read_to_string(dir.path().join("kvmtune.1")).unwrap()
    );
}

#[test]
fn the_roff_has_the_sections_and_no_extra() {
    let dir = tempfile::tempdir().unwrap();
    write_pages(dir.path());
    let main = std::fs::read_to_string(dir.path().join("kvmtune.1")).unwrap();
    for s in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(main.contains(s), "kvmtune.1 lacks {s}");
    }
    assert!(
        !main.contains("EXTRA"),
        "exit codes are a section of their own"
    );
    assert_eq!(main.matches(".ie \\n(.g").count(), 1, "one preamble");
    for c in COMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("kvmtune-{c}.1"))).unwrap();
        for s in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            ".SH EXAMPLES",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(page.contains(s), "kvmtune-{c}.1 lacks {s}");
        }
        assert!(!page.contains("EXTRA"), "kvmtune-{c}.1");
    }
}

/// `man` renders every page at 80 columns without a warning, with every section, and no
/// line wider than the terminal.
#[test]
fn man_renders_every_page_without_warnings() {
    if Command::new("man").arg("--version").output().is_err() {
        assert!(
            !lab_required(),
            "man is required (KVMTUNE_REQUIRE_LAB=1): install man-db and groff-base"
        );
        eprintln!("skipped: man is not installed (Debian: man-db, groff-base)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_pages(dir.path());
    let mut pages = vec!["kvmtune".to_string()];
    pages.extend(COMMANDS.iter().map(|c| format!("kvmtune-{c}")));
    for p in pages {
        let file = dir.path().join(format!("{p}.1"));
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&file)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "")
            .env_remove("MANPAGER")
            .env_remove("PAGER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{p}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{p}: man warnings");
        let text = stdout(&out);
        let mut want = vec![
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "EXIT STATUS",
            "EXAMPLES",
            "SEE ALSO",
        ];
        if p == "kvmtune" {
            want.extend(["OPTIONS", "SUBCOMMANDS", "FILES", "ENVIRONMENT"]);
        }
        for s in want {
            assert!(
                text.lines().any(|l| l == s),
                "{p}: no {s} section in\n{text}"
            );
        }
        for l in text.lines() {
            assert!(l.chars().count() <= 80, "{p}: wider than 80 columns: {l}");
        }
        if p == "kvmtune" {
            for s in [
                "/var/lib/kvmtune/journal",
                "/etc/sysctl.d/90-kvmtune.conf",
                "/etc/tmpfiles.d/kvmtune.conf",
                "/run/kvmtune/apply.lock",
                "KVMTUNE_JOURNAL",
                "LIBVIRT_DEFAULT_URI",
                "NO_COLOR",
                "virt-host-validate(1)",
                "kvmtune-audit(1)",
            ] {
                assert!(text.contains(s), "kvmtune(1) lacks {s}");
            }
        }
    }
}
