//! `kvmtune top`: a full-screen live view of every running domain (ratatui).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize as _};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::Exit;
use crate::cli::{Cli, TopArgs};
use crate::output::human;
use kvmtune_core::watch::{Watch, check_interval};
use kvmtune_kvmstat::exits::{Counter, counter};
use kvmtune_kvmstat::live::{Frame, VmFigures};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Name,
    Host,
    Guest,
    Overhead,
    Emulator,
    Exits,
    Io,
    Delay,
    Rss,
    Balloon,
    Node,
}

const COLS: [Col; 11] = [
    Col::Name,
    Col::Host,
    Col::Guest,
    Col::Overhead,
    Col::Emulator,
    Col::Exits,
    Col::Io,
    Col::Delay,
    Col::Rss,
    Col::Balloon,
    Col::Node,
];

/// Columns hidden first when the terminal is too narrow for all, in this order.
const HIDE_ORDER: [Col; 5] = [Col::Emulator, Col::Delay, Col::Guest, Col::Balloon, Col::Io];

/// The narrowest DOMAIN column (longer names are cut to fit the terminal down to this).
const MIN_NAME: u16 = 12;

impl Col {
    pub fn parse(s: &str) -> Col {
        match s {
            "name" => Col::Name,
            "guest" => Col::Guest,
            "overhead" => Col::Overhead,
            "emulator" => Col::Emulator,
            "exits" => Col::Exits,
            "io" => Col::Io,
            "delay" => Col::Delay,
            "rss" => Col::Rss,
            "balloon" => Col::Balloon,
            "node" => Col::Node,
            _ => Col::Host,
        }
    }
    fn title(self) -> &'static str {
        match self {
            Col::Name => "DOMAIN",
            Col::Host => "HOST%",
            Col::Guest => "GUEST%",
            Col::Overhead => "OVH%",
            Col::Emulator => "EMU%",
            Col::Exits => "EXITS/s",
            Col::Io => "IO/s",
            Col::Delay => "DELAY%",
            Col::Rss => "RSS",
            Col::Balloon => "BALLOON",
            Col::Node => "NODE",
        }
    }
    /// The column's width (figures; DOMAIN is sized to the names).
    fn width(self) -> u16 {
        match self {
            Col::Name => MIN_NAME,
            Col::Exits | Col::Balloon => 7,
            Col::Node => 5,
            _ => 6,
        }
    }
    fn value(self, d: &VmFigures) -> Option<f64> {
        match self {
            Col::Name => None,
            Col::Host => d.host_cpu_pct,
            Col::Guest => d.guest_cpu_pct,
            Col::Overhead => d.overhead_pct,
            Col::Emulator => d.emulator_cpu_pct,
            Col::Exits => d.exits.as_ref().map(|e| e.total),
            Col::Io => d.exits.as_ref().map(|e| e.io),
            Col::Delay => d.delay_pct,
            Col::Rss => d.rss_kib.map(|k| k as f64),
            Col::Balloon => d.balloon_kib.map(|k| k as f64),
            Col::Node => node_list(d).first().map(|n| f64::from(*n)),
        }
    }
    fn cell(self, d: &VmFigures) -> String {
        match self {
            Col::Name => crate::output::safe(&d.name).into_owned(),
            Col::Exits | Col::Io => self.value(d).map(human).unwrap_or_else(|| "-".into()),
            Col::Rss | Col::Balloon => self
                .value(d)
                .map(|k| size_kib(k as u64))
                .unwrap_or_else(|| "-".into()),
            Col::Node => {
                let n = node_list(d);
                if n.is_empty() {
                    "-".into()
                } else {
                    n.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                }
            }
            _ => self
                .value(d)
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
        }
    }
}

/// The host NUMA nodes of the CPUs the domain's vCPUs last ran on.
fn node_list(d: &VmFigures) -> Vec<u32> {
    d.memory
        .as_ref()
        .map(|m| m.vcpu_nodes.clone())
        .unwrap_or_default()
}

/// A size in KiB, short: `512M`, `1.9G`, `12G`.
pub fn size_kib(kib: u64) -> String {
    let g = kib as f64 / (1024.0 * 1024.0);
    if g >= 10.0 {
        format!("{g:.0}G")
    } else if g >= 1.0 {
        format!("{g:.1}G")
    } else {
        format!("{}M", kib / 1024)
    }
}

