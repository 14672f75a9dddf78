#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile inputs through the real binary (issue 17, items 5 and 9): host trees whose links
//! lead out of the tree, FIFOs and huge files in them, broken bundles, FIFOs and devices as
//! input files, perf reports with empty tables. Each is refused (exit 2, one line naming the
//! thing) or, for a host file, reported as unknown; nothing is written outside the target,
//! nothing from outside the tree reaches the output or a bundle.

mod common;
use common::*;

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What an attacker wants to read: it lives outside the tree.
const SECRET: &str = "root:$6$h9salt$SECRETHASHSECRETHASH:19000:0:99999:7:::\n";

/// Run kvmtune, killed after 60 s: a FIFO must never make it hang.
fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

/// Exit 2 and one line on stderr naming `what`; returns the line.
fn refused(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {}\nstderr: {err}",
        stdout(o)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(what), "{what} not named: {err}");
    err
}

/// Every file under `dir`, with its size (to see nothing else was written).
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            out.push((e.path(), m.len()));
        }
    }
    out.sort();
    out
}

/// A fixture host tree in `base/tree` beside `base/shadow`, with:
/// - `proc/meminfo` an absolute link to the secret (re-rooted: not found in the tree);
/// - `proc/swaps` a relative link climbing out of the tree to it (stops at the root);
/// - `sys/kernel/mm/ksm` a directory link out of the tree;
/// - `proc/cmdline` a FIFO (would hang);
/// - `proc/cgroups` a sparse file over the 64 MiB cap.
fn hostile_tree(base: &Path) -> PathBuf {
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = base.join("shadow");
    std::fs::write(&secret, SECRET).unwrap();
    let root = base.join("tree");
    copy_tree(&hosts_dir().join("b-book-2socket/root"), &root);
    let p = |rel: &str| root.join(rel);
    std::fs::remove_file(p("proc/meminfo")).unwrap();
    symlink(&secret, p("proc/meminfo")).unwrap();
    std::fs::remove_file(p("proc/swaps")).unwrap();
    symlink("../../../../../../shadow", p("proc/swaps")).unwrap();
    let ksm = p("sys/kernel/mm/ksm");
    if ksm.exists() {
        std::fs::remove_dir_all(&ksm).unwrap();
    }
    std::fs::create_dir_all(ksm.parent().unwrap()).unwrap();
    symlink(base, &ksm).unwrap();
    std::fs::remove_file(p("proc/cmdline")).unwrap();
    mkfifo(&p("proc/cmdline"));
    let big = std::fs::File::create(p("proc/cgroups")).unwrap();
    big.set_len((64 << 20) + 1).unwrap();
    root
}

