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
