#![allow(clippy::unwrap_used, clippy::expect_used)]
//! docs/rules.md is generated from the rule definitions; this test fails when it is stale.
//! `KVMTUNE_BLESS=1 cargo test -p kvmtune-rules --test rules_doc` rewrites it.

use std::path::Path;

#[test]
fn docs_rules_md_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md");
    let want = kvmtune_rules::audit::docs::markdown();
    if std::env::var_os("KVMTUNE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/rules.md is stale: run KVMTUNE_BLESS=1 cargo test -p kvmtune-rules --test rules_doc"
    );
}

#[test]
fn every_rule_is_documented_and_ids_are_unique() {
    let rules = kvmtune_rules::audit::rules();
    let mut ids: Vec<&str> = rules.iter().map(|r| r.meta.id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate rule ids");
    for r in rules {
        let m = &r.meta;
        for (what, text) in [
            ("title", m.title),
            ("why", m.why),
            ("fix", m.fix),
            ("risk", m.risk),
            ("source", m.source),
        ] {
            assert!(!text.trim().is_empty(), "{}: empty {what}", m.id);
        }
        assert!(
            !kvmtune_rules::audit::docs::profiles_of(m).is_empty(),
            "{} is on in no profile",
            m.id
        );
    }
    // every domain rule of RULES.md has an implementation
    for id in [
        "cpu-mode",
        "cpu-topology",
        "cpu-exceeds-host",
        "cpu-hotplug",
        "cpu-nested",
        "numa-unbound",
        "numa-inconsistent",
        "numa-node-too-small",
        "numa-guest-cells",
        "pin-invalid",
        "pin-overlap",
        "pin-emulator",
        "pin-cross-node",
        "mem-hugepages",
        "mem-nosharepages",
        "mem-locked-needs-limit",
        "mem-hardlimit-low",
        "mem-balloon",
        "dev-usb-idle",
        "dev-tablet",
        "disk-bus",
        "disk-cache",
        "disk-io",
        "net-model",
        "net-multiqueue",
        "dev-legacy",
        "guest-io-scheduler",
        "clock-windows",
        "hyperv-enlightenments",
        "clock-linux",
        "host-overcommit",
    ] {
        assert!(ids.contains(&id), "{id} missing");
    }
}

/// True when `text` cites an internal note: "seed" followed by a digit, with or without
/// spaces in between ("seed 002", "Seed004").
fn cites_internal_note(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.match_indices("seed").any(|(i, _)| {
        lower[i + 4..]
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit())
    })
}

/// User-facing texts name public sources (books, vendor guides, blog posts, bug reports),
/// never the project's internal notes.
#[test]
fn rule_texts_cite_public_sources_only() {
    assert!(cites_internal_note("see seed 002 §3.1") && cites_internal_note("Seed004"));
    assert!(!cites_internal_note("KVMTUNE_FUZZ_SEED=7") && !cites_internal_note("seeded"));
    for r in kvmtune_rules::audit::rules() {
        let m = &r.meta;
        for (what, text) in [
            ("title", m.title),
            ("why", m.why),
            ("fix", m.fix),
            ("risk", m.risk),
            ("source", m.source),
        ] {
            assert!(
                !cites_internal_note(text),
                "{}: {what} cites an internal note: {text}",
                m.id
            );
        }
    }
    // finding messages and host check sources/hints are string literals in these files
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("host_checks.rs")];
    for e in std::fs::read_dir(src.join("audit")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("rules_") && name.ends_with(".rs") {
            files.push(p);
        }
    }
    assert!(files.len() > 2, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            // prose citations ("seed 004"); fixture names in tests ("seed004-before.xml") are fine
            let lower = line.to_lowercase();
            let prose = lower
                .match_indices("seed ")
                .any(|(i, _)| lower[i + 5..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(
                !prose,
                "{}:{}: cites an internal note: {line}",
                f.display(),
                n + 1
            );
        }
    }
}