fn unknown_error(j: &serde_json::Value, path: &str) -> String {
    j["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["path"] == path)
        .unwrap_or_else(|| panic!("{path} not unknown: {j:#}"))["error"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn host_root_never_follows_a_link_out_of_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let root = hostile_tree(d.path());
    let r = root.to_str().unwrap();
    let before = listing(d.path());
    let o = run_watched(&["--root", r, "host", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        !all.contains("SECRETHASH") && !all.contains("h9salt"),
        "{all}"
    );
    let j = json(&o);
    assert_eq!(unknown_error(&j, "/proc/meminfo"), "not found");
    assert_eq!(unknown_error(&j, "/proc/swaps"), "not found");
    assert!(unknown_error(&j, "/proc/cmdline").contains("a FIFO"));
    assert!(unknown_error(&j, "/proc/cgroups").contains("larger than"));
    // the rest of the host is still read
    assert_eq!(j["cpu"]["threads"], 32);
    // text output too
    let o = run_watched(&["--root", r, "host"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains("SECRETHASH"));
    assert_eq!(listing(d.path()), before, "nothing written");
}

#[test]
fn snapshot_root_copies_nothing_from_outside_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let root = hostile_tree(d.path());
    let out_dir = tempfile::tempdir().unwrap();
    let bundle = out_dir.path().join("b.tar.gz");
    let before = listing(d.path());
    let o = run_watched(&[
        "--root",
        root.to_str().unwrap(),
        "snapshot",
        "-o",
        bundle.to_str().unwrap(),
        "--no-libvirt",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(d.path()),
        before,
        "nothing written in or beside the tree"
    );
    assert_eq!(
        listing(out_dir.path()).len(),
        1,
        "only the bundle is written"
    );
    let mode = std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // every byte of the bundle, decompressed: no secret
    let raw = Command::new("gzip")
        .args(["-dc", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(raw.status.success());
    let text = String::from_utf8_lossy(&raw.stdout);
    assert!(!text.contains("SECRETHASH"), "the secret is in the bundle");

    let b = kvmtune_bundle::Bundle::read(&bundle).unwrap();
    let c = &b.manifest.capture;
    for p in [
        "/proc/meminfo",
        "/proc/swaps",
        "/proc/cmdline",
        "/proc/cgroups",
    ] {
        assert!(!c.files.contains_key(p), "{p} captured");
        assert!(c.file_errors.contains_key(p), "{p}: no recorded error");
    }
    assert!(c.files.contains_key("/proc/cpuinfo"));
    // and it reads back: the bundle is the tree as kvmtune saw it
    let o = run_watched(&["--from", bundle.to_str().unwrap(), "host", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["cpu"]["threads"], 32);
}

/// A gzip'd tar of raw entries (names as given, no checks), through the gzip tool.
fn raw_bundle(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
    let mut tar = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000001\0");
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gz.stdin.take().unwrap().write_all(&tar).unwrap();
    let out = gz.wait_with_output().unwrap();
    let p = dir.join("evil.tar.gz");
    std::fs::write(&p, out.stdout).unwrap();
    p
}

#[test]
fn from_a_bad_bundle_is_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.tar.gz");
    let tree = hosts_dir().join("b-book-2socket/root");
    let o = run_watched(&[
        "--root",
        tree.to_str().unwrap(),
        "snapshot",
        "-o",
        good.to_str().unwrap(),
        "--no-libvirt",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(&good).unwrap();

    // a bad gzip CRC
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    let crc = d.path().join("crc.tar.gz");
    std::fs::write(&crc, &bad).unwrap();
    let e = refused(
        &run_watched(&["--from", crc.to_str().unwrap(), "host"]),
        "crc.tar.gz",
    );
    assert!(e.contains("corrupt gzip stream"), "{e}");

    // entries naming places outside the bundle, and a manifest listing one
    let manifest = {
        let b = kvmtune_bundle::Bundle::read(&good).unwrap();
        serde_json::to_vec(&b.manifest).unwrap()
    };
    for name in ["host/../../etc/passwd", "/etc/passwd"] {
        let evil = raw_bundle(d.path(), &[("manifest.json", &manifest), (name, b"x")]);
        let e = refused(
            &run_watched(&["--from", evil.to_str().unwrap(), "host"]),
            "evil.tar.gz",
        );
        assert!(e.contains("not a plain relative path"), "{e}");
    }
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    m["host_files"] = serde_json::json!(["/proc/../../etc/shadow"]);
    let m = serde_json::to_vec(&m).unwrap();
    let evil = raw_bundle(d.path(), &[("manifest.json", &m)]);
    let e = refused(
        &run_watched(&["--from", evil.to_str().unwrap(), "host"]),
        "evil.tar.gz",
    );
    assert!(e.contains("bad manifest.json"), "{e}");

    // a FIFO and a device as the bundle
    let fifo = d.path().join("fifo.tar.gz");
    mkfifo(&fifo);
    refused(
        &run_watched(&["--from", fifo.to_str().unwrap(), "host"]),
        "a FIFO",
    );
    refused(&run_watched(&["--from", "/dev/zero", "host"]), "/dev/zero");
}

#[test]
fn audit_refuses_a_fifo_and_a_device_as_input() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("vm.xml");
    mkfifo(&fifo);
    let before = listing(d.path());
    for (input, what) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "device node"),
    ] {
        let o = run_watched(&["audit", input]);
        let e = refused(&o, input);
        assert!(e.contains(what), "{e}");
    }
    let o = run_watched(&["audit", "--profile", "/dev/zero", fifo.to_str().unwrap()]);
    refused(&o, "/dev/zero");
    assert_eq!(listing(d.path()), before, "nothing written");
}

#[test]
fn diagnose_refuses_an_empty_table_overflows_and_fifos() {
    let d = tempfile::tempdir().unwrap();
    let head = "Analyze events for all VMs, all VCPUs:\n\
                VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\n";
    let empty = d.path().join("empty.txt");
    std::fs::write(
        &empty,
        format!("{head}\nTotal Samples:0, Total events handled time:0.00us.\n"),
    )
    .unwrap();
    let e = refused(
        &run_watched(&["diagnose", "--perf-report", empty.to_str().unwrap()]),
        "empty.txt",
    );
    assert!(
        e.contains("line 2: the VM-EXIT table has a header and no rows"),
        "{e}"
    );

    let big = d.path().join("big.txt");
    std::fs::write(
        &big,
        format!("{head}HLT 18446744073709551616 100.00% 100.00% 1us 2us 1us\n"),
    )
    .unwrap();
    let e = refused(
        &run_watched(&["diagnose", "--perf-report", big.to_str().unwrap()]),
        "big.txt",
    );
    assert!(e.contains("line 3: a count larger than 2^64"), "{e}");

    let nan = d.path().join("nan.txt");
    std::fs::write(&nan, format!("{head}HLT 12 NaN% 100.00% 1us 2us 1us\n")).unwrap();
    let e = refused(
        &run_watched(&["diagnose", "--perf-report", nan.to_str().unwrap()]),
        "nan.txt",
    );
    assert!(
        e.contains("line 3: a number that is infinite or not a number"),
        "{e}"
    );

    let fifo = d.path().join("report.txt");
    mkfifo(&fifo);
    refused(
        &run_watched(&["diagnose", "--perf-report", fifo.to_str().unwrap()]),
        "a FIFO",
    );
    refused(
        &run_watched(&["diagnose", "--log", fifo.to_str().unwrap()]),
        "a FIFO",
    );
    refused(
        &run_watched(&["diagnose", "--log", "/dev/zero"]),
        "/dev/zero",
    );
}
