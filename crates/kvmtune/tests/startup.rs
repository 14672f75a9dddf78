//! Start-up (issue 19, target 2): the binary does not link libvirt; commands that need no
//! connection never load it; a connection loads it on demand; a libvirt that cannot be
//! loaded is one clear line for the commands that need it and nothing for the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(common::bin());
    c.args(args).env_remove("LIBVIRT_DEFAULT_URI");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The shared objects the dynamic loader loaded for the run (`LD_DEBUG=files`).
fn loaded(args: &[&str]) -> (Output, String) {
    let out = run(args, &[("LD_DEBUG", "files")]);
    let libs = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split("file=").nth(1))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (out, libs)
}

fn corpus(rel: &str) -> String {
    format!(
        "{}/../../../shared/corpus/{rel}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn the_binary_does_not_link_libvirt() {
    let out = Command::new("readelf")
        .args(["-d", common::bin()])
        .output()
        .expect("readelf (binutils)");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(dynamic.contains("(NEEDED)"), "{dynamic}");
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        assert!(
            !line.contains("libvirt"),
            "the binary links libvirt again (a libvirt function missing from \
             kvmtune_libvirt::lazy_bindings!?): {line}"
        );
    }
}

#[test]
fn commands_without_a_connection_never_load_libvirt() {
    let xml = corpus("wild-domains/08.xml");
    let report = corpus("perf-kvm-stat/05-github-0xba1a-blog-sysbench-vmexit.txt");
    for args in [
        vec!["--version"],
        vec!["explain", "cpu-mode"],
        vec!["audit", xml.as_str()],
        vec!["audit", "--json", xml.as_str()],
        vec!["diagnose", "--perf-report", report.as_str()],
    ] {
        let (out, libs) = loaded(&args);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(libs.contains("libc.so"), "{args:?}: LD_DEBUG works: {libs}");
        assert!(!libs.contains("libvirt"), "{args:?} loaded libvirt: {libs}");
    }
}

#[test]
fn a_connection_loads_libvirt_when_it_opens() {
    // libvirt's test driver: a connection without a daemon
    let (out, libs) = loaded(&["-c", "test:///default", "audit", "--all"]);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(libs.contains("libvirt.so.0"), "{libs}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 domain(s)"));
}

#[test]
fn a_libvirt_that_cannot_be_loaded_is_one_line_for_the_commands_that_need_it() {
    // an empty file where the loader looks for libvirt first
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libvirt.so.0"), b"").unwrap();
    let env = [("LD_LIBRARY_PATH", dir.path().to_str().unwrap())];
    let out = run(&["-c", "test:///default", "audit", "--all"], &env);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot load libvirt's client library libvirt.so.0"),
        "{err}"
    );
    // a file needs no libvirt
    let out = run(&["audit", &corpus("wild-domains/08.xml")], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
