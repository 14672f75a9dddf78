#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Several hosts at once (issue 13 §2) against the lab's fleet: three private libvirtds,
//! fleet1..3 at qemu+tcp://127.0.0.2..4/system, fleet1 also over ssh (docs/lab.md). Each host
//! must be read through its own daemon (its hostname, its domains), a host that cannot be
//! reached or refuses the key is a failed row while the others complete, and a malformed
//! --hosts file is one line and exit 2.
//!
//! The lab tests skip when fleet1 does not answer, unless KVMTUNE_REQUIRE_LAB=1.

mod common;
use common::*;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TCP: [&str; 3] = [
    "qemu+tcp://127.0.0.2/system",
    "qemu+tcp://127.0.0.3/system",
    "qemu+tcp://127.0.0.4/system",
];
const KEYS: &str = "/var/tmp/kvmtune-private/fleet1/ssh";

fn ssh_uri(key: &str) -> String {
    format!("qemu+ssh://root@127.0.0.2:2222/system?keyfile={KEYS}/{key}&no_verify=1")
}

/// Whether the fleet answers; a skip unless the lab is required.
fn fleet_up() -> bool {
    let addr: SocketAddr = "127.0.0.2:16509".parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    assert!(
        !lab_required(),
        "the lab is required (KVMTUNE_REQUIRE_LAB=1) but the fleet (127.0.0.2:16509) does not answer: scripts/lab fleet-up"
    );
    eprintln!("skipping: the lab fleet is not up (scripts/lab fleet-up)");
    false
}

/// Run kvmtune, killed after 120 s: no host may make it hang.
fn code(o: &Output) -> i32 {
    let c = o.status.code();
    assert!(
        c.is_some() && !stderr(o).contains("panicked"),
        "killed or panicked: {}",
        stderr(o)
    );
    c.unwrap()
}