/// The host line's figures (this host only; a remote host has no /proc here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFigures {
    /// Busy share of all host CPUs over the last interval, in %.
    pub cpu_pct: Option<f64>,
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
    /// Memory KSM saves (pages_sharing x 4 KiB).
    pub ksm_saved_kib: Option<u64>,
}

/// `cpu` line of /proc/stat: (busy, total) jiffies.
pub fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Reads the host line's figures between refreshes.
struct HostReader {
    src: Box<dyn kvmtune_host::Source>,
    prev: Option<(u64, u64)>,
}

impl HostReader {
    fn read(&mut self) -> HostFigures {
        let mut h = HostFigures::default();
        let now = self
            .src
            .read_text("/proc/stat")
            .ok()
            .and_then(|t| cpu_jiffies(&t));
        if let (Some((b0, t0)), Some((b1, t1))) = (self.prev, now)
            && t1 > t0
            && b1 >= b0
        {
            h.cpu_pct = Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0);
        }
        self.prev = now;
        if let Some(m) = self
            .src
            .read_text("/proc/meminfo")
            .ok()
            .and_then(|t| kvmtune_host::memory::parse_meminfo(&t).ok())
        {
            h.mem_total_kib = m.get("MemTotal").copied();
            h.mem_available_kib = m.get("MemAvailable").copied();
        }
        h.ksm_saved_kib = self
            .src
            .read_value("/sys/kernel/mm/ksm/pages_sharing")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|p| p * 4);
        h
    }
}

/// The screen's state; drawn by [`draw`], changed by [`App::key`].
pub struct App {
    pub frame: Option<Frame>,
    pub sort: Col,
    /// Largest first (the default for figures), or smallest first.
    pub descending: bool,
    pub filter: String,
    pub editing_filter: bool,
    /// The selected domain, by name: it stays selected when rows re-sort.
    pub selected: Option<String>,
    /// Its row when last moved to (the selection falls back to this row when it stops).
    pub last_row: usize,
    /// The host line (None: a remote host, figures unknown here).
    pub host: Option<HostFigures>,
    /// The domain shown in detail (Enter).
    pub detail: Option<String>,
    pub status: String,
    pub source: String,
}

impl App {
    pub fn new(sort: Col, source: String) -> App {
        App {
            frame: None,
            sort,
            descending: sort != Col::Name,
            filter: String::new(),
            editing_filter: false,
            selected: None,
            last_row: 0,
            host: None,
            detail: None,
            status: String::new(),
            source,
        }
    }

    /// The rows shown: filtered by name, sorted.
    pub fn rows(&self) -> Vec<&VmFigures> {
        let Some(fr) = &self.frame else {
            return Vec::new();
        };
        let mut v: Vec<&VmFigures> = fr
            .domains
            .iter()
            .filter(|d| self.filter.is_empty() || d.name.contains(&self.filter))
            .collect();
        let col = self.sort;
        v.sort_by(|a, b| {
            let o = match col {
                Col::Name => a.name.cmp(&b.name),
                _ => col
                    .value(a)
                    .unwrap_or(-1.0)
                    .total_cmp(&col.value(b).unwrap_or(-1.0)),
            };
            let o = if self.descending { o.reverse() } else { o };
            o.then(a.name.cmp(&b.name))
        });
        v
    }

    /// The selected row: the selected domain's, wherever it sorted to; the same row when
    /// it stopped or is filtered out.
    pub fn cursor(&self, rows: &[&VmFigures]) -> usize {
        self.selected
            .as_ref()
            .and_then(|n| rows.iter().position(|d| &d.name == n))
            .unwrap_or_else(|| self.last_row.min(rows.len().saturating_sub(1)))
    }

    fn select_row(&mut self, i: usize) {
        let name = self.rows().get(i).map(|d| d.name.clone());
        self.selected = name;
        self.last_row = i;
    }

