//! `kvmtune plan`: place every domain of a host at once (crates/planner) and write the
//! placement as a plan file that `kvmtune apply --plan` carries out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{Cli, PlanArgs};
use crate::{Exit, print_json, print_text};
use kvmtune_apply::plan::{Plan, PlanCell, PlanDomain, PlanNuma};
use kvmtune_host::CpuSet;
use kvmtune_planner::{CpuPolicy, Dom, EmulatorPolicy, Fill, Outcome, Policy, SmtPolicy, Topo};
use kvmtune_rules::Profile;

fn cpus(list: &[u32]) -> String {
    let mut s = CpuSet::new();
    for c in list {
        s.insert(*c);
    }
    s.to_string()
}

fn parse_enum<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .map_err(|_| anyhow::anyhow!("{what} {v}: not a valid value"))
}

fn policy_of(profile: &Profile, args: &PlanArgs) -> Result<(Policy, Fill)> {
    let mut p = Policy {
        cpus: profile.plan.cpus,
        smt: profile.plan.smt,
        emulator: profile.plan.emulator,
    };
    if let Some(v) = &args.cpus {
        p.cpus = parse_enum("--cpus", v)?;
    }
    if let Some(v) = &args.smt {
        p.smt = parse_enum("--smt", v)?;
    }
    if let Some(v) = &args.emulator {
        p.emulator = parse_enum("--emulator", v)?;
    }
    let fill = match &args.fill {
        Some(v) => parse_enum("--fill", v)?,
        None => profile.plan.fill,
    };
    Ok((p, fill))
}

/// `DOMAIN:KEY=VALUE` overrides.
fn overrides(args: &PlanArgs) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut m: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for o in &args.policy {
        let (dom, kv) = o
            .split_once(':')
            .with_context(|| format!("--policy {o}: expected DOMAIN:KEY=VALUE"))?;
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--policy {o}: expected DOMAIN:KEY=VALUE"))?;
        if !matches!(k, "cpus" | "smt" | "emulator") {
            bail!("--policy {o}: KEY is cpus, smt or emulator");
        }
        m.entry(dom.to_string())
            .or_default()
            .push((k.to_string(), v.to_string()));
    }
    Ok(m)
}

#[derive(Serialize)]
struct Report<'a> {
    kind: &'static str,
    version: u32,
    profile: &'a str,
    host: String,
    topology: &'a Topo,
    outcome: &'a Outcome,
    plan: &'a Plan,
}

