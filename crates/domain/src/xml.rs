//! A lossless XML document: every byte of the input is kept, so serializing an unedited
//! document gives back the input exactly, and an edit changes only the element it touches.
//!
//! Nodes live in an arena and are addressed by [`NodeId`]. Each element keeps the verbatim
//! text of its start and end tags until an edit touches them; text, comments, processing
//! instructions, CDATA, entity references and the prolog are kept verbatim always. Unknown
//! elements, namespaced elements (`qemu:commandline`) and element order survive because
//! nothing is ever re-derived from a schema.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use std::fmt::Write as _;

/// Index of a node in its [`Document`]. Ids stay valid across edits (removed nodes are only
/// detached).
pub type NodeId = usize;

/// Malformed XML: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {what}")]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub name: String,
    /// The unescaped value.
    pub value: String,
}

#[derive(Debug, Clone)]
struct Element {
    name: String,
    attrs: Vec<Attr>,
    children: Vec<NodeId>,
    /// Verbatim start tag (`<disk type='file'>` or `<boot dev='hd'/>`); `None` once edited.
    start_raw: Option<String>,
    /// Verbatim end tag; `None` when the element was written `<x/>` or is new.
    end_raw: Option<String>,
    /// The quote character new or edited attributes are written with.
    quote: char,
}

#[derive(Debug, Clone)]
enum Kind {
    Element(Element),
    /// Character data, verbatim (escaped as in the source).
    Text(String),
    /// An entity or character reference inside text, verbatim (`&amp;`).
    Ref(String),
    /// `<![CDATA[...]]>`, verbatim.
    CData(String),
    /// Comment, processing instruction, XML declaration or DOCTYPE, verbatim.
    Other(String),
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    parent: Option<NodeId>,
    /// Byte offset in the parsed input; `usize::MAX` for nodes added by edits.
    pos: usize,
}

/// A parsed XML document.
#[derive(Debug, Clone)]
pub struct Document {
    nodes: Vec<Node>,
    /// Top-level nodes in order (prolog, the root element, trailing comments and space).
    top: Vec<NodeId>,
    root: NodeId,
    /// Byte offsets where lines start, for line numbers of elements.
    line_starts: Vec<usize>,
    /// One level of indentation as used by the document (two spaces when unknown).
    indent_unit: String,
}

