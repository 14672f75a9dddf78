#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 12 §3: every fixed XML must be accepted by the real libvirtd, not only the schema.
//!
//! Each corpus domain (libvirt's test domains, the wild domains and the project's fixtures) is
//! renamed to a throwaway `kvmtune-acc-<n>` (its `<uuid>` removed) and defined on a private
//! libvirtd (`KVMTUNE_ACCEPT_URI`, see `scripts/libvirtd-private`) with validation on, then undefined at once. For every domain libvirt
//! accepted before fixing, every fix of every rule is applied (server, latency and desktop
//! profiles, host facts of the b-book-2socket fixture) and the fixed domain is defined and
//! undefined the same way. The figure per profile is printed; a refused fixed domain fails the
//! test unless it is listed in [`KNOWN_REFUSED`], and a listed one that is accepted fails it too.

mod common;

use kvmtune_domain::{Document, Domain};
use kvmtune_host::Host;
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Peer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use virt::connect::Connect;

/// Fixed domains libvirt is known to refuse: `(file, profile)`, the file as the test names it
/// (`libvirt-domains/NAME.xml`, `wild-domains/NAME.xml`, `fixtures/NAME.xml`). Each entry is a
/// bug of a rule's fix still to be fixed; remove the entry with the fix. An entry whose fixed
/// domain is accepted (or no longer tested) fails the test, so the list stays honest.
const KNOWN_REFUSED: &[(&str, &str)] = &[];

/// Corpus domains never sent to libvirtd: libvirt 9.0's daemon crashed (intermittently) right
/// after reporting this one's error ("'sibling_id 2' does not refer to a valid cell"), which
/// takes down the shared lab daemon. They count among the domains refused before fixing.
const CRASHES_LIBVIRTD: &[&str] = &["libvirt-domains/cpu-numa-distance-nonexistent-sibling.xml"];

/// Prefix of the throwaway domain names; nothing else is ever defined or undefined.
const PREFIX: &str = "kvmtune-acc-";

fn undefine(d: &virt::domain::Domain) -> Result<(), virt::error::Error> {
    // keep NVRAM and TPM state: never delete a file a corpus domain happens to name
    d.undefine_flags(
        virt::sys::VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | virt::sys::VIR_DOMAIN_UNDEFINE_KEEP_TPM,
    )
}

/// A defined throwaway domain, undefined when dropped (also when the test panics).
struct Defined(virt::domain::Domain);

impl Drop for Defined {
    fn drop(&mut self) {
        if let Err(e) = undefine(&self.0) {
            eprintln!("could not undefine a throwaway domain: {}", e.message());
        }
    }
}

/// Define `xml` (of `label`) with validation and undefine it at once: `Err` holds libvirt's
/// error on one line. Panics when the daemon stops answering, naming the domain sent last.
fn accepted(conn: &Connect, label: &str, xml: &str) -> Result<(), String> {
    match conn.define_domain_xml_flags(xml, virt::sys::VIR_DOMAIN_DEFINE_VALIDATE) {
        Ok(d) => {
            drop(Defined(d));
            Ok(())
        }
        Err(e) => {
            let m = one_line(e.message());
            assert!(
                !(m.contains("client socket is closed") || m.contains("End of file while reading")),
                "libvirtd stopped answering when sent {label} ({m}): add it to CRASHES_LIBVIRTD \
                 and restart the daemon (`libvirtd -d`)"
            );
            Err(m)
        }
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Undefine leftovers of an interrupted run (inactive `kvmtune-acc-*` domains only).
fn clean_leftovers(conn: &Connect) {
    for name in conn.list_defined_domains().unwrap_or_default() {
        if name.starts_with(PREFIX)
            && let Ok(d) = conn.lookup_domain_by_name(&name)
        {
            drop(Defined(d));
        }
    }
}

/// Every corpus domain as `(label, path)`, in a fixed order.
fn corpus() -> Vec<(String, PathBuf)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../../shared/corpus");
    let mut dirs = Vec::new();
    if shared.join("libvirt-domains").is_dir() {
        dirs.push(("libvirt-domains", shared.join("libvirt-domains")));
        dirs.push(("wild-domains", shared.join("wild-domains")));
    } else {
        eprintln!("the shared corpus is not beside the checkout: fixtures only");
    }
    dirs.push(("fixtures", manifest.join("../../tests/fixtures/domains")));
    let mut out = Vec::new();
    for (label, dir) in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        for p in files {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((format!("{label}/{name}"), p));
        }
    }
    out
}

/// The domain renamed to `name`, without its `<uuid>`; `None` when it does not parse.
fn throwaway(src: &str, name: &str) -> Option<String> {
    let mut doc = Document::parse(src).ok()?;
    let root = doc.root();
    let n = doc.child(root, "name")?;
    doc.set_text(n, name);
    if let Some(u) = doc.child(root, "uuid") {
        doc.remove(u);
    }
    Some(doc.serialize())
}

