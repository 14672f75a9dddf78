//! `audit_files` (one file at a time) gives the report of the whole inventory: over
//! libvirt's 837 test domains, the wild domains and the book fixtures, with and without host
//! facts, with per-domain profiles, and with inputs that cannot be read or parsed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use kvmtune_core::audit::{audit_files, audit_with};
use kvmtune_core::inventory::{Inventory, Origin, Select};
use kvmtune_core::profiles::Profiles;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".xml"))
        .collect();
    v.sort();
    v
}

/// Files with host facts from `root` when given.
fn origin_of(root: Option<&Path>) -> Origin {
    Origin {
        connect: "qemu:///system".into(),
        root: root.map(Path::to_path_buf),
        from: None,
    }
}

/// The files as an inventory, with host facts from `root` when given.
fn gather(targets: &[String], root: Option<&Path>) -> Inventory {
    let origin = origin_of(root);
    let sel = Select {
        targets: targets.to_vec(),
        all: false,
        host_for_files: root.is_some(),
    };
    Inventory::gather(&origin, &sel).unwrap()
}

/// The two reports as JSON, after auditing `targets` with `--profile` arguments `profile`,
/// host facts from `root` when given.
fn both(targets: &[String], root: Option<&Path>, profile: &[&str]) -> (String, String) {
    let args: Vec<String> = profile.iter().map(|s| s.to_string()).collect();
    let inv = gather(targets, root);
    let batch = audit_with(
        &inv,
        &Profiles::from_args(&args).unwrap().with_metadata(&inv),
    );
    let (host, from) = match root {
        Some(_) => {
            let (h, f) = origin_of(root).host_facts().unwrap();
            (Some(h), f)
        }
        None => (None, inv.host_origin.clone()),
    };
    let stream = audit_files(
        targets,
        host.as_ref(),
        from,
        Profiles::from_args(&args).unwrap(),
    );
    (
        serde_json::to_string_pretty(&batch).unwrap(),
        serde_json::to_string_pretty(&stream).unwrap(),
    )
}

#[test]
fn the_corpus_streamed_equals_the_corpus_gathered() {
    let corpus = repo().join("../shared/corpus/libvirt-domains");
    if !corpus.is_dir() {
        assert!(
            std::env::var_os("KVMTUNE_REQUIRE_LAB").is_none(),
            "the corpus is missing: {}",
            corpus.display()
        );
        return;
    }
    let mut targets = files(&corpus);
    targets.extend(files(&repo().join("../shared/corpus/wild-domains")));
    targets.extend(files(&repo().join("tests/fixtures/domains")));
    // inputs that fail, between the others
    targets.insert(3, "/nonexistent/missing.xml".into());
    targets.insert(10, repo().join("Cargo.toml").display().to_string());
    let root = repo().join("tests/fixtures/hosts/b-book-2socket/root");
    for (root, profile) in [
        (None, vec![]),
        (Some(root.as_path()), vec![]),
        (
            Some(root.as_path()),
            vec!["latency", "desktop=book-hugepages"],
        ),
    ] {
        let (batch, stream) = both(&targets, root, &profile);
        assert!(
            batch.len() > 100_000,
            "a real report: {} bytes",
            batch.len()
        );
        if batch != stream {
            let d = similar::TextDiff::from_lines(&batch, &stream);
            panic!(
                "root {root:?} profile {profile:?}:\n{}",
                d.unified_diff().context_radius(3)
            );
        }
    }
}

#[test]
fn pinned_domains_overlapping_are_found_streamed_too() {
    // two book fixtures pinned to the same CPUs, in both orders: pin-overlap needs the
    // later one when auditing the earlier
    let d = repo().join("tests/fixtures/domains");
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(d.join("book-cacti-230.xml")).unwrap();
    let a = dir.path().join("a.xml");
    let b = dir.path().join("b.xml");
    std::fs::write(&a, &src).unwrap();
    std::fs::write(&b, src.replacen("<name>", "<name>other-", 1)).unwrap();
    let targets = vec![a.display().to_string(), b.display().to_string()];
    for targets in [targets.clone(), targets.into_iter().rev().collect()] {
        let (batch, stream) = both(&targets, None, &[]);
        assert_eq!(batch, stream);
        let overlaps = stream.matches("\"rule\": \"pin-overlap\"").count();
        assert_eq!(overlaps, 2, "each domain overlaps the other:\n{stream}");
    }
}