fn line_col(line_starts: &[usize], src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let line = line_starts.partition_point(|&s| s <= pos).max(1);
    let start = line_starts.get(line - 1).copied().unwrap_or(0);
    let column = src.get(start..pos).map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

fn line_starts(src: &str) -> Vec<usize> {
    let mut v = Vec::with_capacity(src.len() / 32 + 1);
    v.push(0);
    v.extend(
        src.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    v
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "name is not UTF-8".to_string())
}

fn valid_reference(r: &str) -> bool {
    match r {
        "lt" | "gt" | "amp" | "apos" | "quot" => true,
        _ => {
            let n = if let Some(hex) = r.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = r.strip_prefix('#') {
                dec.parse::<u32>().ok()
            } else {
                None
            };
            n.and_then(char::from_u32).is_some_and(|c| c != '\0')
        }
    }
}

impl Document {
    /// Parse `src`. Errors carry the line and column of the fault.
    pub fn parse(full: &str) -> Result<Document, XmlError> {
        // quick-xml skips a byte-order mark without counting it in its positions: keep it
        // as a verbatim top-level node and parse the rest
        let bom = if full.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        let src = &full[bom..];
        let line_starts = line_starts(src);
        let fail = |pos: usize, what: String| {
            let (line, column) = line_col(&line_starts, src, pos);
            XmlError { line, column, what }
        };
        let mut reader = Reader::from_str(src);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        let mut nodes: Vec<Node> = Vec::with_capacity(src.len() / 24);
        let mut top = Vec::new();
        if bom > 0 {
            nodes.push(Node {
                kind: Kind::Other('\u{feff}'.to_string()),
                parent: None,
                pos: 0,
            });
            top.push(0);
        }
        let mut stack: Vec<NodeId> = Vec::new();
        let mut root = None;
        loop {
            let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let event = match reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(before);
                    return Err(fail(at, e.to_string()));
                }
            };
            let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let raw = src.get(before..after).unwrap_or_default();
            let (kind, opens) = match event {
                Event::Start(e) => (element(&e, raw).map_err(|w| fail(before, w))?, true),
                Event::Empty(e) => (element(&e, raw).map_err(|w| fail(before, w))?, false),
                Event::End(_) => {
                    let Some(id) = stack.pop() else {
                        return Err(fail(before, format!("end tag {raw} without a start tag")));
                    };
                    if let Kind::Element(el) = &mut nodes[id].kind {
                        el.end_raw = Some(raw.to_string());
                    }
                    continue;
                }
                Event::Text(_) => {
                    if stack.is_empty() && !raw.trim().is_empty() {
                        return Err(fail(before, "text outside the root element".into()));
                    }
                    (Kind::Text(raw.to_string()), false)
                }
                Event::GeneralRef(r) => {
                    let name = utf8(&r).map_err(|w| fail(before, w))?;
                    if !valid_reference(name) {
                        return Err(fail(before, format!("unknown entity reference {raw}")));
                    }
                    if stack.is_empty() {
                        return Err(fail(before, "text outside the root element".into()));
                    }
                    (Kind::Ref(raw.to_string()), false)
                }
                Event::CData(_) => {
                    if stack.is_empty() {
                        return Err(fail(before, "CDATA outside the root element".into()));
                    }
                    (Kind::CData(raw.to_string()), false)
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {
                    (Kind::Other(raw.to_string()), false)
                }
                Event::Eof => break,
            };
            let id = nodes.len();
            let is_element = matches!(kind, Kind::Element(_));
            nodes.push(Node {
                kind,
                parent: stack.last().copied(),
                pos: before,
            });
            match stack.last() {
                Some(&p) => {
                    if let Kind::Element(el) = &mut nodes[p].kind {
                        el.children.push(id);
                    }
                }
                None => {
                    if is_element {
                        if root.is_some() {
                            return Err(fail(before, "a second root element".into()));
                        }
                        root = Some(id);
                    }
                    top.push(id);
                }
            }
            if opens {
                stack.push(id);
            }
        }
        if let Some(&open) = stack.last() {
            let name = match &nodes[open].kind {
                Kind::Element(e) => e.name.clone(),
                _ => String::new(),
            };
            let (line, _) = line_col(&line_starts, src, nodes[open].pos);
            return Err(fail(
                src.len(),
                format!("end of input inside <{name}> opened at line {line}"),
            ));
        }
        let Some(root) = root else {
            return Err(fail(src.len(), "no root element".into()));
        };
        let mut doc = Document {
            nodes,
            top,
            root,
            line_starts,
            indent_unit: String::new(),
        };
        doc.indent_unit = doc.guess_indent_unit();
        Ok(doc)
    }

    fn guess_indent_unit(&self) -> String {
        let root = self.root;
        for &c in self.el(root).map(|e| e.children.as_slice()).unwrap_or(&[]) {
            if let Kind::Text(t) = &self.nodes[c].kind
                && let Some(i) = t.rfind('\n')
            {
                let ind = &t[i + 1..];
                if !ind.is_empty() && ind.chars().all(|c| c == ' ' || c == '\t') {
                    return ind.to_string();
                }
            }
        }
        "  ".to_string()
    }

    fn el(&self, id: NodeId) -> Option<&Element> {
        match &self.nodes.get(id)?.kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    fn el_mut(&mut self, id: NodeId) -> Option<&mut Element> {
        match &mut self.nodes.get_mut(id)?.kind {
            Kind::Element(e) => Some(e),
            _ => None,
        }
    }

    /// How many nodes the arena holds (grows with every insertion).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The root element.
    pub fn root(&self) -> NodeId {
        self.root
    }

    pub fn is_element(&self, id: NodeId) -> bool {
        self.el(id).is_some()
    }

    /// The element's qualified name (`disk`, `qemu:commandline`); "" for other nodes.
    pub fn name(&self, id: NodeId) -> &str {
        self.el(id).map(|e| e.name.as_str()).unwrap_or("")
    }

    /// The unescaped value of an attribute.
    pub fn attr(&self, id: NodeId, name: &str) -> Option<&str> {
        self.el(id)?
            .attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn attrs(&self, id: NodeId) -> &[Attr] {
        self.el(id).map(|e| e.attrs.as_slice()).unwrap_or(&[])
    }

    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.nodes.get(id)?.parent
    }

    /// Element children in document order.
    pub fn elements(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.el(id)
            .map(|e| e.children.as_slice())
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|&c| matches!(self.nodes[c].kind, Kind::Element(_)))
    }

    /// Element children with this name.
    pub fn children<'a>(&'a self, id: NodeId, name: &'a str) -> impl Iterator<Item = NodeId> + 'a {
        self.elements(id).filter(move |&c| self.name(c) == name)
    }

    /// The first element child with this name.
    pub fn child(&self, id: NodeId, name: &str) -> Option<NodeId> {
        self.elements(id).find(|&c| self.name(c) == name)
    }

    /// Follow a chain of child names (`["devices", "memballoon"]`).
    pub fn descend(&self, id: NodeId, names: &[&str]) -> Option<NodeId> {
        names.iter().try_fold(id, |at, n| self.child(at, n))
    }

    /// The unescaped character data directly inside the element, untrimmed.
    pub fn text(&self, id: NodeId) -> String {
        let mut out = String::new();
        for &c in self.el(id).map(|e| e.children.as_slice()).unwrap_or(&[]) {
            match &self.nodes[c].kind {
                Kind::Text(t) => out.push_str(&unescape_lossy(t)),
                Kind::Ref(r) => out.push_str(&unescape_lossy(r)),
                Kind::CData(c) => {
                    out.push_str(c.trim_start_matches("<![CDATA[").trim_end_matches("]]>"))
                }
                _ => {}
            }
        }
        out
    }

    /// A canonical form for comparing two documents by meaning: elements with their
    /// attributes sorted by name, text trimmed, comments, processing instructions and
    /// whitespace between elements dropped. Two libvirt definitions with the same canonical
    /// form define the same domain.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.canonical_into(self.root(), &mut out);
        out
    }

    fn canonical_into(&self, id: NodeId, out: &mut String) {
        out.push('<');
        out.push_str(self.name(id));
        let mut attrs: Vec<&Attr> = self.attrs(id).iter().collect();
        attrs.sort_by(|a, b| a.name.cmp(&b.name));
        for a in attrs {
            let _ = write!(out, " {}={:?}", a.name, a.value);
        }
        out.push('>');
        let text = self.text(id);
        let text = text.trim();
        if !text.is_empty() {
            let _ = write!(out, "{text:?}");
        }
        let kids: Vec<NodeId> = self.elements(id).collect();
        for k in kids {
            self.canonical_into(k, out);
        }
        out.push_str("</>");
    }

    /// The 1-based line the node starts on in the parsed input; `None` for added nodes.
    pub fn line(&self, id: NodeId) -> Option<usize> {
        let pos = self.nodes.get(id)?.pos;
        if pos == usize::MAX {
            return None;
        }
        Some(self.line_starts.partition_point(|&s| s <= pos).max(1))
    }

    /// A path naming the element: `/domain/devices/disk[2]/driver`. An index appears only
    /// where the parent has several children of that name.
    pub fn path(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut at = Some(id);
        while let Some(n) = at {
            let name = self.name(n);
            let part = match self.parent(n) {
                Some(p) => {
                    let same: Vec<NodeId> = self.children(p, name).collect();
                    if same.len() > 1 {
                        let i = same.iter().position(|&s| s == n).unwrap_or(0) + 1;
                        format!("{name}[{i}]")
                    } else {
                        name.to_string()
                    }
                }
                None => name.to_string(),
            };
            parts.push(part);
            at = self.parent(n);
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The element's start tag as it is now (verbatim when unedited).
    pub fn start_tag(&self, id: NodeId) -> String {
        match self.el(id) {
            Some(e) => match &e.start_raw {
                Some(raw) => raw.clone(),
                None => {
                    let mut s = String::new();
                    write_start(&mut s, e, e.children.is_empty());
                    s
                }
            },
            None => String::new(),
        }
    }

    /// The document as text. An unedited document gives back its input byte for byte.
    pub fn serialize(&self) -> String {
        let mut out = String::with_capacity(self.nodes.len() * 24);
        for &t in &self.top {
            self.write(t, &mut out);
        }
        out
    }

    fn write(&self, id: NodeId, out: &mut String) {
        match &self.nodes[id].kind {
            Kind::Text(s) | Kind::Ref(s) | Kind::CData(s) | Kind::Other(s) => out.push_str(s),
            Kind::Element(e) => {
                let empty = e.children.is_empty();
                match &e.start_raw {
                    Some(raw) => out.push_str(raw),
                    None => write_start(out, e, empty),
                }
                for &c in &e.children {
                    self.write(c, out);
                }
                match (&e.end_raw, &e.start_raw) {
                    (Some(end), _) => out.push_str(end),
                    (None, Some(_)) => {} // written `<x/>` and unchanged
                    (None, None) if empty => {}
                    (None, None) => {
                        out.push_str("</");
                        out.push_str(&e.name);
                        out.push('>');
                    }
                }
            }
        }
    }

    // ---- edits -------------------------------------------------------------------------

    /// Set an attribute. Setting the value it already has changes nothing. Returns whether
    /// the document changed.
    pub fn set_attr(&mut self, id: NodeId, name: &str, value: &str) -> bool {
        let Some(e) = self.el_mut(id) else {
            return false;
        };
        match e.attrs.iter_mut().find(|a| a.name == name) {
            Some(a) if a.value == value => return false,
            Some(a) => a.value = value.to_string(),
            None => e.attrs.push(Attr {
                name: name.to_string(),
                value: value.to_string(),
            }),
        }
        e.start_raw = None;
        true
    }

    /// Remove an attribute; returns whether it was there.
    pub fn remove_attr(&mut self, id: NodeId, name: &str) -> bool {
        let Some(e) = self.el_mut(id) else {
            return false;
        };
        let before = e.attrs.len();
        e.attrs.retain(|a| a.name != name);
        if e.attrs.len() == before {
            return false;
        }
        e.start_raw = None;
        true
    }

    /// Replace the element's content with text (escaped as needed).
    pub fn set_text(&mut self, id: NodeId, text: &str) -> bool {
        if !self.is_element(id) || (self.text(id) == text && self.elements(id).next().is_none()) {
            return false;
        }
        let t = self.push_node(Kind::Text(escape_text(text)), Some(id));
        if let Some(e) = self.el_mut(id) {
            let was_empty = e.end_raw.is_none();
            e.children = vec![t];
            if was_empty {
                e.start_raw = None;
            }
        }
        true
    }

    fn push_node(&mut self, kind: Kind, parent: Option<NodeId>) -> NodeId {
        self.nodes.push(Node {
            kind,
            parent,
            pos: usize::MAX,
        });
        self.nodes.len() - 1
    }

    /// The whitespace that indents `id` on its line ("" when not on a line of its own).
    fn indent_of(&self, id: NodeId) -> Option<String> {
        let siblings = match self.parent(id) {
            Some(p) => &self.el(p)?.children,
            None => &self.top,
        };
        let i = siblings.iter().position(|&s| s == id)?;
        if i == 0 {
            return if self.parent(id).is_none() {
                Some(String::new())
            } else {
                None
            };
        }
        match &self.nodes[siblings[i - 1]].kind {
            Kind::Text(t) => t.rfind('\n').map(|n| t[n + 1..].to_string()),
            _ => None,
        }
    }

    /// Add a new empty element as the last element child of `parent` (or at `index` among
    /// the element children), indented like its siblings.
    pub fn insert_element(
        &mut self,
        parent: NodeId,
        index: Option<usize>,
        name: &str,
        attrs: &[(&str, &str)],
    ) -> Option<NodeId> {
        let quote = self.el(parent)?.quote;
        let element = Element {
            name: name.to_string(),
            attrs: attrs
                .iter()
                .map(|(n, v)| Attr {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            children: Vec::new(),
            start_raw: None,
            end_raw: None,
            quote,
        };
        let new = self.push_node(Kind::Element(element), Some(parent));
        let elems: Vec<NodeId> = self.elements(parent).collect();
        let parent_indent = self.indent_of(parent);
        let child_indent = match elems.first() {
            Some(&first) => self.indent_of(first),
            None => parent_indent
                .as_ref()
                .map(|p| format!("{p}{}", self.indent_unit)),
        };
        let is_ws = |d: &Document, n: NodeId| matches!(&d.nodes[n].kind, Kind::Text(t) if t.trim().is_empty());
        let kids = self.el(parent)?.children.clone();
        let trailing_ws = kids.last().is_some_and(|&l| is_ws(self, l));
        // Position in the raw children: before the chosen element sibling (and the
        // whitespace indenting it), or at the end before the whitespace indenting the end tag.
        let pos = match index {
            Some(i) if i < elems.len() => {
                let at = kids.iter().position(|&c| c == elems[i]).unwrap_or(0);
                if at > 0 && is_ws(self, kids[at - 1]) {
                    at - 1
                } else {
                    at
                }
            }
            _ if trailing_ws => kids.len() - 1,
            _ => kids.len(),
        };
        let ws_node =
            child_indent.map(|i| self.push_node(Kind::Text(format!("\n{i}")), Some(parent)));
        let closing_ws = match parent_indent {
            Some(p) if elems.is_empty() && !trailing_ws => {
                Some(self.push_node(Kind::Text(format!("\n{p}")), Some(parent)))
            }
            _ => None,
        };
        let e = self.el_mut(parent)?;
        if e.end_raw.is_none() {
            e.start_raw = None; // `<x/>` becomes `<x>...</x>`
        }
        let mut ins = Vec::new();
        ins.extend(ws_node);
        ins.push(new);
        ins.extend(closing_ws);
        e.children.splice(pos..pos, ins);
        Some(new)
    }

    /// Remove an element (and the line it was on). Returns whether it was attached.
    pub fn remove(&mut self, id: NodeId) -> bool {
        let Some(parent) = self.parent(id) else {
            return false;
        };
        let ws_before: Option<NodeId> = {
            let Some(e) = self.el(parent) else {
                return false;
            };
            let Some(i) = e.children.iter().position(|&c| c == id) else {
                return false;
            };
            (i > 0)
                .then(|| e.children[i - 1])
                .filter(|&p| matches!(&self.nodes[p].kind, Kind::Text(t) if t.trim().is_empty()))
        };
        let Some(e) = self.el_mut(parent) else {
            return false;
        };
        // An emptied element keeps its end tag and closing whitespace: `<x>\n</x>` is valid.
        e.children.retain(|&c| c != id && Some(c) != ws_before);
        self.nodes[id].parent = None;
        true
    }
}

fn element(e: &BytesStart<'_>, raw: &str) -> Result<Kind, String> {
    let name = utf8(e.name().as_ref())?.to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| format!("in <{name}>: {err}"))?;
        let key = utf8(a.key.as_ref())?.to_string();
        let value = a
            .unescape_value()
            .map_err(|err| format!("in <{name}> attribute {key}: {err}"))?
            .into_owned();
        attrs.push(Attr { name: key, value });
    }
    let quote = raw
        .find(['\'', '"'])
        .and_then(|i| raw[i..].chars().next())
        .unwrap_or('\'');
    Ok(Kind::Element(Element {
        name,
        attrs,
        children: Vec::new(),
        start_raw: Some(raw.to_string()),
        end_raw: None,
        quote,
    }))
}

fn write_start(out: &mut String, e: &Element, empty: bool) {
    out.push('<');
    out.push_str(&e.name);
    for a in &e.attrs {
        let _ = write!(
            out,
            " {}={q}{}{q}",
            a.name,
            escape_attr(&a.value, e.quote),
            q = e.quote
        );
    }
    out.push_str(if empty { "/>" } else { ">" });
}

fn escape_attr(v: &str, quote: char) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '\'' if quote == '\'' => s.push_str("&apos;"),
            '"' if quote == '"' => s.push_str("&quot;"),
            '\n' => s.push_str("&#10;"),
            '\t' => s.push_str("&#9;"),
            '\r' => s.push_str("&#13;"),
            c => s.push(c),
        }
    }
    s
}

