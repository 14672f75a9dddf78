#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A mutation fuzzer for the parser, the domain view, the rules and the fixes, on stable
//! Rust: corpus files (or built-in samples) are mutated (bit flips, deletions,
//! duplications, markup fragments, truncation) and every result must either parse (and
//! then serialize back byte for byte, view, audit and fix without panicking) or fail with
//! a line and column inside the input. KVMTUNE_FUZZ_SECS sets the time (default 5);
//! KVMTUNE_FUZZ_SEED replays a run.

use kvmtune_domain::{Document, Domain};
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Peer};
use std::path::Path;
use std::time::{Duration, Instant};

const FRAGMENTS: &[&str] = &[
    "<",
    ">",
    "&",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&bogus;",
    "'",
    "\"",
    "</",
    "/>",
    "<!--",
    "-->",
    "]]>",
    "<![CDATA[",
    "<?xml version='1.0'?>",
    "<!DOCTYPE x>",
    "\u{0}",
    "\u{feff}",
    "é",
    "<a:b>",
    "xmlns:q='u'",
    "=",
    " unit='GiB'",
    "18446744073709551616",
    "-1",
    "<vcpu>",
    "</domain>",
    "<domain>",
];

fn seeds() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/libvirt-domains");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| {
            r.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/domains");
    v.extend(
        std::fs::read_dir(own)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()),
    );
    v.sort();
    v
}

fn mutate(rng: &mut fastrand::Rng, src: &str) -> Vec<u8> {
    let mut b = src.as_bytes().to_vec();
    for _ in 0..rng.usize(1..4) {
        if b.is_empty() {
            b.extend_from_slice(b"<");
        }
        let at = rng.usize(0..b.len());
        match rng.u8(0..7) {
            0 => b[at] ^= 1 << rng.u8(0..8),
            1 => {
                let end = (at + rng.usize(1..64)).min(b.len());
                b.drain(at..end);
            }
            2 => {
                let end = (at + rng.usize(1..64)).min(b.len());
                let chunk = b[at..end].to_vec();
                let to = rng.usize(0..=b.len());
                b.splice(to..to, chunk);
            }
            3 => {
                let f = FRAGMENTS[rng.usize(0..FRAGMENTS.len())];
                b.splice(at..at, f.bytes());
            }
            4 => b.truncate(at),
            5 => {
                // a fragment at the very start (BOM, declaration, junk before the root)
                let f = FRAGMENTS[rng.usize(0..FRAGMENTS.len())];
                b.splice(0..0, f.bytes());
            }
            _ => {
                // change a digit inside an attribute or text (numbers, units)
                if let Some(p) = b[at..].iter().position(|c| c.is_ascii_digit()) {
                    b[at + p] = b"0123456789"[rng.usize(0..10)];
                }
            }
        }
    }
    b
}

fn check(bytes: &[u8], profiles: &[Profile]) -> Result<bool, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(false);
    };
    let lines = text.lines().count().max(1) + 1;
    match Document::parse(text) {
        Err(e) => {
            if e.line == 0 || e.column == 0 || e.line > lines {
                return Err(format!(
                    "bad position {}:{} for {} lines: {e}",
                    e.line, e.column, lines
                ));
            }
            Ok(false)
        }
        Ok(doc) => {
            if doc.serialize() != text {
                return Err("round trip changed the document".into());
            }
            let Ok(d) = Domain::from_doc(&doc) else {
                return Ok(true);
            };
            let peers = [Peer {
                domain: &d,
                active: true,
            }];
            for p in profiles {
                let f = audit::audit(&Cx {
                    doc: &doc,
                    d: &d,
                    profile: p,
                    host: None,
                    caps: None,
                    peers: &peers,
                });
                let edits: Vec<audit::Edit> = f
                    .iter()
                    .filter_map(|x| x.fix.as_ref())
                    .flat_map(|x| x.edits.clone())
                    .collect();
                let mut fixed = doc.clone();
                audit::apply(&mut fixed, &edits);
                Document::parse(&fixed.serialize())
                    .map_err(|e| format!("fixed XML does not parse: {e}"))?;
            }
            Ok(true)
        }
    }
}

#[test]
fn mutated_domains_never_panic_and_errors_have_positions() {
    let secs: u64 = std::env::var("KVMTUNE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("KVMTUNE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let seeds = seeds();
    assert!(!seeds.is_empty());
    let profiles = vec![
        Profile::load("server").unwrap(),
        Profile::load("latency").unwrap(),
    ];
    let mut rng = fastrand::Rng::with_seed(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut parsed) = (0u64, 0u64);
    while Instant::now() < deadline {
        let src = &seeds[rng.usize(0..seeds.len())];
        let input = mutate(&mut rng, src);
        let r = std::panic::catch_unwind(|| check(&input, &profiles));
        match r {
            Ok(Ok(ok)) => parsed += u64::from(ok),
            Ok(Err(why)) => panic!(
                "seed {seed}: {why}\ninput: {:?}",
                String::from_utf8_lossy(&input)
            ),
            Err(_) => panic!(
                "seed {seed}: panic on input {:?}",
                String::from_utf8_lossy(&input)
            ),
        }
        runs += 1;
    }
    eprintln!("fuzz: {runs} inputs in {secs}s ({parsed} parsed), seed {seed}");
    assert!(runs > 100);
}
