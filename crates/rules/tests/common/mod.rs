#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Helpers shared by the rules crate's integration tests: the shared corpus and the captured
//! host fixtures.

use std::path::{Path, PathBuf};

use kvmtune_host::Host;

/// `../shared/corpus` beside the checkout, or `None` (the test then skips, saying so).
pub fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if dir.join("libvirt-domains").is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared/corpus is not beside the checkout");
        None
    }
}

/// A captured host of tests/fixtures/hosts, as `kvmtune host --json` read it.
pub fn fixture_host(name: &str) -> Host {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts")
        .join(name)
        .join("expected-host.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}
