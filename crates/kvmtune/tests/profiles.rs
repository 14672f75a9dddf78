#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Profiles per domain end to end: `apply --set-profile` writes the metadata through the real
//! libvirtd (journaled, rolled back), and audit, diagnose and plan judge each domain with its
//! own profile and say which.

mod common;

use std::path::Path;

use common::*;

fn audit_profile(domain: &str, extra: &[&str]) -> String {
    let mut args = vec!["--json", "audit", domain];
    args.extend_from_slice(extra);
    let v = json(&run(&args));
    v["domains"][0]["profile"].as_str().unwrap().to_string()
}

#[test]
fn set_profile_is_journaled_read_back_by_every_command_and_rolled_back() {
    let Some(_g) = lab() else { return };
    let j = tempfile::tempdir().unwrap();
    let jd = j.path().to_str().unwrap();
    let dom = "lab-tuned";
    assert_eq!(audit_profile(dom, &[]), "server");
    let before = virsh_on(
        "qemu:///system",
        &["dumpxml", "--inactive", "--security-info", dom],
    );

    // the dry run changes nothing and shows the metadata it would write
    let o = run(&["apply", "--set-profile", "desktop", dom, "--journal", jd]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("- profile desktop"), "{out}");
    assert!(out.contains(">desktop</"), "{out}");
    assert_eq!(audit_profile(dom, &[]), "server");

    let o = run(&[
        "--json",
        "apply",
        "--set-profile",
        "desktop",
        dom,
        "--journal",
        jd,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["profiles"][dom], "desktop");
    let stored = virsh_on("qemu:///system", &["dumpxml", "--inactive", dom]);
    assert!(
        stored.contains("https://kvmtune.invalid/xmlns/profile/1") && stored.contains(">desktop<"),
        "{stored}"
    );
    // the running domain keeps running: only the stored definition changed
    assert!(virsh_on("qemu:///system", &["domstate", dom]).contains("running"));

    // audit: metadata beats --profile NAME, NAME=DOMAIN beats metadata
    assert_eq!(audit_profile(dom, &[]), "desktop");
    assert_eq!(audit_profile(dom, &["-p", "latency"]), "desktop");
    assert_eq!(audit_profile(dom, &["-p", "latency=lab-tuned"]), "latency");
    // diagnose and plan show it per domain
    let o = run(&["--json", "diagnose", "--duration", "0.5", dom]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let v = json(&o);
    assert_eq!(v["subjects"][0]["audit_profile"], "desktop", "{v}");
    let o = run(&["--json", "plan", dom]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    assert_eq!(json(&o)["profiles"][dom], "desktop");

    // setting it again changes nothing
    let o = run(&[
        "apply",
        "--set-profile",
        "desktop",
        dom,
        "--journal",
        jd,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));

    // the rollback restores the definition byte for byte
    let o = run(&["rollback", "--last", "--journal", jd]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        virsh_on(
            "qemu:///system",
            &["dumpxml", "--inactive", "--security-info", dom]
        ),
        before
    );
    assert_eq!(audit_profile(dom, &[]), "server");
}

#[test]
fn set_profile_refuses_files_unknown_names_live_and_no_domain() {
    let j = tempfile::tempdir().unwrap();
    let jd = j.path().to_str().unwrap();
    for (args, msg) in [
        (
            vec!["apply", "--set-profile", "/etc/p.toml", "vm"],
            "only name a built-in profile",
        ),
        (
            vec!["apply", "--set-profile", "desktop"],
            "give the DOMAIN names",
        ),
        (
            vec!["apply", "--set-profile", "desktop", "--live", "vm"],
            "cannot be used with",
        ),
        (
            vec![
                "apply",
                "--set-profile",
                "desktop",
                "--rule",
                "disk-cache",
                "vm",
            ],
            "cannot be used with",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--journal", jd]);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{a:?}: {}", stderr(&o));
    }
    if libvirt_up() {
        let o = run(&[
            "apply",
            "--set-profile",
            "no-such-profile",
            "lab-tuned",
            "--journal",
            jd,
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("no-such-profile"), "{}", stderr(&o));
    }
}

/// The plan places each domain with its own profile's policy: on the book's 2-socket host a
/// latency domain gets dedicated vCPUs and a dedicated emulator CPU, a desktop one floats.
#[test]
fn plan_places_each_domain_with_its_profiles_policy() {
    let root = hosts_dir().join("b-book-2socket/root");
    let t = tempfile::tempdir().unwrap();
    let meta = |p: &str| {
        format!(
            "<metadata><kt:profile xmlns:kt='https://kvmtune.invalid/xmlns/profile/1'>{p}</kt:profile></metadata>"
        )
    };
    let dom = |name: &str, m: &str| {
        format!(
            "<domain type='kvm'><name>{name}</name>{m}<memory unit='GiB'>4</memory><vcpu>4</vcpu>\
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>"
        )
    };
    let write = |name: &str, text: String| {
        let f = t.path().join(format!("{name}.xml"));
        std::fs::write(&f, text).unwrap();
        f.display().to_string()
    };
    let lat = write("lat", dom("lat", &meta("latency")));
    let desk = write("desk", dom("desk", &meta("desktop")));
    let plain = write("plain", dom("plain", ""));
    let root = root.to_str().unwrap();
    let o = run(&["--json", "--root", root, "plan", &lat, &desk, &plain]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let placed = v["outcome"]["placed"].as_array().unwrap();
    let pol = |n: &str| {
        placed
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n} not placed: {v}"))["policy"]
            .clone()
    };
    assert_eq!(pol("lat")["cpus"], "dedicated");
    assert_eq!(pol("lat")["emulator"], "dedicated");
    assert_eq!(pol("desk")["cpus"], "shared");
    assert_eq!(pol("plain")["cpus"], "dedicated", "server's policy");
    assert_eq!(v["profiles"]["lat"], "latency");
    assert_eq!(v["profiles"]["plain"], "server");
    // --cpus on the command line is over every profile; --policy over that
    let o = run(&[
        "--json",
        "--root",
        root,
        "plan",
        "--cpus",
        "shared",
        "--policy",
        "plain:cpus=dedicated",
        &lat,
        &desk,
        &plain,
    ]);
    let v = json(&o);
    let placed = v["outcome"]["placed"].as_array().unwrap();
    let cpus = |n: &str| placed.iter().find(|p| p["name"] == n).unwrap()["policy"]["cpus"].clone();
    assert_eq!(cpus("lat"), "shared");
    assert_eq!(cpus("plain"), "dedicated");
    // the text names a domain's profile where it is not the run's
    let o = run(&["--root", root, "plan", &lat, &plain]);
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.contains("lat ") && l.contains("(profile latency)")),
        "{text}"
    );
    assert!(!text.contains("(profile server)"), "{text}");
    let _ = Path::new(root);
}