    /// Handle a key; true to quit.
    pub fn key(&mut self, k: KeyEvent) -> bool {
        if self.editing_filter {
            match k.code {
                KeyCode::Enter | KeyCode::Esc => self.editing_filter = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.selected = None;
            self.last_row = 0;
            return false;
        }
        let n = self.rows().len();
        let at = self.cursor(&self.rows());
        match k.code {
            KeyCode::Char('q') => return true,
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return true,
            KeyCode::Esc => self.detail = None,
            KeyCode::Down | KeyCode::Char('j') if n > 0 => self.select_row((at + 1).min(n - 1)),
            KeyCode::Up | KeyCode::Char('k') if n > 0 => self.select_row(at.saturating_sub(1)),
            KeyCode::Enter => {
                self.detail = self.rows().get(at).map(|d| d.name.clone());
            }
            KeyCode::Char('s') | KeyCode::Char('S') | KeyCode::Char('>') | KeyCode::Char('<') => {
                let i = COLS.iter().position(|c| *c == self.sort).unwrap_or(0);
                let back = matches!(k.code, KeyCode::Char('S') | KeyCode::Char('<'));
                let j = if back {
                    (i + COLS.len() - 1) % COLS.len()
                } else {
                    (i + 1) % COLS.len()
                };
                self.sort = COLS[j];
                self.descending = self.sort != Col::Name;
            }
            KeyCode::Char('r') => self.descending = !self.descending,
            KeyCode::Char('/') => {
                self.editing_filter = true;
                self.detail = None;
            }
            _ => {}
        }
        false
    }
}

fn header_lines(app: &App) -> Vec<Line<'static>> {
    let (time, n) = app
        .frame
        .as_ref()
        .map(|f| (f.time.clone(), f.domains.len()))
        .unwrap_or_else(|| ("sampling...".into(), 0));
    let mut s = format!(
        "kvmtune top  {}  {time}  sort {}{}",
        app.source,
        app.sort.title(),
        if app.descending { " v" } else { " ^" }
    );
    if !app.filter.is_empty() || app.editing_filter {
        s.push_str(&format!("  filter /{}", app.filter));
        if app.editing_filter {
            s.push('_');
        }
    }
    vec![Line::from(s).bold(), Line::from(host_line(app, n))]
}

/// `host CPU 12.3%  memory 10.2G used of 31.3G  KSM saves 1.2G  4 running, 2 match /lab`
pub fn host_line(app: &App, running: usize) -> String {
    let mut parts = Vec::new();
    match &app.host {
        Some(h) => {
            parts.push(format!(
                "host CPU {}",
                h.cpu_pct
                    .map(|c| format!("{c:.1}%"))
                    .unwrap_or_else(|| "-".into())
            ));
            parts.push(match (h.mem_total_kib, h.mem_available_kib) {
                (Some(t), Some(a)) => format!(
                    "memory {} used of {}",
                    size_kib(t.saturating_sub(a)),
                    size_kib(t)
                ),
                (Some(t), None) => format!("memory - used of {}", size_kib(t)),
                _ => "memory -".into(),
            });
            parts.push(format!(
                "KSM saves {}",
                h.ksm_saved_kib.map(size_kib).unwrap_or_else(|| "-".into())
            ));
        }
        None => parts.push("host CPU -  memory -  KSM -".into()),
    }
    let mut count = format!("{running} running");
    if !app.filter.is_empty() {
        count.push_str(&format!(", {} match /{}", app.rows().len(), app.filter));
    }
    parts.push(count);
    parts.join("  ")
}

const HELP: &str = "q quit  Enter details  Esc back  s/S sort  r reverse  / filter";

/// The DOMAIN column's width and the columns shown at a terminal width: DOMAIN sized to
/// the longest name; when all do not fit, columns are hidden in [`HIDE_ORDER`], then long
/// names are cut (down to [`MIN_NAME`]).
pub fn layout(width: u16, names: &[&str]) -> (u16, Vec<Col>) {
    let inner = width.saturating_sub(2); // the table's border
    let longest = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(Col::Name.title().len()) as u16;
    let mut cols: Vec<Col> = COLS.iter().copied().filter(|c| *c != Col::Name).collect();
    let need =
        |cols: &[Col], name: u16| -> u16 { name + cols.iter().map(|c| c.width() + 1).sum::<u16>() };
    for c in HIDE_ORDER {
        if need(&cols, longest) <= inner {
            break;
        }
        cols.retain(|x| *x != c);
    }
    let over = need(&cols, longest).saturating_sub(inner);
    let name = longest.saturating_sub(over).max(MIN_NAME.min(longest));
    let mut shown = vec![Col::Name];
    shown.extend(cols);
    (name, shown)
}

