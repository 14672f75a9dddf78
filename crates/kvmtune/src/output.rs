//! One voice for every command: the exit codes, the JSON envelope, the error and warning
//! printer, colour, the terminal width and wrapping, and writing files and stdout.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::{Cli, ColorChoice};
use kvmtune_profile::Severity;

/// Process exit codes (documented in `--help` and docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Clean = 0,
    Findings = 1,
    Error = 2,
    /// apply: a change failed and everything was rolled back
    ApplyFailed = 3,
    /// apply or rollback: the rollback did not complete
    RollbackIncomplete = 4,
}

impl Exit {
    /// 1 when `findings`, else 0.
    pub fn findings_if(findings: bool) -> Exit {
        if findings {
            Exit::Findings
        } else {
            Exit::Clean
        }
    }
}

/// How text is shown: colour, width, detail.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// Columns to wrap text at.
    pub width: usize,
    pub verbose: bool,
}

impl Style {
    pub fn of(cli: &Cli) -> Style {
        Style {
            color: use_color(cli.color),
            width: terminal_width(),
            verbose: cli.verbose > 0,
        }
    }

    /// Plain: no colour, 80 columns.
    #[cfg(test)]
    pub fn plain() -> Style {
        Style {
            color: false,
            width: 80,
            verbose: false,
        }
    }

    /// `text` in the SGR colour `code` when colour is on.
    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(text, "1")
    }

    /// A unified diff line coloured: additions green, removals red, hunk headers cyan.
    pub fn diff_line(&self, line: &str) -> String {
        if line.starts_with("+++") || line.starts_with("---") {
            self.bold(line)
        } else if line.starts_with('+') {
            self.paint(line, "32")
        } else if line.starts_with('-') {
            self.paint(line, "31")
        } else if line.starts_with("@@") {
            self.paint(line, "36")
        } else {
            line.to_string()
        }
    }

    /// A whole diff coloured line by line.
    pub fn diff(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for l in text.lines() {
            out.push_str(&self.diff_line(l));
            out.push('\n');
        }
        out
    }

    /// A severity label of fixed width (`ERROR`, `WARN `, `INFO `), coloured.
    pub fn severity(&self, s: Severity) -> String {
        let (t, c) = match s {
            Severity::Error => ("ERROR", "31;1"),
            Severity::Warn => ("WARN ", "33;1"),
            Severity::Info => ("INFO ", "36"),
        };
        self.paint(t, c)
    }

    /// Wrap `text` at the width: the first line starts with `first` (already laid out, its
    /// visible width counted without colour codes), the following ones with `indent` spaces.
    /// Words are never broken; a word longer than a line stands on its own line.
    pub fn wrap(&self, first: &str, indent: usize, text: &str) -> String {
        wrap(first, indent, text, self.width)
    }
}

/// Whether to colour: `--color always|never`, or for `auto` a terminal on stdout and no
/// `NO_COLOR` in the environment.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
        }
    }
}

/// The terminal's width when stdout is a terminal (at least 40), else 80.
pub fn terminal_width() -> usize {
    if std::io::stdout().is_terminal()
        && let Ok((cols, _)) = ratatui::crossterm::terminal::size()
        && cols > 0
    {
        return usize::from(cols).max(40);
    }
    80
}

/// The visible width of a string: its characters without SGR colour sequences.
fn visible_width(s: &str) -> usize {
    let mut n = 0;
    let mut in_esc = false;
    for c in s.chars() {
        if in_esc {
            if c == 'm' {
                in_esc = false;
            }
        } else if c == '\x1b' {
            in_esc = true;
        } else {
            n += 1;
        }
    }
    n
}

/// Wrap with a hanging indent; ends with a newline.
pub fn wrap(first: &str, indent: usize, text: &str, width: usize) -> String {
    let lead = visible_width(first);
    let pad = " ".repeat(indent);
    // the first line's prefix is replaced by spaces of its width for textwrap, then put back
    let lead_pad = " ".repeat(lead);
    let opts = textwrap::Options::new(width.max(indent + 20))
        .initial_indent(&lead_pad)
        .subsequent_indent(&pad)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    let mut out = String::new();
    for (i, line) in textwrap::wrap(text, opts).iter().enumerate() {
        if i == 0 {
            out.push_str(first);
            out.push_str(line.get(lead..).unwrap_or(""));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str(first);
        out.push('\n');
    }
    out
}

/// 1234567 -> 1.2M, 12345 -> 12.3k.
pub fn human(v: f64) -> String {
    if v >= 9_999_500.0 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 999_950.0 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 99_950.0 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 9_999.5 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Escape control characters (a domain name with `ESC ]0;...` must not reach the terminal
/// raw): `\x1b` and friends are shown as `\u{1b}`. Tabs and newlines are kept.
pub fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Replace secrets (graphics passwords, cookies) in every string of a JSON value that holds
/// XML: what commands print of domain definitions shows no password unless `--secrets`.
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('<') => {
            *s = kvmtune_domain::secrets::redact(s);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_json),
        _ => {}
    }
}

/// A JSON document: `kind` and `version`, then the body's own fields.
#[derive(Serialize)]
pub struct Envelope<'a, T: Serialize + ?Sized> {
    pub kind: &'a str,
    pub version: u32,
    #[serde(flatten)]
    pub body: &'a T,
}

