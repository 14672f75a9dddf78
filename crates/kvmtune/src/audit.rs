//! `kvmtune audit`: judge domain XML (files, a libvirt connection or a bundle) against a
//! profile, print findings, and optionally write fixed XML or diffs.

use anyhow::{Context as _, Result, bail};

use crate::cli::{AuditArgs, Cli, OutputFormat};
use crate::output::{self, Exit, Style, print_text};
use kvmtune_core::audit::{self as core_audit, AuditReport, DomainReport, KIND, Streamed, VERSION};
use kvmtune_core::inventory::{Inventory, Select, is_file_arg};
use kvmtune_core::profiles::Profiles;
use kvmtune_rules::audit::{Applies, Finding, Severity};

pub fn run(cli: &Cli, args: &AuditArgs) -> Result<Exit> {
    let profiles = Profiles::from_args(&args.profile)?;
    let fail_on = match &args.fail_on {
        Some(s) => Severity::parse(s)
            .with_context(|| format!("--fail-on {s}: expected info, warn or error"))?,
        None => Severity::Warn,
    };
    if args.output.as_deref().is_some_and(output::is_stdout) {
        bail!("-o takes a directory for the fixed XML files; --diff prints the changes instead");
    }
    if args.fix && args.output.is_none() && !args.diff {
        bail!("--fix needs -o DIR (write the fixed XML) or --diff (print the changes)");
    }
    let sel = Select {
        targets: args.targets.clone(),
        all: args.all,
        host_for_files: args.host,
    };
    let origin = crate::origin(cli);
    // XML files only, nothing to fix: one file at a time (memory flat in the number of
    // files); anything else gathers the inventory first
    let streaming = origin.from.is_none()
        && !args.all
        && !args.fix
        && !args.diff
        && !args.targets.is_empty()
        && args.targets.iter().all(|t| is_file_arg(t));
    let (mut report, inv) = if streaming {
        let (host, host_origin) = if args.host || origin.root.is_some() {
            let (host, from) = origin.host_facts()?;
            (Some(host), from)
        } else {
            (None, kvmtune_core::inventory::NO_HOST_FOR_FILES.to_string())
        };
        let format = if cli.json {
            OutputFormat::Json
        } else {
            args.format
        };
        // printed as it goes; what is left is the exit code. Without a temporary file
        // (no writable $TMPDIR), the whole report in memory as for other inputs.
        let spill = (format != OutputFormat::Sarif && !output::capturing())
            .then(|| Spill::new(format == OutputFormat::Json, args.targets.len()))
            .and_then(Result::ok);
        if let Some(spill) = spill {
            let report = audit_files_spilled(
                cli,
                args,
                host.as_ref(),
                host_origin,
                profiles,
                spill,
                &mut output::stdout_writer(),
            )?;
            for e in &report.errors {
                output::error(e);
            }
            if !report.errors.is_empty() {
                return Ok(Exit::Error);
            }
            return Ok(Exit::findings_if(
                report.summary.worst().is_some_and(|w| w >= fail_on),
            ));
        }
        let report = core_audit::audit_files(&args.targets, host.as_ref(), host_origin, profiles);
        (report, None)
    } else {
        let inv = Inventory::gather(&origin, &sel)?;
        // --all over a connection or bundle without domains: an empty report, not an error
        if inv.domains.is_empty() && inv.errors.is_empty() && !args.all {
            bail!("nothing to audit: give XML files, domain names or --all");
        }
        let profiles = profiles.with_metadata(&inv);
        (core_audit::audit_with(&inv, &profiles), Some(inv))
    };
    if !args.secrets {
        report.redact();
    }

    let fixed = match (&inv, args.fix) {
        (Some(inv), true) => core_audit::fixed(inv, &report, &[]),
        _ => Vec::new(),
    };
    if let Some(dir) = &args.output {
        kvmtune_host::fsio::create_dir(dir, kvmtune_host::fsio::PRIVATE_DIR)?;
        if let Some((a, b, name)) = core_audit::name_clash(&fixed) {
            bail!(
                "-o {}: {a} and {b} would both be written as {name}",
                dir.display()
            );
        }
        // every file is staged before any is renamed: a failed write leaves nothing behind
        kvmtune_host::fsio::write_all_atomic(
            &core_audit::output_paths(dir, &fixed),
            kvmtune_host::fsio::PRIVATE_FILE,
        )?;
    }
    let diffs: Vec<String> = if args.diff {
        fixed
            .iter()
            .filter(|f| f.changed())
            .map(|f| {
                if args.secrets {
                    f.diff()
                } else {
                    f.redacted_diff()
                }
            })
            .collect()
    } else {
        Vec::new()
    };

    let format = if cli.json {
        OutputFormat::Json
    } else {
        args.format
    };
    match format {
        OutputFormat::Json => {
            if args.diff {
                let mut v = serde_json::to_value(&report).context("cannot encode the report")?;
                v["diffs"] = serde_json::json!(diffs);
                output::print_doc(KIND, VERSION, &v)?;
            } else {
                output::print_doc(KIND, VERSION, &report)?;
            }
        }
        OutputFormat::Sarif => crate::print_json(&crate::sarif::sarif(&report))?,
        OutputFormat::Text => {
            if args.diff {
                print_text(&Style::of(cli).diff(&diffs.concat()))?;
            } else {
                print_text(&render(&report, &Style::of(cli)))?;
            }
        }
    }
    if let (Some(dir), false) = (&args.output, cli.json || args.format != OutputFormat::Text) {
        output::note(&format!(
            "wrote {} fixed domain XML file(s) to {}",
            fixed.len(),
            dir.display()
        ));
    }
    for e in &report.errors {
        output::error(e);
    }
    if !report.errors.is_empty() {
        return Ok(Exit::Error);
    }
    Ok(Exit::findings_if(
        report.worst().is_some_and(|w| w >= fail_on),
    ))
}