/// What the `-` cells of the rows mean, and which columns a narrow terminal hides.
pub fn footer(app: &App, shown: &[Col]) -> String {
    let rows = app.rows();
    let mut notes = Vec::new();
    if rows.iter().any(|d| d.exits.is_none()) {
        notes.push("EXITS/IO: no KVM exit counters (a TCG domain, or libvirt/QEMU too old)");
    }
    if rows
        .iter()
        .any(|d| d.host_cpu_pct.is_none() || d.guest_cpu_pct.is_none())
    {
        notes.push("CPU: not measurable this interval (the first one, or no /proc)");
    }
    if rows
        .iter()
        .any(|d| d.rss_kib.is_none() || d.balloon_kib.is_none())
    {
        notes.push("RSS/BALLOON: not reported (no /proc for a remote host, or no balloon device)");
    }
    if rows.iter().any(|d| node_list(d).is_empty()) {
        notes.push("NODE: no host node of the vCPUs (a remote host, or no NUMA facts)");
    }
    if app.host.is_none() {
        notes.push("host figures: a remote host (its /proc is not read)");
    }
    let mut s = String::new();
    if !notes.is_empty() {
        s = format!("- = {}", notes.join("; "));
    }
    let hidden: Vec<&str> = COLS
        .iter()
        .filter(|c| !shown.contains(c))
        .map(|c| c.title())
        .collect();
    if !hidden.is_empty() {
        if !s.is_empty() {
            s.push_str("  ");
        }
        s.push_str(&format!("(narrow terminal: {} hidden)", hidden.join(", ")));
    }
    s
}

fn draw_list(f: &mut ratatui::Frame, area: ratatui::layout::Rect, app: &App) {
    let rows = app.rows();
    let names: Vec<&str> = rows.iter().map(|d| d.name.as_str()).collect();
    let (name_w, shown) = layout(area.width, &names);
    let header = Row::new(shown.iter().map(|c| {
        let t = c.title();
        if *c == app.sort {
            Cell::from(t).add_modifier(Modifier::UNDERLINED)
        } else {
            Cell::from(t)
        }
    }))
    .bold();
    let body: Vec<Row> = rows
        .iter()
        .map(|d| Row::new(shown.iter().map(|c| Cell::from(c.cell(d)))))
        .collect();
    let widths: Vec<Constraint> = shown
        .iter()
        .map(|c| Constraint::Length(if *c == Col::Name { name_w } else { c.width() }))
        .collect();
    let table = Table::new(body, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(" domains "));
    let selected = (!rows.is_empty()).then(|| app.cursor(&rows));
    let mut state = TableState::default().with_selected(selected);
    f.render_stateful_widget(table, area, &mut state);
}

