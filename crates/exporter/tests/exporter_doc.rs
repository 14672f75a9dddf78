#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The metric reference in docs/exporter.md is generated from the metric table; this test
//! fails when it is stale. `KVMTUNE_BLESS=1 cargo test -p kvmtune-exporter --test
//! exporter_doc` rewrites it.

use std::path::Path;

const BEGIN: &str = "<!-- BEGIN METRICS -->\n";
const END: &str = "<!-- END METRICS -->";

#[test]
fn docs_exporter_md_reference_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/exporter.md");
    let have = std::fs::read_to_string(&path).unwrap();
    let start = have
        .find(BEGIN)
        .expect("docs/exporter.md has no BEGIN METRICS marker")
        + BEGIN.len();
    let end = have[start..].find(END).expect("no END METRICS marker") + start;
    let want = format!(
        "{}{}{}",
        &have[..start],
        kvmtune_exporter::metrics::reference(),
        &have[end..]
    );
    if std::env::var_os("KVMTUNE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "docs/exporter.md is stale: run KVMTUNE_BLESS=1 cargo test -p kvmtune-exporter --test exporter_doc"
    );
}
