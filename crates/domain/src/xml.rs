//! A lossless XML document: every byte of the input is kept, so serializing an unedited
//! document gives back the input exactly, and an edit changes only the element it touches.
//!
//! Nodes live in an arena and are addressed by [`NodeId`]. Each element keeps the verbatim
//! text of its start and end tags until an edit touches them; text, comments, processing
//! instructions, CDATA, entity references and the prolog are kept verbatim always. Unknown
//! elements, namespaced elements (`qemu:commandline`) and element order survive because
//! nothing is ever re-derived from a schema.
//!
//! The document keeps its source text; names, verbatim tags, text and attribute values that
//! need no unescaping are byte ranges of it, so parsing allocates nothing per node. Only
//! edited or new content and unescaped attribute values own their text. Attributes and the
//! child lists of unedited elements live in two shared arenas; an edit gives the element it
//! touches a list of its own.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The deepest element nesting [`Document::parse`] accepts (libvirt's deepest documents
/// nest about 8 levels). Deeper input is refused with an error naming the limit, so no
/// walk over a document can be driven deeper than this (plus what edits add).
pub const MAX_DEPTH: usize = 256;
/// The most attributes one element may have (libvirt's have a handful): looking for a
/// repeated name is quadratic in them, so a hostile tag with 100,000 attributes would take
/// many seconds; it is refused instead.
pub const MAX_ATTRS: usize = 256;

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

/// A piece of text: a byte range of the document's source, or text of its own. Plain
/// data (no drop glue), so nodes and attributes are too: a document is dropped with a few
/// frees, not a walk over its nodes.
#[derive(Debug, Clone, Copy)]
enum Str {
    /// Bytes `start..end` of the source (which is shorter than 4 GiB).
    Src(u32, u32),
    /// Text not in the source as it stands (edited, new or unescaped): an index into the
    /// document's owned texts.
    Own(usize),
}

/// Keep `text` among `owned` (a document's own texts): its [`Str`].
fn own(owned: &mut Vec<Box<str>>, text: &str) -> Str {
    owned.push(text.into());
    Str::Own(owned.len() - 1)
}

/// Bytes `start..end` of the source: a verbatim tag.
#[derive(Debug, Clone, Copy)]
struct Span(u32, u32);

impl From<Span> for Str {
    fn from(s: Span) -> Str {
        Str::Src(s.0, s.1)
    }
}

/// No byte offset: a node added by an edit.
const NO_POS: u32 = u32::MAX;

/// No parent: a top-level or detached node.
const NO_PARENT: usize = usize::MAX;

#[derive(Debug, Clone, Copy)]
struct Attr {
    name: Str,
    /// The unescaped value.
    value: Str,
}

/// A list owned by an element once edited (an index into the document's own lists);
/// before that a range of a shared arena.
#[derive(Debug, Clone, Copy)]
enum List {
    Shared(u32, u32),
    Own(usize),
}

impl List {
    fn get<'a, T>(self, arena: &'a [T], own: &'a [Vec<T>]) -> &'a [T] {
        match self {
            List::Shared(a, b) => arena.get(a as usize..b as usize).unwrap_or(&[]),
            List::Own(i) => own.get(i).map_or(&[], Vec::as_slice),
        }
    }
}

/// `list` kept among `own` (a document's own lists) for an element whose list was `old`:
/// in `old`'s place when that is one of `own`, so the list it replaces is freed.
fn own_list<T>(own: &mut Vec<Vec<T>>, old: List, list: Vec<T>) -> List {
    if let List::Own(i) = old
        && let Some(slot) = own.get_mut(i)
    {
        *slot = list;
        return old;
    }
    own.push(list);
    List::Own(own.len() - 1)
}

/// Append `n` in decimal (without the formatting machinery: paths are built often).
fn push_decimal(out: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// `n` as a shared arena's bound: the arenas hold fewer entries than the source has bytes,
/// which is shorter than 4 GiB ([`fits_offsets`]).
fn bound(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Copy)]
struct Element {
    name: Str,
    attrs: List,
    children: List,
    /// Verbatim start tag (`<disk type='file'>` or `<boot dev='hd'/>`); `None` once edited.
    start_raw: Option<Span>,
    /// Verbatim end tag; `None` when the element was written `<x/>` or is new.
    end_raw: Option<Span>,
    /// The quote character new or edited attributes are written with: the first one of the
    /// start tag's attributes, `'` when it has none.
    quote: char,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Element(Element),
    /// Character data, verbatim (escaped as in the source).
    Text(Str),
    /// An entity or character reference inside text, verbatim (`&amp;`).
    Ref(Str),
    /// `<![CDATA[...]]>`, verbatim.
    CData(Str),
    /// Comment, processing instruction, XML declaration or DOCTYPE, verbatim.
    Other(Str),
}

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    /// The parent's id, or [`NO_PARENT`].
    parent: usize,
    /// Byte offset in the parsed input; [`NO_POS`] for nodes added by edits.
    pos: u32,
}

/// A parsed XML document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The parsed input (without a byte-order mark); [`Str::Src`] ranges point into it.
    src: Box<str>,
    nodes: Vec<Node>,
    /// The attributes of unedited elements, each element's a contiguous range.
    attr_arena: Vec<Attr>,
    /// The children of unedited elements, each element's a contiguous range.
    kid_arena: Vec<NodeId>,
    /// Texts of the document's own ([`Str::Own`]): unescaped attribute values, edits.
    owned: Vec<Box<str>>,
    /// Attribute lists of edited elements ([`List::Own`]).
    own_attrs: Vec<Vec<Attr>>,
    /// Child lists of edited elements ([`List::Own`]).
    own_kids: Vec<Vec<NodeId>>,
    /// Top-level nodes in order (prolog, the root element, trailing comments and space).
    top: Vec<NodeId>,
    root: NodeId,
    /// Byte offsets where lines start, for line numbers of elements; computed on the first
    /// [`Document::line`].
    line_starts: std::sync::OnceLock<Vec<usize>>,
    /// One level of indentation as used by the document (`"  "`, `"\t"`); `None` when no
    /// element sits on a line of its own under a parent on a line of its own (a document
    /// written on one line): new elements then get no line breaks either.
    indent_unit: Option<String>,
    /// The line end the document uses (`"\r\n"` when its first line ends so).
    newline: &'static str,
    /// [`Document::sibling_ranks`], computed on first use and dropped by every edit that
    /// adds or removes nodes.
    ranks: std::sync::OnceLock<Vec<(usize, usize)>>,
}

/// Whether an input of `len` bytes can be parsed: byte offsets are kept in 32 bits, with
/// `u32::MAX` free for "none".
fn fits_offsets(len: usize) -> Result<(), XmlError> {
    if len >= u32::MAX as usize {
        return Err(XmlError {
            line: 1,
            column: 1,
            what: "input of 4 GiB or more".into(),
        });
    }
    Ok(())
}

/// The 1-based line and column (in characters) of byte `pos` of `src`.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let head = &src.as_bytes()[..pos];
    let line = memchr::memchr_iter(b'\n', head).count() + 1;
    let start = memchr::memrchr(b'\n', head).map_or(0, |i| i + 1);
    let column = src.get(start..pos).map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// How many times `byte` occurs in `bytes` (counted in chunks small enough for byte-wide
/// counters, which the compiler vectorizes).
fn count_byte(bytes: &[u8], byte: u8) -> usize {
    bytes
        .chunks(255)
        .map(|c| usize::from(c.iter().map(|&b| u8::from(b == byte)).sum::<u8>()))
        .sum()
}

