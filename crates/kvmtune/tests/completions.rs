#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Shell completion in a real bash: the script of `kvmtune completions bash` is sourced,
//! `complete -p kvmtune` names its function, and the function is called as bash would
//! (COMP_WORDS, COMP_CWORD), asking the real binary for candidates. zsh and fish scripts
//! are checked to parse when those shells are installed.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

/// Write `kvmtune completions SHELL` into `dir` and return its path.
fn script(dir: &Path, shell: &str) -> std::path::PathBuf {
    let out = kvmtune(&["completions", shell]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = dir.join(format!("kvmtune.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

const DRIVER: &str = r#"
source "$1" || exit 3
spec=$(complete -p kvmtune) || exit 4
f=${spec##*-F }; f=${f%% *}
COMP_WORDS=("${@:2}")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
"$f" kvmtune "${CUR-${COMP_WORDS[COMP_CWORD]}}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

/// The candidates bash gets for `words` (the last one is being completed), with `env`.
fn complete_in(dir: &Path, words: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let script = script(dir, "bash");
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", DRIVER, "bash"])
        .arg(&script)
        .args(words)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("KVMTUNE_JOURNAL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bash");
    assert_eq!(out.status.code(), Some(0), "bash: {}", stderr(&out));
    // a completion must never print into the user's shell
    assert_eq!(stderr(&out), "", "stderr while completing {words:?}");
    stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn complete(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    complete_in(dir.path(), words, &[])
}

fn has(list: &[String], want: &[&str]) {
    for w in want {
        assert!(list.iter().any(|c| c == w), "{w} not in {list:?}");
    }
}

#[test]
fn the_bash_script_registers_a_function_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "bash");
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(out.status.success(), "bash -n: {}", stderr(&out));
    let out = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            "source \"$1\" && complete -p kvmtune",
            "bash",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("-F "), "{}", stdout(&out));
    assert!(stdout(&out).trim_end().ends_with(" kvmtune"));
}

#[test]
fn subcommands_and_options() {
    let c = complete(&["kvmtune", ""]);
    has(
        &c,
        &[
            "host", "audit", "apply", "explain", "history", "rollback", "manpage",
        ],
    );
    let c = complete(&["kvmtune", "ro"]);
    assert_eq!(c, ["rollback"]);
    let c = complete(&["kvmtune", "apply", "--"]);
    has(
        &c,
        &[
            "--set",
            "--class",
            "--rule",
            "--journal",
            "--yes",
            "--connect",
        ],
    );
    let c = complete(&["kvmtune", "completions", ""]);
    has(&c, &["bash", "zsh", "fish"]);
}

#[test]
fn explain_and_rule_give_rule_ids() {
    let c = complete(&["kvmtune", "explain", "disk-"]);
    has(&c, &["disk-cache"]);
    assert!(c.iter().all(|x| x.starts_with("disk-")), "{c:?}");
    let c = complete(&["kvmtune", "explain", ""]);
    assert!(c.len() > 20, "every rule: {c:?}");
    let c = complete(&["kvmtune", "apply", "--rule", "disk-c"]);
    has(&c, &["disk-cache"]);
}

#[test]
fn profiles_give_the_builtin_names() {
    for words in [
        &["kvmtune", "audit", "--profile", ""][..],
        &["kvmtune", "apply", "-p", ""],
        &["kvmtune", "host", "--profile", ""],
        &["kvmtune", "rules", "-p", ""],
        &["kvmtune", "apply", "--set-profile", ""],
    ] {
        let c = complete(words);
        has(&c, &["server", "latency", "dense", "desktop", "migratable"]);
        assert_eq!(c.len(), 5, "{words:?}: only the names: {c:?}");
    }
    assert_eq!(complete(&["kvmtune", "audit", "-p", "lat"]), ["latency"]);
}

#[test]
fn set_gives_the_host_setting_keys() {
    let c = complete(&["kvmtune", "apply", "--set", ""]);
    has(
        &c,
        &[
            "ksm.run=",
            "ksm.merge_across_nodes=",
            "thp.enabled=",
            "thp.defrag=",
            "numa_balancing=",
            "hugepages.2M=",
            "hugepages.1G=",
        ],
    );
    if Path::new("/sys/devices/system/node/node0").exists() {
        has(&c, &["hugepages.node0.2M=", "hugepages.node0.1G="]);
    }
    assert_eq!(
        complete(&["kvmtune", "apply", "--set", "thp.d"]),
        ["thp.defrag="]
    );
}

/// bash splits words at `=` and `:` (COMP_WORDBREAKS): `--set thp.enabled=m` arrives as
/// `thp.enabled` `=` `m`, and with the cursor right after `=`, the current word is empty
/// while COMP_WORDS ends with `=`. The candidates are what bash puts in place of its word.
#[test]
fn set_values_after_bash_split_the_word() {
    let dir = tempfile::tempdir().unwrap();
    let c = complete_in(
        dir.path(),
        &["kvmtune", "apply", "--set", "thp.enabled", "=", "m"],
        &[],
    );
    assert_eq!(c, ["madvise"]);
    let c = complete_in(
        dir.path(),
        &["kvmtune", "apply", "--set", "thp.defrag", "="],
        &[("CUR", "")],
    );
    assert_eq!(c, ["always", "defer", "defer+madvise", "madvise", "never"]);
    let c = complete_in(
        dir.path(),
        &["kvmtune", "apply", "--set", "hugepages.2M", "="],
        &[("CUR", "")],
    );
    assert!(c.is_empty(), "a count: {c:?}");
    let c = complete_in(
        dir.path(),
        &["kvmtune", "audit", "-p", "lat", "=", "x"],
        &[],
    );
    assert!(c.is_empty(), "{c:?}");
}

#[test]
fn class_gives_the_fix_classes() {
    let c = complete(&["kvmtune", "apply", "--class", ""]);
    assert_eq!(
        c,
        [
            "safe",
            "guest-driver",
            "guest-visible",
            "capacity",
            "migration",
            "all"
        ]
    );
}

#[test]
fn history_and_rollback_give_the_journal_entries_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    for d in [
        "0001-20261122T101500Z",
        "0002-20261123T080000Z",
        "0010-20261124T090000Z",
        "0011-20261125T090000Z.tmp",
        "notes",
    ] {
        std::fs::create_dir_all(journal.join(d)).unwrap();
    }
    let listing = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing(&journal);
    let j = journal.to_str().unwrap();
    let c = complete_in(dir.path(), &["kvmtune", "history", "--journal", j, ""], &[]);
    // an empty word also gets the options
    let c: Vec<&String> = c.iter().filter(|x| !x.starts_with('-')).collect();
    assert_eq!(
        c,
        [
            "0010-20261124T090000Z",
            "0002-20261123T080000Z",
            "0001-20261122T101500Z"
        ],
        "newest first, in-progress and foreign directories left out"
    );
    let c = complete_in(
        dir.path(),
        &["kvmtune", "rollback", "1"],
        &[("KVMTUNE_JOURNAL", j)],
    );
    assert_eq!(
        c,
        ["0010-20261124T090000Z", "0001-20261122T101500Z"],
        "by number"
    );
    assert_eq!(listing(&journal), before, "the journal is only read");
    // a journal that does not exist: no candidates, nothing created, nothing printed
    let missing = dir.path().join("none");
    let c = complete_in(
        dir.path(),
        &[
            "kvmtune",
            "history",
            "--journal",
            missing.to_str().unwrap(),
            "0",
        ],
        &[],
    );
    assert!(c.is_empty(), "{c:?}");
    assert!(!missing.exists());
}

#[test]
fn an_unreachable_libvirt_is_no_candidate_and_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("no-such-sock");
    let uri = format!("qemu:///system?socket={}", sock.display());
    let c = complete_in(dir.path(), &["kvmtune", "-c", &uri, "audit", "lab-"], &[]);
    assert!(c.is_empty(), "{c:?}");
    let c = complete_in(
        dir.path(),
        &["kvmtune", "stat", "x"],
        &[("LIBVIRT_DEFAULT_URI", &uri)],
    );
    assert!(c.is_empty(), "{c:?}");
}

#[test]
fn domain_names_of_the_lab() {
    if !libvirt_up() {
        assert!(!lab_required(), "libvirtd required (KVMTUNE_REQUIRE_LAB=1)");
        eprintln!("skipped: libvirtd not running");
        return;
    }
    let c = complete(&["kvmtune", "audit", "lab-"]);
    has(
        &c,
        &[
            "lab-db-pinned",
            "lab-seed000-untuned",
            "lab-tuned",
            "lab-win10-desktop",
        ],
    );
    let c = complete(&["kvmtune", "-c", "qemu:///system", "apply", "lab-t"]);
    assert_eq!(c, ["lab-tuned"]);
    let c = complete(&["kvmtune", "audit", "-p", "latency=lab-t"]);
    assert_eq!(c, ["latency=lab-tuned"]);
    // as bash splits them: `-p latency=lab-t`, `--connect=qemu:///system`
    let c = complete(&["kvmtune", "audit", "-p", "latency", "=", "lab-t"]);
    assert_eq!(c, ["lab-tuned"]);
    let c = complete(&[
        "kvmtune",
        "--connect",
        "=",
        "qemu",
        ":",
        "///system",
        "audit",
        "lab-w",
    ]);
    assert_eq!(c, ["lab-win10-desktop"]);
}

fn installed(shell: &str) -> bool {
    Command::new(shell)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn zsh_and_fish_scripts_parse() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, flag) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let path = script(dir.path(), shell);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("_KVMTUNE_COMPLETE"), "{shell}: {text}");
        if !installed(shell) {
            eprintln!("skipped: {shell} is not installed; the script is only generated");
            continue;
        }
        let out = Command::new(shell).arg(flag).arg(&path).output().unwrap();
        assert!(out.status.success(), "{shell} {flag}: {}", stderr(&out));
    }
}

