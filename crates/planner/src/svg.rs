//! The placement as an SVG picture: one box per node, one per core inside it, one square per
//! thread coloured by the domain that has it (grey: free, dark: kept for the host; a
//! shared domain's colour is on its emulator's CPUs only). A legend names the domains.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{CpuPolicy, Outcome, Topo};

const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f", "#393b79", "#637939",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(t: &Topo, o: &Outcome) -> String {
    let mut owner: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, p) in o.placed.iter().enumerate() {
        if p.policy.cpus == CpuPolicy::Dedicated {
            for c in p.vcpus.iter().flatten() {
                owner.insert(*c, i);
            }
        }
    }
    let (cell, gap, per_row) = (18u32, 4u32, 8u32);
    let tpc = t.threads_per_core.max(1);
    let core_w = tpc * cell + 2 * gap;
    let core_h = cell + 2 * gap + 12;
    let mut y = 10u32;
    let mut body = String::new();
    let width = per_row * (core_w + gap) + 3 * gap + 220;
    for n in &t.nodes {
        let cores = n.cores.len() as u32 + u32::from(!n.housekeeping.is_empty());
        let rows = cores.div_ceil(per_row).max(1);
        let h = rows * (core_h + gap) + 24;
        let _ = writeln!(
            body,
            r##"<rect x="5" y="{y}" width="{}" height="{h}" fill="none" stroke="#333"/><text x="10" y="{}" font-size="12">node {} (socket {}) {} MiB for domains</text>"##,
            per_row * (core_w + gap) + 2 * gap,
            y + 14,
            n.id,
            n.socket,
            n.memory_kib / 1024
        );
        let mut items: Vec<(String, Vec<u32>, bool)> = n
            .cores
            .iter()
            .map(|c| (format!("core {}", c.id), c.threads.clone(), false))
            .collect();
        if !n.housekeeping.is_empty() {
            items.insert(0, ("host".into(), n.housekeeping.clone(), true));
        }
        for (k, (label, threads, host)) in items.iter().enumerate() {
            let k = k as u32;
            let cx = 10 + (k % per_row) * (core_w + gap);
            let cy = y + 20 + (k / per_row) * (core_h + gap);
            let w = (threads.len() as u32).max(1) * cell + 2 * gap;
            let _ = writeln!(
                body,
                r##"<rect x="{cx}" y="{cy}" width="{w}" height="{core_h}" fill="#f4f4f4" stroke="#999"/><text x="{}" y="{}" font-size="9">{}</text>"##,
                cx + 2,
                cy + core_h - 3,
                esc(label)
            );
            for (ti, th) in threads.iter().enumerate() {
                let fill = if *host {
                    "#444".to_string()
                } else {
                    match owner.get(th) {
                        Some(i) => PALETTE[i % PALETTE.len()].to_string(),
                        None => "#ddd".into(),
                    }
                };
                let who = owner
                    .get(th)
                    .map(|i| o.placed[*i].name.as_str())
                    .unwrap_or(if *host { "host" } else { "free" });
                let _ = writeln!(
                    body,
                    r##"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"><title>CPU {th}: {}</title></rect><text x="{}" y="{}" font-size="8" fill="#fff">{th}</text>"##,
                    cx + gap + ti as u32 * cell,
                    cy + gap,
                    cell - 2,
                    cell - 2,
                    esc(who),
                    cx + gap + ti as u32 * cell + 2,
                    cy + gap + 11
                );
            }
        }
        y += h + 10;
    }
    let lx = per_row * (core_w + gap) + 3 * gap + 10;
    let mut ly = 20u32;
    for (i, p) in o.placed.iter().enumerate() {
        let color = if p.policy.cpus == CpuPolicy::Dedicated {
            PALETTE[i % PALETTE.len()]
        } else {
            "#fff"
        };
        let _ = writeln!(
            body,
            r##"<rect x="{lx}" y="{}" width="12" height="12" fill="{color}" stroke="#333"/><text x="{}" y="{}" font-size="11">{} ({} vCPU{}, node {})</text>"##,
            ly - 10,
            lx + 16,
            ly,
            esc(&p.name),
            p.vcpus.len(),
            if p.policy.cpus == CpuPolicy::Shared {
                ", shared"
            } else {
                ""
            },
            p.nodes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+")
        );
        ly += 16;
    }
    for u in &o.unplaced {
        let _ = writeln!(
            body,
            r##"<text x="{lx}" y="{ly}" font-size="11" fill="#b00">not placed: {}</text>"##,
            esc(&u.name)
        );
        ly += 16;
    }
    let height = y.max(ly) + 10;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\">\n{body}</svg>\n"
    )
}