fn line_starts(src: &str) -> Vec<usize> {
    let mut v = Vec::with_capacity(src.len() / 32 + 1);
    v.push(0);
    v.extend(memchr::memchr_iter(b'\n', src.as_bytes()).map(|i| i + 1));
    v
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "name is not UTF-8".to_string())
}

/// `part` as a range of `src`, when it is a slice of `src` on character boundaries.
fn span_in(src: &str, part: &[u8]) -> Option<Str> {
    let start = part.as_ptr().addr().checked_sub(src.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    if end <= src.len() && src.is_char_boundary(start) && src.is_char_boundary(end) {
        Some(Str::Src(
            u32::try_from(start).ok()?,
            u32::try_from(end).ok()?,
        ))
    } else {
        None
    }
}

/// A name (of an element or attribute) from the source, as a range when it is one.
fn name_str(src: &str, owned: &mut Vec<Box<str>>, bytes: &[u8]) -> Result<Str, String> {
    match span_in(src, bytes) {
        Some(s) => Ok(s),
        None => utf8(bytes).map(|t| own(owned, t)),
    }
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
        Document::parse_text(Cow::Borrowed(full))
    }

    /// [`Document::parse`] of a text the document may keep as it is (no copy of it).
    pub fn parse_owned(full: String) -> Result<Document, XmlError> {
        Document::parse_text(Cow::Owned(full))
    }

    fn parse_text(full: Cow<'_, str>) -> Result<Document, XmlError> {
        // quick-xml skips a byte-order mark without counting it in its positions: keep it
        // as a verbatim top-level node and parse the rest
        let bom = if full.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        let src = &full[bom..];
        fits_offsets(src.len())?;
        let fail = |pos: usize, what: String| {
            let (line, column) = line_col(src, pos);
            XmlError { line, column, what }
        };
        let mut reader = Reader::from_str(src);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        // every node but a text one starts with `<`, and text nodes sit between them: room
        // for all, so the arenas are not moved while they grow
        let tags = count_byte(src.as_bytes(), b'<');
        let mut nodes: Vec<Node> = Vec::with_capacity(tags.saturating_mul(2).saturating_add(1));
        let mut attr_arena: Vec<Attr> = Vec::with_capacity(tags);
        let mut kid_arena: Vec<NodeId> = Vec::with_capacity(tags.saturating_mul(2));
        let mut top = Vec::new();
        let mut owned: Vec<Box<str>> = Vec::new();
        if bom > 0 {
            nodes.push(Node {
                kind: Kind::Other(own(&mut owned, "\u{feff}")),
                parent: NO_PARENT,
                pos: 0,
            });
            top.push(0);
        }
        let mut stack: Vec<NodeId> = Vec::new();
        // per open element (by depth): its children so far; they move to `kid_arena` when
        // it closes, so the vectors are reused from element to element
        let mut pending: Vec<Vec<NodeId>> = Vec::new();
        // per open element: its indentation (bytes of blanks between a line start and the
        // tag) when the tag starts a line
        let mut indents: Vec<Option<usize>> = Vec::new();
        let mut indent_unit: Option<String> = None;
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
            let span = match (u32::try_from(before), u32::try_from(after)) {
                (Ok(a), Ok(b)) if src.get(before..after).is_some() => Span(a, b),
                _ => Span(0, 0),
            };
            if matches!(event, Event::Start(_) | Event::Empty(_)) && stack.len() >= MAX_DEPTH {
                return Err(fail(
                    before,
                    format!("elements nested deeper than {MAX_DEPTH} levels"),
                ));
            }
            let mut own_indent = None;
            if let Event::Start(_) | Event::Empty(_) = event {
                own_indent = indent_at(src, before);
                if indent_unit.is_none()
                    && let (Some(Some(p)), Some(me)) = (indents.last(), own_indent)
                    && me >= *p
                {
                    indent_unit = src.get(before - (me - p)..before).map(str::to_string);
                }
            }
            let (kind, opens) = match event {
                Event::Start(e) => (
                    element(src, &e, span, &mut attr_arena, &mut owned)
                        .map_err(|w| fail(before, w))?,
                    true,
                ),
                Event::Empty(e) => (
                    element(src, &e, span, &mut attr_arena, &mut owned)
                        .map_err(|w| fail(before, w))?,
                    false,
                ),
                Event::End(_) => {
                    indents.pop();
                    let Some(id) = stack.pop() else {
                        return Err(fail(before, format!("end tag {raw} without a start tag")));
                    };
                    let start = kid_arena.len();
                    if let Some(kids) = pending.get_mut(stack.len()) {
                        kid_arena.append(kids);
                    }
                    if let Kind::Element(el) = &mut nodes[id].kind {
                        el.end_raw = Some(span);
                        el.children = List::Shared(bound(start), bound(kid_arena.len()));
                    }
                    continue;
                }
                Event::Text(_) => {
                    if stack.is_empty() && !raw.trim().is_empty() {
                        return Err(fail(before, "text outside the root element".into()));
                    }
                    (Kind::Text(span.into()), false)
                }
                Event::GeneralRef(r) => {
                    let name = utf8(&r).map_err(|w| fail(before, w))?;
                    if !valid_reference(name) {
                        return Err(fail(before, format!("unknown entity reference {raw}")));
                    }
                    if stack.is_empty() {
                        return Err(fail(before, "text outside the root element".into()));
                    }
                    (Kind::Ref(span.into()), false)
                }
                Event::CData(_) => {
                    if stack.is_empty() {
                        return Err(fail(before, "CDATA outside the root element".into()));
                    }
                    (Kind::CData(span.into()), false)
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {
                    (Kind::Other(span.into()), false)
                }
                Event::Eof => break,
            };
            let id = nodes.len();
            let is_element = matches!(kind, Kind::Element(_));
            nodes.push(Node {
                kind,
                parent: stack.last().copied().unwrap_or(NO_PARENT),
                pos: u32::try_from(before).unwrap_or(NO_POS),
            });
            match stack.len().checked_sub(1) {
                Some(depth) => {
                    if let Some(kids) = pending.get_mut(depth) {
                        kids.push(id);
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
                indents.push(own_indent);
                if pending.len() < stack.len() {
                    pending.push(Vec::new());
                }
            }
        }
        if let Some(&open) = stack.last() {
            let name = match &nodes[open].kind {
                Kind::Element(e) => str_of(src, &owned, &e.name).to_string(),
                _ => String::new(),
            };
            let (line, _) = line_col(src, nodes[open].pos as usize);
            return Err(fail(
                src.len(),
                format!("end of input inside <{name}> opened at line {line}"),
            ));
        }
        let Some(root) = root else {
            return Err(fail(src.len(), "no root element".into()));
        };
        let newline = match memchr::memchr(b'\n', src.as_bytes()) {
            Some(i) if i > 0 && src.as_bytes()[i - 1] == b'\r' => "\r\n",
            _ => "\n",
        };
        Ok(Document {
            src: match full {
                Cow::Owned(text) if bom == 0 => text.into_boxed_str(),
                _ => src.into(),
            },
            nodes,
            attr_arena,
            kid_arena,
            owned,
            own_attrs: Vec::new(),
            own_kids: Vec::new(),
            top,
            root,
            line_starts: std::sync::OnceLock::new(),
            indent_unit,
            newline,
            ranks: std::sync::OnceLock::new(),
        })
    }

    /// The text of a [`Str`] of this document.
    fn s<'a>(&'a self, s: &'a Str) -> &'a str {
        str_of(&self.src, &self.owned, s)
    }

    /// Keep `text` as a text of the document's own: its [`Str`].
    fn own(&mut self, text: &str) -> Str {
        own(&mut self.owned, text)
    }

    /// Keep `attrs` as the attribute list of an element whose list was `old`: in the place
    /// of its list of its own when it has one, so repeated edits leave no lists behind.
    fn own_attr_list(&mut self, old: List, attrs: Vec<Attr>) -> List {
        own_list(&mut self.own_attrs, old, attrs)
    }

    /// Whether a [`Str`] of this document is `text` (compared as bytes, short ones inline).
    fn is(&self, s: &Str, text: &str) -> bool {
        let t = text.as_bytes();
        let b = match s {
            Str::Src(a, b) => match self.src.as_bytes().get(*a as usize..*b as usize) {
                Some(b) => b,
                None => return t.is_empty(),
            },
            Str::Own(o) => self.owned.get(*o).map_or(&[][..], |o| o.as_bytes()),
        };
        if b.len() != t.len() {
            false
        } else if b.len() > 16 {
            b == t
        } else {
            b.iter().zip(t).all(|(x, y)| x == y)
        }
    }

    /// The text of a [`Span`] of this document.
    fn sp(&self, s: Span) -> &str {
        self.src.get(s.0 as usize..s.1 as usize).unwrap_or("")
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

    fn kids_of<'a>(&'a self, e: &'a Element) -> &'a [NodeId] {
        e.children.get(&self.kid_arena, &self.own_kids)
    }

    fn attrs_of<'a>(&'a self, e: &'a Element) -> &'a [Attr] {
        e.attrs.get(&self.attr_arena, &self.own_attrs)
    }

    /// The raw children (elements, text and the rest) of a node; none for non-elements.
    fn kids(&self, id: NodeId) -> &[NodeId] {
        self.el(id).map(|e| self.kids_of(e)).unwrap_or(&[])
    }

    /// Give the element a child list of its own.
    fn set_kids(&mut self, id: NodeId, kids: Vec<NodeId>) {
        let Some(old) = self.el(id).map(|e| e.children) else {
            return;
        };
        let list = own_list(&mut self.own_kids, old, kids);
        if let Some(e) = self.el_mut(id) {
            e.children = list;
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
        self.el(id).map(|e| self.s(&e.name)).unwrap_or("")
    }

    /// The unescaped value of an attribute.
    pub fn attr(&self, id: NodeId, name: &str) -> Option<&str> {
        let e = self.el(id)?;
        self.attrs_of(e)
            .iter()
            .find(|a| self.is(&a.name, name))
            .map(|a| self.s(&a.value))
    }

    /// The element's attributes in order, as (name, unescaped value).
    pub fn attrs(&self, id: NodeId) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.el(id)
            .map(|e| self.attrs_of(e))
            .unwrap_or(&[])
            .iter()
            .map(|a| (self.s(&a.name), self.s(&a.value)))
    }

    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.nodes
            .get(id)
            .map(|n| n.parent)
            .filter(|&p| p != NO_PARENT)
    }

    /// Element children in document order.
    pub fn elements(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.kids(id)
            .iter()
            .copied()
            .filter(|&c| matches!(self.nodes[c].kind, Kind::Element(_)))
    }

    /// Element children with this name.
    pub fn children<'a>(&'a self, id: NodeId, name: &'a str) -> impl Iterator<Item = NodeId> + 'a {
        self.kids(id)
            .iter()
            .copied()
            .filter(move |&c| self.el(c).is_some_and(|e| self.is(&e.name, name)))
    }

    /// The first element child with this name.
    pub fn child(&self, id: NodeId, name: &str) -> Option<NodeId> {
        self.kids(id)
            .iter()
            .copied()
            .find(|&c| self.el(c).is_some_and(|e| self.is(&e.name, name)))
    }

    /// Follow a chain of child names (`["devices", "memballoon"]`).
    pub fn descend(&self, id: NodeId, names: &[&str]) -> Option<NodeId> {
        names.iter().try_fold(id, |at, n| self.child(at, n))
    }

    /// The unescaped character data directly inside the element, untrimmed.
    pub fn text(&self, id: NodeId) -> String {
        let mut out = String::new();
        for &c in self.kids(id) {
            match &self.nodes[c].kind {
                Kind::Text(t) | Kind::Ref(t) => push_unescaped(&mut out, self.s(t)),
                Kind::CData(c) => out.push_str(
                    self.s(c)
                        .trim_start_matches("<![CDATA[")
                        .trim_end_matches("]]>"),
                ),
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
        let mut attrs: Vec<(&str, &str)> = self.attrs(id).collect();
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        for (name, value) in attrs {
            let _ = write!(out, " {name}={value:?}");
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
        if pos == NO_POS {
            return None;
        }
        let pos = pos as usize;
        let starts = self.line_starts.get_or_init(|| line_starts(&self.src));
        Some(starts.partition_point(|&s| s <= pos).max(1))
    }

    /// A path naming the element: `/domain/devices/disk[2]/driver`. An index appears only
    /// where the parent has several children of that name. Costs the element's depth times
    /// its ancestors' child counts (for parents of many children, the sibling positions are
    /// computed once per edited state of the document).
    pub fn path(&self, id: NodeId) -> String {
        let mut chain = Vec::with_capacity(8);
        let mut at = Some(id);
        while let Some(n) = at {
            chain.push(n);
            at = self.parent(n);
        }
        let mut out = String::with_capacity(chain.len() * 12);
        for &n in chain.iter().rev() {
            out.push('/');
            out.push_str(self.name(n));
            if let Some(p) = self.parent(n) {
                let (i, of) = self.rank(p, n);
                if of > 1 {
                    out.push('[');
                    push_decimal(&mut out, i);
                    out.push(']');
                }
            }
        }
        out
    }

    /// The 1-based position of `n` among the element children of `parent` with its name,
    /// and how many there are; `(0, 0)` when `n` is not an element child of `parent`.
    /// Counts the siblings directly when they are few, else looks them up in
    /// [`Document::sibling_ranks`].
    fn rank(&self, parent: NodeId, n: NodeId) -> (usize, usize) {
        const DIRECT: usize = 128;
        let kids = self.kids(parent);
        if kids.len() > DIRECT {
            let ranks = self.ranks.get_or_init(|| self.sibling_ranks());
            return ranks.get(n).copied().unwrap_or((0, 0));
        }
        self.rank_direct(kids, n)
    }

    /// [`Document::rank`] counted among `kids`, the children of `n`'s parent.
    fn rank_direct(&self, kids: &[NodeId], n: NodeId) -> (usize, usize) {
        let Some(e) = self.el(n) else {
            return (0, 0);
        };
        let name = self.s(&e.name).as_bytes();
        let src = self.src.as_bytes();
        let (mut i, mut of) = (0, 0);
        for &c in kids {
            let Some(Kind::Element(ce)) = self.nodes.get(c).map(|k| &k.kind) else {
                continue;
            };
            // most siblings have a name of another length: told apart without the text
            let same = match ce.name {
                Str::Src(a, b) => {
                    b.wrapping_sub(a) as usize == name.len()
                        && src.get(a as usize..b as usize) == Some(name)
                }
                Str::Own(_) => self.s(&ce.name).as_bytes() == name,
            };
            if same {
                of += 1;
                if c == n {
                    i = of;
                }
            }
        }
        if i == 0 { (0, 0) } else { (i, of) }
    }

    /// For every node: its 1-based position among its parent's element children of the
    /// same name, and how many there are; `(0, 0)` for others.
    fn sibling_ranks(&self) -> Vec<(usize, usize)> {
        let mut ranks = vec![(0, 0); self.nodes.len()];
        let mut count: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for node in &self.nodes {
            let Kind::Element(e) = &node.kind else {
                continue;
            };
            count.clear();
            for &c in self.kids_of(e) {
                if let Some(ce) = self.el(c) {
                    let k = count.entry(self.s(&ce.name)).or_insert(0);
                    *k += 1;
                    ranks[c].0 = *k;
                }
            }
            for &c in self.kids_of(e) {
                if let Some(ce) = self.el(c) {
                    ranks[c].1 = count.get(self.s(&ce.name)).copied().unwrap_or(0);
                }
            }
        }
        ranks
    }

    /// The element's start tag as it is now (verbatim when unedited).
    pub fn start_tag(&self, id: NodeId) -> String {
        let mut s = String::new();
        if let Some(e) = self.el(id) {
            self.write_start_tag(&mut s, e);
        }
        s
    }

    /// The document as text. An unedited document gives back its input byte for byte.
    pub fn serialize(&self) -> String {
        let mut out = String::with_capacity(self.src.len() + 64);
        // an explicit stack, not recursion: `(node, true)` closes an element
        let mut todo: Vec<(NodeId, bool)> = self.top.iter().rev().map(|&t| (t, false)).collect();
        while let Some((id, close)) = todo.pop() {
            match &self.nodes[id].kind {
                Kind::Text(s) | Kind::Ref(s) | Kind::CData(s) | Kind::Other(s) => {
                    out.push_str(self.s(s))
                }
                Kind::Element(e) if close => {
                    if !self.self_closed(e) {
                        match &e.end_raw {
                            Some(end) => out.push_str(self.sp(*end)),
                            None => {
                                out.push_str("</");
                                out.push_str(self.s(&e.name));
                                out.push('>');
                            }
                        }
                    }
                }
                Kind::Element(e) => {
                    self.write_start_tag(&mut out, e);
                    todo.push((id, true));
                    todo.extend(self.kids_of(e).iter().rev().map(|&c| (c, false)));
                }
            }
        }
        out
    }

    /// Whether the element is written `<x/>` now: it has no children, and its start tag was
    /// written so or has been edited (an edited start tag of a childless element is written
    /// in the self-closing form; its old end tag is then dropped).
    fn self_closed(&self, e: &Element) -> bool {
        self.kids_of(e).is_empty()
            && e.start_raw
                .as_ref()
                .is_none_or(|&r| self.sp(r).ends_with("/>"))
    }

    /// The start tag as it is to be written: verbatim when unedited and its form (`<x/>` or
    /// `<x>`) still fits the element's content, else built from the attributes.
    fn write_start_tag(&self, out: &mut String, e: &Element) {
        let self_closed = self.self_closed(e);
        match &e.start_raw {
            Some(raw) if self.sp(*raw).ends_with("/>") == self_closed => {
                out.push_str(self.sp(*raw))
            }
            _ => self.write_start(out, e, self_closed),
        }
    }

    fn write_start(&self, out: &mut String, e: &Element, empty: bool) {
        out.push('<');
        out.push_str(self.s(&e.name));
        for a in self.attrs_of(e) {
            let _ = write!(
                out,
                " {}={q}{}{q}",
                self.s(&a.name),
                escape_attr(self.s(&a.value), e.quote),
                q = e.quote
            );
        }
        out.push_str(if empty { "/>" } else { ">" });
    }

    // ---- edits -------------------------------------------------------------------------

    /// Set an attribute. Setting the value it already has changes nothing. Returns whether
    /// the document changed.
    pub fn set_attr(&mut self, id: NodeId, name: &str, value: &str) -> bool {
        let Some(e) = self.el(id) else {
            return false;
        };
        let old = e.attrs;
        let mut attrs = self.attrs_of(e).to_vec();
        match attrs.iter().position(|a| self.s(&a.name) == name) {
            Some(i) if self.s(&attrs[i].value) == value => return false,
            Some(i) => attrs[i].value = self.own(value),
            None => {
                let attr = Attr {
                    name: self.own(name),
                    value: self.own(value),
                };
                attrs.push(attr);
            }
        }
        let list = self.own_attr_list(old, attrs);
        let Some(e) = self.el_mut(id) else {
            return false;
        };
        e.attrs = list;
        e.start_raw = None;
        true
    }

    /// Remove an attribute; returns whether it was there.
    pub fn remove_attr(&mut self, id: NodeId, name: &str) -> bool {
        let Some(e) = self.el(id) else {
            return false;
        };
        let list = e.attrs;
        let old = self.attrs_of(e);
        let attrs: Vec<Attr> = old
            .iter()
            .filter(|a| self.s(&a.name) != name)
            .copied()
            .collect();
        if attrs.len() == old.len() {
            return false;
        }
        let list = self.own_attr_list(list, attrs);
        let Some(e) = self.el_mut(id) else {
            return false;
        };
        e.attrs = list;
        e.start_raw = None;
        true
    }

    /// Replace the element's content with text (escaped as needed).
    pub fn set_text(&mut self, id: NodeId, text: &str) -> bool {
        if !self.is_element(id) || (self.text(id) == text && self.elements(id).next().is_none()) {
            return false;
        }
        let escaped = self.own(&escape_text(text));
        let t = self.push_node(Kind::Text(escaped), Some(id));
        let old = self.kids(id).to_vec();
        self.set_kids(id, vec![t]);
        for c in old {
            self.nodes[c].parent = NO_PARENT;
        }
        true
    }

    fn push_node(&mut self, kind: Kind, parent: Option<NodeId>) -> NodeId {
        self.ranks = std::sync::OnceLock::new();
        self.nodes.push(Node {
            kind,
            parent: parent.unwrap_or(NO_PARENT),
            pos: NO_POS,
        });
        self.nodes.len() - 1
    }

    fn is_blank(&self, id: NodeId) -> bool {
        matches!(&self.nodes[id].kind, Kind::Text(t) if self.s(t).trim().is_empty())
    }

    /// The whitespace that indents `id` on its line; `None` when something else precedes it
    /// on that line.
    fn indent_of(&self, id: NodeId) -> Option<String> {
        let siblings = match self.parent(id) {
            Some(p) => self.kids_of(self.el(p)?),
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
            Kind::Text(t) => {
                let t = self.s(t);
                let ind = &t[t.rfind('\n')? + 1..];
                ind.bytes()
                    .all(|b| b == b' ' || b == b'\t')
                    .then(|| ind.to_string())
            }
            _ => None,
        }
    }

    /// Add a new empty element as the last element child of `parent` (or at `index` among
    /// the element children). It goes on a line of its own, indented like its siblings (or
    /// one level deeper than its parent), when the document puts elements on lines of their
    /// own there; otherwise right beside its neighbours, with no added whitespace.
    pub fn insert_element(
        &mut self,
        parent: NodeId,
        index: Option<usize>,
        name: &str,
        attrs: &[(&str, &str)],
    ) -> Option<NodeId> {
        let quote = self.el(parent)?.quote;
        let name = self.own(name);
        let attrs: Vec<Attr> = attrs
            .iter()
            .map(|(n, v)| Attr {
                name: self.own(n),
                value: self.own(v),
            })
            .collect();
        let attrs = if attrs.is_empty() {
            List::Shared(0, 0)
        } else {
            self.own_attr_list(List::Shared(0, 0), attrs)
        };
        let element = Element {
            name,
            attrs,
            children: List::Shared(0, 0),
            start_raw: None,
            end_raw: None,
            quote,
        };
        let mut kids = self.kids(parent).to_vec();
        let elems: Vec<NodeId> = kids
            .iter()
            .copied()
            .filter(|&c| self.is_element(c))
            .collect();
        let parent_indent = self.indent_of(parent);
        // the new element's indentation: its neighbour's, or one level below its parent when
        // it is the first child and the document indents
        let neighbour = match index {
            Some(i) if i < elems.len() => elems.get(i),
            _ => elems.last(),
        };
        let (child_indent, closing_indent) = match neighbour {
            Some(&n) => (self.indent_of(n), None),
            None => match (&parent_indent, &self.indent_unit) {
                (Some(p), Some(unit)) => (Some(format!("{p}{unit}")), Some(p.clone())),
                _ => (None, None),
            },
        };
        let trailing_ws = kids.last().is_some_and(|&l| self.is_blank(l));
        // Position in the raw children: before the chosen element sibling (and the
        // whitespace indenting it), or at the end before the whitespace indenting the end tag.
        let pos = match index {
            Some(i) if i < elems.len() => {
                let at = kids.iter().position(|&c| c == elems[i]).unwrap_or(0);
                if at > 0 && self.is_blank(kids[at - 1]) {
                    at - 1
                } else {
                    at
                }
            }
            _ if trailing_ws => kids.len() - 1,
            _ => kids.len(),
        };
        let new = self.push_node(Kind::Element(element), Some(parent));
        let nl = self.newline;
        let ws_node = child_indent.map(|i| {
            let ws = self.own(&format!("{nl}{i}"));
            self.push_node(Kind::Text(ws), Some(parent))
        });
        // the parent's end tag goes back on a line of its own, unless blanks already end
        // the content (they are kept after the new element)
        let closing_ws = match closing_indent {
            Some(p) if !trailing_ws => {
                let ws = self.own(&format!("{nl}{p}"));
                Some(self.push_node(Kind::Text(ws), Some(parent)))
            }
            _ => None,
        };
        let mut ins = Vec::new();
        ins.extend(ws_node);
        ins.push(new);
        ins.extend(closing_ws);
        kids.splice(pos..pos, ins);
        self.set_kids(parent, kids);
        Some(new)
    }

    /// Remove an element, and the line it was on when it had a line of its own. Nothing
    /// outside the element is removed but the blanks that indented it. Returns whether it
    /// was attached.
    pub fn remove(&mut self, id: NodeId) -> bool {
        let Some(parent) = self.parent(id) else {
            return false;
        };
        let Some(e) = self.el(parent) else {
            return false;
        };
        let children = self.kids_of(e);
        let Some(i) = children.iter().position(|&c| c == id) else {
            return false;
        };
        let before = i.checked_sub(1).map(|b| children[b]);
        let after = children.get(i + 1).copied();
        let has_newline = |d: &Document, n: NodeId| matches!(&d.nodes[n].kind, Kind::Text(t) if { let t = d.s(t); t.trim().is_empty() && t.contains('\n') });
        // Its line: the line break and indentation before it, when what follows it starts
        // a new line or is the parent's end tag. Blanks between it and a neighbour on the
        // same line go with it; blanks that are the whole content stay.
        let extra = match (before, after) {
            (Some(b), a) if has_newline(self, b) && a.is_none_or(|a| has_newline(self, a)) => {
                Some(b)
            }
            (_, Some(a)) if self.is_blank(a) && !has_newline(self, a) && i > 0 => Some(a),
            (Some(b), Some(_)) if self.is_blank(b) && !has_newline(self, b) => Some(b),
            _ => None,
        };
        let kids: Vec<NodeId> = children
            .iter()
            .copied()
            .filter(|&c| c != id && Some(c) != extra)
            .collect();
        self.set_kids(parent, kids);
        self.ranks = std::sync::OnceLock::new();
        self.nodes[id].parent = NO_PARENT;
        if let Some(x) = extra {
            self.nodes[x].parent = NO_PARENT;
        }
        true
    }
}

/// The text of `s`: a range of `src` or one of the `owned` texts.
fn str_of<'a>(src: &'a str, owned: &'a [Box<str>], s: &Str) -> &'a str {
    match *s {
        Str::Src(a, b) => src.get(a as usize..b as usize).unwrap_or(""),
        Str::Own(i) => owned.get(i).map_or("", |o| o),
    }
}

/// An element from its start tag; its attributes go to the end of `arena`.
fn element(
    src: &str,
    e: &BytesStart<'_>,
    span: Span,
    arena: &mut Vec<Attr>,
    owned: &mut Vec<Box<str>>,
) -> Result<Kind, String> {
    let name_bytes = e.name();
    let name = name_str(src, owned, name_bytes.as_ref())?;
    // every attribute takes at least 4 bytes (` a=''`): only a long tag can have too many
    if e.attributes_raw().len() > 4 * MAX_ATTRS {
        let mut all = e.attributes();
        all.with_checks(false);
        if all.count() > MAX_ATTRS {
            return Err(format!(
                "more than {MAX_ATTRS} attributes in <{}>",
                String::from_utf8_lossy(name_bytes.as_ref())
            ));
        }
    }
    let first = arena.len();
    // the first quote character of the attributes, as the direct scan saw it
    let mut attrs_quote = None;
    if !attrs_fast(src, e.attributes_raw(), arena, &mut attrs_quote) {
        arena.truncate(first);
        if !attrs_unchecked(src, e, arena, owned) {
            // a duplicate or malformed attribute: parse again with quick-xml's checks, for
            // exactly its error
            arena.truncate(first);
            attrs_checked(src, e, &name, arena, owned)?;
        }
        // the first quote character after the name: the first value's (unless a name
        // holds one, which no well-formed tag has)
        attrs_quote =
            memchr::memchr2(b'\'', b'"', e.attributes_raw()).map(|i| e.attributes_raw()[i]);
    }
    // new attributes are quoted like the first value
    let quote = attrs_quote.map_or('\'', char::from);
    Ok(Kind::Element(Element {
        name,
        attrs: List::Shared(bound(first), bound(arena.len())),
        children: List::Shared(0, 0),
        start_raw: Some(span),
        end_raw: None,
        quote,
    }))
}

/// Whether `b` is XML whitespace as quick-xml reads it.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\r' | b'\n' | b'\t')
}

/// The attributes of a start tag (`raw`: the bytes after its name, a slice of `src`) pushed
/// to `arena` by a direct scan that takes only what quick-xml reads the same way: every
/// attribute `key = 'value'` or `key = "value"` (blanks around `=` allowed, none needed
/// between attributes), no `&` in a value, no key repeated. `false`, with `arena` partly
/// filled, for anything else (the caller then asks quick-xml). `quote` (`None` when
/// called) is set to the quote character of the first value.
fn attrs_fast(src: &str, raw: &[u8], arena: &mut Vec<Attr>, quote: &mut Option<u8>) -> bool {
    let Some(base) = raw.as_ptr().addr().checked_sub(src.as_ptr().addr()) else {
        return false;
    };
    if base
        .checked_add(raw.len())
        .is_none_or(|end| end > src.len())
    {
        return false;
    }
    let first = arena.len();
    let mut i = 0;
    let n = raw.len();
    loop {
        while i < n && is_ws(raw[i]) {
            i += 1;
        }
        if i == n {
            return true;
        }
        let key_start = i;
        while i < n && raw[i] != b'=' && !is_ws(raw[i]) {
            i += 1;
        }
        let key_end = i;
        if key_end == key_start {
            // quick-xml reads `='v'` as a key starting with `=`
            return false;
        }
        while i < n && is_ws(raw[i]) {
            i += 1;
        }
        if i == n || raw[i] != b'=' {
            return false;
        }
        i += 1;
        while i < n && is_ws(raw[i]) {
            i += 1;
        }
        if i == n || (raw[i] != b'\'' && raw[i] != b'"') {
            return false;
        }
        let q = raw[i];
        if quote.is_none() {
            *quote = Some(q);
        }
        let value_start = i + 1;
        let Some(len) = raw
            .get(value_start..)
            .and_then(|rest| memchr::memchr2(q, b'&', rest))
        else {
            return false;
        };
        let value_end = value_start + len;
        if raw[value_end] != q {
            return false;
        }
        i = value_end + 1;
        let key = &raw[key_start..key_end];
        if arena[first..].iter().any(|p| match p.name {
            Str::Src(a, b) => src.as_bytes().get(a as usize..b as usize) == Some(key),
            Str::Own(_) => true,
        }) {
            return false;
        }
        // every boundary is next to an ASCII byte, so on a character boundary of `src`
        let (Ok(ks), Ok(ke), Ok(vs), Ok(ve)) = (
            u32::try_from(base + key_start),
            u32::try_from(base + key_end),
            u32::try_from(base + value_start),
            u32::try_from(base + value_end),
        ) else {
            return false;
        };
        arena.push(Attr {
            name: Str::Src(ks, ke),
            value: Str::Src(vs, ve),
        });
    }
}

/// The attributes of a start tag pushed to `arena` without quick-xml's duplicate check
/// (it allocates per tag); `false`, with `arena` partly filled, when an attribute repeats
/// a name or anything is amiss.
fn attrs_unchecked(
    src: &str,
    e: &BytesStart<'_>,
    arena: &mut Vec<Attr>,
    owned: &mut Vec<Box<str>>,
) -> bool {
    let first = arena.len();
    let mut attrs = e.attributes();
    attrs.with_checks(false);
    for a in attrs {
        let Ok(a) = a else {
            return false;
        };
        let key_bytes = a.key.as_ref();
        let Some(key) = span_in(src, key_bytes) else {
            return false;
        };
        if arena[first..]
            .iter()
            .any(|p| str_of(src, owned, &p.name).as_bytes() == key_bytes)
        {
            return false;
        }
        // a value with no reference in it is its own unescaped form
        let value = match span_in(src, &a.value) {
            Some(s) if memchr::memchr(b'&', &a.value).is_none() => s,
            _ => match a.unescape_value() {
                Ok(v) => own(owned, &v),
                Err(_) => return false,
            },
        };
        arena.push(Attr { name: key, value });
    }
    true
}

/// The attributes of a start tag pushed to `arena`, with quick-xml's checks.
fn attrs_checked(
    src: &str,
    e: &BytesStart<'_>,
    name: &Str,
    arena: &mut Vec<Attr>,
    owned: &mut Vec<Box<str>>,
) -> Result<(), String> {
    let name = str_of(src, owned, name).to_string();
    for a in e.attributes() {
        let a = a.map_err(|err| format!("in <{name}>: {err}"))?;
        let key = name_str(src, owned, a.key.as_ref())?;
        // a value with no reference in it is its own unescaped form
        let value = match span_in(src, &a.value) {
            Some(s) if !a.value.contains(&b'&') => s,
            _ => {
                let v = a.unescape_value().map_err(|err| {
                    format!("in <{name}> attribute {}: {err}", str_of(src, owned, &key))
                })?;
                own(owned, &v)
            }
        };
        arena.push(Attr { name: key, value });
    }
    Ok(())
}

/// The blanks (spaces and tabs) between the start of the line and byte `pos`, counted in
/// bytes, when nothing else precedes `pos` on its line; `None` otherwise.
fn indent_at(src: &str, pos: usize) -> Option<usize> {
    let head = src.as_bytes().get(..pos)?;
    let blanks = head
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match head.len().checked_sub(blanks + 1).map(|i| head[i]) {
        None | Some(b'\n') => Some(blanks),
        Some(_) => None,
    }
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

/// Append the unescaped form of verbatim text (text with no reference is its own).
fn push_unescaped(out: &mut String, raw: &str) {
    if raw.contains('&') {
        out.push_str(&unescape_lossy(raw));
    } else {
        out.push_str(raw);
    }
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
    fn an_input_of_4_gib_or_more_is_refused() {
        // the check `Document::parse` makes first (a 4 GiB string is too much for a test)
        let e = fits_offsets(u32::MAX as usize).expect_err("4 GiB");
        assert_eq!((e.line, e.column), (1, 1));
        assert_eq!(e.what, "input of 4 GiB or more");
        assert!(fits_offsets(usize::MAX).is_err());
        // close case: one byte less fits
        assert!(fits_offsets(u32::MAX as usize - 1).is_ok());
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

/// Regression tests for issue 20: the editor on every layout XML allows.
#[cfg(test)]
mod layout_tests {
    use super::*;

    fn edited(src: &str, f: impl FnOnce(&mut Document)) -> String {
        let mut d = Document::parse(src).unwrap();
        f(&mut d);
        let out = d.serialize();
        Document::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        out
    }

    #[test]
    fn one_line_usb_controller_fix_does_not_leave_its_end_tag() {
        let src = "<domain><devices><controller type='usb' model='qemu-xhci'><address type='pci' bus='0x02'/></controller><input type='tablet'/></devices></domain>";
        let out = edited(src, |d| {
            let c = d.descend(d.root(), &["devices", "controller"]).unwrap();
            let a = d.child(c, "address").unwrap();
            assert!(d.remove(a));
            d.set_attr(c, "model", "none");
            d.set_attr(c, "index", "0");
            let i = d.descend(d.root(), &["devices", "input"]).unwrap();
            d.remove(i);
        });
        assert_eq!(
            out,
            "<domain><devices><controller type='usb' model='none' index='0'/></devices></domain>"
        );
    }

    #[test]
    fn set_attr_on_empty_start_end_pair_writes_one_form() {
        let out = edited(
            "<domain>\n  <cpu mode='custom' match='exact'></cpu>\n</domain>",
            |d| {
                let c = d.child(d.root(), "cpu").unwrap();
                d.set_attr(c, "mode", "host-model");
                d.remove_attr(c, "match");
            },
        );
        assert_eq!(out, "<domain>\n  <cpu mode='host-model'/>\n</domain>");
        // unedited, `<x></x>` stays as written
        let src = "<domain><cpu mode='custom'></cpu></domain>";
        assert_eq!(edited(src, |_| {}), src);
        assert_eq!(
            Document::parse(src).unwrap().start_tag(1),
            "<cpu mode='custom'>"
        );
    }

    #[test]
    fn removing_a_child_that_shares_its_parents_end_tag_line_keeps_the_end_tag() {
        let src = "<domain>\n  <devices>\n    <controller type='usb'>\n      <address type='pci'/></controller>\n  </devices>\n</domain>";
        let out = edited(src, |d| {
            let a = d
                .descend(d.root(), &["devices", "controller", "address"])
                .unwrap();
            assert!(d.remove(a));
        });
        assert_eq!(
            out,
            "<domain>\n  <devices>\n    <controller type='usb'></controller>\n  </devices>\n</domain>"
        );
        let out = edited(src, |d| {
            let c = d.descend(d.root(), &["devices", "controller"]).unwrap();
            let a = d.child(c, "address").unwrap();
            d.remove(a);
            d.set_attr(c, "model", "none");
        });
        assert!(
            out.contains("\n    <controller type='usb' model='none'/>\n  </devices>"),
            "{out}"
        );
    }

    #[test]
    fn removing_an_element_beside_others_on_a_line_keeps_them_on_their_lines() {
        let src = "<d>\n  <a/> <b/>\n  <c/><e/>\n</d>";
        let out = edited(src, |d| {
            let a = d.child(d.root(), "a").unwrap();
            d.remove(a);
        });
        assert_eq!(out, "<d>\n  <b/>\n  <c/><e/>\n</d>");
        let out = edited(src, |d| {
            let b = d.child(d.root(), "b").unwrap();
            d.remove(b);
            let c = d.child(d.root(), "c").unwrap();
            d.remove(c);
        });
        assert_eq!(out, "<d>\n  <a/>\n  <e/>\n</d>");
    }

    #[test]
    fn inserting_into_an_empty_element_works_in_both_forms() {
        for (src, want) in [
            ("<d><x/></d>", "<d><x><y/></x></d>"),
            ("<d><x></x></d>", "<d><x><y/></x></d>"),
            ("<d>\n  <x/>\n</d>", "<d>\n  <x>\n    <y/>\n  </x>\n</d>"),
            ("<d>\n  <x></x>\n</d>", "<d>\n  <x>\n    <y/>\n  </x>\n</d>"),
            (
                "<d>\n  <x>\n  </x>\n</d>",
                "<d>\n  <x>\n    <y/>\n  </x>\n</d>",
            ),
        ] {
            let out = edited(src, |d| {
                let x = d.child(d.root(), "x").unwrap();
                d.insert_element(x, None, "y", &[]).unwrap();
            });
            assert_eq!(out, want, "{src:?}");
        }
    }

    #[test]
    fn a_one_line_document_gets_no_line_breaks() {
        let src = "<domain type='kvm'><name>a</name><devices><disk/></devices></domain>";
        let out = edited(src, |d| {
            let dev = d.child(d.root(), "devices").unwrap();
            let m = d.insert_element(dev, None, "memballoon", &[]).unwrap();
            d.insert_element(m, None, "stats", &[("period", "5")])
                .unwrap();
            d.insert_element(d.root(), Some(1), "vcpu", &[]).unwrap();
            let disk = d.descend(d.root(), &["devices", "disk"]).unwrap();
            d.insert_element(disk, None, "driver", &[]).unwrap();
        });
        assert_eq!(
            out,
            "<domain type='kvm'><name>a</name><vcpu/><devices><disk><driver/></disk><memballoon><stats period='5'/></memballoon></devices></domain>"
        );
    }

    #[test]
    fn tabs_and_crlf_are_followed_when_inserting() {
        let src = "<domain>\r\n\t<name>a</name>\r\n\t<devices>\r\n\t\t<disk/>\r\n\t</devices>\r\n\t<os/>\r\n</domain>\r\n";
        let out = edited(src, |d| {
            let dev = d.child(d.root(), "devices").unwrap();
            d.insert_element(dev, None, "input", &[]).unwrap();
            let os = d.child(d.root(), "os").unwrap();
            d.insert_element(os, None, "boot", &[]).unwrap();
            let disk = d.descend(d.root(), &["devices", "disk"]).unwrap();
            d.remove(disk);
        });
        assert_eq!(
            out,
            "<domain>\r\n\t<name>a</name>\r\n\t<devices>\r\n\t\t<input/>\r\n\t</devices>\r\n\t<os>\r\n\t\t<boot/>\r\n\t</os>\r\n</domain>\r\n"
        );
    }

    #[test]
    fn comments_and_processing_instructions_between_elements_survive_edits() {
        let src =
            "<domain><!-- a --><devices><?pi x?><disk/><!-- b --></devices><!-- c --></domain>";
        let out = edited(src, |d| {
            let disk = d.descend(d.root(), &["devices", "disk"]).unwrap();
            d.remove(disk);
            let dev = d.child(d.root(), "devices").unwrap();
            d.insert_element(dev, Some(0), "input", &[]).unwrap();
        });
        assert_eq!(
            out,
            "<domain><!-- a --><devices><?pi x?><!-- b --><input/></devices><!-- c --></domain>"
        );
    }

    #[test]
    fn set_text_on_self_closing_element_opens_it() {
        let out = edited("<d><vcpu/><x a='1'></x></d>", |d| {
            let v = d.child(d.root(), "vcpu").unwrap();
            d.set_text(v, "2");
            let x = d.child(d.root(), "x").unwrap();
            d.set_text(x, "t");
        });
        assert_eq!(out, "<d><vcpu>2</vcpu><x a='1'>t</x></d>");
    }

    #[test]
    fn paths_follow_edits() {
        let mut d = Document::parse("<d><x/><y/><x/></d>").unwrap();
        let xs: Vec<NodeId> = d.children(d.root(), "x").collect();
        let y = d.child(d.root(), "y").unwrap();
        assert_eq!(d.path(xs[1]), "/d/x[2]");
        assert_eq!(d.path(y), "/d/y");
        let y2 = d.insert_element(d.root(), Some(0), "y", &[]).unwrap();
        assert_eq!(d.path(y), "/d/y[2]");
        assert_eq!(d.path(y2), "/d/y[1]");
        d.remove(xs[0]);
        assert_eq!(d.path(xs[1]), "/d/x");
        d.set_text(d.root(), "t");
        assert_eq!(d.path(d.root()), "/d");
    }

    #[test]
    fn paths_under_many_siblings_match_the_few_sibling_paths() {
        for n in [3, 12, 200, 300] {
            let src = format!("<d>{}<z><w/><w/></z></d>", "<x/><y><v/></y>".repeat(n));
            let mut d = Document::parse(&src).unwrap();
            let ys: Vec<NodeId> = d.children(d.root(), "y").collect();
            assert_eq!(d.path(ys[1]), "/d/y[2]");
            let v = d.child(ys[n - 1], "v").unwrap();
            assert_eq!(d.path(v), format!("/d/y[{n}]/v"));
            let z = d.child(d.root(), "z").unwrap();
            assert_eq!(d.path(z), "/d/z");
            let ws: Vec<NodeId> = d.children(z, "w").collect();
            assert_eq!(d.path(ws[1]), "/d/z/w[2]");
            d.remove(ws[0]);
            assert_eq!(d.path(ws[1]), "/d/z/w");
            for &y in &ys[1..] {
                d.remove(y);
            }
            assert_eq!(d.path(ys[0]), "/d/y");
            assert_eq!(d.path(ys[1]), "/y");
        }
    }

    #[test]
    fn sibling_ranks_are_the_directly_counted_ranks() {
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");
        let mut docs = 0;
        for dir in ["wild-domains", "libvirt-domains"] {
            let Ok(entries) = std::fs::read_dir(format!("{corpus}/{dir}")) else {
                continue;
            };
            for entry in entries.flatten().take(300) {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let Ok(d) = Document::parse(&text) else {
                    continue;
                };
                docs += 1;
                let ranks = d.sibling_ranks();
                for (id, &rank) in ranks.iter().enumerate() {
                    if let Some(p) = d.parent(id) {
                        assert_eq!(rank, d.rank_direct(d.kids(p), id), "{entry:?} {id}");
                    }
                }
            }
        }
        // many children with many names
        let src = format!(
            "<d>{}</d>",
            (0..200)
                .map(|i| format!("<e{}/>", i % 70))
                .collect::<String>()
        );
        let d = Document::parse(&src).unwrap();
        let ranks = d.sibling_ranks();
        for &c in d.kids(d.root()) {
            assert_eq!(ranks[c], d.rank_direct(d.kids(d.root()), c));
        }
        // without shared/ beside the checkout only the built document is checked
        assert!(docs == 0 || docs > 100, "{docs}");
    }

    #[test]
    fn an_element_with_too_many_attributes_is_refused() {
        let tag = |n: usize| {
            let attrs: Vec<String> = (0..n).map(|i| format!("a{i}='v'")).collect();
            format!("<domain>\n<devices {}/></domain>", attrs.join(" "))
        };
        let ok = Document::parse(&tag(MAX_ATTRS)).unwrap();
        assert_eq!(
            ok.attrs(ok.child(ok.root(), "devices").unwrap()).count(),
            MAX_ATTRS
        );
        let err = Document::parse(&tag(MAX_ATTRS + 1)).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .contains("more than 256 attributes in <devices>"),
            "{err}"
        );
        // 100,000 attributes and a repeated name at the end: refused for their number,
        // before any (quadratic) search for the repeat
        let huge = tag(100_000).replace("/></domain>", " a0='x'/></domain>");
        let err = Document::parse(&huge).unwrap_err().to_string();
        assert!(err.contains("more than 256 attributes"), "{err}");
    }

    #[test]
    fn duplicate_and_malformed_attributes_give_quick_xmls_errors() {
        for (bad, what) in [
            (
                "<a b='1' b='2'/>",
                "in <a>: position 8: duplicated attribute, previous declaration at position 2",
            ),
            (
                "<a b='1' b=2/>",
                "in <a>: position 8: duplicated attribute, previous declaration at position 2",
            ),
            (
                "<a b='1' c=2/>",
                "in <a>: position 10: attribute value must be enclosed in `\"` or `'`",
            ),
            ("<a b='&bogus;'/>", "in <a> attribute b: "),
        ] {
            let e = Document::parse(bad).unwrap_err();
            assert!(e.what.starts_with(what), "{bad:?}: {e}");
        }
        let d = Document::parse("<a b='1' c='&amp;' d=\"x\"/>").unwrap();
        let attrs: Vec<(&str, &str)> = d.attrs(d.root()).collect();
        assert_eq!(attrs, [("b", "1"), ("c", "&"), ("d", "x")]);
    }

    #[test]
    fn the_direct_attribute_scan_reads_what_quick_xml_reads() {
        let attrs = |src: &str, owned: &[Box<str>], arena: &[Attr]| -> Vec<(String, String)> {
            arena
                .iter()
                .map(|a| {
                    (
                        str_of(src, owned, &a.name).into(),
                        str_of(src, owned, &a.value).into(),
                    )
                })
                .collect()
        };
        let mut scanned = 0;
        for tag in [
            "<a>",
            "<a/>",
            "<a b='1'>",
            "<a b='1'/>",
            "<a  b = \"1\"\tc\n=\r\n'2'  />",
            "<a b='1'c='2'>",
            "<a b='x\"y' c=\"x'y\">",
            "<a b=''>",
            "<a b='1' b='2'>",
            "<a b='1' c=2>",
            "<a b>",
            "<a b='1' c>",
            "<a b=>",
            "<a ='1'>",
            "<a =='1'>",
            "<a b'c='1'>",
            "<a b/c='1'>",
            "<a b='1'/c='2'/>",
            "<a b='&amp;'>",
            "<a b='é' é='ü'>",
            "<a\tb='1'>",
            "<a b='1' x:c='2' xmlns:x='u'>",
            "<a b='1' b >",
        ] {
            let mut reader = Reader::from_str(tag);
            let Ok(Event::Start(e) | Event::Empty(e)) = reader.read_event() else {
                continue;
            };
            let mut fast = Vec::new();
            if !attrs_fast(tag, e.attributes_raw(), &mut fast, &mut None) {
                continue;
            }
            scanned += 1;
            let fast = attrs(tag, &[], &fast);
            let mut slow = Vec::new();
            let mut owned = Vec::new();
            assert!(attrs_unchecked(tag, &e, &mut slow, &mut owned), "{tag}");
            assert_eq!(fast, attrs(tag, &owned, &slow), "{tag}");
            let mut checked = Vec::new();
            let mut owned = Vec::new();
            let name = name_str(tag, &mut owned, e.name().as_ref()).unwrap();
            attrs_checked(tag, &e, &name, &mut checked, &mut owned).unwrap();
            assert_eq!(fast, attrs(tag, &owned, &checked), "{tag}");
        }
        assert!(scanned >= 10, "{scanned}");
    }

    #[test]
    fn a_document_parsed_from_an_owned_text_is_the_same_document() {
        for text in [
            "<d a='1'>\n  <x>t&amp;u</x>\n</d>\n",
            "\u{feff}<d>\r\n  <x/>\r\n</d>",
        ] {
            let borrowed = Document::parse(text).unwrap();
            let owned = Document::parse_owned(text.to_string()).unwrap();
            assert_eq!(owned.serialize(), text);
            assert_eq!(owned.serialize(), borrowed.serialize());
            let x = owned.child(owned.root(), "x").unwrap();
            assert_eq!(owned.line(x), borrowed.line(x));
            assert_eq!(owned.path(x), "/d/x");
        }
        let e = Document::parse_owned("<d>".into()).unwrap_err();
        assert_eq!(e, Document::parse("<d>").unwrap_err());
    }

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12345, usize::MAX] {
            let mut s = String::from("x");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn nodes_and_attributes_are_plain_data() {
        // dropping a document frees its vectors without visiting each node
        assert!(!std::mem::needs_drop::<Node>());
        assert!(!std::mem::needs_drop::<Attr>());
    }

    #[test]
    fn repeated_edits_of_one_element_reuse_its_own_lists() {
        let mut d = Document::parse("<d>\n  <x a='1'/>\n  <y/>\n</d>").unwrap();
        let x = d.child(d.root(), "x").unwrap();
        for i in 0..100 {
            assert!(d.set_attr(x, "a", &i.to_string()));
            d.insert_element(d.root(), None, "z", &[]).unwrap();
        }
        // one list of its own per edited element, however often it was edited
        assert_eq!(d.own_attrs.len(), 1);
        assert_eq!(d.own_kids.len(), 1);
        assert_eq!(d.attr(x, "a"), Some("99"));
        assert_eq!(d.children(d.root(), "z").count(), 100);
        let again = Document::parse(&d.serialize()).unwrap();
        assert_eq!(again.canonical(), d.canonical());
    }

    #[test]
    fn line_starts_are_every_offset_after_a_newline() {
        for text in [
            String::new(),
            "\n".into(),
            "a".into(),
            "\n".repeat(100),
            "ab\ncd\r\n".repeat(50),
            format!("{}\n{}", "x".repeat(31), "y".repeat(32)),
            format!("{}\n", "é".repeat(40)),
            (0u8..=255).map(char::from).collect::<String>().repeat(3),
            "\u{b8a}\n\u{a0a}\u{8a}\n".repeat(9),
        ] {
            let want: Vec<usize> = std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect();
            assert_eq!(line_starts(&text), want, "{text:?}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_cap_is_refused_with_the_depth() {
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        Document::parse(&ok).unwrap();
        for deep in [
            format!(
                "{}{}",
                "<a>".repeat(MAX_DEPTH + 1),
                "</a>".repeat(MAX_DEPTH + 1)
            ),
            format!(
                "{}<b/>{}",
                "<a>".repeat(MAX_DEPTH),
                "</a>".repeat(MAX_DEPTH)
            ),
            "<a>".repeat(200_000),
        ] {
            let e = Document::parse(&deep).unwrap_err();
            assert!(e.what.contains("deeper than 256"), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        // the deepest accepted document serializes and compares without deep recursion
        let d = Document::parse(&ok).unwrap();
        assert_eq!(d.serialize(), ok);
        assert!(!d.canonical().is_empty());
    }
}