/// The kind of the audit of several hosts (docs/json.md).
pub const FLEET_KIND: &str = "kvmtune.fleet-audit";
pub const FLEET_VERSION: u32 = 1;

/// Add `"host": HOST` to every finding of an audit document body.
pub fn tag_findings(v: &mut serde_json::Value, host: &str) {
    let tag = |list: Option<&mut serde_json::Value>| {
        if let Some(serde_json::Value::Array(a)) = list {
            for f in a {
                if let serde_json::Value::Object(o) = f {
                    o.insert("host".into(), serde_json::json!(host));
                }
            }
        }
    };
    if let Some(serde_json::Value::Array(ds)) = v.get_mut("domains") {
        for d in ds {
            tag(d.get_mut("findings"));
        }
    }
    tag(v.get_mut("host_findings"));
}

/// `kvmtune audit` over several hosts: every domain of every host, each host with its
/// profile; the fleet table, then each host's audit.
pub fn run_many(
    cli: &Cli,
    args: &AuditArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    use crate::fleet;
    // the arguments are checked before any host is contacted
    Profiles::from_args(&args.profile)?;
    let fail_on = fleet::fail_on(args.fail_on.as_deref())?;
    if !args.targets.is_empty() {
        bail!(
            "with several hosts, audit takes no FILE|DOMAIN: every domain of every host is audited"
        );
    }
    if args.fix || args.host {
        bail!("--fix and --host work on one host; audit one host (-c URI) for them");
    }
    let outcomes = fleet::gather(cli, &hosts, args.profile.clone(), true, None);
    let mut rows = fleet::rows(&hosts, &outcomes);
    let mut reports: Vec<Option<AuditReport>> = outcomes
        .into_iter()
        .map(|o| o.result.ok().and_then(|a| a.survey.audit))
        .collect();
    if !args.secrets {
        reports.iter_mut().flatten().for_each(AuditReport::redact);
    }
    // NAME=DOMAIN for a domain no host has is an error, as with one host
    let mut errors = Vec::new();
    for a in &args.profile {
        if let Some((name, dom)) = a.split_once('=')
            && !rows
                .iter()
                .filter_map(|r| r.figures.as_ref())
                .any(|f| f.domains.iter().any(|d| d.name == dom))
        {
            errors.push(format!(
                "--profile {name}={dom}: no domain {dom} on any host"
            ));
        }
    }
    let findings = reports
        .iter()
        .flatten()
        .any(|r| r.worst().is_some_and(|w| w >= fail_on));
    let format = if cli.json {
        OutputFormat::Json
    } else {
        args.format
    };
    match format {
        OutputFormat::Json => {
            let mut list = Vec::new();
            for (row, rep) in rows.iter().zip(&reports) {
                let report = match rep {
                    Some(r) => {
                        let mut v = serde_json::to_value(r).context("cannot encode the report")?;
                        tag_findings(&mut v, &row.host);
                        v
                    }
                    None => serde_json::Value::Null,
                };
                list.push(serde_json::json!({
                    "host": row.host, "uri": row.uri, "ok": row.ok, "error": row.error,
                    "report": report,
                }));
            }
            output::print_doc(
                FLEET_KIND,
                FLEET_VERSION,
                &serde_json::json!({
                    "summary": fleet::summary(&rows),
                    "fleet": rows,
                    "errors": errors,
                    "hosts": list,
                }),
            )?;
        }
        OutputFormat::Sarif => {
            let list: Vec<(&str, &AuditReport)> = rows
                .iter()
                .zip(&reports)
                .filter_map(|(row, r)| r.as_ref().map(|r| (row.host.as_str(), r)))
                .collect();
            crate::print_json(&crate::sarif::sarif_hosts(&list))?;
        }
        OutputFormat::Text => {
            let st = Style::of(cli);
            let mut out = fleet::render(&rows, &st);
            for (row, rep) in rows.iter().zip(&reports) {
                out.push('\n');
                out.push_str(&st.bold(&format!(
                    "== {} ({}) ==",
                    output::safe(&row.host),
                    output::safe(&row.uri)
                )));
                out.push('\n');
                match rep {
                    Some(r) => out.push_str(&render(r, &st)),
                    None => out.push_str(&format!(
                        "error: {}\n",
                        output::one_line(row.error.as_deref().unwrap_or("failed"))
                    )),
                }
            }
            print_text(&out)?;
        }
    }
    for (row, rep) in rows.iter().zip(&reports) {
        for e in rep.iter().flat_map(|r| &r.errors) {
            output::error(&format!("{}: {e}", row.host));
        }
    }
    for e in &errors {
        output::error(e);
    }
    // a host whose report has errors counts as a failed host
    for (row, rep) in rows.iter_mut().zip(&reports) {
        if let Some(r) = rep {
            row.input_errors = r.errors.clone();
        }
    }
    let code = fleet::exit(&rows, findings || !errors.is_empty());
    if code == Exit::Error {
        output::error(&format!("no host answered ({} tried)", rows.len()));
    }
    Ok(code)
}

