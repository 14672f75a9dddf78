#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile domain XML through the real binary: absurd values (issue 17 item 6) and names
//! made to attack a terminal or a shell (item 7). Apply-side and input-file hostility are in
//! hostile_apply.rs and hostile_inputs.rs.

mod common;
use common::*;

fn write(dir: &std::path::Path, name: &str, xml: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, xml).unwrap();
    p.to_str().unwrap().to_string()
}

/// `<vcpu>18446744073709551616</vcpu>`, `<vcpu>-4</vcpu>`, negative or absurd memory: an
/// audit finding of error severity, and `plan` refuses the domain with the reason instead
/// of planning 1 vCPU / 0 MiB with exit 0.
#[test]
fn absurd_values_are_an_error_finding_and_are_not_planned() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "overflow.xml",
            "<vcpu>18446744073709551616</vcpu><memory>1048576</memory>",
            "/domain/vcpu",
        ),
        (
            "negative.xml",
            "<vcpu>-4</vcpu><memory>1048576</memory>",
            "negative",
        ),
        (
            "memory.xml",
            "<vcpu>2</vcpu><memory>-1</memory>",
            "/domain/memory",
        ),
        (
            "unit.xml",
            "<vcpu>2</vcpu><memory unit='parsecs'>4</memory>",
            "unknown unit",
        ),
        (
            "huge.xml",
            "<vcpu>2</vcpu><memory unit='EiB'>99999</memory>",
            "overflows",
        ),
    ];
    let root = hosts_dir().join("b-book-2socket/root");
    for (file, body, why) in cases {
        let name = file.trim_end_matches(".xml");
        let f = write(
            d.path(),
            file,
            &format!("<domain type='kvm'><name>{name}</name>{body}</domain>"),
        );
        let o = kvmtune(&["audit", "--json", &f]);
        assert_eq!(o.status.code(), Some(1), "{file}: {}", stderr(&o));
        let v = json(&o);
        let found = v["domains"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["rule"] == "domain-values")
            .cloned()
            .unwrap_or_else(|| panic!("{file}: no domain-values finding"));
        assert_eq!(found["severity"], "error", "{file}");
        assert!(
            found["message"].as_str().unwrap().contains(why),
            "{file}: {found}"
        );

        let o = kvmtune(&["--root", root.to_str().unwrap(), "plan", "--json", &f]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{file}: a refused domain is not clean"
        );
        let v = json(&o);
        assert!(
            v["plan"]["domains"].as_array().unwrap().is_empty(),
            "{file}: {v}"
        );
        let un = &v["outcome"]["unplaced"][0];
        assert_eq!(un["name"], name);
        assert!(un["why"].as_str().unwrap().contains("not planned"), "{un}");
    }
}

/// A name with terminal escapes and shell syntax: text output carries no raw control
/// characters (only kvmtune's own colours) and every suggested command quotes the name.
#[test]
fn names_cannot_attack_the_terminal_or_the_shell() {
    let d = tempfile::tempdir().unwrap();
    let evil = "x$(touch /tmp/kvmtune-pwned);y&#x1b;]0;owned&#x7;";
    let f = write(
        d.path(),
        "evil.xml",
        &format!(
            "<domain type='kvm'><name>{evil}</name><memory>1048576</memory><vcpu>2</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/>\
             <source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
        ),
    );
    for color in ["never", "always"] {
        let o = kvmtune(&["--color", color, "audit", &f]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let out = stdout(&o);
        // no BEL, no OSC; ESC only as the start of a colour sequence
        assert!(!out.contains('\u{7}'), "{out:?}");
        for (i, _) in out.match_indices('\u{1b}') {
            assert!(out[i + 1..].starts_with('['), "raw escape at {i}: {out:?}");
        }
        assert!(
            out.contains("\\u{1b}"),
            "the escape is shown escaped: {out}"
        );
        // the suggested command quotes the name as one shell word (lines are wrapped at
        // 80 columns: compare with the white space folded)
        let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("virsh edit 'x$(touch /tmp/kvmtune-pwned);y"),
            "{flat}"
        );
        assert!(!flat.contains("virsh edit x$("), "{flat}");
    }
}

