#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune apply` and `rollback` against hostile input, secrets, races and signals, on the
//! lab's real libvirtd (issue 17, items 2, 3, 4 and 8):
//! - plans asking for absurd settings or holding another domain's definition are refused
//!   in the dry run, with one line naming the file, the domain and the field;
//! - VNC and SPICE passwords survive an apply and its rollback;
//! - a second apply with another journal directory is refused while the first runs, and a
//!   domain defined by someone else during an apply stops it before its define;
//! - SIGTERM stops an apply before its next step and rolls it back (exit 3); a second
//!   signal ends it at once (exit 143), and `history` says to run `rollback`.
//!
//! Scratch domains are named `kvmtune-h8-*` and undefined afterwards.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("KVMTUNE_JOURNAL")
        .env_remove("KVMTUNE_TEST_INJECT");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    cmd(args, env).output().expect("run kvmtune")
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    cmd(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kvmtune")
}

fn virsh(args: &[&str]) -> String {
    let o = Command::new("virsh")
        .arg("-c")
        .arg("qemu:///system")
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The stored definition with its secrets.
fn stored(dom: &str) -> String {
    virsh(&["dumpxml", "--inactive", "--security-info", dom])
}

fn canonical(xml: &str) -> String {
    kvmtune_domain::Document::parse(xml).unwrap().canonical()
}

/// vCPU thread name -> Cpus_allowed_list, and the main thread's.
fn affinity(dom: &str) -> BTreeMap<String, String> {
    let p: u32 = std::fs::read_to_string(format!("/run/libvirt/qemu/{dom}.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{p}/task"))
        .unwrap()
        .flatten()
    {
        let tid = e.file_name().to_string_lossy().into_owned();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(e.path().join("comm")),
            std::fs::read_to_string(e.path().join("status")),
        ) else {
            continue;
        };
        let comm = comm.trim().to_string();
        let name = if tid == p.to_string() {
            "main".to_string()
        } else if comm.starts_with("CPU ") {
            comm
        } else {
            continue;
        };
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        m.insert(name, cpus);
    }
    m
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A copy of the captured tree of this machine: host settings and the host-wide lock
/// (`ROOT/run/kvmtune/apply.lock`) stay inside it.
fn host_tree(dir: &Path) -> String {
    let root = dir.join("root");
    copy_tree(&hosts_dir().join("a-this-machine/root"), &root);
    root.display().to_string()
}

fn history(journal: &str) -> serde_json::Value {
    json(&run(&["--json", "history", "--journal", journal], &[]))
}

/// Wait until `f` holds (or fail after `secs`).
fn wait_for(what: &str, secs: u64, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The steps.log of the (only) entry of a journal, or "".
fn steps_log(journal: &str) -> String {
    let Ok(rd) = std::fs::read_dir(journal) else {
        return String::new();
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && !n.ends_with(".tmp") {
            return std::fs::read_to_string(e.path().join("steps.log")).unwrap_or_default();
        }
    }
    String::new()
}

fn kill(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Undefines a scratch domain when dropped (also when the test fails).
struct Scratch(&'static str);

impl Scratch {
    fn define(name: &'static str, xml: &str, dir: &Path) -> Scratch {
        Scratch::remove(name);
        let f = write(dir, &format!("{name}.xml"), xml);
        virsh(&["define", &f]);
        Scratch(name)
    }
    fn remove(name: &str) {
        let _ = Command::new("virsh")
            .args(["-c", "qemu:///system", "undefine", name])
            .output();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        Scratch::remove(self.0);
    }
}

/// Rolls a journal's last entry back when dropped, so that a failing test leaves the lab
/// domains as they were (a no-op when there is nothing to roll back).
struct RollbackOnDrop(String);

impl Drop for RollbackOnDrop {
    fn drop(&mut self) {
        let _ = run(&["rollback", "--last", "--journal", &self.0], &[]);
    }
}

/// A lab domain's stored XML as a new scratch domain: another name, no UUID.
fn scratch_xml(from: &str, name: &str) -> String {
    let xml = stored(from);
    let start = xml.find("<uuid>").unwrap();
    let end = xml.find("</uuid>").unwrap() + "</uuid>".len();
    let mut x = format!("{}{}", &xml[..start], &xml[end..]);
    x = x.replace(
        &format!("<name>{from}</name>"),
        &format!("<name>{name}</name>"),
    );
    x
}

#[test]
fn vnc_and_spice_passwords_survive_apply_and_rollback() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal").display().to_string();
    let name = "kvmtune-h8-secret";
    // the untuned seed's disk is cache='writethrough': an audit fix changes it.
    // (libvirt allows VNC passwords of at most 8 characters.)
    let xml = scratch_xml("lab-seed000-untuned", name).replace(
        "</devices>",
        "  <graphics type='vnc' port='-1' autoport='yes' passwd='s3cret-v'/>\n    \
         <graphics type='spice' autoport='yes' passwd='s3cret-spice'/>\n  </devices>",
    );
    assert!(xml.contains("cache='writethrough'"), "{xml}");
    let _scratch = Scratch::define(name, &xml, t.path());
    let has_secrets =
        |x: &str| x.contains("passwd='s3cret-v'") && x.contains("passwd='s3cret-spice'");
    assert!(has_secrets(&stored(name)));

    // the dry run shows no password, in text or JSON, unless --secrets
    let leaks = |x: &str| x.contains("s3cret-v") || x.contains("s3cret-spice");
    for args in [vec!["apply", name], vec!["--json", "apply", name]] {
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
        assert!(
            !leaks(&stdout(&o)) && !leaks(&stderr(&o)),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    let o = run(&["--json", "apply", name, "--secrets"], &[]);
    assert!(leaks(&stdout(&o)), "--secrets shows them");

    let o = run(&["--json", "apply", name, "--yes", "--journal", &j], &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(json(&o)["result"]["status"], "applied");
    let after = stored(name);
    assert!(!after.contains("cache='writethrough'"), "the fix: {after}");
    assert!(has_secrets(&after), "passwords lost by apply: {after}");

    let o = run(&["rollback", "--last", "--journal", &j], &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let back = stored(name);
    assert!(back.contains("cache='writethrough'"), "{back}");
    assert!(has_secrets(&back), "passwords lost by rollback: {back}");
}

#[test]
fn hostile_plans_are_refused_in_the_dry_run_by_file_domain_and_field() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal").display().to_string();
    let dom = "lab-win10-desktop";
    let xml0 = stored(dom);
    let other0 = stored("lab-db-pinned");
    let plan = |body: &str| {
        format!(r#"{{"kind":"kvmtune.plan","version":1,"domains":[{{"name":"{dom}",{body}}}]}}"#)
    };
    let json_str = |s: &str| serde_json::to_string(s).unwrap();
    let base = kvmtune_apply::sha256(&xml0);
    let cases: Vec<(String, String)> = vec![
        (
            plan(r#""vcpus":0"#),
            "vcpus 0: out of range (1 to the domain's maximum, 2)".into(),
        ),
        (
            plan(r#""vcpupin":{"99999":"0"}"#),
            "vcpupin 99999: no such vCPU (the domain has 2)".into(),
        ),
        (
            plan(r#""numatune":{"mode":"sometimes","nodeset":"0"}"#),
            "numatune mode sometimes: unknown".into(),
        ),
        (
            plan(r#""numatune":{"mode":"strict","nodeset":"99"}"#),
            "numatune nodeset 99: no NUMA node 99 on this host".into(),
        ),
        (
            plan(r#""current_memory_kib":0"#),
            "current_memory_kib 0: must be more than 0".into(),
        ),
        (
            plan(r#""vcpupin":{"0":"63"}"#),
            "vcpupin 0: no host CPU 63".into(),
        ),
        // another domain's definition, with this domain's name and hash in the entry
        (
            plan(&format!(
                r#""base_sha256":"{base}","config_xml":{}"#,
                json_str(&other0)
            )),
            "config_xml: it defines domain lab-db-pinned, not lab-win10-desktop".into(),
        ),
        // a definition with a new name would create a domain rollback leaves behind
        (
            plan(&format!(
                r#""base_sha256":"{base}","config_xml":{}"#,
                json_str(&scratch_xml(dom, "kvmtune-h8-new"))
            )),
            "config_xml: it defines domain kvmtune-h8-new, not lab-win10-desktop".into(),
        ),
    ];
    for (text, want) in cases {
        let p = write(t.path(), "plan.json", &text);
        for yes in [false, true] {
            let mut args = vec!["apply", "--plan", p.as_str(), "--journal", j.as_str()];
            if yes {
                args.push("--yes");
            }
            let o = run(&args, &[]);
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{want}: {}\n{e}", stdout(&o));
            assert!(
                e.contains(&format!("{p}: domain {dom}: {want}")),
                "want {want}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "one line: {e}");
            assert!(
                !e.contains("{ ") && !e.contains("Some("),
                "no Rust struct: {e}"
            );
        }
        assert_eq!(canonical(&stored(dom)), canonical(&xml0), "{want}");
        assert_eq!(canonical(&stored("lab-db-pinned")), canonical(&other0));
    }
    assert!(
        !virsh(&["list", "--all", "--name"]).contains("kvmtune-h8-new"),
        "no domain created"
    );
    assert!(history(&j)["entries"].as_array().unwrap().is_empty());
}

const RACE_PLAN: &str = r#"{"kind":"kvmtune.plan","version":1,"domains":[
    {"name":"lab-win10-desktop","vcpupin":{"0":"1","1":"0"}},
    {"name":"lab-db-pinned","vcpupin":{"0":"1","1":"0"}}]}"#;

/// The stored XML and affinities of the two domains the plans change.
fn state() -> Vec<(String, BTreeMap<String, String>)> {
    ["lab-win10-desktop", "lab-db-pinned"]
        .iter()
        .map(|d| (canonical(&stored(d)), affinity(d)))
        .collect()
}

#[test]
fn a_second_apply_with_another_journal_is_refused_while_the_first_runs() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = host_tree(t.path());
    let (j1, j2) = (
        t.path().join("j1").display().to_string(),
        t.path().join("j2").display().to_string(),
    );
    let s0 = state();
    let _undo = RollbackOnDrop(j1.clone());
    let first_plan = write(
        t.path(),
        "first.json",
        r#"{"kind":"kvmtune.plan","version":1,"domains":[
            {"name":"lab-win10-desktop","vcpupin":{"0":"1","1":"0"}}]}"#,
    );
    let second_plan = write(
        t.path(),
        "second.json",
        r#"{"kind":"kvmtune.plan","version":1,"domains":[
            {"name":"lab-win10-desktop","emulatorpin":"1"}]}"#,
    );
    // the first apply waits before its first step, holding the host-wide lock
    let first = spawn(
        &[
            "--root",
            &root,
            "apply",
            "--plan",
            &first_plan,
            "--yes",
            "--journal",
            &j1,
        ],
        &[("KVMTUNE_TEST_INJECT", "exec@1:sleep 3")],
    );
    let pid = first.id();
    wait_for("the first apply's journal entry", 20, || {
        Path::new(&j1).is_dir() && std::fs::read_dir(&j1).unwrap().count() > 1
    });
    let o = run(
        &[
            "--root",
            &root,
            "apply",
            "--plan",
            &second_plan,
            "--yes",
            "--journal",
            &j2,
        ],
        &[],
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}\n{e}", stdout(&o));
    assert!(
        e.contains(&format!(
            "another kvmtune apply or rollback (pid {pid}) is running"
        )),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let o1 = first.wait_with_output().unwrap();
    assert_eq!(o1.status.code(), Some(0), "{}", stderr(&o1));
    // the first's change is intact: the second changed nothing
    let s = stored("lab-win10-desktop");
    assert!(s.contains("<vcpupin vcpu='0' cpuset='1'/>"), "{s}");
    assert!(!s.contains("<emulatorpin cpuset='1'/>"), "{s}");
    assert!(!Path::new(&j2).join("0001").exists());
    // a rollback while the lock is held from outside (flock) is refused the same way
    let lock = PathBuf::from(kvmtune_apply::journal::HOST_LOCK);
    // -o: flock itself holds the lock, so killing it releases the lock
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = run(&["rollback", "--last", "--journal", &j1], &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is running on this host"),
        "{}",
        stderr(&o)
    );
    let o = run(&["rollback", "--last", "--journal", &j1], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(state(), s0);
}

#[test]
fn a_domain_defined_by_someone_else_during_the_apply_stops_it_before_its_define() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = host_tree(t.path());
    let j = t.path().join("journal").display().to_string();
    let s0 = state();
    let db0 = stored("lab-db-pinned");
    let plan = write(t.path(), "plan.json", RACE_PLAN);
    let dry = json(&run(
        &[
            "--json",
            "--root",
            &root,
            "apply",
            "--plan",
            &plan,
            "--journal",
            &j,
        ],
        &[],
    ));
    let k = dry["steps"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s == "lab-db-pinned: define the new stored XML")
        .unwrap()
        + 1;
    assert!(k > 1, "{dry}");
    // someone edits the second domain after the state was read, before its define
    let inject = format!(
        "exec@{k}:virsh -c qemu:///system desc lab-db-pinned --config --new-desc h8-theirs >/dev/null"
    );
    let o = run(
        &[
            "--root",
            &root,
            "apply",
            "--plan",
            &plan,
            "--yes",
            "--journal",
            &j,
        ],
        &[("KVMTUNE_TEST_INJECT", inject.as_str())],
    );
    let theirs = stored("lab-db-pinned");
    let restore = write(t.path(), "db0.xml", &db0);
    virsh(&["define", &restore]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}\n{e}", stdout(&o));
    assert!(e.contains("changed during the apply"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        theirs.contains("h8-theirs"),
        "their change was kept: {theirs}"
    );
    assert_eq!(history(&j)["entries"][0]["status"], "conflict");
    // the first domain's changes were rolled back
    assert_eq!(state(), s0);
}

/// Start an apply of the two-domain plan that waits 3 s before step 2, and wait until step
/// 1 is done.
fn apply_waiting_before_step_2(t: &Path, root: &str, j: &str) -> Child {
    let plan = write(t, "plan.json", RACE_PLAN);
    let child = spawn(
        &[
            "--root",
            root,
            "apply",
            "--plan",
            &plan,
            "--yes",
            "--journal",
            j,
        ],
        &[("KVMTUNE_TEST_INJECT", "exec@2:sleep 3")],
    );
    wait_for("step 1", 20, || steps_log(j).contains("ok 1"));
    child
}

#[test]
fn sigterm_stops_the_apply_before_its_next_step_and_rolls_back() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = host_tree(t.path());
    let j = t.path().join("journal").display().to_string();
    let s0 = state();
    let child = apply_waiting_before_step_2(t.path(), &root, &j);
    kill(child.id(), "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("INTERRUPTED"), "{}", stdout(&o));
    assert!(!steps_log(&j).contains("begin 2"), "{}", steps_log(&j));
    assert_eq!(state(), s0, "rolled back");
    let h = history(&j);
    assert_eq!(h["entries"][0]["status"], "interrupted-rolled-back", "{h}");
    // nothing is left to roll back
    let o = run(&["rollback", "--last", "--journal", &j], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_second_signal_ends_the_apply_at_once_and_history_says_to_roll_back() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = host_tree(t.path());
    let j = t.path().join("journal").display().to_string();
    let s0 = state();
    let _undo = RollbackOnDrop(j.clone());
    let child = apply_waiting_before_step_2(t.path(), &root, &j);
    kill(child.id(), "-TERM");
    std::thread::sleep(Duration::from_millis(200));
    kill(child.id(), "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(history(&j)["entries"][0]["status"], "interrupted");
    let text = stdout(&run(&["history", "--journal", &j], &[]));
    // the hint names the journal it was read from
    assert!(
        text.contains(&format!("run `kvmtune rollback 1 --journal {j}`")),
        "{text}"
    );
    let o = run(&["rollback", "--last", "--journal", &j], &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(state(), s0);
}