const PAD: usize = 10;

fn render_finding(out: &mut String, f: &Finding, st: &Style) {
    let line = f
        .evidence
        .first()
        .and_then(|e| e.line)
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    let mark = if f.suspect { " [suspected]" } else { "" };
    let first = format!("  {} {} ", st.severity(f.severity), f.rule);
    out.push_str(&st.wrap(
        &first,
        PAD,
        &format!("{}{mark}{line}", output::safe(&f.message)),
    ));
    let pad = " ".repeat(PAD);
    let field = |out: &mut String, label: &str, text: &str| {
        let first = format!("{pad}{label}: ");
        out.push_str(&st.wrap(&first, PAD + label.len() + 2, text));
    };
    if st.verbose {
        for e in &f.evidence {
            let at = format!(
                "{}{}: {}",
                e.path,
                e.line.map(|l| format!(" line {l}")).unwrap_or_default(),
                output::safe(&e.value)
            );
            field(out, "at", &at);
        }
    }
    // the whole reason: its first sentence alone often says nothing (pin-emulator's)
    field(out, "why", f.why);
    match &f.fix {
        Some(fix) => {
            let applies = match fix.applies {
                Applies::Live => "live",
                Applies::NextBoot => "next boot",
            };
            field(
                out,
                "fix",
                &format!(
                    "[{}] {} ({applies}): {}",
                    fix.class,
                    fix.summary,
                    output::safe(&fix.command)
                ),
            );
            if st.verbose {
                for e in &fix.edits {
                    out.push_str(&st.wrap(&format!("{pad}     "), PAD + 5, &e.describe()));
                }
            }
        }
        None => {
            let generic = kvmtune_rules::audit::rules()
                .iter()
                .find(|r| r.meta.id == f.rule)
                .map(|r| format!("[{}] {}", r.meta.class, r.meta.fix))
                .unwrap_or_default();
            field(out, "fix", &generic);
        }
    }
    if st.verbose {
        field(
            out,
            "risk",
            f.fix.as_ref().map_or(f.risk, |x| x.risk.as_str()),
        );
    }
    if let Some(a) = &f.assumed {
        field(out, "assumed", a);
    }
}

/// The audit as text, wrapped at the style's width.
pub fn render(r: &AuditReport, st: &Style) -> String {
    let mut out = render_head(r, st);
    for d in &r.domains {
        render_domain(&mut out, d, st);
    }
    out.push_str(&render_tail(r, r.domains.len(), st));
    out
}

/// The first line of the text report.
fn render_head(r: &AuditReport, st: &Style) -> String {
    st.wrap(
        "",
        2,
        &format!(
            "kvmtune audit: profile {}, host facts: {}, domain capabilities: {}",
            r.profile, r.host, r.domain_capabilities
        ),
    )
}

/// One domain's part of the text report.
fn render_domain(out: &mut String, d: &DomainReport, st: &Style) {
    render_domain_head(out, d, d.findings.len(), st);
    for f in &d.findings {
        render_finding(out, f, st);
    }
}

/// The line that opens a domain's findings, for a domain with `n` findings.
fn render_domain_head(out: &mut String, d: &DomainReport, n: usize, st: &Style) {
    out.push('\n');
    let counts = if n == 0 {
        "clean".to_string()
    } else {
        format!("{n} finding(s)")
    };
    out.push_str(&st.wrap(
        "",
        2,
        &format!(
            "{} ({}) - profile {} - {counts}",
            st.bold(&output::safe(&d.name)),
            output::safe(&d.origin),
            output::safe(&d.profile)
        ),
    ));
}

