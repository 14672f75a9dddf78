//! Secrets in libvirt domain XML, and taking them out of what kvmtune writes for others to
//! read (support bundles, `--json` reports).
//!
//! libvirt shows these only to a caller asking for them (`VIR_DOMAIN_XML_SECURE`):
//!
//! - the `passwd` attribute of `<graphics>` (VNC, SPICE and RDP passwords);
//! - the text of `<cookie>` elements (`<disk><source><cookies>` of HTTP(S) disks: session
//!   cookies).
//!
//! Other secret material is referenced, not held (`<secret type='...' uuid='...'/>` in
//! `<auth>` and `<encryption>`): it stays.
//!
//! [`redact`] is a byte-preserving pass: every byte outside a secret value is kept, so the
//! XML still parses the same and a diff shows nothing but the secrets. It never fails: a
//! malformed document is redacted as far as its tags can be read, and a secret value cut
//! short by the end of the input is still replaced.

/// What replaces a secret value.
pub const REDACTED: &str = "***";

/// Whether `attr` of element `element` holds a secret.
pub fn is_secret_attr(element: &str, attr: &str) -> bool {
    element == "graphics" && attr == "passwd"
}

/// Whether the text of element `element` is a secret.
pub fn is_secret_text(element: &str) -> bool {
    element == "cookie"
}

/// Whether `xml` may hold a secret: only an element named `graphics` or `cookie` can (the
/// names [`is_secret_attr`] and [`is_secret_text`] know), so a text without `<graphics` or
/// `<cookie` is its own redaction.
pub fn may_hold_secret(xml: &str) -> bool {
    // the texts asked about are mostly single start tags: look after each `<`
    let b = xml.as_bytes();
    memchr::memchr_iter(b'<', b).any(|i| {
        let name = &b[i + 1..];
        name.starts_with(b"graphics") || name.starts_with(b"cookie")
    })
}

/// `xml` with every secret value replaced by [`REDACTED`] (an empty value stays empty),
/// byte for byte the same elsewhere.
pub fn redact(xml: &str) -> String {
    if !may_hold_secret(xml) {
        return xml.to_string();
    }
    redact_scan(xml)
}