/// The detail view's lines: the VM's figures, its vCPUs and every KVM counter by rate.
pub fn detail_lines(d: &VmFigures) -> Vec<String> {
    let o = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    let mut out = vec![
        format!(
            "{}  id {}  pid {}  {} vCPUs  balloon {} MiB  rss {} MiB",
            crate::output::safe(&d.name),
            d.id.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            d.pid.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            d.vcpus,
            d.balloon_kib
                .map(|k| (k / 1024).to_string())
                .unwrap_or_else(|| "-".into()),
            d.rss_kib
                .map(|k| (k / 1024).to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        format!(
            "host {}%  guest {}% ({})  overhead {}%  emulator {}%  delay {}%  halt polling {}%",
            o(d.host_cpu_pct),
            o(d.guest_cpu_pct),
            d.guest_cpu_source.as_deref().unwrap_or("-"),
            o(d.overhead_pct),
            o(d.emulator_cpu_pct),
            o(d.delay_pct),
            o(d.halt_poll_pct),
        ),
    ];
    if let Some(m) = &d.memory {
        let nodes: Vec<String> = m
            .per_node_kib
            .iter()
            .map(|(n, k)| format!("node{n} {} MiB", k / 1024))
            .collect();
        out.push(format!(
            "memory: {}  vCPU nodes {:?}  remote {}%",
            nodes.join(", "),
            m.vcpu_nodes,
            o(m.remote_share.map(|r| r * 100.0))
        ));
    }
    out.push(String::new());
    out.push(format!(
        "{:<6} {:>7} {:>7} {:>7} {:>9} {:>8}",
        "VCPU", "CPU%", "GUEST%", "DELAY%", "EXITS/s", "LASTCPU"
    ));
    for v in &d.vcpu {
        out.push(format!(
            "{:<6} {:>7} {:>7} {:>7} {:>9} {:>8}",
            v.id,
            o(v.cpu_pct),
            o(v.guest_pct),
            o(v.delay_pct),
            v.exits_per_s.map(human).unwrap_or_else(|| "-".into()),
            v.last_cpu
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ));
    }
    out.push(String::new());
    if d.kvm.is_empty() {
        out.push("no KVM counters (a TCG domain, or libvirt/QEMU without query-stats)".into());
    } else {
        out.push(format!(
            "{:<28} {:>10}  {}",
            "KVM COUNTER", "PER SEC", "KIND"
        ));
        let mut v: Vec<(&String, &f64)> = d.kvm.iter().filter(|(_, v)| **v > 0.0).collect();
        v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        for (k, r) in v {
            let kind = match counter(k) {
                Some(Counter::Total) => "all exits".to_string(),
                Some(Counter::Kind(x)) => x.label().to_string(),
                None => String::new(),
            };
            out.push(format!("{k:<28} {:>10}  {kind}", human(*r)));
        }
    }
    out
}

pub fn draw(f: &mut ratatui::Frame, app: &App) {
    let area = f.area();
    let names: Vec<String> = app.rows().iter().map(|d| d.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_, shown) = layout(area.width, &names);
    let foot = if app.detail.is_some() {
        String::new()
    } else {
        footer(app, &shown)
    };
    let foot_lines = if foot.is_empty() || area.width == 0 {
        0
    } else {
        (foot.chars().count() as u16).div_ceil(area.width).min(4)
    };
    let [top, main, notes, bottom] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(foot_lines),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(foot).wrap(ratatui::widgets::Wrap { trim: true }),
        notes,
    );
    f.render_widget(Paragraph::new(header_lines(app)), top);
    let detail = app.detail.as_ref().and_then(|name| {
        app.frame
            .as_ref()
            .and_then(|fr| fr.domains.iter().find(|d| &d.name == name))
    });
    match (&app.detail, detail) {
        (Some(_), Some(d)) => {
            let text: Vec<Line> = detail_lines(d).into_iter().map(Line::from).collect();
            f.render_widget(
                Paragraph::new(text)
                    .block(Block::bordered().title(format!(" {} ", crate::output::safe(&d.name)))),
                main,
            );
        }
        (Some(name), None) => {
            f.render_widget(
                Paragraph::new(format!("{name} is not running any more (Esc to go back)"))
                    .block(Block::bordered()),
                main,
            );
        }
        _ => draw_list(f, main, app),
    }
    let status = if app.status.is_empty() {
        HELP.to_string()
    } else {
        format!("{}  |  {HELP}", app.status)
    };
    f.render_widget(Paragraph::new(status), bottom);
}

pub fn run(cli: &Cli, args: &TopArgs) -> Result<Exit> {
    let interval = check_interval(args.interval)?;
    if cli.from.is_some() {
        bail!("live statistics need a running libvirt; --from reads a bundle");
    }
    if cli.json {
        bail!("kvmtune top is interactive; for JSON use `kvmtune stat --json`");
    }
    if !std::io::stdout().is_terminal() {
        bail!("kvmtune top needs a terminal; use `kvmtune stat` for a log");
    }
    let mut watch = Watch::open(&crate::origin(cli), args.domains.clone(), None)?;
    let mut prev = watch.take()?;
    let mut app = App::new(Col::parse(&args.sort), cli.connect.clone());
    // the host line: this host's /proc and KSM (under --root); a remote host has none here
    let mut host = if kvmtune_libvirt::is_local(&cli.connect) {
        crate::host_source(cli)
            .ok()
            .map(|src| HostReader { src, prev: None })
    } else {
        None
    };
    if let Some(h) = host.as_mut() {
        app.host = Some(h.read());
    }
    let mut term = ratatui::try_init()?;
    let result = (|| -> Result<()> {
        let mut next = Instant::now() + interval;
        let mut refreshes = 0u64;
        loop {
            term.draw(|f| draw(f, &app))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait.min(Duration::from_millis(250)))? {
                if let Event::Key(k) = event::read()?
                    && k.kind == KeyEventKind::Press
                    && app.key(k)
                {
                    return Ok(());
                }
                continue;
            }
            if Instant::now() < next {
                continue;
            }
            next += interval;
            match watch.take() {
                Ok(cur) => {
                    let fr = watch.frame(&prev, &cur);
                    app.status = fr
                        .vanished
                        .iter()
                        .map(|n| format!("{n} stopped"))
                        .chain(fr.appeared.iter().map(|n| format!("{n} started")))
                        .collect::<Vec<_>>()
                        .join(", ");
                    app.frame = Some(fr);
                    if let Some(h) = host.as_mut() {
                        app.host = Some(h.read());
                    }
                    prev = cur;
                }
                // libvirt restarting: keep the screen, say so, try again next interval
                Err(e) => app.status = format!("{e:#}"),
            }
            refreshes += 1;
            if args.count.is_some_and(|c| refreshes >= c) {
                term.draw(|f| draw(f, &app))?;
                return Ok(());
            }
        }
    })();
    ratatui::restore();
    result?;
    Ok(Exit::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmtune_kvmstat::live::{ExitRates, VcpuFigures};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::collections::BTreeMap;

    fn vm(name: &str, host: f64, exits: Option<f64>) -> VmFigures {
        VmFigures {
            name: name.into(),
            host_cpu_pct: Some(host),
            guest_cpu_pct: Some(host / 2.0),
            vcpus: 1,
            exits: exits.map(|t| ExitRates {
                total: t,
                io: t / 2.0,
                ..ExitRates::default()
            }),
            kvm: exits
                .map(|t| {
                    BTreeMap::from([("exits".to_string(), t), ("io_exits".to_string(), t / 2.0)])
                })
                .unwrap_or_default(),
            vcpu: vec![VcpuFigures {
                id: 0,
                cpu_pct: Some(host),
                last_cpu: Some(1),
                ..VcpuFigures::default()
            }],
            ..VmFigures::default()
        }
    }

    fn app() -> App {
        let mut a = App::new(Col::Host, "qemu:///system".into());
        a.frame = Some(Frame {
            time: "2026-11-22T00:00:00Z".into(),
            domains: vec![
                vm("alpha", 5.0, None),
                vm("bravo", 90.0, Some(50_000.0)),
                vm("charlie", 30.0, Some(10.0)),
            ],
            ..Frame::default()
        });
        a
    }

    fn screen(a: &App) -> String {
        screen_at(a, 110, 30)
    }

    fn screen_at(a: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, a)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    fn press(a: &mut App, c: KeyCode) -> bool {
        a.key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    #[test]
    fn rows_sort_by_host_cpu_and_can_be_resorted() {
        let mut a = app();
        let s = screen(&a);
        let pos = |s: &str, n: &str| s.find(n).unwrap();
        assert!(pos(&s, "bravo") < pos(&s, "charlie") && pos(&s, "charlie") < pos(&s, "alpha"));
        assert!(s.contains("50.0k"), "{s}");
        press(&mut a, KeyCode::Char('r'));
        let names: Vec<_> = a.rows().iter().map(|d| d.name.clone()).collect();
        assert_eq!(names, ["alpha", "charlie", "bravo"]);
        // S from host goes back to name, ascending
        press(&mut a, KeyCode::Char('S'));
        assert_eq!(a.sort, Col::Name);
        assert_eq!(a.rows()[0].name, "alpha");
    }

    #[test]
    fn enter_drills_down_and_esc_returns() {
        let mut a = app();
        press(&mut a, KeyCode::Down); // bravo is first; charlie second
        press(&mut a, KeyCode::Up);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.detail.as_deref(), Some("bravo"));
        let s = screen(&a);
        assert!(
            s.contains("VCPU") && s.contains("KVM COUNTER") && s.contains("io_exits"),
            "{s}"
        );
        assert!(s.contains("port I/O"), "{s}");
        press(&mut a, KeyCode::Esc);
        assert!(screen(&a).contains("charlie"));
    }

    #[test]
    fn filter_by_name_and_quit() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        for c in "char".chars() {
            press(&mut a, KeyCode::Char(c));
        }
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.rows().len(), 1);
        let s = screen(&a);
        assert!(s.contains("filter /char") && !s.contains("bravo"), "{s}");
        // a domain shown in detail that stops is said so
        press(&mut a, KeyCode::Enter);
        a.frame = Some(Frame::default());
        assert!(screen(&a).contains("not running any more"));
        assert!(press(&mut a, KeyCode::Char('q')));
    }

    #[test]
    fn the_selection_follows_the_domain_when_rows_resort() {
        let mut a = app();
        press(&mut a, KeyCode::Down); // bravo, charlie, alpha: charlie
        assert_eq!(a.selected.as_deref(), Some("charlie"));
        // charlie gets busy and sorts first: still selected, on row 0 now
        if let Some(fr) = a.frame.as_mut() {
            fr.domains[2].host_cpu_pct = Some(99.0);
        }
        let rows = a.rows();
        assert_eq!(rows[0].name, "charlie");
        assert_eq!(a.cursor(&rows), 0);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.detail.as_deref(), Some("charlie"));
        press(&mut a, KeyCode::Esc);
        // down from charlie's new row goes to the row under it
        press(&mut a, KeyCode::Down);
        assert_eq!(a.selected.as_deref(), Some("bravo"));
        // the selected domain stops: the selection stays on its row
        if let Some(fr) = a.frame.as_mut() {
            fr.domains.retain(|d| d.name != "bravo");
        }
        let rows = a.rows();
        assert_eq!(a.cursor(&rows), 1);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.detail.as_deref(), Some("alpha"));
    }

    fn lab_app() -> App {
        let mut a = app();
        let mut doms = Vec::new();
        for (n, h) in [
            ("lab-seed000-untuned", 98.0),
            ("lab-win10-desktop", 50.0),
            ("lab-db-pinned", 20.0),
            ("lab-tuned", 5.0),
        ] {
            let mut d = vm(n, h, None);
            d.rss_kib = Some(2 * 1024 * 1024);
            d.balloon_kib = Some(4 * 1024 * 1024);
            d.memory = Some(kvmtune_kvmstat::live::MemFigures {
                vcpu_nodes: vec![0],
                ..Default::default()
            });
            doms.push(d);
        }
        a.frame.as_mut().unwrap().domains = doms;
        a.host = Some(HostFigures {
            cpu_pct: Some(12.34),
            mem_total_kib: Some(32 * 1024 * 1024),
            mem_available_kib: Some(20 * 1024 * 1024),
            ksm_saved_kib: Some(512 * 1024),
        });
        a
    }

    #[test]
    fn works_at_80_columns() {
        let a = lab_app();
        let s = screen_at(&a, 80, 24);
        for n in [
            "lab-seed000-untuned",
            "lab-win10-desktop",
            "lab-db-pinned",
            "lab-tuned",
        ] {
            assert!(s.contains(n), "{n} cut: {s}");
        }
        for t in ["HOST%", "OVH%", "EXITS/s", "RSS", "NODE", "2.0G"] {
            assert!(s.contains(t), "{t}: {s}");
        }
        assert!(
            s.contains("host CPU 12.3%  memory 12G used of 32G  KSM saves 512M  4 running"),
            "{s}"
        );
        assert!(s.contains("narrow terminal: EMU%, DELAY%"), "{s}");
        assert!(s.contains("- = EXITS/IO: no KVM exit counters"), "{s}");
        let (w, shown) = layout(80, &["lab-seed000-untuned"]);
        assert_eq!(w, 19);
        assert!(!shown.contains(&Col::Emulator) && shown.contains(&Col::Rss));
        // a very long name is cut, never the figures
        let long = "x".repeat(60);
        let (w, shown) = layout(80, &[long.as_str()]);
        assert!((MIN_NAME..60).contains(&w), "{w}");
        assert!(shown.contains(&Col::Host) && shown.contains(&Col::Node));
    }

    #[test]
    fn the_domain_column_is_sized_to_the_names() {
        let (w, shown) = layout(110, &["alpha", "bravo", "charlie"]);
        assert_eq!(w, 7);
        assert_eq!(shown.len(), COLS.len());
        let s = screen(&app());
        let header = s.lines().find(|l| l.contains("DOMAIN")).unwrap();
        assert!(header.find("HOST%").unwrap() < 12, "{header}");
        // a filter says how many match
        let mut a = lab_app();
        a.filter = "win".into();
        assert!(host_line(&a, 4).ends_with("4 running, 1 match /win"));
        a.host = None;
        assert!(footer(&a, &COLS).contains("host figures: a remote host"));
    }

    #[test]
    fn host_cpu_from_proc_stat() {
        let t = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_jiffies(t), Some((150, 1000)));
        assert_eq!(cpu_jiffies("intr 1 2"), None);
        assert_eq!(size_kib(512 * 1024), "512M");
        assert_eq!(size_kib(3 * 1024 * 1024 / 2), "1.5G");
        assert_eq!(size_kib(40 * 1024 * 1024), "40G");
    }
}
