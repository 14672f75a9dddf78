//! `audit FILE...` over many files (issue 19): memory flat in the number of files, and the
//! same output whether or not a temporary file can be made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/libvirt-domains");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

use common::{audit_files as audit, children_max_rss_kib};

#[test]
fn memory_is_flat_in_the_number_of_files() {
    // (its own test binary: getrusage counts every child this process waited for)
    let files = corpus_files();
    assert!(files.len() > 800, "the corpus: {}", files.len());
    let (code, out) = audit(&["--json"], &files, None);
    assert_eq!(code, Some(1));
    assert!(out.len() > 1_000_000);
    let one = children_max_rss_kib();
    // the corpus four times over, as copies under other names
    let dir = tempfile::tempdir().unwrap();
    let mut many = Vec::new();
    for round in 0..4 {
        for f in &files {
            let to = dir.path().join(format!(
                "{round}-{}",
                f.file_name().unwrap().to_string_lossy()
            ));
            std::fs::copy(f, &to).unwrap();
            many.push(to);
        }
    }
    let (code, _) = audit(&["--json"], &many, None);
    assert_eq!(code, Some(1));
    let four = children_max_rss_kib();
    assert!(
        four < one + 8 * 1024,
        "peak RSS {one} KiB for {} files, {four} KiB for {}",
        files.len(),
        many.len()
    );
    assert!(
        four < 30 * 1024,
        "peak RSS {four} KiB for {} files",
        many.len()
    );
}

#[test]
fn without_a_temporary_file_the_output_is_the_same() {
    let mut files: Vec<PathBuf> = corpus_files().into_iter().take(200).collect();
    files.push("/nonexistent/gone.xml".into());
    for args in [vec!["--json"], vec![], vec!["--color", "always"]] {
        let (code, spilled) = audit(&args, &files, None);
        let (code2, whole) = audit(&args, &files, Some("/nonexistent/tmp"));
        assert_eq!(code, Some(2), "an unreadable input is exit 2");
        assert_eq!(code, code2);
        assert!(spilled.len() > 10_000);
        assert!(spilled == whole, "{args:?}: the outputs differ");
    }
}

#[test]
fn a_full_stdout_is_one_line_naming_it() {
    let files: Vec<PathBuf> = corpus_files().into_iter().take(300).collect();
    for args in [vec!["--json"], vec![]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(common::bin())
            .arg("audit")
            .args(&args)
            .args(&files)
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("cannot write to stdout"), "{err}");
    }
}
