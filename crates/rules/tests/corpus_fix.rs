#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fixes against libvirt's 837 test domains: every fixed file still validates when the
//! input did, auditing it again finds nothing more to fix, and fixing twice is a no-op.

mod common;
use common::*;

use kvmtune_domain::{Document, Domain};
use kvmtune_host::Host;
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Finding, Peer};

fn run(doc: &Document, profile: &Profile, host: Option<&Host>) -> Vec<Finding> {
    let d = Domain::from_doc(doc).unwrap();
    let peers = [Peer {
        domain: &d,
        active: true,
    }];
    audit::audit(&Cx {
        doc,
        d: &d,
        profile,
        host,
        caps: None,
        peers: &peers,
        memo: Default::default(),
    })
}

fn fix(src: &str, profile: &Profile, host: Option<&Host>) -> (String, Vec<Finding>) {
    let mut doc = Document::parse(src).unwrap();
    let findings = run(&doc, profile, host);
    let edits: Vec<audit::Edit> = findings
        .iter()
        .filter_map(|f| f.fix.as_ref())
        .flat_map(|f| f.edits.clone())
        .collect();
    audit::apply(&mut doc, &edits);
    (doc.serialize(), findings)
}

#[test]
fn fixes_validate_converge_and_are_idempotent() {
    let Some(c) = corpus() else { return };
    let tsv = std::fs::read_to_string(c.join("libvirt-domains-validation.tsv")).unwrap();
    let rows: Vec<(String, bool)> = tsv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f.get(2) == Some(&"OK"))
        })
        .collect();
    assert_eq!(rows.len(), 837);
    let host = fixture_host("b-book-2socket");
    let setups: Vec<(Profile, Option<&Host>)> = vec![
        (Profile::load("server").unwrap(), None),
        (Profile::load("latency").unwrap(), Some(&host)),
        (Profile::load("desktop").unwrap(), Some(&host)),
    ];
    let out = tempfile::tempdir().unwrap();
    let mut to_validate = Vec::new();
    let mut fixed_files = 0;
    let mut fixes = 0;
    let mut problems = Vec::new();
    for (si, (profile, host)) in setups.iter().enumerate() {
        for (name, valid) in &rows {
            let src = std::fs::read_to_string(c.join("libvirt-domains").join(name)).unwrap();
            let (fixed, before) = fix(&src, profile, *host);
            fixes += before.iter().filter(|f| f.fix.is_some()).count();
            // auditing the fixed XML finds nothing left to fix
            let doc = Document::parse(&fixed)
                .unwrap_or_else(|e| panic!("{name}: fixed XML does not parse: {e}"));
            let again: Vec<String> = run(&doc, profile, *host)
                .iter()
                .filter(|f| f.fix.is_some())
                .map(|f| format!("{}: {}", f.rule, f.message))
                .collect();
            if !again.is_empty() {
                problems.push(format!("{} {name}: still {again:?}", profile.name));
            }
            // fixing twice changes nothing
            let (twice, _) = fix(&fixed, profile, *host);
            if twice != fixed {
                problems.push(format!(
                    "{} {name}: a second fix changed the XML",
                    profile.name
                ));
            }
            if fixed != src {
                fixed_files += 1;
                if *valid {
                    let p = out.path().join(format!("{si}-{name}"));
                    std::fs::write(&p, &fixed).unwrap();
                    to_validate.push(p);
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "{fixes} fixes in {fixed_files} fixed files; validating {}",
        to_validate.len()
    );
    assert!(fixed_files > 500, "only {fixed_files} files changed");
    if std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("KVMTUNE_REQUIRE_LAB").is_none(),
            "xmllint missing"
        );
        eprintln!("skipping validation: xmllint not installed");
        return;
    }
    let r = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(c.join("libvirt-schemas/domain.rng"))
        .args(&to_validate)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.ends_with(" validates"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} lines:\n{}",
        failed.len(),
        failed
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
