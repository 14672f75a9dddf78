//! kvmtune's report: one self-contained HTML page of a host (or a fleet) from data computed
//! elsewhere: the host and its topology with the domains on it, host checks, audit findings
//! with their fixes as diffs, the placement plan before and after, live statistics as
//! charts, diagnoses.
//!
//! The page fetches nothing: CSS and pictures (SVG) are inline and a Content-Security-Policy
//! forbids any fetch; it needs no JavaScript (there is none) and prints. Every string that
//! comes from a host or a domain is escaped ([`esc`]). Colour never carries meaning alone:
//! severities are words with a symbol, chart series differ by dash pattern, cells carry
//! numbers and words, and every picture has a text alternative.

pub mod model;
pub mod svg;
pub mod synth;

mod html;

pub use html::{CSP, SECTIONS, render};
pub use model::*;

/// Text escaped for HTML and XML (element content and quoted attribute values alike): no
/// name or value of a host or domain can open a tag, an attribute or an entity.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // control characters are not allowed in XML 1.0: shown as a replacement
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