/// `--hosts FILE` args with a temp file holding `text`.
fn inventory(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn hosts_of(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v["hosts"].as_array().expect("hosts[]")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn fleet_json_reads_each_host_through_its_own_daemon() {
    if !fleet_up() {
        return;
    }
    let ssh = ssh_uri("id_ed25519");
    let mut args = vec!["fleet", "--json"];
    for u in TCP {
        args.extend(["-c", u]);
    }
    args.extend(["-c", ssh.as_str()]);
    let o = run_watched(&args);
    let v = json(&o);
    assert_eq!(v["kind"], "kvmtune.fleet");
    assert_eq!(v["version"], 1);
    let hosts = hosts_of(&v);
    assert_eq!(hosts.len(), 4, "{v}");
    let this = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    for (i, want) in ["fleet1", "fleet2", "fleet3", "fleet1"].iter().enumerate() {
        let h = &hosts[i];
        assert_eq!(h["ok"], true, "{h}");
        assert_eq!(h["error"], serde_json::Value::Null);
        assert_eq!(h["hostname"], *want, "{h}");
        assert_eq!(h["host"], *want);
        assert_ne!(h["hostname"].as_str(), Some(this.trim()));
        let names: Vec<(&str, bool)> = h["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["name"].as_str().unwrap(), d["active"].as_bool().unwrap()))
            .collect();
        assert!(
            names.contains(&(format!("{want}-web").as_str(), true)),
            "{names:?}"
        );
        assert!(
            names.contains(&(format!("{want}-db").as_str(), false)),
            "{names:?}"
        );
        // only its own domains
        assert!(names.iter().all(|(n, _)| n.starts_with(want)), "{names:?}");
        assert_eq!(h["running"], 1);
        assert_eq!(h["defined"], 2);
        assert_eq!(h["vcpus_running"], 1);
        assert_eq!(h["memory_running_kib"], 128 * 1024);
        assert!(h["host_threads"].as_u64().unwrap() >= 1);
        assert!(h["findings"]["warn"].as_u64().is_some(), "{h}");
    }
    assert_eq!(v["summary"]["answered"], 4);
    // every row answered and the fleet has warnings: 1
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // the host facts of a remote URI are that daemon's, not this machine's
    for (i, u) in TCP.iter().enumerate() {
        let o = run_watched(&["host", "--json", "-c", u]);
        let h = json(&o);
        assert_eq!(h["hostname"], format!("fleet{}", i + 1));
        assert_eq!(h["remote"], *u);
    }
    // the text table: a header, one row per host, the summary
    let mut args = vec!["fleet", "--no-audit"];
    for u in TCP {
        args.extend(["-c", u]);
    }
    let o = run_watched(&args);
    let t = stdout(&o);
    assert_eq!(code(&o), 0, "no audit, every host answered: {t}");
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("HOST") && lines[0].contains("VCPU:THREADS"));
    for (i, u) in TCP.iter().enumerate() {
        assert!(
            lines[i + 1].starts_with(&format!("fleet{} ", i + 1)) && lines[i + 1].contains(u),
            "{t}"
        );
        assert!(lines[i + 1].contains(" ok "), "{t}");
    }
    assert!(
        lines[4].starts_with("3 host(s): 3 answered, 0 failed"),
        "{t}"
    );
}

#[test]
fn audit_over_a_hosts_file_finds_each_hosts_own_problems() {
    if !fleet_up() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(
        d.path(),
        "fleet.toml",
        &format!(
            "# the lab fleet\n[[host]]\nname = \"one\"\nuri = \"{}\"\n\n[[host]]\nname = \"two\"\nuri = \"{}\"\nprofile = \"latency\"\n\n[[host]]\nuri = \"{}\"  # no name: its hostname\n",
            TCP[0], TCP[1], TCP[2]
        ),
    );
    let inv = inv.to_str().unwrap();
    let o = run_watched(&["audit", "--hosts", inv, "--json"]);
    let v = json(&o);
    assert_eq!(v["kind"], "kvmtune.fleet-audit");
    assert_eq!(v["version"], 1);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let hosts = hosts_of(&v);
    let names: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two", "fleet3"]);
    let mut tablet = Vec::new();
    let mut writethrough = Vec::new();
    for h in hosts {
        assert_eq!(h["ok"], true, "{h}");
        let r = &h["report"];
        let want = if h["host"] == "two" {
            "latency"
        } else {
            "server"
        };
        assert_eq!(r["profile"], want, "the host's profile from the file");
        for dom in r["domains"].as_array().unwrap() {
            assert_eq!(dom["profile"], want);
            for f in dom["findings"].as_array().unwrap() {
                assert_eq!(f["host"], h["host"], "every finding names its host");
                let at = format!("{}/{}", h["host"].as_str().unwrap(), dom["name"]);
                if f["rule"] == "dev-tablet" {
                    tablet.push(at.clone());
                }
                if f["rule"] == "disk-cache" {
                    writethrough.push(at);
                }
            }
        }
        for f in r["host_findings"].as_array().unwrap() {
            assert_eq!(f["host"], h["host"]);
        }
    }
    assert_eq!(tablet, ["one/\"fleet1-web\""]);
    assert_eq!(writethrough, ["fleet3/\"fleet3-web\""]);
    assert_eq!(v["summary"]["answered"], 3);
    assert_eq!(v["fleet"].as_array().unwrap().len(), 3);

    // text: the fleet table first, then a header per host
    let o = run_watched(&["audit", "--hosts", inv]);
    let t = stdout(&o);
    assert_eq!(code(&o), 1);
    assert!(t.starts_with("HOST "), "{t}");
    let one = t.find("== one (qemu+tcp://127.0.0.2/system) ==").expect(&t);
    let two = t.find("== two (qemu+tcp://127.0.0.3/system) ==").expect(&t);
    let three = t
        .find("== fleet3 (qemu+tcp://127.0.0.4/system) ==")
        .expect(&t);
    assert!(one < two && two < three);
    assert!(t[one..two].contains("dev-tablet") && !t[two..].contains("dev-tablet"));
    assert!(t[three..].contains("disk-cache") && !t[..three].contains("disk-cache"));

    // SARIF: the host in each result's logical locations and properties
    let o = run_watched(&["audit", "--hosts", inv, "--format", "sarif"]);
    let s = json(&o);
    let results = s["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let host = r["properties"]["host"].as_str().unwrap();
        assert_eq!(r["locations"][0]["logicalLocations"][0]["name"], host);
        if r["ruleId"] == "dev-tablet" {
            assert_eq!(host, "one");
            assert_eq!(
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                "one/fleet1-web.xml"
            );
        }
    }
}

#[test]
fn unreachable_hosts_and_a_wrong_key_are_failed_rows() {
    if !fleet_up() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let inv = inventory(
        d.path(),
        "hosts.txt",
        &format!(
            "# one URI per line\nqemu+tcp://127.0.0.59/system\n\n{}\n{}\n",
            ssh_uri("wrong_ed25519"),
            TCP[0]
        ),
    );
    let inv = inv.to_str().unwrap();
    let o = run_watched(&["fleet", "--hosts", inv, "--json", "--no-audit"]);
    let v = json(&o);
    let hosts = hosts_of(&v);
    assert_eq!(hosts.len(), 3);
    assert_eq!(hosts[0]["ok"], false);
    let e0 = hosts[0]["error"].as_str().unwrap();
    assert!(
        e0.contains("Connection refused") && !e0.contains('\n'),
        "{e0}"
    );
    assert_eq!(hosts[0]["host"], "127.0.0.59");
    assert_eq!(hosts[1]["ok"], false);
    let e1 = hosts[1]["error"].as_str().unwrap();
    assert!(e1.contains("Permission denied"), "{e1}");
    assert_eq!(hosts[2]["ok"], true);
    assert_eq!(hosts[2]["hostname"], "fleet1");
    // a failed host while another answered: 1, not 2
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // the same in an audit, and in its text
    let o = run_watched(&["audit", "--hosts", inv]);
    assert_eq!(code(&o), 1);
    let t = stdout(&o);
    assert!(
        t.contains("127.0.0.59") && t.contains("error: libvirt"),
        "{t}"
    );
    assert!(
        t.contains("== fleet1 (qemu+tcp://127.0.0.2/system) =="),
        "{t}"
    );
    // no host answered: 2, with the rows still printed
    let o = run_watched(&[
        "fleet",
        "-c",
        "qemu+tcp://127.0.0.59/system",
        "-c",
        &ssh_uri("wrong_ed25519"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no host answered (2 tried)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stdout(&o));
}

#[test]
fn a_host_that_never_answers_times_out_and_the_others_complete() {
    if !fleet_up() {
        return;
    }
    // something that accepts the TCP connection and never speaks libvirt's protocol
    let silent = TcpListener::bind("127.0.0.58:16509").unwrap();
    let started = Instant::now();
    let o = run_watched(&[
        "fleet",
        "--json",
        "--host-timeout",
        "2",
        "-c",
        "qemu+tcp://127.0.0.58/system",
        "-c",
        TCP[0],
        "-c",
        TCP[1],
    ]);
    let took = started.elapsed();
    drop(silent);
    let v = json(&o);
    let hosts = hosts_of(&v);
    assert_eq!(hosts[0]["ok"], false);
    assert!(
        hosts[0]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 2 s"),
        "{v}"
    );
    assert_eq!(hosts[1]["hostname"], "fleet1");
    assert_eq!(hosts[2]["hostname"], "fleet2");
    assert_eq!(code(&o), 1);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A private daemon of this test's own (scripts/libvirtd-private), taken down when dropped.
struct Daemon(&'static str);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/libvirtd-private"))
            .args(["down", self.0])
            .output();
        // `down` keeps the state directory (its logs); this test's daemon leaves nothing
        let _ = std::fs::remove_dir_all(Path::new("/var/tmp/kvmtune-private").join(self.0));
    }
}

#[test]
fn a_daemon_killed_during_a_run_is_one_failed_row() {
    if !fleet_up() {
        return;
    }
    const NAME: &str = "h18-fleet-kill";
    const URI: &str = "qemu+tcp://127.0.0.57/system";
    let up = Command::new(repo().join("scripts/libvirtd-private"))
        .args(["up", NAME, "127.0.0.57"])
        .output()
        .unwrap();
    let daemon = Daemon(NAME);
    assert!(up.status.success(), "{}", stderr(&up));
    let args = [
        "fleet",
        "--json",
        "--host-timeout",
        "5",
        "-c",
        TCP[0],
        "-c",
        TCP[1],
        "-c",
        TCP[2],
        "-c",
        URI,
    ];
    let o = run_watched(&args);
    let v = json(&o);
    assert_eq!(hosts_of(&v)[3]["ok"], true, "{v}");
    assert_eq!(hosts_of(&v)[3]["hostname"], NAME);
    assert_eq!(hosts_of(&v)[3]["defined"], 0);
    // taken down while runs go on: whichever side of the kill a run falls, each ends with
    // the three fleet hosts read and a row for the fourth
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(daemon);
    });
    let mut failed_seen = false;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let o = run_watched(&args);
        let v = json(&o);
        let hosts = hosts_of(&v);
        for h in &hosts[..3] {
            assert_eq!(h["ok"], true, "{h}");
        }
        let last = &hosts[3];
        if last["ok"] == false {
            let e = last["error"].as_str().unwrap();
            assert!(!e.is_empty() && !e.contains('\n'), "{e}");
            assert_eq!(code(&o), 1);
            failed_seen = true;
            if killer.is_finished() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    killer.join().unwrap();
    // and after it is gone: one failed row, the rest complete
    let o = run_watched(&args);
    let v = json(&o);
    let hosts = hosts_of(&v);
    assert_eq!(hosts.iter().filter(|h| h["ok"] == true).count(), 3, "{v}");
    assert_eq!(hosts[3]["ok"], false);
    assert_eq!(code(&o), 1);
    assert!(failed_seen || hosts[3]["ok"] == false);
}

/// Exit 2 and one line on stderr naming `what`.
fn refused(o: &Output, what: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 2, "stdout: {}\nstderr: {err}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(what), "{what} not named: {err}");
    assert!(stdout(o).is_empty(), "{}", stdout(o));
}

#[test]
fn malformed_hosts_files_are_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let garbage = d.path().join("garbage");
    let mut f = std::fs::File::create(&garbage).unwrap();
    f.write_all(&[0xff, 0xfe, 0x00, 0x80, 0x1b, b'\n', 0xc3])
        .unwrap();
    drop(f);
    let fifo = d.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let bad_line = inventory(
        d.path(),
        "bad.txt",
        "qemu+tcp://127.0.0.2/system\nthis is not a uri\n",
    );
    let bad_toml = inventory(
        d.path(),
        "bad.toml",
        "[[host]]\nname = \"a\"\nuri = \"qemu:///system\"\nport = 22\n",
    );
    let bad_profile = inventory(
        d.path(),
        "profile.toml",
        "[[host]]\nuri = \"qemu+tcp://127.0.0.59/system\"\nprofile = \"no-such-profile\"\n",
    );
    let empty = inventory(d.path(), "empty", "# nothing\n\n");
    let s = |p: &Path| p.display().to_string();
    for cmd in [["fleet"].as_slice(), &["audit"], &["host", "--check"]] {
        let with = |file: &str| {
            let mut a: Vec<&str> = cmd.to_vec();
            a.extend(["--hosts", file]);
            run_watched(&a)
        };
        refused(&with(&s(&garbage)), "not UTF-8");
        refused(&with(&s(d.path())), "a directory");
        refused(&with(&s(&fifo)), "kvmtune reads regular files only");
        refused(&with(&s(&bad_line)), &format!("{} line 2:", s(&bad_line)));
        refused(&with(&s(&bad_toml)), &format!("{} line 4:", s(&bad_toml)));
        refused(&with(&s(&bad_profile)), "line 1: profile no-such-profile");
        refused(&with(&s(&empty)), "no host in it");
        refused(&with(&s(&d.path().join("missing"))), "missing");
    }
}

#[test]
fn what_names_one_host_is_refused_with_several() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("x.tar.gz");
    let file = file.to_str().unwrap();
    for (cmd, why) in [
        (
            ["top", "-n", "1"].as_slice(),
            "top works on one host; 2 hosts",
        ),
        (&["plan", "-o", file], "-o/--svg write one host's plan"),
        (
            &["diagnose", "--perf-report", file],
            "--perf-report and --log read one recording",
        ),
        (&["snapshot", "-o", "-"], "-o DIR, not standard output"),
        (&["snapshot", "-o", "/dev/null"], "/dev/null"),
        (
            &["snapshot", "--no-libvirt", "-o", file],
            "--no-libvirt captures this machine's files",
        ),
        (
            &["rollback", "1"],
            "rollback over several hosts takes --last",
        ),
        (&["history", "1"], "history ID shows one entry"),
    ] {
        let mut a: Vec<&str> = cmd.to_vec();
        a.extend([
            "-c",
            "qemu+tcp://127.0.0.59/system",
            "-c",
            "test:///default",
        ]);
        let o = run_watched(&a);
        refused(&o, why);
    }
    // --root and --from describe one host
    let o = run_watched(&[
        "audit",
        "--root",
        "/",
        "-c",
        "test:///default",
        "-c",
        "test:///default",
    ]);
    refused(&o, "--root and --from describe one host");
    // several hosts audit every domain: no targets
    let o = run_watched(&[
        "audit",
        "x.xml",
        "-c",
        "test:///default",
        "-c",
        "test:///default",
    ]);
    refused(&o, "takes no FILE|DOMAIN");
}

/// `plan`, `diagnose`, `snapshot` and `stat` on several hosts: each host through its own
/// daemon, in parallel, grouped by host, `host` on every record; an unreachable host is its
/// own failed record and the others complete (exit 1).
#[test]
fn read_only_commands_run_on_every_host_at_once() {
    if !fleet_up() {
        return;
    }
    let dead = "qemu+tcp://127.0.0.59/system";
    let hosts = ["-c", TCP[0], "-c", TCP[1], "-c", TCP[2], "-c", dead];
    let with = |cmd: &[&str]| {
        let mut a = vec!["--json"];
        a.extend(hosts);
        a.extend(cmd);
        run_watched(&a)
    };
    // diagnose watches each host for 2 s: at once, not one after the other
    let started = Instant::now();
    let o = with(&["diagnose", "--duration", "2", "--no-audit"]);
    let took = started.elapsed();
    let v = json(&o);
    assert_eq!(code(&o), 1, "{v}");
    assert_eq!(v["kind"], "kvmtune.fleet-diagnose");
    assert!(took < Duration::from_secs(5), "3 hosts x 2 s took {took:?}");
    let hs = hosts_of(&v);
    for (i, h) in hs.iter().take(3).enumerate() {
        assert_eq!(h["ok"], true, "{h}");
        assert_eq!(h["uri"], TCP[i]);
        assert_eq!(h["host"], format!("fleet{}", i + 1));
        let text = h["report"].to_string();
        assert!(text.contains(&format!("fleet{}-web", i + 1)), "{h}");
        for other in (1..=3).filter(|n| *n != i + 1) {
            assert!(!text.contains(&format!("fleet{other}-")), "{h}");
        }
    }
    assert_eq!(hs[3]["ok"], false);
    assert!(
        hs[3]["error"].as_str().unwrap().contains("127.0.0.59"),
        "{v}"
    );
    assert_eq!(v["summary"]["answered"], 3, "{v}");

    let o = with(&["plan"]);
    let v = json(&o);
    assert_eq!(v["kind"], "kvmtune.fleet-plan");
    for (i, h) in hosts_of(&v).iter().take(3).enumerate() {
        assert_eq!(h["report"]["kind"], "kvmtune.plan-report", "{h}");
        assert!(
            h["report"]
                .to_string()
                .contains(&format!("fleet{}-web", i + 1))
        );
    }

    // stat: JSON Lines, `host` and `uri` on every line, one frame per host per interval
    let o = with(&["stat", "--count", "2", "--interval", "0.5"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, uri) in TCP.iter().enumerate() {
        let mine: Vec<_> = lines.iter().filter(|l| l["uri"] == *uri).collect();
        assert_eq!(mine.len(), 2, "{lines:?}");
        for l in mine {
            let names: Vec<&str> = l["domains"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, [format!("fleet{}-web", i + 1)], "{l}");
        }
    }
    let dead_lines: Vec<_> = lines.iter().filter(|l| l["uri"] == dead).collect();
    assert_eq!(dead_lines.len(), 1, "reported once: {lines:?}");
    assert!(dead_lines[0]["error"].is_string());

    // snapshot: one bundle per host in the directory
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("bundles");
    let o = with(&["snapshot", "-o", dir.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    for addr in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let b = dir.join(format!("{addr}.tar.gz"));
        assert!(b.is_file(), "{b:?}");
        // each bundle is read back as its own host
        let o = run_watched(&["--from", b.to_str().unwrap(), "--json", "audit", "--all"]);
        let n = addr.rsplit('.').next().unwrap().parse::<u32>().unwrap() - 1;
        assert!(
            stdout(&o).contains(&format!("fleet{n}-web")),
            "{}",
            stdout(&o)
        );
    }
    assert!(!dir.join("127.0.0.59.tar.gz").exists());
}