#[test]
fn many_pinned_domains_finished_at_the_end_give_the_same_report() {
    // the wild domains that pin every vCPU to one CPU, 400 copies each: the streaming audit
    // finishes their pin-overlap at the end from what their first pass kept; with every
    // domain pinned, the host rules' context is still judged
    let wild = repo().join("../shared/corpus/wild-domains");
    if !wild.is_dir() {
        assert!(std::env::var_os("KVMTUNE_REQUIRE_LAB").is_none());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut targets = Vec::new();
    for i in 0..400 {
        for f in files(&wild) {
            let text = std::fs::read_to_string(&f).unwrap();
            if !text.contains("vcpupin") {
                continue;
            }
            let to = dir.path().join(format!(
                "{i:03}-{}",
                Path::new(&f).file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&to, text).unwrap();
            targets.push(to.display().to_string());
        }
    }
    let root = repo().join("tests/fixtures/hosts/b-book-2socket/root");
    let (batch, stream) = both(&targets, Some(root.as_path()), &[]);
    assert!(batch == stream, "the reports differ");
    assert!(
        stream.contains("\"host_findings\": [\n    {"),
        "host findings are judged"
    );
}

#[test]
fn pinned_domains_sharing_cpus_and_siblings_streamed_equal_gathered() {
    // one vCPU pinned onto one CPU, 120 names for 300 files: the same name with other pins
    // (only the first counts), a first copy not pinned one-to-one, CPUs shared and SMT
    // siblings of each other on a host with sibling facts
    let wild = repo().join("../shared/corpus/wild-domains/04.xml");
    if !wild.is_file() {
        assert!(std::env::var_os("KVMTUNE_REQUIRE_LAB").is_none());
        return;
    }
    let src = std::fs::read_to_string(&wild).unwrap();
    assert!(src.contains("<name>instance-00005022</name>") && src.contains("cpuset='27'"));
    let dir = tempfile::tempdir().unwrap();
    let mut targets = Vec::new();
    for i in 0..300 {
        let cpus = if i % 17 == 0 {
            "0-3".to_string()
        } else {
            ((i * 7) % 48).to_string()
        };
        let text = src
            .replacen(
                "<name>instance-00005022</name>",
                &format!("<name>vm-{}</name>", i % 120),
                1,
            )
            .replacen("cpuset='27'", &format!("cpuset='{cpus}'"), 1);
        let to = dir.path().join(format!("{i:03}.xml"));
        std::fs::write(&to, text).unwrap();
        targets.push(to.display().to_string());
    }
    let root = repo().join("tests/fixtures/hosts/b-book-2socket/root");
    for root in [None, Some(root.as_path())] {
        let (batch, stream) = both(&targets, root, &[]);
        assert!(batch == stream, "root {root:?}: the reports differ");
        one_pass_equals_batch(&targets, root);
        assert!(stream.contains("which vm-"), "overlaps found");
        if root.is_some() {
            assert!(stream.contains("are SMT siblings of"), "siblings found");
        }
    }
}

/// Each domain's findings in [`audit_with`] (pin-overlap through the peer index) are those
/// of the rules' one-pass `audit` with every domain as a peer.
fn one_pass_equals_batch(targets: &[String], root: Option<&Path>) {
    use kvmtune_rules::audit::{Cx, Peer, audit};
    let inv = gather(targets, root);
    let profiles = Profiles::from_args(&[]).unwrap().with_metadata(&inv);
    let report = audit_with(&inv, &profiles);
    let peers: Vec<Peer> = inv
        .domains
        .iter()
        .map(|p| Peer {
            domain: &p.domain,
            active: p.active,
        })
        .collect();
    for p in &inv.domains {
        let cx = Cx {
            doc: &p.doc,
            d: &p.domain,
            profile: profiles.for_domain(p),
            host: inv.host.as_ref(),
            caps: inv.caps.get(&p.domain.virt_type),
            peers: &peers,
            memo: Default::default(),
        };
        let got = &report.domain(&p.origin).unwrap().findings;
        assert_eq!(
            format!("{:?}", audit(&cx)),
            format!("{got:?}"),
            "{}",
            p.origin
        );
    }
}
