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
}

const COLS: [Col; 8] = [
    Col::Name,
    Col::Host,
    Col::Guest,
    Col::Overhead,
    Col::Emulator,
    Col::Exits,
    Col::Io,
    Col::Delay,
];

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
        }
    }
    fn cell(self, d: &VmFigures) -> String {
        match self {
            Col::Name => crate::output::safe(&d.name).into_owned(),
            Col::Exits | Col::Io => self.value(d).map(human).unwrap_or_else(|| "-".into()),
            _ => self
                .value(d)
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
        }
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
    pub selected: usize,
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
            selected: 0,
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
            self.selected = 0;
            return false;
        }
        let n = self.rows().len();
        match k.code {
            KeyCode::Char('q') => return true,
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return true,
            KeyCode::Esc => self.detail = None,
            KeyCode::Down | KeyCode::Char('j') if n > 0 => {
                self.selected = (self.selected + 1).min(n - 1);
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Enter => {
                self.detail = self.rows().get(self.selected).map(|d| d.name.clone());
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

fn header_line(app: &App) -> Line<'static> {
    let (time, n) = app
        .frame
        .as_ref()
        .map(|f| (f.time.clone(), f.domains.len()))
        .unwrap_or_else(|| ("sampling...".into(), 0));
    let mut s = format!(
        "kvmtune top  {}  {time}  {n} domains  sort {}{}",
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
    Line::from(s).bold()
}

const HELP: &str = "q quit  Enter details  Esc back  s/S sort  r reverse  / filter";

fn draw_list(f: &mut ratatui::Frame, area: ratatui::layout::Rect, app: &App) {
    let rows = app.rows();
    let header = Row::new(COLS.iter().map(|c| {
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
        .map(|d| Row::new(COLS.iter().map(|c| Cell::from(c.cell(d)))))
        .collect();
    let mut widths = vec![Constraint::Min(20)];
    widths.extend(std::iter::repeat_n(Constraint::Length(8), COLS.len() - 1));
    let table = Table::new(body, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(" domains "));
    let mut state =
        TableState::default().with_selected(Some(app.selected.min(rows.len().saturating_sub(1))));
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
    let [top, main, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header_line(app)), top);
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
        let mut t = Terminal::new(TestBackend::new(110, 30)).unwrap();
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
}