/// [`redact`] by reading every tag.
fn redact_scan(xml: &str) -> String {
    let b = xml.as_bytes();
    let n = b.len();
    let mut out = String::with_capacity(n);
    // where the content of an open secret-text element starts in `out`
    let mut secret_text: Option<(String, usize)> = None;
    let mut i = 0;
    // everything from `copied` to `i` is yet to be copied verbatim
    let mut copied = 0;
    let find = |from: usize, pat: &str| xml[from..].find(pat).map(|k| from + k + pat.len());
    while i < n {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..];
        if rest.starts_with("<!--") {
            i = find(i + 4, "-->").unwrap_or(n);
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            i = find(i + 9, "]]>").unwrap_or(n);
            continue;
        }
        if rest.starts_with("<?") {
            i = find(i + 2, "?>").unwrap_or(n);
            continue;
        }
        if rest.starts_with("<!") {
            // DOCTYPE, with an internal subset in brackets
            let mut depth = 0usize;
            let mut j = i + 2;
            while j < n {
                match b[j] {
                    b'[' => depth += 1,
                    b']' => depth = depth.saturating_sub(1),
                    b'>' if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            i = (j + 1).min(n);
            continue;
        }
        if rest.starts_with("</") {
            let name_end = scan_name(b, i + 2);
            let name = &xml[i + 2..name_end];
            if let Some((open, start)) = secret_text.take() {
                if open == name {
                    out.push_str(&xml[copied..i]);
                    copied = i;
                    if !out[start..].trim().is_empty() {
                        out.truncate(start);
                        out.push_str(REDACTED);
                    }
                } else {
                    secret_text = Some((open, start));
                }
            }
            i = find(name_end, ">").unwrap_or(n);
            continue;
        }
        // a start tag
        let name_end = scan_name(b, i + 1);
        let name = &xml[i + 1..name_end];
        let mut j = name_end;
        let mut self_closing = false;
        loop {
            while j < n && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= n {
                break;
            }
            if b[j] == b'>' {
                j += 1;
                break;
            }
            if b[j] == b'/' {
                self_closing = true;
                j += 1;
                continue;
            }
            self_closing = false;
            let attr_end = scan_name(b, j);
            if attr_end == j {
                // not a name: skip the byte rather than loop
                j += 1;
                continue;
            }
            let attr = &xml[j..attr_end];
            j = attr_end;
            while j < n && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= n || b[j] != b'=' {
                continue;
            }
            j += 1;
            while j < n && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= n || (b[j] != b'\'' && b[j] != b'"') {
                continue;
            }
            let quote = b[j];
            let value_start = j + 1;
            let value_end = b[value_start..]
                .iter()
                .position(|&c| c == quote)
                .map_or(n, |k| value_start + k);
            if is_secret_attr(name, attr) && value_end > value_start {
                out.push_str(&xml[copied..value_start]);
                out.push_str(REDACTED);
                copied = value_end;
            }
            j = (value_end + 1).min(n);
        }
        if is_secret_text(name) && !self_closing {
            out.push_str(&xml[copied..j]);
            copied = j;
            secret_text = Some((name.to_string(), out.len()));
        }
        i = j;
    }
    out.push_str(&xml[copied..]);
    if let Some((_, start)) = secret_text
        && !out[start..].trim().is_empty()
    {
        // cut short inside a secret element
        out.truncate(start);
        out.push_str(REDACTED);
    }
    out
}

/// The end of an XML name starting at `from` (`from` itself when none).
fn scan_name(b: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < b.len()
        && !b[j].is_ascii_whitespace()
        && !matches!(b[j], b'>' | b'/' | b'=' | b'<' | b'\'' | b'"')
    {
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_may_hold_no_secret_is_its_own_redaction() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
        let mut texts: Vec<String> = ["libvirt-domains", "wild-domains"]
            .iter()
            .filter_map(|d| std::fs::read_dir(corpus.join(d)).ok())
            .flatten()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .collect();
        texts.extend(
            [
                PLAIN,
                "<graphics type='vnc' passwd='s'/>",
                "<graphics\npasswd='s'/>",
                "<cookie name='a'>b</cookie>",
                "<cookies><cookie name='a'>b",
                "<x:graphics passwd='s'/>",
                "< graphics passwd='s'/>",
                "<graphicsx passwd='s'/>",
                "passwd='s'",
            ]
            .map(str::to_string),
        );
        let mut secret = 0;
        for t in &texts {
            assert_eq!(redact(t), redact_scan(t), "{t}");
            if redact_scan(t) != *t {
                secret += 1;
                assert!(may_hold_secret(t), "{t}");
            }
        }
        // the comparison saw secrets taken out
        assert!(secret >= 3, "{secret}");
    }

    const PLAIN: &str = "<?xml version='1.0'?>\n<!-- a comment with passwd='x' -->\n\
<domain type='kvm'>\n  <name>vm</name>\n  <devices>\n    \
<graphics type='vnc' port='-1' autoport='yes'/>\n    \
<disk type='network'><source protocol='https' name='x'/></disk>\n    \
<description><![CDATA[<graphics passwd='not a tag'/>]]></description>\n  \
</devices>\n</domain>\n";

    #[test]
    fn a_domain_without_secrets_is_unchanged_byte_for_byte() {
        assert_eq!(redact(PLAIN), PLAIN);
        assert_eq!(redact(""), "");
        assert_eq!(redact("not xml <at all"), "not xml <at all");
    }

    #[test]
    fn vnc_spice_and_rdp_passwords_are_redacted_and_nothing_else() {
        let xml = "<domain>\n  <devices>\n    \
<graphics type='vnc' port='5900' passwd='vnc-s3cret' passwdValidTo='2030-01-01T00:00:00'>\n      \
<listen type='address' address='0.0.0.0'/>\n    </graphics>\n    \
<graphics type=\"spice\" autoport=\"yes\"  passwd = \"sp&amp;ice'pw\" connected='keep'/>\n    \
<graphics type='rdp' passwd='rdp&gt;pw' multiUser='yes'/>\n    \
<graphics type='vnc' passwd=''/>\n  </devices>\n</domain>\n";
        let want = "<domain>\n  <devices>\n    \
<graphics type='vnc' port='5900' passwd='***' passwdValidTo='2030-01-01T00:00:00'>\n      \
<listen type='address' address='0.0.0.0'/>\n    </graphics>\n    \
<graphics type=\"spice\" autoport=\"yes\"  passwd = \"***\" connected='keep'/>\n    \
<graphics type='rdp' passwd='***' multiUser='yes'/>\n    \
<graphics type='vnc' passwd=''/>\n  </devices>\n</domain>\n";
        let got = redact(xml);
        assert_eq!(got, want);
        for secret in ["vnc-s3cret", "sp&amp;ice", "rdp&gt;pw"] {
            assert!(!got.contains(secret), "{secret}");
        }
        // it still parses, with the passwords replaced
        let doc = crate::Document::parse(&got).unwrap();
        let devices = doc.child(doc.root(), "devices").unwrap();
        let pw: Vec<_> = doc
            .children(devices, "graphics")
            .map(|g| doc.attr(g, "passwd").unwrap_or("").to_string())
            .collect();
        assert_eq!(pw, ["***", "***", "***", ""]);
        assert_eq!(redact(&got), got, "redacting twice changes nothing more");
    }

    #[test]
    fn cookies_are_redacted() {
        let xml = "<disk type='network'><source protocol='https' name='/x.iso'>\
<cookies><cookie name='session'>abc123</cookie><cookie name='e'/>\
<cookie name='blank'> </cookie></cookies></source></disk>";
        let want = "<disk type='network'><source protocol='https' name='/x.iso'>\
<cookies><cookie name='session'>***</cookie><cookie name='e'/>\
<cookie name='blank'> </cookie></cookies></source></disk>";
        assert_eq!(redact(xml), want);
    }

    #[test]
    fn a_secret_cut_short_is_still_redacted() {
        assert_eq!(
            redact("<domain><graphics type='vnc' passwd='abc"),
            "<domain><graphics type='vnc' passwd='***"
        );
        assert_eq!(redact("<cookie name='a'>abc"), "<cookie name='a'>***");
        // other elements' passwd attributes are not libvirt secrets
        let other = "<user passwd='kept'/>";
        assert_eq!(redact(other), other);
    }
}