/// Every fix of every rule applied: the fixed XML and the rules whose fixes were applied.
fn fix(src: &str, profile: &Profile, host: &Host) -> (String, BTreeSet<&'static str>) {
    let mut doc = Document::parse(src).unwrap();
    let d = Domain::from_doc(&doc).unwrap();
    let peers = [Peer {
        domain: &d,
        active: true,
    }];
    let findings = audit::audit(&Cx {
        doc: &doc,
        d: &d,
        profile,
        host: Some(host),
        caps: None,
        peers: &peers,
        memo: Default::default(),
    });
    let mut rules = BTreeSet::new();
    let mut edits = Vec::new();
    for f in &findings {
        if let Some(fx) = &f.fix
            && !fx.edits.is_empty()
        {
            rules.insert(f.rule);
            edits.extend(fx.edits.iter().cloned());
        }
    }
    drop(d);
    audit::apply(&mut doc, &edits);
    (doc.serialize(), rules)
}

/// The daemon the throwaway domains go to: `KVMTUNE_ACCEPT_URI`, a private libvirtd
/// (`scripts/libvirtd-private up accept 127.0.0.9`, which `scripts/test` starts), so that a
/// daemon crash on a hostile corpus domain cannot take down the lab's.
fn accept_uri() -> Option<String> {
    match std::env::var("KVMTUNE_ACCEPT_URI") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                !common::lab_required(),
                "the lab is required but KVMTUNE_ACCEPT_URI is not set: \
                 `export KVMTUNE_ACCEPT_URI=$(scripts/libvirtd-private up accept 127.0.0.9)`"
            );
            eprintln!("skipping: KVMTUNE_ACCEPT_URI is not set (see scripts/libvirtd-private)");
            None
        }
    }
}

#[test]
fn every_fixed_corpus_domain_is_accepted_by_libvirtd() {
    let Some(uri) = accept_uri() else { return };
    let conn = match Connect::open(Some(&uri)) {
        Ok(c) => c,
        Err(e) => panic!("KVMTUNE_ACCEPT_URI {uri} does not open: {}", e.message()),
    };
    // libvirt's errors are collected below, not printed as they happen
    virt::error::clear_error_callback();
    clean_leftovers(&conn);
    let started = std::time::Instant::now();
    let root = common::hosts_dir().join("b-book-2socket/root");
    let host = kvmtune_host::collect(&kvmtune_host::RootDir::new(root));
    let profiles: Vec<Profile> = ["server", "latency", "desktop"]
        .iter()
        .map(|p| Profile::load(p).unwrap())
        .collect();

    let files = corpus();
    let m = files.len();
    // the renamed domains libvirt accepted before fixing: (label, XML)
    let mut before = Vec::new();
    let mut unparsed = Vec::new();
    for (i, (label, path)) in files.iter().enumerate() {
        let src = std::fs::read_to_string(path).unwrap();
        let Some(xml) = throwaway(&src, &format!("{PREFIX}{i}")) else {
            unparsed.push(label.clone());
            continue;
        };
        if CRASHES_LIBVIRTD.contains(&label.as_str()) {
            eprintln!("not sent to libvirtd (it crashed the daemon): {label}");
            continue;
        }
        if accepted(&conn, label, &xml).is_ok() {
            before.push((label.clone(), xml));
        }
    }
    let n = before.len();
    if !unparsed.is_empty() {
        eprintln!(
            "{} corpus files do not parse (counted as refused): {unparsed:?}",
            unparsed.len()
        );
    }
    assert!(n > 0, "libvirt accepted none of the {m} corpus domains");

    let mut refused = Vec::new();
    let mut figures = Vec::new();
    for profile in &profiles {
        let mut n2 = 0;
        let mut changed = 0;
        for (label, xml) in &before {
            let (fixed, rules) = fix(xml, profile, &host);
            if fixed != *xml {
                changed += 1;
            }
            match accepted(&conn, label, &fixed) {
                Ok(()) => n2 += 1,
                Err(e) => refused.push((label.clone(), profile.name.clone(), e, rules)),
            }
        }
        let line = format!(
            "libvirt accepted {n} of {m} corpus domains before fixing; {n2} of {n} after fixing \
             (profile {}; {changed} changed by the fixes)",
            profile.name
        );
        println!("{line}");
        figures.push(line);
    }
    println!(
        "{} defines and undefines in {:.1?}",
        m + n * profiles.len(),
        started.elapsed()
    );

    let mut problems = Vec::new();
    for (label, profile, err, rules) in &refused {
        if !KNOWN_REFUSED.contains(&(label.as_str(), profile.as_str())) {
            problems.push(format!(
                "{label} (profile {profile}): refused after fixing: {err}\n    rules applied: {}",
                rules.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for (label, profile) in KNOWN_REFUSED {
        if !refused
            .iter()
            .any(|(l, p, _, _)| l == label && p == profile)
        {
            problems.push(format!(
                "{label} (profile {profile}) is in KNOWN_REFUSED but was not refused after \
                 fixing: remove it from the list"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{} problems:\n{}",
        figures.join("\n"),
        problems.len(),
        problems.join("\n")
    );
}