pub fn run(cli: &Cli, args: &PlanArgs) -> Result<Exit> {
    let profile = kvmtune_rules::load_profile(&args.profile)?;
    let (base, fill) = policy_of(&profile, args)?;
    let over = overrides(args)?;
    let reserve = args
        .reserve
        .clone()
        .unwrap_or_else(|| profile.plan.reserve.clone());
    let (parsed, ctx) = crate::audit_inputs::gather_parsed(
        cli,
        &args.targets,
        args.targets.is_empty(),
        &args.profile,
        true,
    )?;
    if parsed.is_empty() {
        bail!("no domain to place");
    }
    for name in over.keys() {
        if !parsed.iter().any(|p| &p.domain.name == name) {
            bail!("--policy {name}:...: no such domain among those planned");
        }
    }
    let host = ctx.host.as_ref().context("no host facts to plan against")?;
    let topo = kvmtune_planner::topo_from_host(host, &reserve).map_err(|e| anyhow::anyhow!(e))?;
    let mut doms = Vec::new();
    for p in &parsed {
        let d = &p.domain;
        let mut pol = base;
        for (k, v) in over.get(&d.name).into_iter().flatten() {
            match k.as_str() {
                "cpus" => pol.cpus = parse_enum::<CpuPolicy>("--policy cpus", v)?,
                "smt" => pol.smt = parse_enum::<SmtPolicy>("--policy smt", v)?,
                _ => pol.emulator = parse_enum::<EmulatorPolicy>("--policy emulator", v)?,
            }
        }
        let page_kib = d.memory_backing.as_ref().filter(|m| m.hugepages).map(|m| {
            m.pages
                .iter()
                .find_map(|pg| pg.size_kib)
                .or(host.memory.default_hugepage_kib)
                .unwrap_or(2048)
        });
        let mut pins = BTreeMap::new();
        let mut emulator_pin = None;
        if let Some(ct) = &d.cputune {
            for pin in &ct.vcpupin {
                if let (Some(id), Ok(set)) = (pin.id, CpuSet::parse(&pin.cpuset)) {
                    pins.insert(id, set.iter().collect());
                }
            }
            emulator_pin = ct
                .emulatorpin
                .as_ref()
                .and_then(|e| CpuSet::parse(&e.cpuset).ok())
                .map(|s| s.iter().collect());
        }
        doms.push(Dom {
            name: d.name.clone(),
            vcpus: d.vcpu.max,
            memory_kib: d.memory_kib.unwrap_or(0),
            page_kib,
            pins,
            emulator_pin,
            policy: pol,
        });
    }
    let outcome = kvmtune_planner::plan(&topo, &doms, fill);
    let plan = to_plan(&outcome, &parsed, host);
    if let Some(path) = &args.output {
        let json = serde_json::to_vec_pretty(&plan).context("cannot encode the plan")?;
        crate::write_file_atomic(path, &json)?;
    }
    if let Some(path) = &args.svg {
        crate::write_file_atomic(
            path,
            kvmtune_planner::svg::render(&topo, &outcome).as_bytes(),
        )?;
    }
    if cli.json {
        print_json(&Report {
            kind: "kvmtune.plan-report",
            version: 1,
            profile: &profile.name,
            host: ctx.host_origin.clone(),
            topology: &topo,
            outcome: &outcome,
            plan: &plan,
        })?;
    } else {
        print_text(&render(
            &topo,
            &outcome,
            &profile.name,
            fill,
            &reserve,
            args,
        ))?;
    }
    Ok(if outcome.unplaced.is_empty() {
        Exit::Clean
    } else {
        Exit::Findings
    })
}

fn to_plan(o: &Outcome, parsed: &[crate::audit::Parsed], host: &kvmtune_host::Host) -> Plan {
    let mut plan = Plan::new();
    for p in &o.placed {
        let Some(src) = parsed.iter().find(|x| x.domain.name == p.name) else {
            continue;
        };
        let dedicated = p.policy.cpus == CpuPolicy::Dedicated;
        let cells: Vec<PlanCell> = p
            .cells
            .iter()
            .map(|c| PlanCell {
                id: c.id,
                cpus: cpus(&c.vcpus),
                memory_kib: c.memory_kib,
                nodeset: c.node.to_string(),
            })
            .collect();
        let n = p.vcpus.len() as u32;
        let topology = (!cells.is_empty()).then(|| {
            let k = cells.len() as u32;
            if n.is_multiple_of(k) {
                [k, n / k, 1]
            } else {
                [1, n, 1]
            }
        });
        plan.domains.push(PlanDomain {
            name: p.name.clone(),
            base_sha256: src
                .input
                .origin
                .starts_with("libvirt:")
                .then(|| kvmtune_apply::sha256(&src.input.text)),
            vcpupin: p
                .vcpus
                .iter()
                .enumerate()
                .map(|(i, c)| (i as u32, cpus(c)))
                .collect(),
            emulatorpin: Some(cpus(&p.emulator)),
            numatune: Some(PlanNuma {
                mode: Some("strict".into()),
                nodeset: p
                    .nodes
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            }),
            cells,
            topology,
            reasons: vec![format!(
                "{} on node {}{}",
                if dedicated {
                    "dedicated CPUs"
                } else {
                    "shared CPUs"
                },
                p.nodes
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("+"),
                if p.kept { " (kept as pinned)" } else { "" }
            )],
            ..PlanDomain::default()
        });
    }
    for (k, v) in &o.host {
        plan.host.insert(k.clone(), v.clone());
    }
    for need in &o.pools {
        let have = host
            .numa
            .nodes
            .iter()
            .find(|n| n.id == need.node)
            .and_then(|n| n.hugepages.iter().find(|h| h.size_kib == need.page_kib))
            .map(|h| h.total)
            .unwrap_or(0);
        if need.pages > have {
            plan.host.insert(
                format!("hugepages.node{}.{}kB", need.node, need.page_kib),
                need.pages.to_string(),
            );
        }
    }
    plan
}

