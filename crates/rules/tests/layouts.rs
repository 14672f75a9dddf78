#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Layout must not change what a fix does (issue 20): every fix of every rule, on every
//! corpus domain (libvirt's test domains, the wild domains and the project's fixtures),
//! with three profile/host setups, applied to the domain in three layouts: as written,
//! minified to one line, and re-indented with tabs and CRLF line ends. Each fixed document
//! must parse, must mean the same as the fixed document in its written layout (same
//! canonical form, same typed view), and must still validate against libvirt's schema
//! where the input did.

mod common;
use common::*;

use kvmtune_domain::{Document, Domain};
use kvmtune_host::Host;
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Finding, Peer};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One piece of markup or text: `(text, kind)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Open,
    Close,
    Empty,
    Other,
    Text,
}

/// Split a document into markup and text, aware of quotes in tags, comments, CDATA and
/// processing instructions.
fn tokens(src: &str) -> Vec<(&str, Tok)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            let end = src[i..].find('<').map_or(b.len(), |p| i + p);
            out.push((&src[i..end], Tok::Text));
            i = end;
            continue;
        }
        let rest = &src[i..];
        let (len, kind) = if rest.starts_with("<!--") {
            (rest.find("-->").unwrap() + 3, Tok::Other)
        } else if rest.starts_with("<![CDATA[") {
            (rest.find("]]>").unwrap() + 3, Tok::Text)
        } else if rest.starts_with("<?") {
            (rest.find("?>").unwrap() + 2, Tok::Other)
        } else if rest.starts_with("<!") {
            (rest.find('>').unwrap() + 1, Tok::Other)
        } else {
            let mut q = None;
            let mut end = 0;
            for (j, c) in rest.char_indices() {
                match (q, c) {
                    (None, '\'' | '"') => q = Some(c),
                    (Some(o), c) if o == c => q = None,
                    (None, '>') => {
                        end = j + 1;
                        break;
                    }
                    _ => {}
                }
            }
            let tag = &rest[..end];
            let kind = if tag.starts_with("</") {
                Tok::Close
            } else if tag.ends_with("/>") {
                Tok::Empty
            } else {
                Tok::Open
            };
            (end, kind)
        };
        out.push((&src[i..i + len], kind));
        i += len;
    }
    out
}

/// The document on one line: whitespace-only text between markup removed.
fn minified(src: &str) -> String {
    let toks = tokens(src);
    let mut out = String::with_capacity(src.len());
    for (k, (t, kind)) in toks.iter().enumerate() {
        let between_markup = k > 0 && k + 1 < toks.len();
        if *kind == Tok::Text && t.trim().is_empty() && (between_markup || k == 0) {
            continue;
        }
        if *kind == Tok::Text && t.trim().is_empty() {
            continue; // trailing blanks after the root
        }
        out.push_str(t);
    }
    out
}

/// The document re-indented with one tab per level and CRLF line ends: a line break goes
/// between two pieces of markup, except between a start tag and its end tag.
fn tabs_crlf(src: &str) -> String {
    let one = minified(src);
    let toks = tokens(&one);
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut prev: Option<Tok> = None;
    for (t, kind) in toks {
        if kind == Tok::Close {
            depth = depth.saturating_sub(1);
        }
        let markup = kind != Tok::Text;
        let prev_markup = prev.is_some_and(|p| p != Tok::Text);
        if markup && prev_markup && !(prev == Some(Tok::Open) && kind == Tok::Close) {
            out.push_str("\r\n");
            out.push_str(&"\t".repeat(depth));
        }
        out.push_str(t);
        if kind == Tok::Open {
            depth += 1;
        }
        prev = Some(kind);
    }
    out.push_str("\r\n");
    out
}

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

/// Every fix found, applied together; and the number of fixes.
fn fix(src: &str, profile: &Profile, host: Option<&Host>) -> (String, usize) {
    let mut doc = Document::parse(src).unwrap();
    let findings = run(&doc, profile, host);
    let edits: Vec<audit::Edit> = findings
        .iter()
        .filter_map(|f| f.fix.as_ref())
        .flat_map(|f| f.edits.clone())
        .collect();
    audit::apply(&mut doc, &edits);
    let n = findings.iter().filter(|f| f.fix.is_some()).count();
    (doc.serialize(), n)
}

/// Each fix on its own.
fn fix_each(src: &str, profile: &Profile, host: Option<&Host>) -> Vec<(String, String)> {
    let doc = Document::parse(src).unwrap();
    run(&doc, profile, host)
        .iter()
        .filter_map(|f| Some((f.rule.to_string(), f.fix.as_ref()?.edits.clone())))
        .map(|(rule, edits)| {
            let mut d = doc.clone();
            audit::apply(&mut d, &edits);
            (rule, d.serialize())
        })
        .collect()
}

/// What a document means: its canonical form and its typed view.
fn meaning(xml: &str) -> Result<(String, String), String> {
    let doc = Document::parse(xml).map_err(|e| format!("does not parse: {e}"))?;
    let view = Domain::from_doc(&doc)
        .map(|d| serde_json::to_string(&d).unwrap())
        .map_err(|e| e.to_string())?;
    Ok((doc.canonical(), view))
}

fn inputs() -> Vec<(String, String)> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/domains")];
    if let Some(c) = corpus() {
        dirs.push(c.join("libvirt-domains"));
        dirs.push(c.join("wild-domains"));
    }
    let mut v = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        let tag = dir.file_name().unwrap().to_string_lossy().to_string();
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            // only domains kvmtune views (libvirt's corpus has a few it refuses by design)
            if Domain::parse(&src).is_ok() {
                let name = format!("{tag}/{}", f.file_name().unwrap().to_string_lossy());
                v.push((name, src));
            }
        }
    }
    v
}

fn xmllint_ok() -> bool {
    let ok = std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        assert!(
            std::env::var_os("KVMTUNE_REQUIRE_LAB").is_none(),
            "xmllint missing"
        );
        eprintln!("skipping validation: xmllint not installed");
    }
    ok
}

/// Validate files in one xmllint call; the names of those that do not validate.
fn invalid(rng: &Path, files: &[PathBuf]) -> HashSet<PathBuf> {
    let mut bad = HashSet::new();
    for chunk in files.chunks(2000) {
        let r = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(rng)
            .args(chunk)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        for l in stderr.lines() {
            if let Some(f) = l.strip_suffix(" fails to validate") {
                bad.insert(PathBuf::from(f));
            }
        }
    }
    bad
}

const LAYOUTS: [&str; 3] = ["as-written", "one-line", "tabs-crlf"];

fn layouts(src: &str) -> [String; 3] {
    [src.to_string(), minified(src), tabs_crlf(src)]
}

#[test]
fn the_layouts_mean_the_same_as_the_input() {
    let src = "<?xml version='1.0'?>\n<!-- c -->\n<domain type='kvm'>\n  <name>a b</name>\n  <description></description>\n  <devices>\n    <disk a='x>y'><![CDATA[ < ]]></disk>\n  </devices>\n</domain>\n";
    assert_eq!(
        minified(src),
        "<?xml version='1.0'?><!-- c --><domain type='kvm'><name>a b</name><description></description><devices><disk a='x>y'><![CDATA[ < ]]></disk></devices></domain>"
    );
    assert_eq!(
        tabs_crlf(src),
        "<?xml version='1.0'?>\r\n<!-- c -->\r\n<domain type='kvm'>\r\n\t<name>a b</name>\r\n\t<description></description>\r\n\t<devices>\r\n\t\t<disk a='x>y'><![CDATA[ < ]]></disk>\r\n\t</devices>\r\n</domain>\r\n"
    );
    for l in layouts(src) {
        assert_eq!(meaning(&l), meaning(src));
    }
}

#[test]
fn every_fix_is_layout_proof_on_the_corpus() {
    let started = std::time::Instant::now();
    let inputs = inputs();
    assert!(inputs.len() >= 14, "{} inputs", inputs.len());
    let host = fixture_host("b-book-2socket");
    let setups: Vec<(Profile, Option<&Host>)> = vec![
        (Profile::load("server").unwrap(), None),
        (Profile::load("latency").unwrap(), Some(&host)),
        (Profile::load("desktop").unwrap(), Some(&host)),
    ];
    let lint = xmllint_ok();
    let schema = corpus().map(|c| c.join("libvirt-schemas/domain.rng"));
    let out = tempfile::tempdir().unwrap();
    // the inputs in every layout, written out to learn which validate
    let mut originals = Vec::new();
    let mut forms = Vec::new();
    for (i, (_, src)) in inputs.iter().enumerate() {
        let ls = layouts(src);
        for (li, l) in ls.iter().enumerate() {
            assert_eq!(
                meaning(l).unwrap(),
                meaning(src).unwrap(),
                "{}: layout {} changes the input's meaning",
                inputs[i].0,
                LAYOUTS[li]
            );
            let p = out.path().join(format!("in-{i}-{li}.xml"));
            std::fs::write(&p, l).unwrap();
            originals.push(p);
        }
        forms.push(ls);
    }
    let bad_in = match (&schema, lint) {
        (Some(s), true) => Some(invalid(s, &originals)),
        _ => None,
    };
    let mut problems = Vec::new();
    let mut to_validate = Vec::new();
    let mut seen = HashSet::new();
    let (mut fixes, mut singles) = (0usize, 0usize);
    for (si, (profile, host)) in setups.iter().enumerate() {
        for (i, (name, _)) in inputs.iter().enumerate() {
            let mut base: Option<(String, String)> = None;
            for (li, l) in forms[i].iter().enumerate() {
                let (fixed, n) = fix(l, profile, *host);
                fixes += n;
                let what = format!("{} {name} {}", profile.name, LAYOUTS[li]);
                let m = match meaning(&fixed) {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push(format!("{what}: fixed XML {e}"));
                        continue;
                    }
                };
                match &base {
                    None => base = Some(m),
                    Some(b) if *b != m => {
                        problems.push(format!("{what}: means something else than as written"))
                    }
                    Some(_) => {}
                }
                let valid_in = bad_in
                    .as_ref()
                    .is_some_and(|b| !b.contains(&out.path().join(format!("in-{i}-{li}.xml"))));
                if valid_in && seen.insert(fixed.clone()) {
                    let p = out.path().join(format!("fixed-{si}-{i}-{li}.xml"));
                    std::fs::write(&p, &fixed).unwrap();
                    to_validate.push((p, what.clone()));
                }
                // each fix alone, in the compact layouts (where editing is hardest)
                if si == 0 && li > 0 {
                    for (rule, one) in fix_each(l, profile, *host) {
                        singles += 1;
                        if let Err(e) = Document::parse(&one) {
                            problems.push(format!("{what} {rule} alone: {e}"));
                        }
                    }
                }
            }
        }
    }
    let failed: Vec<String> = match &schema {
        Some(s) if bad_in.is_some() => {
            let paths: Vec<PathBuf> = to_validate.iter().map(|(p, _)| p.clone()).collect();
            let bad = invalid(s, &paths);
            to_validate
                .iter()
                .filter(|(p, _)| bad.contains(p))
                .map(|(_, w)| format!("{w}: fixed XML no longer validates"))
                .collect()
        }
        _ => Vec::new(),
    };
    problems.extend(failed);
    eprintln!(
        "{} inputs x {} layouts x {} setups: {fixes} fixes together, {singles} alone; {} distinct valid results validated; {:.1}s",
        inputs.len(),
        LAYOUTS.len(),
        setups.len(),
        to_validate.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Issue 20's example: a domain on one line, as `xmllint --noblanks` writes it.
#[test]
fn one_line_domain_from_issue_20_fixes_to_well_formed_xml() {
    let src = "<domain type='kvm'><name>one</name><memory>1048576</memory><vcpu>2</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/><source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk><controller type='usb' model='qemu-xhci'><address type='pci' bus='0x02' slot='0x00'/></controller><input type='tablet' bus='usb'/><memballoon model='virtio'/></devices></domain>\n";
    let (fixed, n) = fix(src, &Profile::load("server").unwrap(), None);
    assert!(n >= 4, "{n} fixes");
    assert!(meaning(&fixed).is_ok(), "{fixed}");
    assert!(
        !fixed.contains('\r') && fixed.trim_end().lines().count() == 1,
        "{fixed}"
    );
    assert!(
        fixed.contains("<controller type='usb' model='none' index='0'/><memballoon"),
        "{fixed}"
    );
    assert!(fixed.contains("<cpu mode='host-model'/>"), "{fixed}");
    // and as `<cpu ...></cpu>`, which became `<cpu mode='host-model'/></cpu>`
    let src = src.replace("</os>", "</os><cpu mode='custom' match='exact'></cpu>");
    let (fixed, _) = fix(&src, &Profile::load("server").unwrap(), None);
    assert!(meaning(&fixed).is_ok(), "{fixed}");
    assert!(!fixed.contains("</cpu>"), "{fixed}");
}