/// Print a JSON document in the envelope.
pub fn print_doc<T: Serialize + ?Sized>(kind: &str, version: u32, body: &T) -> Result<()> {
    print_json(&Envelope {
        kind,
        version,
        body,
    })
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    if capturing() {
        let mut text = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
        text.push('\n');
        return print_text(&text);
    }
    // encoded straight into a buffered stdout: no copy of a large document in memory, one
    // write(2) per 64 KiB
    let mut out = stdout_writer();
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    // a closed stdout stays an io::Error (a quiet end); an encoding error says so
    written.context("cannot write JSON to stdout")
}

/// Whether this thread's output is being kept (a host of several), not printed.
pub fn capturing() -> bool {
    CAPTURE.with(|c| c.borrow().is_some())
}

/// Standard output, buffered (one write(2) per 64 KiB) and made [`terminal_safe`] piece by
/// piece: for output written in parts, each part whole UTF-8 text. Not for a thread whose
/// output is captured ([`capturing`]).
pub fn stdout_writer() -> impl Write {
    SafeWriter(std::io::BufWriter::with_capacity(
        64 * 1024,
        std::io::stdout().lock(),
    ))
}

/// Whether `buf` holds a byte that can start a control character other than newline, tab
/// and carriage return: below 0x20, DEL, or 0xC2 (the lead byte of the C1 controls). Most
/// output has none. Checked 64 bytes at a time, each block without an early exit, which the
/// compiler turns into vector compares.
fn may_hold_control(buf: &[u8]) -> bool {
    fn flag(b: u8) -> u8 {
        (u8::from(b < 0x20) & u8::from(b != b'\n') & u8::from(b != b'\t') & u8::from(b != b'\r'))
            | u8::from(b == 0x7f)
            | u8::from(b == 0xc2)
    }
    let mut blocks = buf.chunks_exact(64);
    for block in &mut blocks {
        if block.iter().fold(0, |acc, &b| acc | flag(b)) != 0 {
            return true;
        }
    }
    blocks.remainder().iter().fold(0, |acc, &b| acc | flag(b)) != 0
}

/// Applies [`terminal_safe`] to what serde_json writes. serde_json escapes every control
/// character below U+0020 itself and writes each string in pieces cut at character
/// boundaries, so a piece holding DEL or a C1 control (raw in JSON) is whole UTF-8.
struct SafeWriter<W: Write>(W);

impl<W: Write> Write for SafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let risky = may_hold_control(buf)
            && buf.iter().enumerate().any(|(i, &b)| {
                (b < 0x20 && !matches!(b, b'\n' | b'\t' | b'\r'))
                    || b == 0x7f
                    || (b == 0xc2 && buf.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
            });
        if risky && let Ok(text) = std::str::from_utf8(buf) {
            return self.0.write_all(terminal_safe(text).as_bytes());
        }
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Text made safe for a terminal: every control character is escaped (`\u{1b}`) except
/// newline, tab, carriage return and kvmtune's own colour sequences (`ESC [ digits ; m`), so
/// a domain name or host fact holding `ESC ]0;...` cannot retitle or reprogram the terminal.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let risky = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'));
    if !risky {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            // an SGR colour sequence: ESC [ (digits | ;)* m
            let tail = &rest[1..];
            if let Some(body) = tail.strip_prefix('[') {
                let n = body
                    .bytes()
                    .take_while(|b| b.is_ascii_digit() || *b == b';')
                    .count();
                if body.as_bytes().get(n) == Some(&b'm') {
                    let len = 2 + n + 1;
                    out.push_str(&rest[..len]);
                    rest = &rest[len..];
                    continue;
                }
            }
        }
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            // DEL and the C1 controls, the only ones serde_json leaves raw in a string: as
            // JSON's own escape, so a `--json` document stays valid JSON and means the same
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else if c.is_control() && !matches!(c, '\n' | '\t' | '\r') {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// What a command printed while [`capture`]d: its standard output and its stderr lines
/// (errors, warnings and notes, without the `kvmtune: ` prefix).
#[derive(Debug, Default, Clone)]
pub struct Captured {
    pub stdout: String,
    pub stderr: Vec<String>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Run `f` with everything it prints through this module (stdout, errors, warnings, notes)
/// kept instead of printed: a multi-host command runs one host's command on a thread of its
/// own and shows each host's output together, grouped by host.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Captured) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Captured::default()));
    let value = f();
    let captured = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (value, captured)
}

/// Keep `text` when this thread's output is captured; `false` when it is not.
fn captured_stdout(text: &str) -> bool {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => {
            cap.stdout.push_str(text);
            true
        }
        None => false,
    })
}