/// The host's findings and the summary line, after `domains` domains.
fn render_tail(r: &AuditReport, domains: usize, st: &Style) -> String {
    let mut out = String::new();
    if !r.host_findings.is_empty() {
        out.push('\n');
        out.push_str(&st.bold("host"));
        out.push('\n');
        for f in &r.host_findings {
            render_finding(&mut out, f, st);
        }
    }
    out.push('\n');
    out.push_str(&format!(
        "{} domain(s): {} error, {} warn, {} info{}\n",
        domains,
        r.summary.error,
        r.summary.warn,
        r.summary.info,
        if r.errors.is_empty() {
            String::new()
        } else {
            format!("; {} input(s) could not be read", r.errors.len())
        }
    ));
    out
}

/// The text or JSON of each domain, written to an unnamed temporary file as the domain is
/// audited (memory stays flat in the number of files), then copied to standard output in
/// the report's order: the same bytes as printing the whole report.
struct Spill {
    /// JSON parts (else text)
    json: bool,
    file: std::io::BufWriter<std::fs::File>,
    written: u64,
    /// (sort key, input index, where its bytes are) of each domain's part
    parts: Vec<(SpillKey, usize, Part)>,
    /// Of each domain whose report waits for the last file (by input index): where the
    /// findings given first were written, one after the other, and each one's (start,
    /// length) in that piece
    waiting: std::collections::HashMap<usize, Waiting>,
}

/// Where a domain's part is in the temporary file.
enum Part {
    /// Bytes `offset..offset + length`, whole.
    Whole(u64, u64),
    /// A domain whose report waited for the last file, put together when copied out: its
    /// first findings stay where they were written (not read back and written again).
    Joined(Joined),
}

/// The pieces of a [`Part::Joined`]. How they fit together is written to the file too
/// (after the tail), so memory holds nothing per finding.
struct Joined {
    /// Where the findings given first were written, one after the other (offset, length).
    first: (u64, u64),
    /// Where the rest was written: its head, its added findings, its tail, then the layout:
    /// each first finding's start and length in its piece and, for each added one, after
    /// how many of the first ones it goes and its length (each a little-endian `u32`).
    rest: (u64, u64),
    /// The head's length.
    head: u32,
    /// Where the layout starts in the rest.
    layout: u32,
    /// How many first and added findings there are.
    firsts: u32,
    added: u32,
}

/// A count or length as the layout of a [`Joined`] keeps it.
fn layout_u32(n: usize) -> Result<u32> {
    u32::try_from(n).context(WRITE_TEMP)
}

/// Where a domain's first findings were written, (offset, length), and each finding's
/// (start, length) in that piece.
type Waiting = ((u64, u64), Vec<(usize, usize)>);

type SpillKey = (
    std::cmp::Reverse<Option<Severity>>,
    std::cmp::Reverse<usize>,
    String,
);

/// Between two findings in a domain's `findings` array of the JSON document (which lays
/// the array out at depth 3, its elements at depth 4).
const JSON_SEPARATOR: &[u8] = b",\n        ";

const WRITE_STDOUT: &str = "cannot write to stdout";
const WRITE_TEMP: &str = "cannot write the audit's output to its temporary file (TMPDIR)";
const READ_TEMP: &str = "cannot read back the audit's temporary file";

impl Spill {
    /// `files`: how many inputs there are (at most one part each: the list of parts is
    /// made that long at once, not grown by copying).
    fn new(json: bool, files: usize) -> Result<Spill> {
        let file = tempfile::tempfile()
            .context("cannot create a temporary file for the audit's output (TMPDIR)")?;
        Ok(Spill {
            json,
            file: std::io::BufWriter::with_capacity(64 * 1024, file),
            written: 0,
            parts: Vec::with_capacity(files),
            waiting: std::collections::HashMap::new(),
        })
    }

    /// Write `bytes` to the file, after what was written before.
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write as _;
        self.file.write_all(bytes).context(WRITE_TEMP)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// The sort key of `d`'s part in the report's place of a domain with `n` findings.
    fn key(d: &DomainReport, n: usize) -> SpillKey {
        (
            std::cmp::Reverse(d.worst),
            std::cmp::Reverse(n),
            d.name.clone(),
        )
    }

    /// Add `d`'s part (`bytes`), in the report's place of a domain with `n` findings.
    fn push(&mut self, index: usize, d: &DomainReport, n: usize, bytes: &[u8]) -> Result<()> {
        let offset = self.written;
        self.write(bytes)?;
        self.parts.push((
            Spill::key(d, n),
            index,
            Part::Whole(offset, bytes.len() as u64),
        ));
        Ok(())
    }

