//! The placement as an SVG picture: one box per node, one per core inside it, one square per
//! thread with its CPU number, filled by what runs there: a dedicated domain's colour, a
//! hatched grey for CPUs shared by several domains' floating vCPUs (with the number of
//! domains), light grey for the host's CPUs, white for free CPUs. Colour is never the only
//! carrier: each square has a `<title>`, the legend names every fill, and the picture has a
//! `<title>` and a `<desc>` text alternative.
//!
//! Layout: text widths are estimated generously ([`text_width`]); boxes are sized to their
//! labels, so no text is cut off and no two texts overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::{CpuPolicy, Outcome, Topo};

/// Light fills for dedicated domains (ColorBrewer Set3): dark text stays readable on each.
pub const PALETTE: [&str; 12] = [
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    "#ccebc5", "#ffed6f", "#d9d9d9", "#bc80bd",
];
/// Text on every fill.
pub const TEXT: &str = "#111111";
/// Free CPUs.
pub const FREE: &str = "#ffffff";
/// CPUs kept for the host.
pub const HOST: &str = "#bdbdbd";
/// The two colours of the shared-CPU hatch (background, stripes).
pub const SHARED_BG: &str = "#eeeeee";
pub const SHARED_LINE: &str = "#9e9e9e";

/// Every (fill, text) pair the picture uses, for contrast checks.
pub fn colour_pairs() -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = PALETTE.iter().map(|c| (*c, TEXT)).collect();
    v.extend([
        (FREE, TEXT),
        (HOST, TEXT),
        (SHARED_BG, TEXT),
        (SHARED_LINE, TEXT),
    ]);
    v.push(("#ffffff", "#b00000")); // "not placed" lines
    v
}

