#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A mutation fuzzer for the parser, the domain view, the rules and the fixes, on stable
//! Rust: corpus files (or built-in samples) are mutated in layout (lines joined, tags split
//! across lines, `<x/>` and `<x></x>` switched, tabs, CRLF) and in content (bit flips,
//! deletions, duplications, markup fragments, truncation), and every result must either
//! parse (and then serialize back byte for byte, view, audit and fix without panicking,
//! the fixed XML parsing again) or fail with a line and column inside the input. When only
//! the layout changed, the fixed document must mean what the fixed original means.
//!
//! Each run takes a fresh random seed, printed at the start and on failure;
//! KVMTUNE_FUZZ_SEED=N replays a run, KVMTUNE_FUZZ_SECS sets the time (default 5).
//! `bench/fuzz SECS` runs it for longer in release mode.

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
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let mut v: Vec<String> = ["libvirt-domains", "wild-domains"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(corpus.join(d))
                .map(|r| {
                    r.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/domains");
    v.extend(
        std::fs::read_dir(own)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()),
    );
    v.sort();
    v
}

/// The name of the start tag that begins at `lt` (`<name ...`), if one does.
fn tag_name(s: &str, lt: usize) -> Option<&str> {
    let rest = s.get(lt + 1..)?;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    let name = &rest[..end];
    (name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())).then_some(name)
}

/// A change of layout only: the document means the same afterwards.
fn mutate_layout(rng: &mut fastrand::Rng, src: &str) -> String {
    let mut s = src.to_string();
    for _ in 0..rng.usize(1..5) {
        let at = rng.usize(0..=s.len());
        let at = (at..=s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        match rng.u8(0..8) {
            0 => {
                // every line joined: blanks with a line break between markup removed
                let mut out = String::with_capacity(s.len());
                let mut rest = s.as_str();
                while let Some(i) = rest.find('>') {
                    out.push_str(&rest[..=i]);
                    rest = &rest[i + 1..];
                    let blank = rest.len() - rest.trim_start().len();
                    if rest[..blank].contains('\n') && rest[blank..].starts_with('<') {
                        rest = &rest[blank..];
                    }
                }
                out.push_str(rest);
                s = out;
            }
            1 => {
                // one line joined to the next
                if let Some(i) = s[at..].find(">\n") {
                    let from = at + i + 1;
                    let blank = s[from..].len() - s[from..].trim_start().len();
                    if s[from + blank..].starts_with('<') {
                        s.replace_range(from..from + blank, "");
                    }
                }
            }
            2 => {
                // a start tag split between its name and its first attribute
                if let Some(i) = s[at..].find('<') {
                    let lt = at + i;
                    if let Some(n) = tag_name(&s, lt).map(str::len) {
                        let sp = lt + 1 + n;
                        if s[sp..].starts_with(' ') {
                            let nl = if rng.bool() { "\n      " } else { "\r\n\t\t" };
                            s.replace_range(sp..sp + 1, nl);
                        }
                    }
                }
            }
            3 => {
                // `<x .../>` written `<x ...></x>`
                if let Some(i) = s[at..].find("/>") {
                    let end = at + i;
                    if let Some(lt) = s[..end].rfind('<')
                        && !s[lt..end].contains(['>', '\'', '"'])
                        && let Some(name) = tag_name(&s, lt).map(str::to_string)
                    {
                        s.replace_range(end..end + 2, &format!("></{name}>"));
                    }
                }
            }
            4 => {
                // `<x ...></x>` written `<x .../>`
                if let Some(i) = s[at..].find("></") {
                    let gt = at + i;
                    if let Some(lt) = s[..gt].rfind('<')
                        && let Some(name) = tag_name(&s, lt).map(str::to_string)
                        && s[gt + 3..].starts_with(&format!("{name}>"))
                    {
                        s.replace_range(gt..gt + 4 + name.len(), "/>");
                    }
                }
            }
            5 => {
                // indentation in tabs
                s = s
                    .split('\n')
                    .map(|l| {
                        let n = l.len() - l.trim_start_matches(' ').len();
                        format!("{}{}", "\t".repeat(n / 2), &l[n..])
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            6 => {
                if !s.contains('\r') {
                    s = s.replace('\n', "\r\n");
                }
            }
            _ => {
                // an end tag split before its `>`
                if let Some(i) = s[at..].find("</") {
                    let lt = at + i;
                    if let Some(gt) = s[lt..].find('>')
                        && !s[lt..lt + gt].contains(char::is_whitespace)
                    {
                        s.insert(lt + gt, '\n');
                    }
                }
            }
        }
    }
    s
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

/// The canonical forms of the document fixed under each profile.
fn fixed_meanings(doc: &Document, profiles: &[Profile]) -> Result<Vec<String>, String> {
    let Ok(d) = Domain::from_doc(doc) else {
        return Ok(Vec::new());
    };
    let peers = [Peer {
        domain: &d,
        active: true,
    }];
    let mut out = Vec::new();
    for p in profiles {
        let f = audit::audit(&Cx {
            doc,
            d: &d,
            profile: p,
            host: None,
            caps: None,
            peers: &peers,
            memo: Default::default(),
        });
        let edits: Vec<audit::Edit> = f
            .iter()
            .filter_map(|x| x.fix.as_ref())
            .flat_map(|x| x.edits.clone())
            .collect();
        let mut fixed = doc.clone();
        audit::apply(&mut fixed, &edits);
        let text = fixed.serialize();
        let again = Document::parse(&text)
            .map_err(|e| format!("fixed XML does not parse: {e}\nfixed: {text:?}"))?;
        out.push(again.canonical());
    }
    Ok(out)
}

/// `same_as`: the original, when the input differs from it in layout only.
fn check(bytes: &[u8], profiles: &[Profile], same_as: Option<&str>) -> Result<bool, String> {
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
            let fixed = fixed_meanings(&doc, profiles)?;
            if let Some(orig) = same_as
                && let Ok(o) = Document::parse(orig)
                && o.canonical() == doc.canonical()
                && fixed_meanings(&o, profiles)? != fixed
            {
                return Err("a change of layout changed what the fixes do".into());
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
    eprintln!("fuzz: seed {seed} for {secs}s (KVMTUNE_FUZZ_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut parsed) = (0u64, 0u64);
    while Instant::now() < deadline {
        let src = &seeds[rng.usize(0..seeds.len())];
        // a third layout only, a third content only, a third both
        let (input, same_as) = match rng.u8(0..3) {
            0 => (
                mutate_layout(&mut rng, src).into_bytes(),
                Some(src.as_str()),
            ),
            1 => (mutate(&mut rng, src), None),
            _ => {
                let laid = mutate_layout(&mut rng, src);
                (mutate(&mut rng, &laid), None)
            }
        };
        let r = std::panic::catch_unwind(|| check(&input, &profiles, same_as));
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
    eprintln!("fuzz: {runs} inputs in {secs}s ({parsed} parsed), seed {seed}, no failure");
    assert!(runs > 100);
}