fn render(
    t: &Topo,
    o: &Outcome,
    profile: &str,
    fill: Fill,
    reserve: &str,
    args: &PlanArgs,
) -> String {
    let mut out = String::new();
    let threads: usize = t
        .nodes
        .iter()
        .flat_map(|n| &n.cores)
        .map(|c| c.threads.len())
        .sum();
    let _ = writeln!(
        out,
        "kvmtune plan: profile {profile}, {} node(s), {threads} CPU(s) for domains, reserved for the host: {} ({reserve}), fill {:?}",
        t.nodes.len(),
        if t.reserved.is_empty() {
            "none".to_string()
        } else {
            cpus(&t.reserved)
        },
        fill
    );
    for n in &t.nodes {
        let _ = writeln!(out);
        let here: Vec<_> = o
            .placed
            .iter()
            .filter(|p| p.nodes.contains(&n.id))
            .collect();
        let mem: u64 = here
            .iter()
            .map(|p| {
                if p.cells.is_empty() {
                    p.memory_kib
                } else {
                    p.cells
                        .iter()
                        .filter(|c| c.node == n.id)
                        .map(|c| c.memory_kib)
                        .sum()
                }
            })
            .sum();
        let _ = writeln!(
            out,
            "node {} (socket {}): {} of {} MiB placed",
            n.id,
            n.socket,
            mem / 1024,
            n.memory_kib / 1024
        );
        for p in here {
            let pins: Vec<String> = p
                .vcpus
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i}:{}", cpus(c)))
                .collect();
            let kind = match p.policy.cpus {
                CpuPolicy::Dedicated => "dedicated",
                CpuPolicy::Shared => "shared",
            };
            let _ = writeln!(
                out,
                "  {:<24} {} vCPU {kind}{}  vcpupin {}  emulatorpin {}{}",
                p.name,
                p.vcpus.len(),
                if p.kept { " (kept)" } else { "" },
                if kind == "shared" {
                    format!("all:{}", cpus(&p.vcpus[0]))
                } else {
                    pins.join(" ")
                },
                cpus(&p.emulator),
                if p.cells.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  spans nodes {:?} as {} guest cells",
                        p.nodes,
                        p.cells.len()
                    )
                }
            );
        }
    }
    if !o.unplaced.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "not placed");
        for u in &o.unplaced {
            let _ = writeln!(out, "  {:<24} {}", u.name, u.why);
        }
    }
    let _ = writeln!(out);
    for p in &o.pools {
        let _ = writeln!(
            out,
            "hugepages: node {} needs {} pages of {} KiB",
            p.node, p.pages, p.page_kib
        );
    }
    for (k, v) in &o.host {
        let _ = writeln!(out, "host: {k} = {v}");
    }
    if let Some(i) = &o.isolcpus {
        let _ = writeln!(out, "kernel command line suggestion: {i}");
    }
    let _ = writeln!(
        out,
        "{} placed ({} spanning nodes, {} moved), {} not placed{}",
        o.score.placed,
        o.score.spanning,
        o.score.moved,
        o.unplaced.len(),
        match &args.output {
            Some(p) => format!(
                "; plan written to {} (apply: kvmtune apply --plan {})",
                p.display(),
                p.display()
            ),
            None => "; -o FILE writes the plan for kvmtune apply --plan".into(),
        }
    );
    out
}