/// Keep a stderr line when this thread's output is captured; `false` when it is not.
fn captured_stderr(line: &str) -> bool {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => {
            cap.stderr.push(line.to_string());
            true
        }
        None => false,
    })
}

/// Print text to stdout, terminal-safe ([`terminal_safe`]).
pub fn print_text(text: &str) -> Result<()> {
    let text = terminal_safe(text);
    if captured_stdout(&text) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("cannot write to stdout")
}

/// A message for stderr on one line: every control character escaped, newlines and tabs
/// too (a value with a newline must not fake a second line of output).
pub fn one_line(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(msg);
    }
    std::borrow::Cow::Owned(
        msg.chars()
            .map(|c| match c {
                '\n' => "\\n".to_string(),
                '\t' => "\\t".to_string(),
                c if c.is_control() => c.escape_unicode().to_string(),
                c => c.to_string(),
            })
            .collect(),
    )
}

/// `kvmtune: error: ...` on stderr, on one line.
pub fn error(msg: &str) {
    to_stderr(format!("error: {}", one_line(msg)));
}

/// `kvmtune: warning: ...` on stderr, on one line.
pub fn warning(msg: &str) {
    to_stderr(format!("warning: {}", one_line(msg)));
}

/// `kvmtune: ...` (a note, e.g. what was written where) on stderr, on one line.
pub fn note(msg: &str) {
    to_stderr(one_line(msg).into_owned());
}

fn to_stderr(line: String) {
    if captured_stderr(&line) {
        return;
    }
    let _ = writeln!(std::io::stderr(), "kvmtune: {line}");
}

/// Whether an error is a closed stdout (`kvmtune ... | head`): the reader is gone, which
/// ends the command normally and quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether an output path means standard output (`-`, `/dev/stdout`).
pub fn is_stdout(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new("/dev/stdout")
}

