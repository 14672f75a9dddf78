//! The report's pictures, as inline SVG: line charts, the topology map, memory per node.
//! Every picture is well-formed XML with `role="img"`, a `<title>` and a `<desc>` (its text
//! alternative, with the numbers), and never relies on colour alone: series differ by dash
//! pattern too, cells carry words and numbers, legends name everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kvmtune_host::Host;

use crate::esc;
use crate::model::{DomainCpus, floats};

/// Colours dark enough for white text, in the order domains and series take them.
pub const PALETTE: [&str; 10] = [
    "#1f5fa0", "#b3261e", "#1e7b34", "#6a3d9a", "#8c4a10", "#a0307a", "#0e6e78", "#555555",
    "#6b6b00", "#b05a00",
];

/// Dash patterns, in the same order: the second carrier of a series besides its colour.
pub const DASHES: [&str; 6] = ["", "6 3", "2 2", "8 3 2 3", "1 4", "10 2"];

/// A fill for the n-th item: a colour, and from the 11th item on a colour again (the
/// number written in the cell tells them apart).
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The opening tag of a picture: role, label, size, then `<title>` and `<desc>`.
fn open(id: &str, w: u32, h: u32, title: &str, desc: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{}\" class=\"pic\" role=\"img\" aria-labelledby=\"{0}-t {0}-d\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\"><title id=\"{0}-t\">{}</title><desc id=\"{0}-d\">{}</desc>",
        esc(id),
        esc(title),
        esc(desc)
    )
}

/// Shared patterns of a picture: hatching (isolated CPUs, hugepage pools) and dots
/// (reserved CPUs).
fn defs(id: &str) -> String {
    let id = esc(id);
    format!(
        "<defs><pattern id=\"{id}-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#dbe9ff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#3a6db5\" stroke-width=\"2\"/></pattern><pattern id=\"{id}-dots\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\"><rect width=\"5\" height=\"5\" fill=\"#eeeeee\"/><circle cx=\"2.5\" cy=\"2.5\" r=\"0.9\" fill=\"#777\"/></pattern></defs>"
    )
}

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    /// (seconds, value); a `None` value is a gap.
    pub points: Vec<(f64, Option<f64>)>,
}

fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// A number for an axis or a text alternative: short, no exponent.
pub fn num(v: f64) -> String {
    // -0 (an empty sum) reads as 0
    let v = if v == 0.0 { 0.0 } else { v };
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A coordinate, one decimal at most (the charts' size depends on it).
fn c(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// A line chart over time: one line per series, each with its colour and dash pattern, a
/// legend naming each under the plot, and a text alternative giving each series' mean and
/// maximum.
pub fn line_chart(id: &str, title: &str, unit: &str, series: &[Series]) -> String {
    let (w, plot_h, left, top) = (480u32, 150u32, 52f64, 24f64);
    let right = 22f64;
    let legend_rows = series.len() as u32;
    let h = top as u32 + plot_h + 26 + legend_rows * 15 + 4;
    let tmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0f64, f64::max)
        .max(1.0);
    let vmax = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .fold(0f64, f64::max),
    );
    let pw = w as f64 - left - right;
    let ph = plot_h as f64;
    let x = |t: f64| left + t / tmax * pw;
    let y = |v: f64| top + ph - (v / vmax).clamp(0.0, 1.0) * ph;
    let mut desc = Vec::new();
    for s in series {
        let vals: Vec<f64> = s.points.iter().filter_map(|p| p.1).collect();
        if vals.is_empty() {
            desc.push(format!("{}: no figures", s.label));
        } else {
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let max = vals.iter().copied().fold(f64::MIN, f64::max);
            desc.push(format!(
                "{}: mean {} {unit}, max {} {unit}",
                s.label,
                num(mean),
                num(max)
            ));
        }
    }
    let desc = format!(
        "Line chart over {} s. {}.",
        num(tmax),
        if desc.is_empty() {
            "No series".to_string()
        } else {
            desc.join("; ")
        }
    );
    let mut out = open(id, w, h, title, &desc);
    // axes and grid
    for i in 0..=4 {
        let v = vmax * i as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ccc\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            c(left),
            c(yy),
            c(left + pw),
            c(yy),
            c(left - 4.0),
            c(yy + 3.0),
            esc(&num(v))
        );
    }
    let mid = c(top + ph / 2.0);
    let _ = write!(
        out,
        "<text x=\"6\" y=\"15\" font-size=\"12\" font-weight=\"bold\">{}</text><text x=\"12\" y=\"{mid}\" font-size=\"10\" text-anchor=\"middle\" transform=\"rotate(-90 12 {mid})\">{}</text>",
        esc(&truncate(title, 72)),
        esc(unit)
    );
    for i in 0..=4 {
        let t = tmax * i as f64 / 4.0;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{} s</text>",
            c(x(t)),
            c(top + ph + 13.0),
            esc(&num(t))
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#666\"/>",
        c(left),
        c(top),
        c(pw),
        c(ph)
    );
    for (i, s) in series.iter().enumerate() {
        let mut d = String::new();
        let mut pen = false;
        for (t, v) in &s.points {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{} {}",
                        if pen { " L" } else { " M" },
                        c(x(*t)),
                        c(y(*v))
                    );
                    pen = true;
                }
                None => pen = false,
            }
        }
        // a single point is a dot
        let single = s.points.iter().filter(|p| p.1.is_some()).count() == 1;
        if single && let Some((t, Some(v))) = s.points.iter().find(|p| p.1.is_some()) {
            let _ = write!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"><title>{}</title></circle>",
                c(x(*t)),
                c(y(*v)),
                colour(i),
                esc(&s.label)
            );
        } else if !d.is_empty() {
            let _ = write!(
                out,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"><title>{}</title></path>",
                d.trim_start(),
                colour(i),
                DASHES[i % DASHES.len()],
                esc(&s.label)
            );
        }
        let ly = top + ph + 30.0 + i as f64 * 15.0;
        let _ = write!(
            out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            c(left),
            c(ly - 4.0),
            c(left + 30.0),
            c(ly - 4.0),
            colour(i),
            DASHES[i % DASHES.len()],
            c(left + 36.0),
            c(ly),
            esc(&s.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// The CPUs a set names, as a cpuset string (`0-3,8`).
pub fn cpus(list: &[u32]) -> String {
    let mut s = kvmtune_host::CpuSet::new();
    for c in list {
        s.insert(*c);
    }
    s.to_string()
}

/// Who may run on one host CPU: (domain index, label such as `v0,1` or `emu`).
type Occupants = BTreeMap<u32, Vec<(usize, String)>>;

/// The domains drawn on the map: those with pins or an affinity narrower than every CPU.
/// A domain that floats over every online CPU is not drawn on each cell (the legend says
/// it floats).
pub fn occupants(domains: &[DomainCpus], online: &BTreeSet<u32>) -> Occupants {
    let mut occ: Occupants = BTreeMap::new();
    for (i, d) in domains.iter().enumerate() {
        let mut per_cpu: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (v, set) in &d.vcpu_cpus {
            if floats(set, online) {
                continue;
            }
            for cpu in set {
                per_cpu.entry(*cpu).or_default().push(*v);
            }
        }
        for (cpu, vs) in per_cpu {
            let label = format!(
                "v{}",
                vs.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            );
            occ.entry(cpu).or_default().push((i, label));
        }
        if let Some(e) = &d.emulator_cpus
            && !floats(e, online)
        {
            for cpu in e {
                occ.entry(*cpu).or_default().push((i, "emu".into()));
            }
        }
    }
    occ
}

/// The host's CPUs as sockets, NUMA nodes, cores and threads; on each thread the domains
/// whose vCPUs or emulator threads may run there (their number, `v` vCPU indexes or `emu`,
/// on the domain's colour), isolated CPUs hatched and marked `iso`, CPUs reserved for the
/// host dotted and marked `host`.
pub fn topology(id: &str, host: &Host, domains: &[DomainCpus], reserved: &[u32]) -> String {
    let online: BTreeSet<u32> = host.online_cpus().iter().collect();
    let isolated: BTreeSet<u32> = host
        .cpu
        .isolated
        .as_ref()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let reserved: BTreeSet<u32> = reserved.iter().copied().collect();
    let occ = occupants(domains, &online);
    // socket -> node -> core -> threads
    let mut tree: BTreeMap<i64, BTreeMap<u32, BTreeMap<i64, Vec<u32>>>> = BTreeMap::new();
    for cpu in host.cpu.cpus.iter().filter(|c| online.contains(&c.id)) {
        let node = cpu.node.unwrap_or_else(|| {
            host.numa
                .nodes
                .iter()
                .find(|n| n.cpus.contains(cpu.id))
                .map(|n| n.id)
                .unwrap_or(0)
        });
        tree.entry(cpu.socket.unwrap_or(0))
            .or_default()
            .entry(node)
            .or_default()
            .entry(cpu.core.unwrap_or(i64::from(cpu.id)))
            .or_default()
            .push(cpu.id);
    }
    let (w, cell_w, cell_h, band) = (960u32, 50u32, 40u32, 15u32);
    let tpc = tree
        .values()
        .flat_map(|n| n.values())
        .flat_map(|c| c.values())
        .map(|t| t.len() as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    let core_w = tpc * cell_w + 8;
    let core_h = cell_h + 20;
    let per_row = ((w - 40) / (core_w + 6)).max(1);
    let mut body = String::new();
    let mut y = 4u32;
    let mut desc = Vec::new();
    for (socket, nodes) in &tree {
        let socket_top = y;
        y += 20;
        let mut inner = String::new();
        for (node, cores) in nodes {
            let node_top = y;
            let rows = (cores.len() as u32).div_ceil(per_row).max(1);
            let node_h = 22 + rows * (core_h + 6);
            let mem = host
                .numa
                .nodes
                .iter()
                .find(|n| n.id == *node)
                .and_then(|n| n.memory_total_kib)
                .map(|k| format!(", {} MiB", k / 1024))
                .unwrap_or_default();
            let node_cpus: Vec<u32> = cores.values().flatten().copied().collect();
            let _ = write!(
                inner,
                "<rect x=\"12\" y=\"{node_top}\" width=\"{}\" height=\"{node_h}\" fill=\"none\" stroke=\"#333\" stroke-dasharray=\"4 2\"/><text x=\"18\" y=\"{}\" font-size=\"12\" font-weight=\"bold\">NUMA node {node} (CPUs {}{})</text>",
                w - 24,
                node_top + 15,
                esc(&cpus(&node_cpus)),
                esc(&mem)
            );
            for (k, (core, threads)) in cores.iter().enumerate() {
                let k = k as u32;
                let cx = 18 + (k % per_row) * (core_w + 6);
                let cy = node_top + 22 + (k / per_row) * (core_h + 6);
                let _ = write!(
                    inner,
                    "<rect x=\"{cx}\" y=\"{cy}\" width=\"{}\" height=\"{core_h}\" fill=\"#f7f7f7\" stroke=\"#888\"/><text x=\"{}\" y=\"{}\" font-size=\"9\">core {core}</text>",
                    threads.len() as u32 * cell_w + 8,
                    cx + 4,
                    cy + core_h - 4
                );
                for (ti, th) in threads.iter().enumerate() {
                    let tx = cx + 4 + ti as u32 * cell_w;
                    let ty = cy + 4;
                    inner.push_str(&thread_cell(
                        id, *th, tx, ty, cell_w, cell_h, band, &isolated, &reserved, &occ, domains,
                    ));
                }
            }
            y = node_top + node_h + 6;
        }
        let _ = write!(
            body,
            "<rect x=\"4\" y=\"{socket_top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#000\" stroke-width=\"1.5\"/><text x=\"10\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">socket {socket}</text>{inner}",
            w - 8,
            y - socket_top,
            socket_top + 15
        );
        y += 8;
        desc.push(format!(
            "socket {socket}: NUMA node(s) {}",
            nodes
                .keys()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // legend: markers, then each drawn domain
    let mut legend = String::new();
    let ly0 = y + 6;
    let _ = write!(
        legend,
        "<rect x=\"8\" y=\"{}\" width=\"22\" height=\"12\" fill=\"url(#{}-hatch)\" stroke=\"#333\"/><text x=\"34\" y=\"{}\" font-size=\"11\">iso: isolated from the scheduler (isolcpus)</text><rect x=\"320\" y=\"{}\" width=\"22\" height=\"12\" fill=\"url(#{}-dots)\" stroke=\"#333\"/><text x=\"346\" y=\"{}\" font-size=\"11\">host: reserved for the host</text><rect x=\"560\" y=\"{}\" width=\"22\" height=\"12\" fill=\"#fff\" stroke=\"#333\"/><text x=\"586\" y=\"{}\" font-size=\"11\">no pinned domain thread</text>",
        ly0,
        esc(id),
        ly0 + 10,
        ly0,
        esc(id),
        ly0 + 10,
        ly0,
        ly0 + 10
    );
    let mut ly = ly0 + 20;
    let drawn: BTreeSet<usize> = occ.values().flatten().map(|(i, _)| *i).collect();
    let mut floating = Vec::new();
    for (i, d) in domains.iter().enumerate() {
        if !drawn.contains(&i) {
            floating.push(d.name.clone());
            continue;
        }
        let _ = write!(
            legend,
            "<rect x=\"8\" y=\"{}\" width=\"22\" height=\"13\" fill=\"{}\"/><text x=\"19\" y=\"{}\" font-size=\"10\" fill=\"#fff\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><text x=\"34\" y=\"{}\" font-size=\"11\">{}: {} ({} vCPU; {}{})</text>",
            ly,
            colour(i),
            ly + 10,
            i + 1,
            ly + 10,
            i + 1,
            esc(&d.name),
            d.vcpus,
            d.source.as_str(),
            if d.running { ", running" } else { "" }
        );
        ly += 16;
    }
    if !floating.is_empty() {
        let _ = write!(
            legend,
            "<text x=\"8\" y=\"{}\" font-size=\"11\">not drawn, floating over every CPU: {}</text>",
            ly + 10,
            esc(&floating.join(", "))
        );
        ly += 16;
    }
    let h = ly + 6;
    desc.push(format!(
        "{} online CPU(s); isolated: {}; reserved for the host: {}",
        online.len(),
        if isolated.is_empty() {
            "none".to_string()
        } else {
            cpus(&isolated.iter().copied().collect::<Vec<_>>())
        },
        if reserved.is_empty() {
            "none".to_string()
        } else {
            cpus(&reserved.iter().copied().collect::<Vec<_>>())
        }
    ));
    for (i, d) in domains.iter().enumerate() {
        if drawn.contains(&i) {
            let cpus_of: BTreeSet<u32> = occ
                .iter()
                .filter(|(_, v)| v.iter().any(|(j, _)| *j == i))
                .map(|(c, _)| *c)
                .collect();
            desc.push(format!(
                "domain {} ({}) on CPUs {}",
                i + 1,
                d.name,
                cpus(&cpus_of.into_iter().collect::<Vec<_>>())
            ));
        }
    }
    let mut out = open(
        id,
        w,
        h,
        "CPU topology: sockets, NUMA nodes, cores and threads, with the domains on them",
        &format!("{}.", desc.join("; ")),
    );
    out.push_str(&defs(id));
    out.push_str(&body);
    out.push_str(&legend);
    out.push_str("</svg>");
    out
}

#[allow(clippy::too_many_arguments)]
fn thread_cell(
    id: &str,
    cpu: u32,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    band: u32,
    isolated: &BTreeSet<u32>,
    reserved: &BTreeSet<u32>,
    occ: &Occupants,
    domains: &[DomainCpus],
) -> String {
    let cw = w - 4;
    let (fill, mark) = if reserved.contains(&cpu) {
        (format!("url(#{}-dots)", esc(id)), " host")
    } else if isolated.contains(&cpu) {
        (format!("url(#{}-hatch)", esc(id)), " iso")
    } else {
        ("#fff".to_string(), "")
    };
    let here = occ.get(&cpu).cloned().unwrap_or_default();
    let who: Vec<String> = here
        .iter()
        .map(|(i, l)| {
            let n = domains.get(*i).map(|d| d.name.as_str()).unwrap_or("?");
            format!("{n} {l}")
        })
        .collect();
    let tip = format!(
        "CPU {cpu}{}{}: {}",
        if isolated.contains(&cpu) {
            ", isolated"
        } else {
            ""
        },
        if reserved.contains(&cpu) {
            ", reserved for the host"
        } else {
            ""
        },
        if who.is_empty() {
            "no pinned domain thread".to_string()
        } else {
            who.join("; ")
        }
    );
    let mut s = format!(
        "<g><title>{}</title><rect data-cpu=\"{cpu}\" x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{band}\" fill=\"{fill}\" stroke=\"#333\"/><text x=\"{}\" y=\"{}\" font-size=\"9.5\" font-weight=\"bold\" fill=\"#000\">{cpu}{mark}</text>",
        esc(&tip),
        x + 3,
        y + 11
    );
    let lower = h - band;
    if here.is_empty() {
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"{cw}\" height=\"{lower}\" fill=\"#fff\" stroke=\"#bbb\"/>",
            y + band
        );
    } else {
        // one stripe per occupant (at most three drawn; the tooltip and table list all)
        let n = here.len().min(3) as u32;
        let sh = lower / n;
        for (k, (i, label)) in here.iter().take(3).enumerate() {
            let sy = y + band + k as u32 * sh;
            let text = if here.len() > 3 && k == 2 {
                format!("+{}", here.len() - 2)
            } else {
                format!("{} {}", i + 1, label)
            };
            let fs = if n == 1 { 10 } else { 8 };
            let _ = write!(
                s,
                "<rect data-domain=\"{}\" x=\"{x}\" y=\"{sy}\" width=\"{cw}\" height=\"{sh}\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"{fs}\" fill=\"#fff\">{}</text>",
                i + 1,
                colour(*i),
                x + 2,
                sy + sh / 2 + fs / 2 - 1,
                esc(&truncate(&text, 8))
            );
        }
    }
    s.push_str("</g>");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Memory per NUMA node as bars: hugepage pools (hatched), other used memory (solid), free
/// (white); each bar labelled with its figures.
pub fn memory(id: &str, host: &Host) -> String {
    let w = 960u32;
    let nodes = &host.numa.nodes;
    let max = nodes
        .iter()
        .filter_map(|n| n.memory_total_kib)
        .max()
        .unwrap_or(1)
        .max(1);
    let bar_w = 420f64;
    let mut body = String::new();
    let mut desc = Vec::new();
    let mut y = 6u32;
    for n in nodes {
        let total = n.memory_total_kib.unwrap_or(0);
        let free = n.memory_free_kib.unwrap_or(0).min(total);
        let huge: u64 = n.hugepages.iter().map(|p| p.total * p.size_kib).sum();
        let huge = huge.min(total - free);
        let used = total - free - huge;
        let sx = |k: u64| k as f64 / max as f64 * bar_w;
        let x0 = 80f64;
        let _ = write!(
            body,
            "<text x=\"6\" y=\"{}\" font-size=\"12\">node {}</text><rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"18\" fill=\"url(#{}-hatch)\" stroke=\"#333\"/><rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"18\" fill=\"#1f5fa0\" stroke=\"#333\"/><rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"18\" fill=\"#fff\" stroke=\"#333\"/>",
            y + 13,
            n.id,
            c(x0),
            c(sx(huge)),
            esc(id),
            c(x0 + sx(huge)),
            c(sx(used)),
            c(x0 + sx(huge) + sx(used)),
            c(sx(free))
        );
        let pools: Vec<String> = n
            .hugepages
            .iter()
            .filter(|p| p.total > 0)
            .map(|p| format!("{} × {} KiB ({} free)", p.total, p.size_kib, p.free))
            .collect();
        let label = format!(
            "{} MiB: {} MiB used, {} MiB free{}",
            total / 1024,
            used / 1024,
            free / 1024,
            if pools.is_empty() {
                ", no hugepage pool".to_string()
            } else {
                format!(", hugepages {}", pools.join(", "))
            }
        );
        let _ = write!(
            body,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            c(x0),
            y + 31,
            esc(&label)
        );
        desc.push(format!("node {}: {label}", n.id));
        y += 42;
    }
    if nodes.is_empty() {
        let _ = write!(
            body,
            "<text x=\"6\" y=\"18\" font-size=\"12\">no NUMA information</text>"
        );
        desc.push("no NUMA information".into());
        y += 26;
    }
    let _ = write!(
        body,
        "<rect x=\"80\" y=\"{y}\" width=\"22\" height=\"12\" fill=\"url(#{}-hatch)\" stroke=\"#333\"/><text x=\"106\" y=\"{}\" font-size=\"11\">hugepage pool</text><rect x=\"220\" y=\"{y}\" width=\"22\" height=\"12\" fill=\"#1f5fa0\" stroke=\"#333\"/><text x=\"246\" y=\"{}\" font-size=\"11\">used (not hugepages)</text><rect x=\"400\" y=\"{y}\" width=\"22\" height=\"12\" fill=\"#fff\" stroke=\"#333\"/><text x=\"426\" y=\"{}\" font-size=\"11\">free</text>",
        esc(id),
        y + 10,
        y + 10,
        y + 10
    );
    let h = y + 18;
    let mut out = open(
        id,
        w,
        h,
        "Memory per NUMA node with hugepage pools",
        &format!("{}.", desc.join("; ")),
    );
    out.push_str(&defs(id));
    out.push_str(&body);
    out.push_str("</svg>");
    out
}

/// The planner's SVG map as a picture of the report: its own `<svg>` inside one with a
/// role, a title and a text alternative (the planner's file is written as it is).
pub fn wrap_plan(id: &str, title: &str, desc: &str, planner_svg: &str) -> String {
    let size = |attr: &str| -> u32 {
        let key = format!(" {attr}=\"");
        planner_svg
            .find(&key)
            .and_then(|i| {
                let rest = &planner_svg[i + key.len()..];
                rest.split('"').next()?.trim_end_matches("px").parse().ok()
            })
            .unwrap_or(600)
    };
    let (w, h) = (size("width"), size("height"));
    // the planner's document minus any XML declaration
    let inner = match planner_svg.find("<svg") {
        Some(i) => &planner_svg[i..],
        None => planner_svg,
    };
    let mut out = open(id, w, h, title, desc);
    out.push_str(inner.trim_end());
    out.push_str("</svg>");
    out
}
