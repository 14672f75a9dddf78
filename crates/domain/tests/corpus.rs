#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The lossless document against libvirt's own 837 test domains (shared/corpus).

use kvmtune_domain::xml::Document;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if dir.join("libvirt-domains").is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared/corpus is not beside the checkout");
        None
    }
}

fn domain_files(corpus: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus.join("libvirt-domains"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_corpus_domain_parses_and_serializes_back_byte_for_byte() {
    let Some(c) = corpus() else { return };
    let files = domain_files(&c);
    assert_eq!(files.len(), 837);
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let doc = Document::parse(&src).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(doc.serialize(), src, "{}", f.display());
        kvmtune_domain::Domain::from_doc(&doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

/// Byte-identical output is stronger than canonical equality, but check the canonical
/// form as libxml2 computes it too, and that what validated still validates.
#[test]
fn round_tripped_corpus_is_canonically_equal_and_still_validates() {
    let Some(c) = corpus() else { return };
    if std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("KVMTUNE_REQUIRE_LAB").is_none(),
            "xmllint missing"
        );
        eprintln!("skipping: xmllint not installed");
        return;
    }
    let tsv = std::fs::read_to_string(c.join("libvirt-domains-validation.tsv")).unwrap();
    let valid: Vec<&str> = tsv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.get(2) == Some(&"OK")).then_some(f[0])
        })
        .collect();
    assert!(valid.len() > 800);
    let out = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    for name in &valid {
        let src = std::fs::read_to_string(c.join("libvirt-domains").join(name)).unwrap();
        let doc = Document::parse(&src).unwrap();
        let p = out.path().join(name);
        std::fs::write(&p, doc.serialize()).unwrap();
        written.push(p);
    }
    let r = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(c.join("libvirt-schemas/domain.rng"))
        .args(&written)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.ends_with("fails to validate"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        stderr.lines().filter(|l| l.ends_with(" validates")).count(),
        valid.len()
    );
    // canonical form (C14N) of input and output agree, sampled over every 20th file
    for (name, p) in valid.iter().zip(&written).step_by(20) {
        let c14n = |f: &Path| {
            std::process::Command::new("xmllint")
                .arg("--c14n")
                .arg(f)
                .output()
                .unwrap()
                .stdout
        };
        assert_eq!(
            c14n(&c.join("libvirt-domains").join(name)),
            c14n(p),
            "{name}"
        );
    }
}