    /// Keep the findings of a domain whose report waits for the last file: `findings`,
    /// each one's (start, length) in it given by `spans`.
    fn push_first(
        &mut self,
        index: usize,
        findings: &[u8],
        spans: Vec<(usize, usize)>,
    ) -> Result<()> {
        let at = (self.written, findings.len() as u64);
        self.write(findings)?;
        self.waiting.insert(index, (at, spans));
        Ok(())
    }

    /// Add the part of a domain given first to [`Spill::push_first`]: `head` (up to its
    /// findings), its findings (the first ones with `added` inserted where they go, as
    /// [`core_audit::merged`]; in JSON a separator between two), `tail` (after them). Only
    /// the head, the added findings and the tail are written; the first findings are
    /// copied out from where they are.
    fn push_rest(
        &mut self,
        index: usize,
        d: &DomainReport,
        total: usize,
        head: &[u8],
        added: Vec<(usize, Vec<u8>)>,
        tail: &[u8],
    ) -> Result<()> {
        let (first, spans) = self.waiting.remove(&index).unwrap_or_default();
        let start = self.written;
        self.write(head)?;
        for (_, f) in &added {
            self.write(f)?;
        }
        self.write(tail)?;
        let mut layout = Vec::with_capacity(8 * (spans.len() + added.len()));
        for &(start, n) in &spans {
            layout.extend_from_slice(&layout_u32(start)?.to_le_bytes());
            layout.extend_from_slice(&layout_u32(n)?.to_le_bytes());
        }
        for (at, f) in &added {
            layout.extend_from_slice(&layout_u32(*at)?.to_le_bytes());
            layout.extend_from_slice(&layout_u32(f.len())?.to_le_bytes());
        }
        let layout_at = layout_u32(usize::try_from(self.written - start).context(WRITE_TEMP)?)?;
        self.write(&layout)?;
        let joined = Joined {
            first,
            rest: (start, self.written - start),
            head: layout_u32(head.len())?,
            layout: layout_at,
            firsts: layout_u32(spans.len())?,
            added: layout_u32(added.len())?,
        };
        self.parts
            .push((Spill::key(d, total), index, Part::Joined(joined)));
        Ok(())
    }

    /// Copy the parts to `out` in the report's order, `sep` between two.
    fn copy_sorted(mut self, out: &mut dyn std::io::Write, first: &[u8], sep: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt as _;
        let file = self
            .file
            .into_inner()
            .map_err(|e| e.into_error())
            .context(WRITE_TEMP)?;
        self.parts.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        // one pread per piece, no seek; each buffer grown (and zeroed) only when a piece is
        // longer than any before
        let read = |buf: &mut Vec<u8>, (offset, len): (u64, u64)| -> Result<()> {
            let len = usize::try_from(len).context(READ_TEMP)?;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            file.read_exact_at(&mut buf[..len], offset)
                .context(READ_TEMP)
        };
        let (mut buf, mut firsts) = (Vec::new(), Vec::new());
        for (i, (_, _, part)) in self.parts.iter().enumerate() {
            out.write_all(if i == 0 { first } else { sep })
                .context(WRITE_STDOUT)?;
            match part {
                Part::Whole(offset, len) => {
                    read(&mut buf, (*offset, *len))?;
                    out.write_all(&buf[..*len as usize]).context(WRITE_STDOUT)?;
                }
                Part::Joined(j) => {
                    read(&mut firsts, j.first)?;
                    read(&mut buf, j.rest)?;
                    let rest = buf.get(..j.rest.1 as usize).context(READ_TEMP)?;
                    let (rest, layout) = rest
                        .split_at_checked(j.layout as usize)
                        .context(READ_TEMP)?;
                    let mut numbers = layout
                        .chunks_exact(4)
                        .map(|b| b.try_into().map_or(0, u32::from_le_bytes) as usize);
                    let mut first = Vec::with_capacity(j.firsts as usize);
                    for _ in 0..j.firsts {
                        let (Some(start), Some(n)) = (numbers.next(), numbers.next()) else {
                            bail!("{READ_TEMP}: a domain's layout is cut short");
                        };
                        first.push(firsts.get(start..start + n).context(READ_TEMP)?);
                    }
                    let mut at = j.head as usize;
                    let mut added = Vec::with_capacity(j.added as usize);
                    for _ in 0..j.added {
                        let (Some(after), Some(n)) = (numbers.next(), numbers.next()) else {
                            bail!("{READ_TEMP}: a domain's layout is cut short");
                        };
                        added.push((after, rest.get(at..at + n).context(READ_TEMP)?));
                        at += n;
                    }
                    out.write_all(rest.get(..j.head as usize).context(READ_TEMP)?)
                        .context(WRITE_STDOUT)?;
                    for (k, f) in core_audit::merged(first, added).into_iter().enumerate() {
                        if k > 0 && self.json {
                            out.write_all(JSON_SEPARATOR).context(WRITE_STDOUT)?;
                        }
                        out.write_all(f).context(WRITE_STDOUT)?;
                    }
                    out.write_all(rest.get(at..).context(READ_TEMP)?)
                        .context(WRITE_STDOUT)?;
                }
            }
        }
        Ok(())
    }
}