/// Write an output file (`-o`, `--svg`, `--save-plan`): `-` or `/dev/stdout` is standard
/// output; a regular file is replaced atomically with `mode`; a symlink, device, FIFO or
/// socket is refused.
pub fn write_output(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if is_stdout(path) {
        if captured_stdout(&String::from_utf8_lossy(bytes)) {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|_| out.flush())
            .context("cannot write to stdout");
    }
    kvmtune_host::fsio::write_atomic(path, bytes, mode)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_written_in_pieces_is_made_terminal_safe_as_a_whole_would_be() {
        let value = serde_json::json!({
            "name": "a\u{1b}]0;title\u{7}b\u{9b}c\u{7f}d",
            "plain": "caf\u{e9} \u{2014} ok",
            "list": [1, 2, "\u{85}"],
        });
        let mut w = SafeWriter(Vec::new());
        serde_json::to_writer_pretty(&mut w, &value).unwrap();
        let whole = serde_json::to_string_pretty(&value).unwrap();
        assert_eq!(String::from_utf8(w.0).unwrap(), terminal_safe(&whole));
        assert!(!terminal_safe(&whole).contains('\u{9b}'));
    }

    #[test]
    fn json_made_terminal_safe_is_still_json_with_the_same_text() {
        let value = serde_json::json!({
            "name": "a\u{1b}]0;title\u{7}b\u{9b}c\u{7f}d\u{80}\u{9f}\u{a0}é",
            "list": [1, "\u{85}"],
        });
        let mut w = SafeWriter(Vec::new());
        serde_json::to_writer_pretty(&mut w, &value).unwrap();
        let text = String::from_utf8(w.0).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && !matches!(c, '\n')),
            "{text:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        // text output shows them escaped too
        assert_eq!(
            terminal_safe("x\u{7f}\u{9b}\u{1b}]0;"),
            "x\\u007f\\u009b\\u{1b}]0;"
        );
    }

    #[test]
    fn may_hold_control_flags_exactly_the_lead_bytes_of_control_characters() {
        for b in 0..=255u8 {
            let expected =
                (b < 0x20 && !matches!(b, b'\n' | b'\t' | b'\r')) || b == 0x7f || b == 0xc2;
            // at the start, inside and at the end of a block, and in the remainder
            for at in [0, 33, 63, 64, 100] {
                let mut buf = vec![b'a'; 101];
                buf[at] = b;
                assert_eq!(may_hold_control(&buf), expected, "{b:#x} at {at}");
            }
        }
        assert!(!may_hold_control(b""));
    }

    #[test]
    fn wrapping_hangs_and_never_breaks_words() {
        let text = "the guest's disk cache mode writethrough makes every write wait for the \
                    host's disk: use none with io=native";
        let s = wrap("  WARN  disk-cache  ", 8, text, 50);
        for l in s.lines() {
            assert!(l.chars().count() <= 50, "{l:?}");
        }
        assert!(s.starts_with("  WARN  disk-cache  the guest's"), "{s}");
        for l in s.lines().skip(1) {
            assert!(
                l.starts_with("        ") && !l.starts_with("         "),
                "{l:?}"
            );
        }
        // every word survives whole
        let words: Vec<&str> = s.split_whitespace().collect();
        for w in text.split_whitespace() {
            assert!(words.contains(&w), "{w} broken in {s}");
        }
        // a word longer than the line is not cut
        let long = wrap("x ", 2, &"a".repeat(90), 40);
        assert!(long.contains(&"a".repeat(90)));
        // nor is a word at its hyphens
        let h = wrap(
            "",
            2,
            "xxxxxxxxxxxxxxxxxxxxxxx tests/fixtures/hosts/b-book-2socket/root",
            40,
        );
        assert!(
            h.contains("tests/fixtures/hosts/b-book-2socket/root"),
            "{h}"
        );
    }

    #[test]
    fn colour_codes_do_not_count_as_width() {
        let st = Style {
            color: true,
            width: 30,
            verbose: false,
        };
        let first = format!("{} ", st.severity(Severity::Warn));
        let s = st.wrap(&first, 6, "one two three four five six seven eight nine");
        let plain: String = s
            .lines()
            .next()
            .unwrap()
            .replace("\x1b[33;1m", "")
            .replace("\x1b[0m", "");
        assert!(plain.chars().count() <= 30, "{plain:?}");
        assert!(s.contains("\x1b[33;1mWARN \x1b[0m"));
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(12_345.0), "12.3k");
        assert_eq!(human(1_400_000.0), "1.4M");
        assert_eq!(human(25_000_000.0), "25M");
    }

    #[test]
    fn printed_text_keeps_colours_and_escapes_other_controls() {
        let st = Style {
            color: true,
            width: 80,
            verbose: false,
        };
        let t = format!(
            "{} name\x1b]0;pwned\x07 \x1b[2J\n",
            st.severity(Severity::Warn)
        );
        let s = terminal_safe(&t);
        assert!(s.contains("\x1b[33;1mWARN \x1b[0m"), "{s:?}");
        assert!(!s.contains('\x07') && !s.contains("\x1b]"), "{s:?}");
        // an SGR-looking sequence that is not SGR (ESC [ 2 J clears the screen) is escaped
        assert!(!s.contains("\x1b[2J"), "{s:?}");
        assert_eq!(terminal_safe("plain\ttext\r\n"), "plain\ttext\r\n");
    }

    #[test]
    fn json_strings_holding_xml_lose_their_passwords() {
        let mut v = serde_json::json!({
            "a": ["<graphics type='vnc' passwd='pw1'/>", "passwd='not xml'"],
            "b": {"c": "<domain><graphics type='spice' passwd='pw2'/></domain>"}
        });
        redact_json(&mut v);
        let t = v.to_string();
        assert!(!t.contains("pw1") && !t.contains("pw2"), "{t}");
        assert!(t.contains("not xml"), "strings without XML are left alone");
    }

    #[test]
    fn stderr_messages_stay_on_one_line() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        assert!(!one_line("x\x1b]0;y").contains('\x1b'));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(safe("plain name"), "plain name");
        let s = safe("x\x1b]0;pwned\x07y");
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s}");
        assert!(s.contains("\\u{1b}"), "{s}");
    }

    #[test]
    fn the_envelope_puts_kind_and_version_first() {
        #[derive(Serialize)]
        struct Body {
            a: u32,
        }
        let v = serde_json::to_string(&Envelope {
            kind: "kvmtune.x",
            version: 3,
            body: &Body { a: 1 },
        })
        .unwrap();
        assert_eq!(v, r#"{"kind":"kvmtune.x","version":3,"a":1}"#);
    }

    #[test]
    fn broken_pipes_are_recognised_through_context() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("cannot write to stdout");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn output_files_refuse_devices_and_links() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("plan.json");
        write_output(&f, b"{}", 0o600).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"{}");
        assert!(write_output(Path::new("/dev/null"), b"x", 0o600).is_err());
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(write_output(&l, b"x", 0o600).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"{}");
    }
}
