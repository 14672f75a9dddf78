#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Helpers shared by the integration tests: run the real binary, find fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kvmtune")
}

/// tests/fixtures/hosts of the repository.
pub fn hosts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts")
}

pub fn kvmtune(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("run kvmtune")
}

/// The binary with nothing of the caller's libvirt URI, journal or input cap.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("KVMTUNE_JOURNAL")
        .env_remove("KVMTUNE_MAX_INPUT")
        .output()
        .expect("run kvmtune")
}

/// [`run`] with stdin closed and a 60 s watchdog: a hang (a FIFO waited on) fails the test
/// instead of stopping it.
pub fn run_watched(args: &[&str]) -> Output {
    use std::process::Stdio;
    let child = Command::new(bin())
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("KVMTUNE_JOURNAL")
        .env_remove("KVMTUNE_MAX_INPUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return true;
        }
        false
    });
    // drain both pipes while it runs
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    assert!(!watchdog.join().unwrap(), "kvmtune {args:?} hung");
    out
}

/// `virsh -c URI ARGS`, which must succeed: its stdout.
pub fn virsh_on(uri: &str, args: &[&str]) -> String {
    let o = Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "virsh -c {uri} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// Copy a directory tree (fixture copies for fault injection).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether the lab is required (CI sets KVMTUNE_REQUIRE_LAB=1): then a missing libvirtd is a
/// failure, not a skip.
pub fn lab_required() -> bool {
    std::env::var("KVMTUNE_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

pub fn libvirt_up() -> bool {
    Path::new("/run/libvirt/libvirt-sock").exists()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The lab tests of one test binary change the same domains: one at a time.
static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lab's lock, or `None` (a skip) when libvirtd is not up and the lab is not required.
pub fn lab() -> Option<std::sync::MutexGuard<'static, ()>> {
    if !libvirt_up() {
        assert!(
            !lab_required(),
            "the lab is required (KVMTUNE_REQUIRE_LAB=1) but libvirtd is not up"
        );
        eprintln!("skipping: libvirtd not running");
        return None;
    }
    Some(LAB.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `kvmtune audit ARGS FILES` with no libvirt URI of the caller's, `TMPDIR` set when given:
/// (exit code, standard output).
pub fn audit_files(
    args: &[&str],
    files: &[PathBuf],
    tmpdir: Option<&str>,
) -> (Option<i32>, Vec<u8>) {
    let mut c = Command::new(bin());
    c.arg("audit")
        .args(args)
        .args(files)
        .env_remove("LIBVIRT_DEFAULT_URI");
    if let Some(t) = tmpdir {
        c.env("TMPDIR", t);
    }
    let out = c.output().expect("run kvmtune");
    (out.status.code(), out.stdout)
}

/// The largest resident set of the children waited for so far, KiB (every child of the
/// test process: a test that uses it wants a binary of its own).
pub fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) },
        0
    );
    ru.ru_maxrss
}