/// `audit FILE...` printing each domain as it goes into a [`Spill`]: JSON or text.
fn audit_files_spilled(
    cli: &Cli,
    args: &AuditArgs,
    host: Option<&kvmtune_host::Host>,
    host_origin: String,
    profiles: Profiles,
    mut spill: Spill,
    out: &mut dyn std::io::Write,
) -> Result<AuditReport> {
    let st = Style::of(cli);
    let json = spill.json;
    // one domain's JSON or text: reused from domain to domain
    let mut indented = Vec::new();
    let mut text = String::new();
    let mut report = core_audit::audit_files_with(
        &args.targets,
        host,
        host_origin,
        profiles,
        &mut |i, part: Streamed| -> Result<()> {
            // one finding's JSON or text, after what `out` holds
            let render = |out: &mut Vec<u8>, f: &Finding| -> Result<()> {
                if json {
                    finding_json(out, f)
                } else {
                    let mut s = String::new();
                    render_finding(&mut s, f, &st);
                    out.extend_from_slice(s.as_bytes());
                    Ok(())
                }
            };
            match part {
                Streamed::Whole(mut d) => {
                    if !args.secrets {
                        d.redact();
                    }
                    if json {
                        // at its depth in the document: inside the envelope's `domains` array
                        indented.clear();
                        domain_json(&mut indented, &d)?;
                        spill.push(i, &d, d.findings.len(), &indented)
                    } else {
                        text.clear();
                        render_domain(&mut text, &d, &st);
                        spill.push(i, &d, d.findings.len(), text.as_bytes())
                    }
                }
                // each finding on its own, put together with the rest at the end
                Streamed::First(mut d) => {
                    if !args.secrets {
                        d.redact();
                    }
                    indented.clear();
                    let mut spans = Vec::with_capacity(d.findings.len());
                    for f in &d.findings {
                        let start = indented.len();
                        render(&mut indented, f)?;
                        spans.push((start, indented.len() - start));
                    }
                    spill.push_first(i, &indented, spans)
                }
                Streamed::Rest {
                    report: d,
                    added,
                    total,
                } => {
                    let mut rendered = Vec::with_capacity(added.len());
                    for (at, mut f) in added {
                        if !args.secrets {
                            core_audit::redact_finding(&mut f);
                        }
                        let mut v = Vec::new();
                        render(&mut v, &f)?;
                        rendered.push((at, v));
                    }
                    let (head, tail) = if json {
                        // the domain without findings, cut where they go
                        indented.clear();
                        domain_json(&mut indented, &d)?;
                        split_findings(&indented, total)?
                    } else {
                        let mut s = String::new();
                        render_domain_head(&mut s, &d, total, &st);
                        (s.into_bytes(), Vec::new())
                    };
                    spill.push_rest(i, &d, total, &head, rendered, &tail)
                }
            }
        },
    )?;
    if !args.secrets {
        report.redact();
    }
    let n = spill.parts.len();
    if json {
        let mut head = Vec::new();
        serde_json::to_writer_pretty(
            &mut head,
            &output::Envelope {
                kind: KIND,
                version: VERSION,
                body: &report,
            },
        )
        .context("cannot encode JSON")?;
        let marker: &[u8] = b"\n  \"domains\": []";
        let at = head
            .windows(marker.len())
            .position(|w| w == marker)
            .context("the audit document has no domains array")?;
        // `head` up to the array, the domains, the rest of `head`
        let (before, rest) = head.split_at(at + marker.len());
        out.write_all(&before[..before.len() - 2])
            .context(WRITE_STDOUT)?;
        if n == 0 {
            out.write_all(b"[]").context(WRITE_STDOUT)?;
        } else {
            spill.copy_sorted(out, b"[\n    ", b",\n    ")?;
            out.write_all(b"\n  ]").context(WRITE_STDOUT)?;
        }
        out.write_all(rest).context(WRITE_STDOUT)?;
        out.write_all(b"\n").context(WRITE_STDOUT)?;
    } else {
        out.write_all(render_head(&report, &st).as_bytes())
            .context(WRITE_STDOUT)?;
        spill.copy_sorted(out, b"", b"")?;
        out.write_all(render_tail(&report, n, &st).as_bytes())
            .context(WRITE_STDOUT)?;
    }
    out.flush().context(WRITE_STDOUT)?;
    Ok(report)
}

/// One domain's report as JSON at its place in the audit document (inside the envelope's
/// `domains` array: two levels deep), as serde_json's pretty printer lays out the whole
/// document, written in one pass.
fn domain_json(out: &mut Vec<u8>, d: &DomainReport) -> Result<()> {
    use serde::Serialize as _;
    let mut ser = serde_json::Serializer::with_formatter(out, Nested::at(2));
    d.serialize(&mut ser).context("cannot encode JSON")
}