/// A generous estimate of a text's width in px in a sans-serif font (0.62 em per character,
/// wider than the average of common sans-serif faces).
pub fn text_width(s: &str, font_px: u32) -> u32 {
    (s.chars().count() as f64 * font_px as f64 * 0.62).ceil() as u32
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cpuset(c: &BTreeSet<u32>) -> String {
    let mut s = kvmtune_host::CpuSet::new();
    for x in c {
        s.insert(*x);
    }
    s.to_string()
}

pub fn render(t: &Topo, o: &Outcome) -> String {
    // dedicated owner and shared users of each CPU
    let mut owner: BTreeMap<u32, usize> = BTreeMap::new();
    let mut sharers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, p) in o.placed.iter().enumerate() {
        match p.policy.cpus {
            CpuPolicy::Dedicated => {
                for c in p.vcpus.iter().flatten() {
                    owner.insert(*c, i);
                }
            }
            CpuPolicy::Shared => {
                let pool: BTreeSet<u32> = p.vcpus.iter().flatten().copied().collect();
                for c in pool {
                    sharers.entry(c).or_default().push(i);
                }
            }
        }
    }
    let (cell, gap, per_row) = (22u32, 4u32, 8u32);
    let (label_px, num_px, title_px, legend_px) = (10u32, 9u32, 12u32, 12u32);
    // every core box as wide as the widest need: its threads, or its label
    let items_of = |n: &crate::Node| -> Vec<(String, Vec<u32>, bool)> {
        let mut v: Vec<(String, Vec<u32>, bool)> = n
            .cores
            .iter()
            .map(|c| (format!("core {}", c.id), c.threads.clone(), false))
            .collect();
        if !n.housekeeping.is_empty() {
            v.insert(0, ("host".into(), n.housekeeping.clone(), true));
        }
        v
    };
    let mut core_w = t.threads_per_core.max(1) * cell + 2 * gap;
    for n in &t.nodes {
        for (label, threads, _) in items_of(n) {
            core_w = core_w
                .max(threads.len() as u32 * cell + 2 * gap)
                .max(text_width(&label, label_px) + 2 * gap);
        }
    }
    let core_h = cell + 2 * gap + label_px + 4;
    let node_title = |n: &crate::Node| {
        format!(
            "node {} (socket {}): {} MiB {}",
            n.id,
            n.socket,
            n.memory_kib / 1024,
            if t.memory_free_now {
                "free for domains now"
            } else {
                "for domains"
            }
        )
    };
    let grid_w = per_row * (core_w + gap) + gap;
    let node_w = t
        .nodes
        .iter()
        .map(|n| text_width(&node_title(n), title_px) + 2 * gap)
        .fold(grid_w, u32::max);
    let mut y = 10u32;
    let mut body = String::new();
    for n in &t.nodes {
        let items = items_of(n);
        let rows = (items.len() as u32).div_ceil(per_row).max(1);
        let h = rows * (core_h + gap) + title_px + 12;
        let _ = writeln!(
            body,
            r##"<rect x="5" y="{y}" width="{node_w}" height="{h}" fill="none" stroke="#333"/><text x="10" y="{}" font-size="{title_px}" fill="{TEXT}">{}</text>"##,
            y + title_px + 2,
            esc(&node_title(n))
        );
        for (k, (label, threads, host)) in items.iter().enumerate() {
            let k = k as u32;
            let cx = 10 + (k % per_row) * (core_w + gap);
            let cy = y + title_px + 8 + (k / per_row) * (core_h + gap);
            let _ = writeln!(
                body,
                r##"<rect x="{cx}" y="{cy}" width="{core_w}" height="{core_h}" fill="#fafafa" stroke="#999"/><text x="{}" y="{}" font-size="{label_px}" fill="{TEXT}">{}</text>"##,
                cx + gap,
                cy + core_h - 4,
                esc(label)
            );
            for (ti, th) in threads.iter().enumerate() {
                let (fill, who) = if *host {
                    (HOST.to_string(), "kept for the host".to_string())
                } else if let Some(i) = owner.get(th) {
                    (
                        PALETTE[i % PALETTE.len()].to_string(),
                        format!("dedicated to {}", o.placed[*i].name),
                    )
                } else if let Some(users) = sharers.get(th) {
                    let names: Vec<&str> =
                        users.iter().map(|i| o.placed[*i].name.as_str()).collect();
                    (
                        "url(#shared)".to_string(),
                        format!("shared by {} domain(s): {}", names.len(), names.join(", ")),
                    )
                } else {
                    (FREE.to_string(), "free".to_string())
                };
                let sx = cx + gap + ti as u32 * cell;
                let sy = cy + gap;
                let _ = writeln!(
                    body,
                    r##"<rect x="{sx}" y="{sy}" width="{}" height="{}" fill="{fill}" stroke="#666"><title>CPU {th}: {}</title></rect><text x="{}" y="{}" font-size="{num_px}" fill="{TEXT}">{th}</text>"##,
                    cell - 2,
                    cell - 2,
                    esc(&who),
                    sx + 2,
                    sy + num_px + 1,
                );
                if let Some(users) = sharers
                    .get(th)
                    .filter(|_| !*host && !owner.contains_key(th))
                {
                    let _ = writeln!(
                        body,
                        r##"<text x="{}" y="{}" font-size="7" fill="{TEXT}">×{}</text>"##,
                        sx + 2,
                        sy + cell - 4,
                        users.len()
                    );
                }
            }
        }
        y += h + 10;
    }
    // the legend: one line per fill and per domain, as wide as its longest line
    let lx = 5 + node_w + 15;
    let mut ly = 10 + legend_px + 2;
    let mut legend = String::new();
    let mut legend_w = 0u32;
    let mut line = |legend: &mut String, swatch: Option<&str>, text: &str, colour: &str| {
        let tx = if swatch.is_some() { lx + 18 } else { lx };
        if let Some(fill) = swatch {
            let _ = write!(
                legend,
                r##"<rect x="{lx}" y="{}" width="13" height="13" fill="{fill}" stroke="#333"/>"##,
                ly - 11
            );
        }
        let _ = writeln!(
            legend,
            r##"<text x="{tx}" y="{ly}" font-size="{legend_px}" fill="{colour}">{}</text>"##,
            esc(text)
        );
        legend_w = legend_w.max(tx - lx + text_width(text, legend_px));
        ly += legend_px + 6;
    };
    line(&mut legend, Some(FREE), "free CPU", TEXT);
    line(
        &mut legend,
        Some(HOST),
        "kept for the host (housekeeping)",
        TEXT,
    );
    line(
        &mut legend,
        Some("url(#shared)"),
        "shared by several domains' vCPUs (×N: how many domains)",
        TEXT,
    );
    for (i, p) in o.placed.iter().enumerate() {
        let shared = p.policy.cpus == CpuPolicy::Shared;
        let nodes = p
            .nodes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("+");
        let text = if shared {
            let pool: BTreeSet<u32> = p.vcpus.iter().flatten().copied().collect();
            format!(
                "{} ({} vCPU, shared on CPUs {}, node {nodes})",
                p.name,
                p.vcpus.len(),
                cpuset(&pool)
            )
        } else {
            format!(
                "{} ({} vCPU, dedicated, node {nodes})",
                p.name,
                p.vcpus.len()
            )
        };
        let fill = if shared {
            "url(#shared)"
        } else {
            PALETTE[i % PALETTE.len()]
        };
        line(&mut legend, Some(fill), &text, TEXT);
    }
    for u in &o.unplaced {
        line(
            &mut legend,
            None,
            &format!("not placed: {}", u.name),
            "#b00000",
        );
    }
    let width = lx + legend_w + 10;
    let height = y.max(ly) + 10;
    let title = format!(
        "kvmtune plan: {} domain(s) placed on {} node(s), {} not placed",
        o.placed.len(),
        t.nodes.len(),
        o.unplaced.len()
    );
    let mut desc = String::new();
    for p in &o.placed {
        let cpus: BTreeSet<u32> = p.vcpus.iter().flatten().copied().collect();
        let _ = write!(
            desc,
            "{}: {} vCPU {} on CPUs {} of node {}; ",
            p.name,
            p.vcpus.len(),
            if p.policy.cpus == CpuPolicy::Shared {
                "shared"
            } else {
                "dedicated"
            },
            cpuset(&cpus),
            p.nodes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+")
        );
    }
    for u in &o.unplaced {
        let _ = write!(desc, "{} not placed: {}; ", u.name, u.why);
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" role=\"img\" aria-labelledby=\"plan-title plan-desc\">\n\
         <title id=\"plan-title\">{}</title>\n<desc id=\"plan-desc\">{}</desc>\n\
         <defs><pattern id=\"shared\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"{SHARED_BG}\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"{SHARED_LINE}\" stroke-width=\"2\"/></pattern></defs>\n\
         <rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n{body}{legend}</svg>\n",
        esc(&title),
        esc(desc.trim_end_matches("; "))
    )
}

/// WCAG 2 relative luminance of `#rrggbb`.
pub fn luminance(hex: &str) -> Option<f64> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let ch = |i: usize| -> Option<f64> {
        let v = u8::from_str_radix(h.get(i..i + 2)?, 16).ok()? as f64 / 255.0;
        Some(if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        })
    };
    Some(0.2126 * ch(0)? + 0.7152 * ch(2)? + 0.0722 * ch(4)?)
}

/// WCAG 2 contrast ratio of two `#rrggbb` colours.
pub fn contrast(a: &str, b: &str) -> Option<f64> {
    let (la, lb) = (luminance(a)?, luminance(b)?);
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    Some((hi + 0.05) / (lo + 0.05))
}