/// A name holding DEL and C1 controls (which JSON leaves raw): `--json` output carries no raw
/// control character and is still JSON, with the name as it is in the XML.
#[test]
fn json_output_stays_json_when_a_name_holds_del_or_c1_controls() {
    let d = tempfile::tempdir().unwrap();
    let name = "del\u{7f}csi\u{9b}31mnel\u{85}\"q\\";
    let f = write(
        d.path(),
        "c1.xml",
        "<domain type='kvm'><name>del&#x7f;csi&#x9b;31mnel&#x85;&quot;q\\</name>\
             <memory>1048576</memory><vcpu>2</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/>\
             <source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
    );
    for args in [
        vec!["--json", "audit", &f],
        vec!["audit", "--format", "sarif", &f],
    ] {
        let o = kvmtune(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character: {out:?}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        if args[0] == "--json" {
            assert_eq!(v["domains"][0]["name"], name, "{v}");
        }
    }
}

/// Every file kvmtune writes refuses a symlink, device or FIFO target (exit 2, the target
/// untouched); `-` and `/dev/stdout` mean standard output; files that hold domain XML are
/// 0600 in 0700 directories.
#[test]
fn output_paths_never_replace_devices_links_or_fifos() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let root = hosts_dir().join("b-book-2socket/root");
    let root = root.to_str().unwrap();
    let dom = write(
        d.path(),
        "vm.xml",
        "<domain type='kvm'><name>vm</name><memory>1048576</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/>\
         <source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
    );
    let victim = d.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let fifo = d.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let link_s = link.to_str().unwrap();
    let fifo_s = fifo.to_str().unwrap();
    let refused: Vec<Vec<&str>> = vec![
        vec![
            "snapshot",
            "--no-libvirt",
            "--root",
            root,
            "-o",
            "/dev/full",
        ],
        vec!["snapshot", "--no-libvirt", "--root", root, "-o", link_s],
        vec!["snapshot", "--no-libvirt", "--root", root, "-o", fifo_s],
        vec!["--root", root, "plan", &dom, "-o", "/dev/null"],
        vec!["--root", root, "plan", &dom, "-o", link_s],
        vec!["--root", root, "plan", &dom, "--svg", fifo_s],
        vec!["--root", root, "plan", &dom, "--svg", link_s],
    ];
    for args in refused {
        let o = kvmtune(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("refusing"), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        std::fs::symlink_metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // --svg /dev/stdout and -o - write to standard output
    let o = kvmtune(&[
        "--root",
        root,
        "plan",
        &dom,
        "--svg",
        "/dev/stdout",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("<svg"), "the map went to stdout");
    let o = kvmtune(&["--root", root, "plan", &dom, "-o", "-", "--json"]);
    assert!(stdout(&o).contains("\"kvmtune.plan\""), "{}", stdout(&o));
    // snapshot -o - writes the bundle itself to stdout, readable with --from
    let o = kvmtune(&["snapshot", "--no-libvirt", "--root", root, "-o", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let piped = d.path().join("piped.tar.gz");
    std::fs::write(&piped, &o.stdout).unwrap();
    let o = kvmtune(&["--from", piped.to_str().unwrap(), "host", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!d.path().join("-").exists() && !std::path::Path::new("-").exists());
    // modes: fixed XML 0600 in a 0700 directory, plans 0600, bundles 0600
    let fixed = d.path().join("fixed");
    let o = kvmtune(&["audit", "--fix", "-o", fixed.to_str().unwrap(), &dom]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fixed), 0o700);
    assert_eq!(mode(&fixed.join("vm.xml")), 0o600);
    let plan = d.path().join("p.json");
    kvmtune(&["--root", root, "plan", &dom, "-o", plan.to_str().unwrap()]);
    assert_eq!(mode(&plan), 0o600);
    let bundle = d.path().join("b.tar.gz");
    let o = kvmtune(&[
        "snapshot",
        "--no-libvirt",
        "--root",
        root,
        "-o",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&bundle), 0o600);
}

/// Passwords of a domain (VNC and SPICE `passwd`) do not leak into `audit --json` or
/// `--diff` unless `--secrets` is given; the fixed XML written with -o keeps them (it is the
/// domain's definition) and is 0600.
#[test]
fn audit_output_redacts_passwords_unless_asked() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "pw.xml",
        "<domain type='kvm'><name>pw</name><memory>1048576</memory><vcpu>2</vcpu>\n\
         <os><type arch='x86_64' machine='q35'>hvm</type></os>\n<devices>\n\
         <input type='tablet' bus='usb'/>\n\
         <graphics type='vnc' port='-1' passwd='s3cret-vnc'/>\n\
         <graphics type='spice' autoport='yes' passwd='s3cret-spice'/>\n\
         <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/>\
         <source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk>\n</devices>\n</domain>\n",
    );
    let leaks = |s: &str| s.contains("s3cret-vnc") || s.contains("s3cret-spice");
    for args in [
        vec!["audit", "--json", &f],
        vec!["audit", "-v", &f],
        vec!["audit", "--fix", "--diff", &f],
        vec!["audit", "--fix", "--diff", "--json", &f],
    ] {
        let o = kvmtune(&args);
        assert!(
            !leaks(&stdout(&o)) && !leaks(&stderr(&o)),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    let o = kvmtune(&["audit", "--fix", "--diff", "--secrets", &f]);
    assert!(leaks(&stdout(&o)), "--secrets shows them: {}", stdout(&o));
    let out = d.path().join("out");
    kvmtune(&["audit", "--fix", "-o", out.to_str().unwrap(), &f]);
    let fixed = std::fs::read_to_string(out.join("pw.xml")).unwrap();
    assert!(fixed.contains("s3cret-vnc") && fixed.contains("s3cret-spice"));
    let mode = std::fs::metadata(out.join("pw.xml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// `--root TREE apply --set` where the tree's `proc/sys` is a link to a directory outside
/// it: refused, and the file outside keeps its value (before: written through the link).
#[test]
fn apply_set_never_writes_through_a_link_out_of_the_root() {
    let Some(_lab) = lab() else { return };
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    copy_tree(&hosts_dir().join("b-book-2socket/root"), &tree);
    let outside = d.path().join("outside");
    std::fs::create_dir_all(outside.join("kernel")).unwrap();
    std::fs::write(outside.join("kernel/numa_balancing"), "1\n").unwrap();
    std::fs::remove_dir_all(tree.join("proc/sys")).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("proc/sys")).unwrap();
    let journal = d.path().join("journal");
    let o = kvmtune(&[
        "--root",
        tree.to_str().unwrap(),
        "apply",
        "--set",
        "numa_balancing=0",
        "--yes",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(outside.join("kernel/numa_balancing")).unwrap(),
        "1\n"
    );
}

/// A remote connection is never judged or bundled with this machine's files (before:
/// `snapshot -c qemu+ssh://...` put this host's files next to the other host's domains).
#[test]
fn a_remote_connection_is_not_mixed_with_this_machines_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("b.tar.gz");
    let o = kvmtune(&[
        "-c",
        "qemu+ssh://db7.invalid/system",
        "snapshot",
        "-o",
        out.to_str().unwrap(),
    ]);
    // a remote host is captured through its libvirt (tests/remote.rs); one that cannot be
    // reached is one line, and no bundle of this machine's files is written instead
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("db7.invalid"), "{}", stderr(&o));
    assert!(!out.exists());
}