/// One finding's JSON at its place in the audit document (an element of a domain's
/// `findings` array: four levels deep).
fn finding_json(out: &mut Vec<u8>, f: &Finding) -> Result<()> {
    use serde::Serialize as _;
    let mut ser = serde_json::Serializer::with_formatter(out, Nested::at(4));
    f.serialize(&mut ser).context("cannot encode JSON")
}

/// A domain's JSON without findings ([`domain_json`]) cut in two where `total` findings go,
/// each after a [`JSON_SEPARATOR`] but the first: what comes before the first finding and
/// what follows the last. With no finding, the whole and nothing.
fn split_findings(domain: &[u8], total: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    // the key of a domain's field, at depth 3; a string in the document has its quotes
    // escaped, so only the key has this form
    const EMPTY: &[u8] = b"\n      \"findings\": []";
    let at = domain
        .windows(EMPTY.len())
        .position(|w| w == EMPTY)
        .context("a domain's JSON has no findings array")?;
    if total == 0 {
        return Ok((domain.to_vec(), Vec::new()));
    }
    let (before, after) = domain.split_at(at + EMPTY.len());
    let mut head = before[..before.len() - 1].to_vec();
    head.extend_from_slice(b"\n        ");
    let mut tail = b"\n      ]".to_vec();
    tail.extend_from_slice(after);
    Ok((head, tail))
}

/// serde_json's `PrettyFormatter` layout (two spaces a level) for a value that starts
/// `depth` levels deep in a document: the same bytes as the value's lines in the whole
/// document printed pretty.
struct Nested {
    depth: usize,
    has_value: bool,
}