fn escape_text(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape_lossy(raw: &str) -> String {
    quick_xml::escape::unescape(raw)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "<?xml version='1.0'?>\n<!-- top -->\n<domain type='kvm' xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\">\n  <name>a&amp;b</name>\n  <devices>\n    <disk type='file'>\n      <driver name='qemu' cache='writethrough'/>\n    </disk>\n    <!-- keep me -->\n    <input type='tablet' bus='usb'/>\n  </devices>\n  <qemu:commandline>\n    <qemu:arg value='-foo'/>\n  </qemu:commandline>\n</domain>\n";

    #[test]
    fn unedited_round_trip_is_byte_identical() {
        let d = Document::parse(SAMPLE).unwrap();
        assert_eq!(d.serialize(), SAMPLE);
        assert_eq!(d.text(d.child(d.root(), "name").unwrap()), "a&b");
        let drv = d.descend(d.root(), &["devices", "disk", "driver"]).unwrap();
        assert_eq!(d.attr(drv, "cache"), Some("writethrough"));
        assert_eq!(d.line(drv), Some(7));
        assert_eq!(d.path(drv), "/domain/devices/disk/driver");
    }

    #[test]
    fn set_attr_touches_only_that_tag() {
        let mut d = Document::parse(SAMPLE).unwrap();
        let drv = d.descend(d.root(), &["devices", "disk", "driver"]).unwrap();
        assert!(d.set_attr(drv, "cache", "none"));
        assert!(d.set_attr(drv, "io", "native"));
        assert!(!d.set_attr(drv, "io", "native"));
        let out = d.serialize();
        assert_eq!(
            out,
            SAMPLE.replace(
                "<driver name='qemu' cache='writethrough'/>",
                "<driver name='qemu' cache='none' io='native'/>"
            )
        );
    }

    #[test]
    fn remove_takes_its_line_and_insert_indents_like_siblings() {
        let mut d = Document::parse(SAMPLE).unwrap();
        let devices = d.child(d.root(), "devices").unwrap();
        let input = d.child(devices, "input").unwrap();
        assert!(d.remove(input));
        d.insert_element(devices, None, "memballoon", &[("model", "none")])
            .unwrap();
        let out = d.serialize();
        assert!(
            out.contains("<!-- keep me -->\n    <memballoon model='none'/>\n  </devices>"),
            "{out}"
        );
        assert!(!out.contains("tablet"));
        // a new child under a self-closing element opens it up
        let drv = d.descend(d.root(), &["devices", "disk", "driver"]).unwrap();
        d.insert_element(drv, None, "x", &[]).unwrap();
        let out = d.serialize();
        assert!(
            out.contains(
                "<driver name='qemu' cache='writethrough'>\n        <x/>\n      </driver>"
            ),
            "{out}"
        );
        Document::parse(&out).unwrap();
    }

    #[test]
    fn a_byte_order_mark_is_kept() {
        let src = "\u{feff}<domain>\n  <name>a</name>\n</domain>\n";
        let d = Document::parse(src).unwrap();
        assert_eq!(d.serialize(), src);
        assert_eq!(d.text(d.child(d.root(), "name").unwrap()), "a");
    }

    #[test]
    fn malformed_input_gives_line_and_column() {
        for (bad, line) in [
            ("<domain>\n  <name>x</nam>\n</domain>", 2),
            ("<domain>\n  <a b='1' b='2'/>\n</domain>", 2),
            ("<domain>\n  <name>x", 2),
            ("", 1),
            ("<a/><b/>", 1),
            ("<a>&bogus;</a>", 1),
            ("junk<a/>", 1),
        ] {
            let e = Document::parse(bad).unwrap_err();
            assert_eq!(e.line, line, "{bad:?}: {e}");
        }
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_layout_attribute_order_and_comments() {
        let a = Document::parse("<d a='1' b=\"2\">\n  <!-- c -->\n  <x> t </x>\n</d>").unwrap();
        let b = Document::parse("<d b='2' a='1'><x>t</x></d>").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        let c = Document::parse("<d b='2' a='1'><x>u</x></d>").unwrap();
        assert_ne!(a.canonical(), c.canonical());
        let e = Document::parse("<d b='2' a='1'><x>t</x><y/></d>").unwrap();
        assert_ne!(b.canonical(), e.canonical());
    }
}
