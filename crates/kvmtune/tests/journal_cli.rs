#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Journal hints and side effects (issue 18): every hint names the journal it used; history
//! and rollback create nothing; a journal path that is a file or is missing says so.

mod common;

use std::process::Command;

use common::*;

#[test]
fn history_and_rollback_create_nothing_and_name_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("none");
    let m = missing.to_str().unwrap();
    let o = run(&["history", "--journal", m]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("no journal at"), "{}", stdout(&o));
    let o = run(&["history", "1", "--journal", m]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no such directory"), "{}", stderr(&o));
    let o = run(&["rollback", "1", "--journal", m]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no such directory"), "{}", stderr(&o));
    let o = run(&["rollback", "--last", "--journal", m]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!missing.exists(), "history/rollback created the journal");

    let file = t.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    for args in [
        vec!["history", "--journal", f],
        vec!["rollback", "--last", "--journal", f],
        vec!["apply", "--set", "ksm.run=0", "--yes", "--journal", f],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("not a directory"), "{args:?}: {e}");
        assert_eq!(e.matches(f).count(), 1, "{args:?}: the path twice: {e}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");

    // history on an existing journal creates no lock file
    let j = t.path().join("j");
    std::fs::create_dir(&j).unwrap();
    let o = run(&["history", "--journal", j.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        std::fs::read_dir(&j).unwrap().next().is_none(),
        "history wrote into the journal"
    );
}

#[test]
fn every_hint_after_an_apply_names_the_journal_it_used() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("my journal");
    let jd = j.to_str().unwrap();
    let o = run(&[
        "apply",
        "--set-profile",
        "dense",
        "lab-tuned",
        "--journal",
        jd,
    ]);
    assert!(
        stdout(&o).contains(&format!("kvmtune rollback --last --journal '{jd}'")),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "apply",
        "--set-profile",
        "dense",
        "lab-tuned",
        "--journal",
        jd,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("Undo: kvmtune rollback 1 --journal '{jd}'")),
        "{out}"
    );
    // the hint works as printed
    let o = run(&["rollback", "1", "--journal", jd]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // with the default journal (KVMTUNE_JOURNAL) the hint needs no option
    let o = Command::new(bin())
        .args(["apply", "--set-profile", "dense", "lab-tuned"])
        .env("KVMTUNE_JOURNAL", jd)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("kvmtune rollback --last` undoes it"),
        "{}",
        stdout(&o)
    );
}