impl Nested {
    fn at(depth: usize) -> Nested {
        Nested {
            depth,
            has_value: false,
        }
    }

    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        w.write_all(if first { b"\n" } else { b",\n" })?;
        let mut n = 2 * self.depth;
        while n > 0 {
            let k = n.min(SPACES.len());
            w.write_all(&SPACES[..k])?;
            n -= k;
        }
        Ok(())
    }

    fn open<W: ?Sized + std::io::Write>(&mut self, w: &mut W, c: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(c)
    }

    fn close<W: ?Sized + std::io::Write>(&mut self, w: &mut W, c: &[u8]) -> std::io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.has_value {
            self.newline(w, true)?;
        }
        w.write_all(c)
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use kvmtune_core::inventory::Origin;

    #[test]
    fn the_spilled_output_is_the_printed_report_byte_for_byte() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut targets = Vec::new();
        for dir in [
            "../shared/corpus/libvirt-domains",
            "../shared/corpus/wild-domains",
            "tests/fixtures/domains",
        ] {
            let mut files: Vec<String> = std::fs::read_dir(repo.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path().display().to_string())
                .filter(|p| p.ends_with(".xml"))
                .collect();
            files.sort();
            targets.extend(files);
        }
        // the same files twice (pinned ones overlap their copies), and inputs that fail
        let again = targets.clone();
        targets.extend(again);
        targets.insert(5, "/nonexistent/gone.xml".into());
        targets.insert(9, repo.join("Cargo.toml").display().to_string());
        for (extra, json) in [
            (vec![], true),
            (vec![], false),
            (vec!["--color", "always"], false),
        ] {
            let mut argv = vec!["kvmtune".to_string()];
            argv.extend(extra.iter().map(|s| s.to_string()));
            argv.push("audit".into());
            argv.extend(targets.iter().cloned());
            let cli = Cli::try_parse_from(&argv).unwrap();
            let crate::cli::Command::Audit(args) = &cli.command else {
                panic!("audit")
            };
            let mut spilled = Vec::new();
            let report = audit_files_spilled(
                &cli,
                args,
                None,
                "none".into(),
                Profiles::from_args(&[]).unwrap(),
                Spill::new(json, targets.len()).unwrap(),
                &mut spilled,
            )
            .unwrap();
            let mut whole = core_audit::audit_files(
                &targets,
                None,
                "none".into(),
                Profiles::from_args(&[]).unwrap(),
            );
            whole.redact();
            assert_eq!(report.summary.error, whole.summary.error);
            assert!(whole.domains.len() > 1000);
            let expected = if json {
                let mut t = serde_json::to_string_pretty(&output::Envelope {
                    kind: KIND,
                    version: VERSION,
                    body: &whole,
                })
                .unwrap();
                t.push('\n');
                t
            } else {
                render(&whole, &Style::of(&cli))
            };
            let got = String::from_utf8(spilled).unwrap();
            assert!(got == expected, "json {json} {extra:?}: the outputs differ");
        }
    }

    #[test]
    fn a_joined_part_puts_added_findings_in_their_place_and_a_damaged_file_is_an_error() {
        let report = |name: &str| DomainReport {
            name: name.into(),
            origin: String::new(),
            profile: String::new(),
            worst: None,
            findings: Vec::new(),
        };
        let joined = |cut: Option<u64>| -> Result<String> {
            let mut spill = Spill::new(true, 2)?;
            spill.push(1, &report("b"), 0, b"B")?;
            // the first findings, then the domain's end with one added after the first
            spill.push_first(0, b"f1f2f3", vec![(0, 2), (2, 2), (4, 2)])?;
            spill.push_rest(0, &report("a"), 4, b"<h ", vec![(1, b"X".to_vec())], b" t>")?;
            if let Some(len) = cut {
                use std::io::Write as _;
                spill.file.flush()?;
                spill.file.get_ref().set_len(len)?;
            }
            let mut out = Vec::new();
            spill.copy_sorted(&mut out, b"[", b"|")?;
            Ok(String::from_utf8(out)?)
        };
        let sep = std::str::from_utf8(JSON_SEPARATOR).unwrap();
        assert_eq!(
            joined(None).unwrap(),
            format!("[<h f1{sep}X{sep}f2{sep}f3 t>|B")
        );
        // the layout cut off, or the first findings gone: one line naming the file, no panic
        for len in [20, 3, 0] {
            let e = format!("{:#}", joined(Some(len)).unwrap_err());
            assert!(
                e.contains("cannot read back the audit's temporary file"),
                "{len}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// serde_json's bytes for a domain report, indented into the `domains` array.
    fn serde_domain(d: &DomainReport) -> String {
        serde_json::to_string_pretty(d)
            .unwrap()
            .replace('\n', "\n    ")
    }

    #[test]
    fn domain_json_is_serde_json_s_pretty_layout() {
        use kvmtune_rules::audit::{Edit, Fix, FixClass, Op, Target};
        let wild = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/wild-domains/12.xml");
        let targets = vec![wild.display().to_string()];
        let mut report = core_audit::audit_files(
            &targets,
            None,
            "none".into(),
            Profiles::from_args(&[]).unwrap(),
        );
        let mut d = report.domains.remove(0);
        assert!(d.findings.len() > 3);
        let odd = "a\"b\\c\u{1}\u{8}\u{c}\t\n\r\u{1f}\u{7f}\u{1b}[0m é 中 \u{9f}";
        let f = &mut d.findings[0];
        f.message = odd.into();
        f.subject = odd.into();
        f.assumed = Some(odd.into());
        f.suspect = true;
        f.evidence.push(kvmtune_rules::audit::Evidence {
            path: odd.into(),
            line: Some(1234567),
            value: odd.into(),
        });
        let edit = |op| Edit {
            target: Target::Node(0),
            path: odd.into(),
            op,
        };
        f.fix = Some(Fix {
            summary: odd.into(),
            edits: vec![
                edit(Op::Ensure),
                edit(Op::SetAttr {
                    attr: odd.into(),
                    value: odd.into(),
                }),
                edit(Op::RemoveAttr { attr: odd.into() }),
                edit(Op::SetText { text: odd.into() }),
                edit(Op::Remove),
            ],
            command: odd.into(),
            applies: Applies::NextBoot,
            class: FixClass::GuestDriver,
            risk: odd.into(),
        });
        d.findings[1].fix = None;
        d.findings[1].evidence.clear();
        d.findings[1].assumed = None;
        d.name = odd.into();
        for (worst, findings) in [(d.worst, d.findings.clone()), (None, Vec::new())] {
            d.worst = worst;
            d.findings = findings;
            let mut got = Vec::new();
            domain_json(&mut got, &d).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), serde_domain(&d));
        }
    }

    #[test]
    fn the_corpus_audit_reads_cleanly_at_80_columns() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
        let mut targets = Vec::new();
        for (sub, most) in [("wild-domains", 1000), ("libvirt-domains", 300)] {
            let mut files: Vec<String> = std::fs::read_dir(corpus.join(sub))
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".xml"))
                .collect();
            files.sort();
            targets.extend(files.into_iter().take(most));
        }
        assert!(!targets.is_empty());
        let inv = Inventory::gather(
            &Origin::local("test:///default"),
            &Select {
                targets,
                ..Select::default()
            },
        )
        .unwrap();
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let text = render(&core_audit::audit(&inv, &profile), &Style::plain());
        let mut findings = 0;
        for l in text.lines() {
            // a line may only run over when it is one unbreakable word after its indent
            if l.chars().count() > 80 {
                assert!(
                    l.trim().split(' ').count() <= 2,
                    "over 80 columns with a place to break: {l:?}"
                );
            }
            if l.starts_with("  WARN ") || l.starts_with("  ERROR ") {
                findings += 1;
            }
        }
        assert!(findings > 0, "{text}");
    }
}
