//! The page: head (CSP, inline CSS), a fleet overview for several hosts, then per host its
//! sections in a fixed order ([`SECTIONS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kvmtune_rules::Verdict;

use crate::esc;
use crate::model::*;
use crate::svg::{self, Series};

/// The page's Content-Security-Policy: nothing may be fetched (no script, font, frame,
/// connection); styles are inline; images only as data: URLs.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The sections of every host, in order (`data-section` of each `<section>`).
pub const SECTIONS: [&str; 6] = ["host", "checks", "audit", "plan", "stats", "diagnoses"];

const CSS: &str = r#"
*{box-sizing:border-box}
body{font:13px/1.35 "DejaVu Sans",system-ui,sans-serif;color:#111;background:#fff;margin:0 auto;max-width:1000px;padding:8px 12px}
h1{font-size:22px;margin:8px 0}h2{font-size:19px;border-bottom:2px solid #333;margin-top:28px}
h3{font-size:16px;margin:18px 0 6px}h4{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid #999;padding:3px 5px;text-align:left;vertical-align:top}
th{background:#e8e8e8}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;font-weight:bold;padding:0 5px;border:1px solid currentColor;white-space:nowrap;border-radius:2px}
.sev-error{color:#8b0000;background:repeating-linear-gradient(135deg,#ffd9d9 0 4px,#fff 4px 7px)}
.sev-warn{color:#6b4800;background:radial-gradient(#e0b84c 1px,#fff6dc 1.5px) 0 0/5px 5px}
.sev-info{color:#0b3d7a;background:#e4efff}
.sev-pass{color:#135e1f;background:#e3f6e5}
.sev-unknown{color:#444;background:#eee;border-style:dashed}
pre{font:12px/1.35 "DejaVu Sans Mono",monospace;white-space:pre-wrap;word-break:break-all;margin:4px 0;padding:4px;border:1px solid #ccc;background:#fafafa}
pre.diff span{display:block}
pre.diff .add{background:#dff5df}pre.diff .del{background:#fbe0e0}pre.diff .hunk{color:#555;background:#eee}
svg.pic{max-width:100%;height:auto;display:block}
figure{margin:8px 0}figcaption{font-size:12px;color:#333}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:10px}
.note{color:#333;font-style:italic}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}
.kv dt{font-weight:bold}.kv dd{margin:0}
nav ul{columns:3;margin:4px 0}
article.finding{border-left:4px solid #999;padding:2px 8px;margin:6px 0}
article.finding p{margin:3px 0}
p{margin:6px 0}
article.finding.error{border-left:4px double #8b0000}
article.finding.warn{border-left:4px dashed #6b4800}
article.finding.info{border-left:4px dotted #0b3d7a}
@media print{
 body{max-width:none;padding:0;font-size:11px}
 nav{display:none}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 section.host-report{break-before:page}
 figure,tr,article.finding{break-inside:avoid}
 .charts{display:block}
 pre{white-space:pre-wrap}
}
"#;

/// The severity as a word with a symbol, in its style.
fn sev(s: Severity) -> String {
    match s {
        Severity::Error => "<span class=\"sev sev-error\">✖ ERROR</span>".into(),
        Severity::Warn => "<span class=\"sev sev-warn\">▲ WARN</span>".into(),
        Severity::Info => "<span class=\"sev sev-info\">● INFO</span>".into(),
    }
}

fn verdict(v: Verdict) -> String {
    match v {
        Verdict::Pass => "<span class=\"sev sev-pass\">✔ PASS</span>".into(),
        Verdict::Unknown => "<span class=\"sev sev-unknown\">? UNKNOWN</span>".into(),
        Verdict::Info => sev(Severity::Info),
        Verdict::Warn => sev(Severity::Warn),
        Verdict::Fail => sev(Severity::Error),
    }
}

fn mib(kib: u64) -> String {
    if kib >= 10 * 1024 * 1024 {
        format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
    } else {
        format!("{} MiB", kib / 1024)
    }
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut b = String::with_capacity(64 * 1024);
    let _ = write!(
        b,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"kvmtune {}\">\
         <title>{}</title><style>{CSS}</style></head>\n<body>\n<header><h1>{}</h1>\
         <p>Made by kvmtune {} at {}. One page, no script, nothing fetched.</p>",
        esc(&r.version),
        esc(&r.title),
        esc(&r.title),
        esc(&r.version),
        esc(&r.generated)
    );
    // table of contents
    b.push_str("<nav aria-label=\"Contents\"><ul>");
    if !r.fleet.is_empty() {
        b.push_str("<li><a href=\"#fleet\">Fleet overview</a></li>");
    }
    for (i, h) in r.hosts.iter().enumerate() {
        let _ = write!(b, "<li><a href=\"#h{i}\">Host {}</a></li>", esc(&h.name));
    }
    b.push_str("</ul></nav></header>\n<main>\n");
    if !r.fleet.is_empty() {
        fleet(&mut b, &r.fleet);
    }
    for (i, h) in r.hosts.iter().enumerate() {
        host_section(&mut b, i, h);
    }
    b.push_str("</main>\n</body></html>\n");
    b
}

fn fleet(b: &mut String, rows: &[FleetRow]) {
    b.push_str(
        "<section id=\"fleet\" data-section=\"fleet\"><h2>Fleet overview</h2>\
         <table><thead><tr><th scope=\"col\">Host</th><th scope=\"col\">URI</th>\
         <th scope=\"col\">State</th><th scope=\"col\">Domains (running)</th>\
         <th scope=\"col\">CPUs</th><th scope=\"col\">Memory</th>\
         <th scope=\"col\">Findings (error/warn/info)</th><th scope=\"col\">Host checks WARN/FAIL</th>\
         <th scope=\"col\">Diagnoses</th></tr></thead><tbody>",
    );
    for (i, r) in rows.iter().enumerate() {
        let state = match &r.error {
            Some(e) => format!("<span class=\"sev sev-error\">✖ FAILED</span> {}", esc(e)),
            None => "<span class=\"sev sev-pass\">✔ read</span>".to_string(),
        };
        let _ = write!(
            b,
            "<tr><th scope=\"row\"><a href=\"#h{i}\">{}</a></th><td>{}</td><td>{state}</td>\
             <td class=\"n\">{} ({})</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{} / {} / {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&r.host),
            esc(&r.uri),
            r.domains,
            r.running,
            r.cpus.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
            r.memory_kib.map(mib).unwrap_or_else(|| "?".into()),
            r.findings[0],
            r.findings[1],
            r.findings[2],
            r.checks_failed,
            r.diagnoses
        );
    }
    b.push_str("</tbody></table></section>\n");
}

fn host_section(b: &mut String, i: usize, h: &HostSection) {
    let id = format!("h{i}");
    let _ = write!(
        b,
        "<section class=\"host-report\" id=\"{id}\" data-host=\"{}\"><h2>Host {}</h2><p>Facts from {}.</p>",
        esc(&h.name),
        esc(&h.name),
        esc(&h.source)
    );
    if let Some(e) = &h.error {
        let _ = write!(
            b,
            "<p><span class=\"sev sev-error\">✖ ERROR</span> this host could not be read: {}</p>",
            esc(e)
        );
    }
    for n in &h.notes {
        let _ = write!(b, "<p class=\"note\">Note: {}</p>", esc(n));
    }
    host_facts(b, &id, h);
    checks(b, &id, h);
    audit(b, &id, h);
    plan(b, &id, h);
    stats(b, &id, h);
    diagnoses(b, &id, h);
    if let Some(e) = &h.effect {
        effect(b, &id, e);
    }
    b.push_str("</section>\n");
}

fn open_section(b: &mut String, id: &str, name: &str, title: &str) {
    let _ = write!(
        b,
        "<section id=\"{id}-{name}\" data-section=\"{name}\"><h3>{}</h3>",
        esc(title)
    );
}

fn host_facts(b: &mut String, id: &str, h: &HostSection) {
    open_section(b, id, "host", "Host: topology, memory, KSM and THP");
    let Some(host) = &h.host else {
        b.push_str("<p class=\"note\">No host facts.</p></section>\n");
        return;
    };
    let cpu = &host.cpu;
    let _ = write!(
        b,
        "<dl class=\"kv\"><dt>Host name</dt><dd>{}</dd><dt>Kernel</dt><dd>{}</dd>\
         <dt>CPU</dt><dd>{} ({})</dd><dt>Sockets / cores / threads</dt><dd>{} / {} / {}</dd>\
         <dt>Isolated CPUs</dt><dd>{}</dd><dt>Kernel command line</dt><dd>{}</dd></dl>",
        esc(host.hostname.as_deref().unwrap_or("?")),
        esc(host.kernel.as_deref().unwrap_or("?")),
        esc(cpu.model_name.as_deref().unwrap_or("?")),
        esc(cpu
            .hw_virt
            .as_deref()
            .unwrap_or("no hardware virtualization seen")),
        opt(cpu.sockets),
        opt(cpu.cores),
        opt(cpu.threads),
        esc(&cpu
            .isolated
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none".into())),
        esc(host.cmdline.raw.as_deref().unwrap_or("?"))
    );
    if let Some(r) = &host.remote {
        let _ = write!(
            b,
            "<p class=\"note\">Read through libvirt ({}): what libvirt does not report is unknown.</p>",
            esc(r)
        );
    }
    let _ = write!(
        b,
        "<figure>{}<figcaption>Where each domain's vCPUs and emulator threads may run now: \
         live thread affinity for domains running on this host, the XML pins otherwise \
         (each domain says which).</figcaption></figure>",
        svg::topology(&format!("{id}-topo"), host, &h.domains, &h.reserved)
    );
    // the same as a table
    b.push_str(
        "<table><caption>Domains and their CPUs</caption><thead><tr><th scope=\"col\">#</th>\
         <th scope=\"col\">Domain</th><th scope=\"col\">State</th><th scope=\"col\">vCPUs</th>\
         <th scope=\"col\">Memory</th><th scope=\"col\">vCPU → host CPUs</th>\
         <th scope=\"col\">Emulator → host CPUs</th><th scope=\"col\">From</th></tr></thead><tbody>",
    );
    let online: BTreeSet<u32> = host.online_cpus().iter().collect();
    for (k, d) in h.domains.iter().enumerate() {
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (v, set) in &d.vcpu_cpus {
            let s = if floats(set, &online) {
                "any".to_string()
            } else {
                svg::cpus(set)
            };
            groups.entry(s).or_default().push(*v);
        }
        let pins = if groups.is_empty() {
            "any (unpinned)".to_string()
        } else {
            groups
                .iter()
                .map(|(s, vs)| format!("{} → {s}", svg::cpus(vs)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let emu = match &d.emulator_cpus {
            Some(e) if !floats(e, &online) => svg::cpus(e),
            _ => "any".into(),
        };
        let _ = write!(
            b,
            "<tr><td class=\"n\">{}</td><th scope=\"row\">{}</th><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            k + 1,
            esc(&d.name),
            if d.running { "running" } else { "shut off" },
            d.vcpus,
            mib(d.memory_kib),
            esc(&pins),
            esc(&emu),
            d.source.as_str()
        );
    }
    if h.domains.is_empty() {
        b.push_str("<tr><td colspan=\"8\">no domain</td></tr>");
    }
    b.push_str("</tbody></table>");
    let _ = write!(
        b,
        "<h4>Memory per NUMA node</h4><figure>{}</figure>",
        svg::memory(&format!("{id}-mem"), host)
    );
    b.push_str(
        "<table><thead><tr><th scope=\"col\">Node</th><th scope=\"col\">CPUs</th>\
         <th scope=\"col\">Total</th><th scope=\"col\">Free</th><th scope=\"col\">Hugepage pools (total / free)</th>\
         <th scope=\"col\">Distances</th></tr></thead><tbody>",
    );
    for n in &host.numa.nodes {
        let pools: Vec<String> = n
            .hugepages
            .iter()
            .map(|p| format!("{} KiB: {} / {}", p.size_kib, p.total, p.free))
            .collect();
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            n.id,
            esc(&n.cpus.to_string()),
            n.memory_total_kib.map(mib).unwrap_or_else(|| "?".into()),
            n.memory_free_kib.map(mib).unwrap_or_else(|| "?".into()),
            esc(&if pools.is_empty() {
                "none".to_string()
            } else {
                pools.join("; ")
            }),
            esc(&n
                .distances
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" "))
        );
    }
    b.push_str("</tbody></table>");
    let m = &host.memory;
    let ksm = match &m.ksm {
        Some(k) => format!(
            "run={} ({}), merge_across_nodes={}, saving {}",
            opt(k.run),
            match k.run {
                Some(1) => "merging",
                Some(0) => "stopped",
                Some(2) => "stopped and unmerged",
                _ => "unknown",
            },
            opt(k.merge_across_nodes),
            k.saved_bytes
                .map(|s| mib(s / 1024))
                .unwrap_or_else(|| "?".into())
        ),
        None => "unknown (not read)".into(),
    };
    let thp = match &m.thp {
        Some(t) => format!(
            "enabled={}, defrag={}",
            t.enabled.as_deref().unwrap_or("?"),
            t.defrag.as_deref().unwrap_or("?")
        ),
        None => "unknown (not read)".into(),
    };
    let _ = write!(
        b,
        "<dl class=\"kv\"><dt>Memory</dt><dd>{} total, {} available</dd><dt>KSM</dt><dd>{}</dd>\
         <dt>Transparent hugepages</dt><dd>{}</dd><dt>NUMA balancing</dt><dd>{}</dd></dl>",
        m.total_kib.map(mib).unwrap_or_else(|| "?".into()),
        m.available_kib.map(mib).unwrap_or_else(|| "?".into()),
        esc(&ksm),
        esc(&thp),
        host.numa
            .balancing
            .map(|v| if v == 0 { "off" } else { "on" })
            .unwrap_or("unknown")
    );
    b.push_str("</section>\n");
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "?".into())
}

fn checks(b: &mut String, id: &str, h: &HostSection) {
    open_section(b, id, "checks", "Host checks");
    if h.checks.is_empty() {
        b.push_str("<p class=\"note\">No host checks (no host facts).</p></section>\n");
        return;
    }
    let _ = write!(
        b,
        "<p>Profile {}. Verdicts as virt-host-validate gives them, plus kvmtune's host rules.</p>\
         <table><thead><tr><th scope=\"col\">Verdict</th><th scope=\"col\">Check</th>\
         <th scope=\"col\">Found</th><th scope=\"col\">Hint</th></tr></thead><tbody>",
        esc(&h.checks_profile)
    );
    let mut sorted: Vec<&kvmtune_rules::Check> = h.checks.iter().collect();
    let rank = |v: Verdict| match v {
        Verdict::Fail => 0,
        Verdict::Warn => 1,
        Verdict::Info => 2,
        Verdict::Unknown => 3,
        Verdict::Pass => 4,
    };
    sorted.sort_by_key(|c| rank(c.verdict));
    for c in sorted {
        let _ = write!(
            b,
            "<tr><td>{}</td><th scope=\"row\">{} <small>({})</small></th><td>{}</td><td>{}</td></tr>",
            verdict(c.verdict),
            esc(&c.title),
            esc(&c.id),
            esc(&c.detail),
            esc(c.hint.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</tbody></table></section>\n");
}

fn diff(d: &str) -> String {
    let mut s = String::from("<pre class=\"diff\">");
    for line in d.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "hunk"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        let _ = write!(s, "<span class=\"{class}\">{}</span>", esc(line));
    }
    s.push_str("</pre>");
    s
}

fn finding(b: &mut String, f: &FindingRow) {
    let _ = write!(
        b,
        "<article class=\"finding {}\"><p>{} <strong>{}</strong> <code>{}</code>{}</p><p>{}</p>",
        f.severity.as_str(),
        sev(f.severity),
        esc(&f.title),
        esc(&f.rule),
        if f.suspect { " (suspected)" } else { "" },
        esc(&f.message)
    );
    match &f.fix {
        Some(fix) => {
            let _ = write!(
                b,
                "<p><strong>Fix</strong> ({}; class <strong>{}</strong>): {}<br><strong>Risk</strong>: {}</p>",
                esc(f.applies.as_deref().unwrap_or("")),
                esc(f.class.as_deref().unwrap_or("?")),
                esc(fix),
                esc(&f.risk)
            );
        }
        None => {
            let _ = write!(
                b,
                "<p>No automatic fix. <strong>Risk</strong> of changing it: {}</p>",
                esc(&f.risk)
            );
        }
    }
    if let Some(d) = &f.diff {
        b.push_str(&diff(d));
    }
    b.push_str("</article>");
}

fn audit(b: &mut String, id: &str, h: &HostSection) {
    open_section(b, id, "audit", "Audit findings per domain");
    let mut counts = [0usize; 3];
    for f in h
        .audits
        .iter()
        .flat_map(|a| &a.findings)
        .chain(&h.host_findings)
    {
        counts[match f.severity {
            Severity::Error => 0,
            Severity::Warn => 1,
            Severity::Info => 2,
        }] += 1;
    }
    let _ = write!(
        b,
        "<table><thead><tr><th scope=\"col\">Domain</th><th scope=\"col\">Profile</th>\
         <th scope=\"col\">ERROR</th><th scope=\"col\">WARN</th><th scope=\"col\">INFO</th></tr></thead><tbody>"
    );
    for a in &h.audits {
        let n = |s: Severity| a.findings.iter().filter(|f| f.severity == s).count();
        let _ = write!(
            b,
            "<tr><th scope=\"row\"><a href=\"#{id}-dom-{}\">{}</a></th><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            slug(&a.name),
            esc(&a.name),
            esc(&a.profile),
            n(Severity::Error),
            n(Severity::Warn),
            n(Severity::Info)
        );
    }
    let _ = write!(
        b,
        "<tr><th scope=\"row\">all</th><td></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></tbody></table>",
        counts[0], counts[1], counts[2]
    );
    if !h.host_findings.is_empty() {
        b.push_str("<h4>The host as a whole</h4>");
        for f in &h.host_findings {
            finding(b, f);
        }
    }
    for a in &h.audits {
        let _ = write!(
            b,
            "<h4 id=\"{id}-dom-{}\">{} <small>(profile {})</small></h4>",
            slug(&a.name),
            esc(&a.name),
            esc(&a.profile)
        );
        if a.findings.is_empty() {
            b.push_str("<p>No finding.</p>");
        }
        for f in &a.findings {
            finding(b, f);
        }
    }
    if h.audits.is_empty() {
        b.push_str("<p class=\"note\">No domain audited.</p>");
    }
    b.push_str("</section>\n");
}

/// An id fragment from a name: hex of its bytes beyond `[A-Za-z0-9_-]`, so two names never
/// share one and nothing in a name reaches the attribute unescaped.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte as char);
        } else {
            let _ = write!(out, ".{byte:02x}");
        }
    }
    out
}

fn plan(b: &mut String, id: &str, h: &HostSection) {
    open_section(b, id, "plan", "Placement plan: before and after");
    let Some(p) = &h.plan else {
        let _ = writeln!(
            b,
            "<p class=\"note\">No plan: {}</p></section>",
            esc(&h.plan_note)
        );
        return;
    };
    let _ = write!(
        b,
        "<p>The planner's placement of every domain (profile {}): {} placed, {} spanning nodes, \
         {} moved, {} not placed. Above: where the domains are pinned now; below: the plan. {}</p>",
        esc(&p.profile),
        p.after.score.placed,
        p.after.score.spanning,
        p.after.score.moved,
        p.after.unplaced.len(),
        esc(&h.plan_note)
    );
    let before = kvmtune_planner::svg::render(&p.topology, &p.before);
    let after = kvmtune_planner::svg::render(&p.topology, &p.after);
    let summary = |o: &kvmtune_planner::Outcome| -> String {
        let mut v: Vec<String> = o
            .placed
            .iter()
            .map(|x| {
                format!(
                    "{} on node {} (vCPUs on {}, emulator {})",
                    x.name,
                    x.nodes
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join("+"),
                    svg::cpus(&x.vcpus.iter().flatten().copied().collect::<Vec<_>>()),
                    if x.emulator.is_empty() {
                        "unpinned".to_string()
                    } else {
                        format!("on {}", svg::cpus(&x.emulator))
                    }
                )
            })
            .collect();
        v.extend(
            o.unplaced
                .iter()
                .map(|u| format!("{} not placed: {}", u.name, u.why)),
        );
        if v.is_empty() {
            "no pinned domain".into()
        } else {
            v.join("; ")
        }
    };
    let _ = write!(
        b,
        "<figure>{}<figcaption>Before: the domains' current pins{}.</figcaption></figure>\
         <figure>{}<figcaption>After: the plan.</figcaption></figure>",
        svg::wrap_plan(
            &format!("{id}-plan-before"),
            "Placement now",
            &summary(&p.before),
            &before
        ),
        if p.floating.is_empty() {
            String::new()
        } else {
            format!("; not pinned (float): {}", esc(&p.floating.join(", ")))
        },
        svg::wrap_plan(
            &format!("{id}-plan-after"),
            "Placement planned",
            &summary(&p.after),
            &after
        )
    );
    b.push_str(
        "<table><thead><tr><th scope=\"col\">Domain</th><th scope=\"col\">Now</th>\
         <th scope=\"col\">Planned nodes</th><th scope=\"col\">Planned vCPU pins</th>\
         <th scope=\"col\">Planned emulator</th></tr></thead><tbody>",
    );
    for x in &p.after.placed {
        let now = p
            .before
            .placed
            .iter()
            .find(|y| y.name == x.name)
            .map(|y| {
                format!(
                    "vCPUs on {}",
                    svg::cpus(&y.vcpus.iter().flatten().copied().collect::<Vec<_>>())
                )
            })
            .unwrap_or_else(|| "floats (no pins)".into());
        let pins: Vec<String> = x
            .vcpus
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i}:{}", svg::cpus(c)))
            .collect();
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&x.name),
            esc(&now),
            esc(&x
                .nodes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+")),
            esc(&pins.join(" ")),
            esc(&svg::cpus(&x.emulator))
        );
    }
    for u in &p.after.unplaced {
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td colspan=\"4\"><span class=\"sev sev-warn\">▲ NOT PLACED</span> {}</td></tr>",
            esc(&u.name),
            esc(&u.why)
        );
    }
    b.push_str("</tbody></table>");
    for pool in &p.after.pools {
        let _ = write!(
            b,
            "<p>Hugepages: node {} needs {} pages of {} KiB.</p>",
            pool.node, pool.pages, pool.page_kib
        );
    }
    for (k, v) in &p.after.host {
        let _ = write!(
            b,
            "<p>Host setting: <code>{} = {}</code></p>",
            esc(k),
            esc(v)
        );
    }
    b.push_str("</section>\n");
}

fn stats(b: &mut String, id: &str, h: &HostSection) {
    open_section(b, id, "stats", "Live statistics");
    let s = &h.stats;
    if s.samples.is_empty() {
        let _ = writeln!(
            b,
            "<p class=\"note\">{}</p></section>",
            esc(if s.note.is_empty() {
                "No live statistics."
            } else {
                &s.note
            })
        );
        return;
    }
    let _ = write!(
        b,
        "<p>{} interval(s). {} CPU figures are in % of one host CPU: host is the whole QEMU \
         process, guest the time in guest mode, overhead the difference.</p>",
        s.samples.len(),
        esc(&s.note)
    );
    let names: BTreeSet<&str> = s
        .samples
        .iter()
        .flat_map(|x| x.domains.iter().map(|d| d.name.as_str()))
        .collect();
    let get = |name: &str, f: &dyn Fn(&DomSample) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        s.samples
            .iter()
            .map(|x| (x.t_s, x.domains.iter().find(|d| d.name == name).and_then(f)))
            .collect()
    };
    // host-wide: exits/s by kind (summed over domains), memory per node
    let mut kinds: BTreeMap<String, f64> = BTreeMap::new();
    for d in s.samples.iter().flat_map(|x| &x.domains) {
        for (k, v) in &d.exits {
            *kinds.entry(k.clone()).or_default() += v;
        }
    }
    let mut top: Vec<(String, f64)> = kinds.into_iter().filter(|(_, v)| *v > 0.0).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(6);
    b.push_str("<div class=\"charts\">");
    if !top.is_empty() {
        let series: Vec<Series> = top
            .iter()
            .map(|(k, _)| Series {
                label: k.clone(),
                points: s
                    .samples
                    .iter()
                    .map(|x| {
                        let v: f64 = x.domains.iter().filter_map(|d| d.exits.get(k)).sum();
                        (x.t_s, Some(v))
                    })
                    .collect(),
            })
            .collect();
        let _ = write!(
            b,
            "<figure>{}</figure>",
            svg::line_chart(
                &format!("{id}-exits"),
                "KVM exits per second by kind, all domains",
                "exits/s",
                &series
            )
        );
    }
    let nodes: BTreeSet<u32> = s
        .samples
        .iter()
        .flat_map(|x| x.domains.iter().flat_map(|d| d.node_kib.keys().copied()))
        .collect();
    let mem_series: Vec<Series> = if nodes.is_empty() {
        vec![Series {
            label: "resident, all nodes".into(),
            points: s
                .samples
                .iter()
                .map(|x| {
                    let v: Vec<u64> = x.domains.iter().filter_map(|d| d.rss_kib).collect();
                    (
                        x.t_s,
                        (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / 1024.0),
                    )
                })
                .collect(),
        }]
    } else {
        nodes
            .iter()
            .map(|n| Series {
                label: format!("node {n}"),
                points: s
                    .samples
                    .iter()
                    .map(|x| {
                        let v: u64 = x.domains.iter().filter_map(|d| d.node_kib.get(n)).sum();
                        (x.t_s, Some(v as f64 / 1024.0))
                    })
                    .collect(),
            })
            .collect()
    };
    let _ = write!(
        b,
        "<figure>{}</figure></div>",
        svg::line_chart(
            &format!("{id}-memnode"),
            "Domains' memory per NUMA node",
            "MiB",
            &mem_series
        )
    );
    b.push_str("<h4>CPU per domain</h4><div class=\"charts\">");
    for (k, name) in names.iter().enumerate() {
        let series = vec![
            Series {
                label: "host CPU (QEMU process)".into(),
                points: get(name, &|d| d.host_pct),
            },
            Series {
                label: "guest CPU".into(),
                points: get(name, &|d| d.guest_pct),
            },
            Series {
                label: "overhead (host − guest)".into(),
                points: get(name, &|d| d.overhead_pct),
            },
        ];
        let _ = write!(
            b,
            "<figure>{}</figure>",
            svg::line_chart(
                &format!("{id}-cpu-{k}"),
                &format!("CPU of {name}"),
                "% of a CPU",
                &series
            )
        );
    }
    b.push_str("</div>");
    // means per domain, as a table
    b.push_str(
        "<table><thead><tr><th scope=\"col\">Domain</th><th scope=\"col\">Host CPU %</th>\
         <th scope=\"col\">Guest CPU %</th><th scope=\"col\">Overhead %</th>\
         <th scope=\"col\">Exits/s</th><th scope=\"col\">Largest exit kinds</th></tr></thead><tbody>",
    );
    for name in &names {
        let all: Vec<&DomSample> = s
            .samples
            .iter()
            .flat_map(|x| &x.domains)
            .filter(|d| d.name == *name)
            .collect();
        let mean = |f: &dyn Fn(&DomSample) -> Option<f64>| -> String {
            let v: Vec<f64> = all.iter().filter_map(|d| f(d)).collect();
            if v.is_empty() {
                "?".into()
            } else {
                format!("{:.1}", v.iter().sum::<f64>() / v.len() as f64)
            }
        };
        let mut kinds: BTreeMap<&str, f64> = BTreeMap::new();
        for d in &all {
            for (k, v) in &d.exits {
                *kinds.entry(k).or_default() += v / all.len() as f64;
            }
        }
        let total: f64 = kinds.values().sum();
        let counted = all.iter().any(|d| !d.exits.is_empty());
        let mut kv: Vec<(&str, f64)> = kinds.into_iter().filter(|x| x.1 > 0.0).collect();
        kv.sort_by(|a, b| b.1.total_cmp(&a.1));
        let topk: Vec<String> = kv
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} {}", svg::num(*v)))
            .collect();
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(name),
            mean(&|d| d.host_pct),
            mean(&|d| d.guest_pct),
            mean(&|d| d.overhead_pct),
            if counted {
                svg::num(total)
            } else {
                "n/a".to_string()
            },
            if counted {
                esc(&topk.join(", "))
            } else {
                "no KVM exit counters (a TCG domain, or too old a libvirt/QEMU)".to_string()
            }
        );
    }
    b.push_str("</tbody></table></section>\n");
}

fn diagnoses(b: &mut String, id: &str, h: &HostSection) {
    open_section(b, id, "diagnoses", "Diagnoses");
    if h.diagnoses.is_empty() {
        let _ = writeln!(
            b,
            "<p>{}</p></section>",
            if h.stats.samples.is_empty() {
                "No diagnosis: there are no live statistics to judge."
            } else {
                "Nothing alarming in the statistics window."
            }
        );
        return;
    }
    for d in &h.diagnoses {
        let figs: Vec<String> = d
            .figures
            .iter()
            .map(|(n, v, u)| {
                format!(
                    "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td><td>{}</td></tr>",
                    esc(n),
                    esc(&svg::num(*v)),
                    esc(u)
                )
            })
            .collect();
        let _ = write!(
            b,
            "<article class=\"finding {}\"><p>{} <strong>{}</strong> <code>{}</code> on {}</p><p>{}</p>",
            d.severity.as_str(),
            sev(d.severity),
            esc(&d.title),
            esc(&d.rule),
            esc(&d.subject),
            esc(&d.message)
        );
        if !figs.is_empty() {
            let _ = write!(
                b,
                "<table><thead><tr><th scope=\"col\">Figure</th><th scope=\"col\">Value</th><th scope=\"col\">Unit</th></tr></thead><tbody>{}</tbody></table>",
                figs.concat()
            );
        }
        let _ = write!(
            b,
            "<p><strong>Cause</strong>: {}</p><p><strong>Fix</strong>: {}</p>",
            esc(&d.cause),
            esc(&d.fix)
        );
        for a in &d.audit {
            let _ = write!(b, "<p>Audit: {}</p>", esc(a));
        }
        b.push_str("</article>");
    }
    b.push_str("</section>\n");
}

fn effect(b: &mut String, id: &str, e: &Effect) {
    open_section(b, id, "effect", "Effect of a journaled change");
    let _ = write!(
        b,
        "<p>Journal entry {}.</p><table><thead><tr><th scope=\"col\">Figure</th><th scope=\"col\">Before</th>\
         <th scope=\"col\">After</th><th scope=\"col\">Unit</th></tr></thead><tbody>",
        esc(&e.entry)
    );
    for (n, x, y, u) in &e.rows {
        let _ = write!(
            b,
            "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(n),
            esc(&svg::num(*x)),
            esc(&svg::num(*y)),
            esc(u)
        );
    }
    b.push_str("</tbody></table></section>\n");
}