/// zsh: the script registers its function with compdef (after compinit).
#[test]
fn zsh_registers_the_completer() {
    if !installed("zsh") {
        eprintln!("skipped: zsh is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "zsh");
    let out = Command::new("zsh")
        .args([
            "-f",
            "-c",
            "autoload -Uz compinit && compinit -u -D && source \"$1\" && print -r -- ${_comps[kvmtune]}",
            "zsh",
        ])
        .arg(&path)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "_clap_dynamic_completer_kvmtune");
}

/// fish completes for real without a terminal (`complete -C`).
#[test]
fn fish_completes_rule_ids_set_values_and_classes() {
    if !installed("fish") {
        eprintln!("skipped: fish is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "fish");
    let run = |line: &str| -> Vec<String> {
        let out = Command::new("fish")
            .args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
            .arg(&path)
            .arg(line)
            .env("HOME", dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "{line}");
        stdout(&out)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(run("kvmtune explain disk-c"), ["disk-cache"]);
    assert_eq!(
        run("kvmtune apply --set thp.enabled="),
        [
            "thp.enabled=always",
            "thp.enabled=madvise",
            "thp.enabled=never"
        ]
    );
    has(
        &run("kvmtune apply --class "),
        &["safe", "guest-visible", "all"],
    );
    has(&run("kvmtune audit -p "), &["server", "latency"]);
}
