//! Text fields of reports written to JSON without serde_json's byte-by-byte escape scan.
//!
//! serde_json looks up every byte of every string in a table (about 6 instructions a byte),
//! which was the largest single cost of `kvmtune audit --json` on real-world domains: the
//! findings' texts, edits and evidence are most of its output. Nine in ten of those bytes
//! are in strings that need no escape at all. For such a string ([`needs_escape`] is false:
//! no `"`, no `\`, no control character) the quoted text is already its JSON form, and it
//! is handed to serde_json as a raw value, written as it is. Any other string goes through
//! serde_json's own escaping, so the escaping rules are never written twice.
//!
//! The raw value is passed the way serde_json's own `RawValue` passes itself: a struct named
//! [`RAW_TOKEN`] with one field of that name, which serde_json's serializers (the writer and
//! `serde_json::Value`'s) recognise when its `raw_value` feature is on (the workspace turns
//! it on). Report types are serialized to JSON only; another serializer would see that
//! struct. The tests below hold the output to serde_json's, byte for byte.

use serde::ser::{SerializeStruct as _, Serializer};
use std::cell::RefCell;

/// The name serde_json gives the struct a raw value serializes as (its `raw::TOKEN`).
pub const RAW_TOKEN: &str = "$serde_json::private::RawValue";

thread_local! {
    /// The quoted text of the string being written (reused).
    static QUOTED: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Whether JSON needs an escape in `s`: a `"`, a `\` or a control character (below
/// U+0020), the characters serde_json escapes. Checked 32 bytes at a time without an early
/// exit inside a block, so the compiler turns it into vector compares.
pub fn needs_escape(s: &str) -> bool {
    const BLOCK: usize = 32;
    fn any_bad(block: &[u8; BLOCK]) -> bool {
        block.iter().fold(0u8, |acc, &b| {
            acc | u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\')
        }) != 0
    }
    let bytes = s.as_bytes();
    let mut blocks = bytes.chunks_exact(BLOCK);
    for block in &mut blocks {
        if block.try_into().is_ok_and(any_bad) {
            return true;
        }
    }
    let rest = blocks.remainder();
    if rest.is_empty() {
        return false;
    }
    // the last bytes as one more block: the final 32 of a longer string (some checked
    // twice), or a short string padded with spaces
    let mut last = [b' '; BLOCK];
    match bytes.len().checked_sub(BLOCK) {
        Some(from) => last.copy_from_slice(&bytes[from..]),
        None => last[..rest.len()].copy_from_slice(rest),
    }
    any_bad(&last)
}

/// `#[serde(serialize_with = "kvmtune_domain::json_text::text")]`: `s` as a JSON string.
pub fn text<S: Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
    if needs_escape(s) {
        return ser.serialize_str(s);
    }
    let mut st = ser.serialize_struct(RAW_TOKEN, 1)?;
    st.serialize_field(RAW_TOKEN, &Quoted(s))?;
    st.end()
}

/// [`text`] for an optional string (`null` for none).
pub fn opt_text<S: Serializer>(s: &Option<String>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => text(s, ser),
        None => ser.serialize_none(),
    }
}

/// A string that needs no escape, serialized as its JSON form (in quotes).
struct Quoted<'a>(&'a str);

impl serde::Serialize for Quoted<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        QUOTED.with(|q| match q.try_borrow_mut() {
            Ok(mut q) => {
                q.clear();
                q.reserve(self.0.len() + 2);
                q.push('"');
                q.push_str(self.0);
                q.push('"');
                ser.serialize_str(&q)
            }
            // never re-entered (serializing a str calls nothing back); if it were, a buffer
            // of its own
            Err(_) => ser.serialize_str(&format!("\"{}\"", self.0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Fast<'a> {
        #[serde(serialize_with = "text")]
        a: &'a str,
        #[serde(serialize_with = "opt_text")]
        b: Option<String>,
    }

    #[derive(Serialize)]
    struct Plain<'a> {
        a: &'a str,
        b: Option<String>,
    }

    fn samples() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "plain text",
            "a longer text of more than sixteen bytes, with 'single quotes' and <xml/>",
            "quote \" inside",
            "back\\slash",
            "line\nbreak",
            "tab\tand\rreturn",
            "\u{7f} delete is not escaped",
            "ünïcödé and 中文 and 😀",
            "sixteen bytes!!\"",
            "exactly 16 bytes",
            "\u{1b}[31mred\u{1b}[0m",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // every byte below 0x80 at every place in a 33-byte string (both sides of a block)
        for b in 0u8..0x80 {
            for at in [0, 7, 31, 32] {
                let mut s = vec![b'x'; 33];
                s[at] = b;
                v.push(String::from_utf8(s).unwrap());
            }
        }
        v
    }

    #[test]
    fn needs_escape_is_true_exactly_for_what_serde_json_escapes() {
        for s in samples() {
            let escaped = serde_json::to_string(&s).unwrap();
            let verbatim = escaped == format!("\"{s}\"");
            assert_eq!(needs_escape(&s), !verbatim, "{s:?}");
        }
    }

    #[test]
    fn fields_written_raw_are_byte_identical_to_serde_json() {
        for s in samples() {
            for b in [None, Some(s.clone())] {
                let fast = Fast {
                    a: &s,
                    b: b.clone(),
                };
                let plain = Plain { a: &s, b };
                assert_eq!(
                    serde_json::to_string(&fast).unwrap(),
                    serde_json::to_string(&plain).unwrap()
                );
                assert_eq!(
                    serde_json::to_string_pretty(&fast).unwrap(),
                    serde_json::to_string_pretty(&plain).unwrap()
                );
                assert_eq!(
                    serde_json::to_value(&fast).unwrap(),
                    serde_json::to_value(&plain).unwrap()
                );
            }
        }
    }
}
