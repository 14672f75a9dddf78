//! `kvmtune plan`: place every domain of a host at once (crates/planner) and write the
//! placement as a plan file that `kvmtune apply --plan` carries out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{Cli, PlanArgs};
use crate::output::{self, Exit, print_text};
use kvmtune_apply::plan::Plan;
use kvmtune_core::inventory::{Inventory, Select};
use kvmtune_core::placement::{self, cpus};
use kvmtune_core::profiles::Profiles;
use kvmtune_planner::{CpuPolicy, EmulatorPolicy, Fill, Outcome, Policy, SmtPolicy, Topo};
use kvmtune_rules::Profile;

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
    profile: &'a str,
    /// The profile each domain was placed with (its policy, unless --policy says otherwise).
    profiles: &'a BTreeMap<String, String>,
    host: String,
    topology: &'a Topo,
    outcome: &'a Outcome,
    plan: &'a Plan,
}

/// `plan` on several hosts: each host's placement, in parallel, grouped by host.
pub fn run_many(
    cli: &Cli,
    args: &PlanArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    if args.output.is_some() || args.svg.is_some() {
        bail!(
            "-o/--svg write one host's plan: with several hosts, run plan -c URI -o FILE per host"
        );
    }
    Profiles::from_args(&args.profile)?;
    let args = args.clone();
    crate::multi::run(
        cli,
        hosts,
        "plan",
        Box::new(move |cli, h| {
            let mut a = args.clone();
            a.profile = crate::multi::host_profiles(&args.profile, h);
            run(cli, &a)
        }),
    )
}

pub fn run(cli: &Cli, args: &PlanArgs) -> Result<Exit> {
    let profiles = Profiles::from_args(&args.profile)?;
    let profile = profiles.default_profile().clone();
    let (base, fill) = policy_of(&profile, args)?;
    let reserve = args
        .reserve
        .clone()
        .unwrap_or_else(|| profile.plan.reserve.clone());
    let sel = Select {
        targets: args.targets.clone(),
        all: args.targets.is_empty(),
        host_for_files: true,
    };
    let inv = Inventory::gather(&crate::origin(cli), &sel)?.strict()?;
    let profiles = profiles.with_metadata(&inv);
    if let Some(e) = profiles.unmatched(&inv).first() {
        bail!("{e}");
    }
    // each domain with its profile's policy (--cpus, --smt, --emulator over it), then its
    // --policy overrides
    let mut per_domain = BTreeMap::new();
    let mut used = BTreeMap::new();
    for p in &inv.domains {
        let (dp, err) = profiles.resolve(p);
        if let Some(e) = err {
            bail!("{e}");
        }
        used.insert(p.domain.name.clone(), dp.name.clone());
        if dp.name != profile.name {
            per_domain.insert(p.domain.name.clone(), policy_of(dp, args)?.0);
        }
    }
    for (name, kvs) in overrides(args)? {
        let mut pol = per_domain.get(&name).copied().unwrap_or(base);
        for (k, v) in kvs {
            match k.as_str() {
                "cpus" => pol.cpus = parse_enum::<CpuPolicy>("--policy cpus", &v)?,
                "smt" => pol.smt = parse_enum::<SmtPolicy>("--policy smt", &v)?,
                _ => pol.emulator = parse_enum::<EmulatorPolicy>("--policy emulator", &v)?,
            }
        }
        per_domain.insert(name, pol);
    }
    let req = placement::Request {
        policy: base,
        fill,
        overrides: per_domain,
        reserve: reserve.clone(),
        // the host's profile bounds shared vCPUs per CPU (`vcpu_overcommit`)
        shared_overcommit: Some(profile.domain.vcpu_overcommit),
    };
    let placed = placement::place(&inv, &req)?;
    // nothing placed: no plan file (it would change nothing), and the text says why
    if let Some(path) = args
        .output
        .as_ref()
        .filter(|_| !placed.outcome.placed.is_empty())
    {
        let json = serde_json::to_vec_pretty(&placed.plan).context("cannot encode the plan")?;
        output::write_output(path, &json, kvmtune_host::fsio::PRIVATE_FILE)?;
    }
    if let Some(path) = &args.svg {
        let svg = kvmtune_planner::svg::render(&placed.topology, &placed.outcome);
        output::write_output(path, svg.as_bytes(), 0o644)?;
    }
    if cli.json {
        output::print_doc(
            "kvmtune.plan-report",
            1,
            &Report {
                profile: &profile.name,
                profiles: &used,
                host: inv.host_origin.clone(),
                topology: &placed.topology,
                outcome: &placed.outcome,
                plan: &placed.plan,
            },
        )?;
    } else {
        let st = output::Style::of(cli);
        let text = render(
            &placed.topology,
            &placed.outcome,
            &profile.name,
            &used,
            fill,
            &reserve,
            args,
        );
        // the header line in bold; the rest as rendered
        let (head, rest) = text.split_once('\n').unwrap_or((&text, ""));
        print_text(&format!("{}\n{rest}", st.bold(head)))?;
    }
    Ok(Exit::findings_if(!placed.outcome.unplaced.is_empty()))
}

fn render(
    t: &Topo,
    o: &Outcome,
    profile: &str,
    used: &BTreeMap<String, String>,
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
        reserved_text(&t.reserved),
        fill
    );
    if !t.isolated.is_empty() {
        let _ = writeln!(
            out,
            "isolcpus: dedicated vCPUs go to the {} isolated CPU(s) {} of {} online",
            t.isolated.len(),
            cpus(&t.isolated),
            t.online
        );
    }
    let _ = writeln!(
        out,
        "node memory: {}",
        if t.memory_free_now {
            "what is free now, plus what the planned running domains hold (free hugepages of each size apart)"
        } else {
            "capacity (total less the host's share): the domains are files, whether they run is unknown"
        }
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
        let huge: u64 = n.hugepages_free.iter().map(|(s, p)| s * p).sum();
        let _ = writeln!(
            out,
            "node {} (socket {}): {} of {} MiB placed{}",
            n.id,
            n.socket,
            mem / 1024,
            (n.memory_kib + huge) / 1024,
            if huge > 0 {
                format!(" ({} MiB of it free hugepages)", huge / 1024)
            } else {
                String::new()
            }
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
                "  {:<24} {} vCPU {kind}{}{}  vcpupin {}  emulatorpin {}{}",
                p.name,
                p.vcpus.len(),
                if p.kept { " (kept)" } else { "" },
                match used.get(&p.name) {
                    Some(dp) if dp != profile => format!(" (profile {dp})"),
                    _ => String::new(),
                },
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
    for w in &o.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "{} placed ({} spanning nodes, {} moved), {} not placed{}",
        o.score.placed,
        o.score.spanning,
        o.score.moved,
        o.unplaced.len(),
        match &args.output {
            _ if o.placed.is_empty() => format!(
                "; nothing was placed ({}), so there is no plan to apply{}",
                if o.unplaced.is_empty() {
                    "no domain to place".to_string()
                } else {
                    "each domain's reason is above".to_string()
                },
                if args.output.is_some() {
                    " and no plan file was written"
                } else {
                    ""
                }
            ),
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

/// The CPUs kept for the host, as words: "CPU 0", "CPUs 0,8,16,24", "none".
fn reserved_text(list: &[u32]) -> String {
    match list {
        [] => "none".to_string(),
        [one] => format!("CPU {one}"),
        _ => format!("CPUs {}", cpus(list)),
    }
}
