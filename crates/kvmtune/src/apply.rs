//! `kvmtune apply`, `kvmtune history` and `kvmtune rollback`: the command-line side of the
//! journaled transaction in `kvmtune-apply`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{ApplyArgs, Cli, HistoryArgs, RollbackArgs};
use crate::output::{self, Exit, print_doc, print_text};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kvmtune_apply::check::HostLimits;
use kvmtune_apply::engine::{self, Env, Request};
use kvmtune_apply::hostset;
use kvmtune_apply::journal::{
    EntryStatus, Journal, MeasureWindow, Measurement, Status, StepMark, lock_host, parse_step_marks,
};
use kvmtune_apply::plan::{self, Plan};
use kvmtune_core::fixes;
use kvmtune_core::inventory::{Inventory, Select};
use kvmtune_core::profiles::Profiles;
use kvmtune_host::process::QemuProcs as Proc;
use kvmtune_libvirt::{Libvirt, Virt};

fn env_for<'a>(cli: &Cli, virt: &'a dyn Virt) -> Result<Env<'a>> {
    Ok(env_and_limits(cli, virt)?.0)
}

/// The engine's environment, and what the host has for checking plans and settings.
fn env_and_limits<'a>(cli: &Cli, virt: &'a dyn Virt) -> Result<(Env<'a>, HostLimits)> {
    if cli.from.is_some() {
        bail!("--from reads a bundle; apply, rollback and history change or read a live host");
    }
    // another host reached through libvirt: its CPUs and NUMA nodes as its libvirt reports
    // them, its settings through libvirt; never this machine's files
    if !kvmtune_libvirt::is_local(virt.uri()) && cli.root.is_none() {
        let origin = kvmtune_core::inventory::Origin {
            connect: virt.uri().to_string(),
            root: None,
            from: None,
        };
        let (host, _) = origin.host_facts()?;
        let cpus = host.online_cpus();
        if cpus.is_empty() {
            bail!("{}: libvirt reports no host CPUs", virt.uri());
        }
        let limits = HostLimits {
            cpus: cpus.clone(),
            nodes: host
                .numa
                .available
                .then(|| host.numa.nodes.iter().map(|n| n.id).collect()),
            memory_kib: host.memory.total_kib,
        };
        return Ok((
            Env {
                virt,
                root: PathBuf::from("/"),
                proc: None,
                host_cpus: cpus.to_string(),
                remote: true,
            },
            limits,
        ));
    }
    let root = cli.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    if !root.is_dir() {
        bail!("--root {}: not a directory", root.display());
    }
    let host = kvmtune_host::collect(&kvmtune_host::RootDir::new(&root));
    let cpus = host.online_cpus();
    if cpus.is_empty() {
        bail!(
            "cannot read the host's online CPUs under {}",
            root.display()
        );
    }
    let limits = HostLimits {
        cpus: cpus.clone(),
        nodes: host
            .numa
            .available
            .then(|| host.numa.nodes.iter().map(|n| n.id).collect()),
        memory_kib: host.memory.total_kib,
    };
    Ok((
        Env {
            virt,
            root,
            proc: kvmtune_libvirt::is_local(virt.uri()).then(Proc::default),
            host_cpus: cpus.to_string(),
            remote: false,
        },
        limits,
    ))
}

/// SIGINT and SIGTERM during `apply --yes`: the first sets the flag the engine checks
/// before each step (it stops, rolls back and exits 3); a second ends the process at once
/// with 130 (SIGINT) or 143 (SIGTERM), and `kvmtune history` then shows the entry as
/// interrupted and says to run `kvmtune rollback`.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, code) in [(SIGINT, 130), (SIGTERM, 143)] {
        // the order matters: the shutdown sees the flag as the earlier signal left it
        signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&stop))
            .context("cannot install a signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install a signal handler")?;
    }
    Ok(stop)
}

/// The domain changes from audit fixes, and what the re-audit needs to verify them.
struct FromAudit {
    changes: fixes::AuditChanges,
    profiles: Profiles,
    inv: Inventory,
}

fn from_audit(
    cli: &Cli,
    args: &ApplyArgs,
    scope: fixes::Scope,
    virt: &dyn Virt,
) -> Result<FromAudit> {
    let profiles = Profiles::from_args(&args.profile)?;
    let selection = fixes::Selection::parse(&args.rules, &args.classes)?;
    let sel = Select {
        targets: args.domains.clone(),
        all: args.all,
        host_for_files: false,
    };
    let inv = Inventory::gather(&crate::origin(cli), &sel)?.strict()?;
    let profiles = profiles.with_metadata(&inv);
    let report = kvmtune_core::audit::audit_with(&inv, &profiles);
    if !report.errors.is_empty() {
        // a fix judged with the wrong profile is not one to apply
        bail!("{}", report.errors.join("; "));
    }
    let changes = fixes::changes(&inv, &report, &selection, scope, virt)?;
    Ok(FromAudit {
        changes,
        profiles,
        inv,
    })
}

#[derive(Serialize)]
struct ApplyReport<'a> {
    dry_run: bool,
    journal: String,
    prepared: &'a engine::Prepared,
    steps: Vec<String>,
    diffs: BTreeMap<String, String>,
    /// Audit fixes the selection left out (their class is not asked for).
    left_out: &'a [fixes::LeftOut],
    /// With audit fixes: the profile each domain was judged with.
    profiles: BTreeMap<String, String>,
    result: Option<&'a engine::Applied>,
}

fn diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{name}.xml"), &format!("b/{name}.xml"))
        .to_string()
}

/// The audit fixes left out, per domain, and how to include them.
fn render_left_out(out: &mut String, left_out: &[fixes::LeftOut]) {
    if left_out.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "not applied: {} fix(es) of classes not asked for (only `safe` fixes by default)",
        left_out.len()
    );
    let mut last = None;
    for l in left_out {
        if last != Some(&l.domain) {
            let _ = writeln!(out, "  {}", l.domain);
            last = Some(&l.domain);
        }
        let _ = writeln!(out, "    left out: {}", l.line());
    }
}

fn render(
    prep: &engine::Prepared,
    diffs: &BTreeMap<String, String>,
    left_out: &[fixes::LeftOut],
    profiles: &BTreeMap<String, String>,
    dry: bool,
    journal: &Path,
    st: &output::Style,
) -> String {
    let mut out = String::new();
    let e = &prep.entry;
    if prep.is_empty() {
        let _ = writeln!(out, "kvmtune apply: nothing to change");
        for (d, notes) in &prep.later {
            for n in notes {
                let _ = writeln!(out, "  {d}: {n}");
            }
        }
        render_left_out(&mut out, left_out);
        return out;
    }
    let _ = writeln!(
        out,
        "kvmtune apply{}: {} step(s)",
        if dry { " (dry run: --yes applies)" } else { "" },
        e.steps.len()
    );
    for d in &e.domains {
        let steps: Vec<_> = e.steps.iter().filter(|s| s.subject == d.name).collect();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} ({}){}",
            d.name,
            if d.active { "running" } else { "shut off" },
            profiles
                .get(&d.name)
                .map(|p| format!(" - profile {p}"))
                .unwrap_or_default()
        );
        for r in prep.reasons.get(&d.name).into_iter().flatten() {
            let _ = writeln!(out, "  why   {r}");
        }
        for s in &steps {
            match &s.action {
                kvmtune_apply::journal::Action::Define { .. } => {
                    let when = if d.active {
                        "the running domain picks up the rest at its next start"
                    } else {
                        "used at its next start"
                    };
                    let _ = writeln!(out, "  {:>3}. define the new stored XML ({when})", s.n);
                    if let Some(df) = diffs.get(&d.name) {
                        for l in df.lines() {
                            let _ = writeln!(out, "         {}", st.diff_line(l));
                        }
                    }
                }
                kvmtune_apply::journal::Action::Live(op) => {
                    let _ = writeln!(out, "  {:>3}. live: {}", s.n, op.command(&d.name));
                }
                _ => {}
            }
        }
        for n in prep.later.get(&d.name).into_iter().flatten() {
            let _ = writeln!(out, "       later: {n}");
        }
    }
    let host: Vec<_> = e.steps.iter().filter(|s| s.subject == "host").collect();
    if !host.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "host (live at once)");
        for s in host {
            match &s.action {
                kvmtune_apply::journal::Action::Host(w) => {
                    let old = e
                        .host
                        .iter()
                        .find(|h| h.path == w.path)
                        .map(|h| h.old.as_str())
                        .unwrap_or("?");
                    let _ = writeln!(
                        out,
                        "  {:>3}. {} {} -> {}   ({})",
                        s.n, w.key, old, w.value, w.path
                    );
                }
                kvmtune_apply::journal::Action::File(f) => {
                    let _ = writeln!(
                        out,
                        "  {:>3}. write {} (persists the settings across reboots)",
                        s.n, f.path
                    );
                }
                _ => {}
            }
        }
    }
    render_left_out(&mut out, left_out);
    let _ = writeln!(out);
    if dry {
        let _ = writeln!(
            out,
            "Nothing was changed. With --yes, the old state is journaled in {} first, \
             and `kvmtune rollback --last{}` undoes it.",
            journal.display(),
            journal_opt(journal)
        );
    }
    out
}

/// `apply` over several hosts (`-c` repeated, `--hosts`): the hosts in parallel, each its
/// own transaction and journal entry (a failure rolls back that host only, the others go on),
/// then which hosts changed. This machine's apply lock and the journal's lock are taken once
/// for all hosts; journal entries are numbered in the order the hosts begin; the output is
/// grouped by host in the order given.
pub fn run_apply_many(
    cli: &Cli,
    args: &ApplyArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    if args.plan.is_some() {
        bail!("--plan names one host's domains: apply it with -c that host's URI");
    }
    // --yes: this machine's apply lock and the journal's, taken once for every host, before
    // any host is contacted; then the hosts in parallel, one journal entry each
    let shared = if args.yes {
        let journal_dir = &args.journal;
        if std::fs::symlink_metadata(journal_dir).is_ok_and(|m| !m.is_dir()) {
            return Err(kvmtune_apply::journal::JournalError::NotADirectory(
                journal_dir.display().to_string(),
            )
            .into());
        }
        let host_lock = lock_host()?;
        let journal = Journal::open(journal_dir)?;
        let lock = journal.lock()?;
        Some(Arc::new(Shared {
            journal,
            lock,
            stop: stop_on_signals()?,
            _host_lock: host_lock,
        }))
    } else {
        None
    };
    let labels: Vec<String> = hosts
        .iter()
        .map(|h| h.name.clone().unwrap_or_else(|| h.uri.clone()))
        .collect();
    let n = hosts.len();
    let base = args.clone();
    let job_shared = shared.clone();
    // a transaction is not abandoned at --host-timeout (its thread would go on without the
    // locks): each host gets at least 10 minutes; a host that does not answer at all still
    // fails at its connection
    let mut patient = cli.clone();
    patient.host_timeout = cli.host_timeout.max(600);
    let (code, outcomes) = crate::multi::run_outcomes(
        &patient,
        hosts,
        "apply",
        Box::new(move |one, h| {
            let mut a = base.clone();
            if let Some(p) = &h.profile
                && !a.profile.iter().any(|x| !x.contains('='))
            {
                a.profile.push(p.clone());
            }
            apply_with(one, &a, job_shared.as_deref())
        }),
    )?;
    drop(shared);
    if cli.json {
        return Ok(code);
    }
    let mut changed = Vec::new();
    let mut failed = Vec::new();
    for (label, o) in labels.iter().zip(&outcomes) {
        match o {
            Ok(Exit::Clean) if args.yes => changed.push(label.clone()),
            Ok(Exit::Clean) => {}
            Ok(e) => failed.push(format!("{label} (exit {})", *e as i32)),
            Err(e) => failed.push(format!("{label} (not changed: {})", output::one_line(e))),
        }
    }
    let mut text = String::new();
    if args.yes {
        let _ = writeln!(
            text,
            "applied on {} of {n} host(s): {}",
            changed.len(),
            if changed.is_empty() {
                "none".to_string()
            } else {
                changed.join(", ")
            }
        );
    } else {
        let _ = writeln!(
            text,
            "dry run on {n} host(s); --yes applies, one journal entry per host"
        );
    }
    if !failed.is_empty() {
        let _ = writeln!(
            text,
            "failed (each rolled back on its own host, or never started): {}",
            failed.join("; ")
        );
    }
    print_text(&text)?;
    Ok(code)
}

pub fn run_apply(cli: &Cli, args: &ApplyArgs) -> Result<Exit> {
    apply_with(cli, args, None)
}

/// What the hosts of one `apply --yes` over several hosts share: this machine's apply lock,
/// the journal and its lock (taken once, before any host), and the signal flag.
pub struct Shared {
    journal: Journal,
    lock: kvmtune_apply::journal::Lock,
    stop: Arc<AtomicBool>,
    _host_lock: kvmtune_apply::journal::HostLock,
}

fn apply_with(cli: &Cli, args: &ApplyArgs, shared: Option<&Shared>) -> Result<Exit> {
    let has_domains = args.all || !args.domains.is_empty();
    if args.plan.is_some() && has_domains {
        bail!("--plan and DOMAIN/--all are exclusive: a plan names its own domains");
    }
    if let Some(name) = &args.set_profile {
        if !has_domains {
            bail!("--set-profile NAME: give the DOMAIN names (or --all) whose metadata to set");
        }
        kvmtune_core::profiles::check_metadata_name(name)?;
    }
    if !has_domains && !args.classes.is_empty() {
        bail!("--class selects audit fixes: give DOMAIN names or --all");
    }
    if args.plan.is_none() && !has_domains && args.set.is_empty() {
        bail!(
            "nothing to apply: give DOMAIN names or --all (audit fixes), --plan FILE, or --set KEY=VALUE"
        );
    }
    if args.persist && args.set.is_empty() && args.plan.is_none() {
        bail!("--persist makes --set host settings persistent; there are none");
    }
    let (live_scope, config_scope) = match (args.live, args.config) {
        (false, false) => (true, true),
        (l, c) => (l, c),
    };
    let mut host = Vec::new();
    for s in &args.set {
        host.push(hostset::parse(s)?);
    }
    // read-write whenever possible, also for a dry run: only a read-write connection reads
    // domain XML with its secrets, and a plan saved from XML without them would lose them
    let lv = if args.yes {
        Libvirt::open(&cli.connect, false)?
    } else {
        Libvirt::open(&cli.connect, false).or_else(|_| Libvirt::open(&cli.connect, true))?
    };
    let virt: &dyn Virt = &lv;
    let (env, limits) = env_and_limits(cli, virt)?;
    for w in &host {
        hostset::check_sane(w, limits.nodes.as_ref(), limits.memory_kib)
            .map_err(|e| anyhow::anyhow!("--set {e}"))?;
    }
    let mut audit_ctx = None;
    let mut set_profile: BTreeMap<String, String> = BTreeMap::new();
    let domains = if let Some(name) = &args.set_profile {
        let sel = Select {
            targets: args.domains.clone(),
            all: args.all,
            host_for_files: false,
        };
        let inv = Inventory::gather(&crate::origin(cli), &sel)?.strict()?;
        for p in &inv.domains {
            set_profile.insert(p.domain.name.clone(), name.clone());
        }
        kvmtune_core::profiles::set_profile_changes(&inv, name)?
    } else if let Some(path) = &args.plan {
        let p = Plan::read(path)?;
        for (k, v) in &p.host {
            host.push(hostset::parse(&format!("{k}={v}"))?);
        }
        plan::validate(&p, &path.display().to_string(), virt, &limits)?;
        plan::changes(&p, live_scope, config_scope, virt)?
    } else if has_domains {
        let scope = fixes::Scope {
            live: live_scope,
            config: config_scope,
        };
        let a = from_audit(cli, args, scope, virt)?;
        let ch = a.changes.changes.clone();
        audit_ctx = Some(a);
        ch
    } else {
        Vec::new()
    };
    if args.live && !args.config {
        for d in &domains {
            if !virt.is_active(&d.name)? {
                bail!("domain {}: --live, but it is not running", d.name);
            }
        }
    }
    let journal_dir = args.journal.clone();
    let req = Request {
        domains,
        host,
        persist: args.persist,
        command: std::env::args().collect(),
    };
    // a journal path that cannot be a journal is said before waiting on any lock
    if args.yes && std::fs::symlink_metadata(&journal_dir).is_ok_and(|m| !m.is_dir()) {
        return Err(kvmtune_apply::journal::JournalError::NotADirectory(
            journal_dir.display().to_string(),
        )
        .into());
    }
    // the locks are taken before reading the state, so no other kvmtune changes it in
    // between: the host-wide lock (whatever the journal directory), then the journal's
    // (with several hosts, the run took both once for all of them)
    let host_lock = if args.yes && shared.is_none() {
        Some(lock_host()?)
    } else {
        None
    };
    let own_journal = if args.yes && shared.is_none() {
        Some(Journal::open(&journal_dir)?)
    } else {
        None
    };
    let own_lock = match &own_journal {
        Some(j) => Some(j.lock()?),
        None => None,
    };
    let journal: Option<&Journal> = match shared {
        Some(s) if args.yes => Some(&s.journal),
        _ => own_journal.as_ref(),
    };
    let lock: Option<&kvmtune_apply::journal::Lock> = match shared {
        Some(s) if args.yes => Some(&s.lock),
        _ => own_lock.as_ref(),
    };
    let prep = engine::prepare(&env, &req)?;
    let mut diffs = BTreeMap::new();
    for s in &prep.entry.steps {
        if let kvmtune_apply::journal::Action::Define { xml } = &s.action
            && let Some(d) = prep.entry.domains.iter().find(|d| d.name == s.subject)
        {
            // the dry run shows no password unless --secrets (the definitions keep them)
            let d_old = if args.secrets {
                d.inactive_xml.clone()
            } else {
                kvmtune_domain::secrets::redact(&d.inactive_xml)
            };
            let d_new = if args.secrets {
                xml.clone()
            } else {
                kvmtune_domain::secrets::redact(xml)
            };
            diffs.insert(d.name.clone(), diff(&d.name, &d_old, &d_new));
        }
    }
    if let Some(path) = &args.save_plan {
        save_plan(path, &req, &prep)?;
    }
    // --measure: the domains being changed (every running domain for host settings only)
    let measured: Vec<String> = req.domains.iter().map(|d| d.name.clone()).collect();
    let mut measure_before = None;
    let result = match (journal, lock) {
        (Some(j), Some(l)) if !prep.is_empty() => {
            let check = |name: &str, xml: &str| -> Vec<String> {
                if let Some(p) = set_profile.get(name) {
                    return kvmtune_core::profiles::profile_in_effect(xml, p);
                }
                match &audit_ctx {
                    Some(a) => {
                        let profile = a
                            .inv
                            .domains
                            .iter()
                            .find(|p| p.domain.name == name)
                            .map_or(a.profiles.default_profile(), |p| a.profiles.for_domain(p));
                        fixes::reaudit(&a.inv, profile, &a.changes, name, xml)
                    }
                    None => Vec::new(),
                }
            };
            if let Some(secs) = args.measure {
                measure_before = Some(measure_window(cli, &cli.connect, &measured, secs, "before"));
            }
            let stop = match shared {
                Some(s) => Arc::clone(&s.stop),
                None => stop_on_signals()?,
            };
            Some(engine::execute_until(&env, j, l, &prep, &check, &stop)?)
        }
        _ => None,
    };
    // --measure: the after window, both stored in the entry
    let measurement = match (&result, measure_before, journal, args.measure) {
        (Some(r), Some(before), Some(j), Some(secs)) if r.status == Status::Applied => {
            let after = measure_window(cli, &cli.connect, &measured, secs, "after");
            let m = Measurement {
                windows: vec![before, after],
            };
            if let Err(e) = j.record_measurement(&r.id, &m) {
                output::warning(&format!("--measure: not stored: {e}"));
            }
            Some(m)
        }
        _ => None,
    };
    drop(host_lock);
    let dry = !args.yes;
    let left_out = audit_ctx
        .as_ref()
        .map(|a| a.changes.left_out.as_slice())
        .unwrap_or_default();
    let profiles: BTreeMap<String, String> = audit_ctx
        .as_ref()
        .map(|a| {
            a.inv
                .domains
                .iter()
                .map(|p| (p.domain.name.clone(), a.profiles.for_domain(p).name.clone()))
                .collect()
        })
        .unwrap_or(set_profile);
    if cli.json {
        let mut report = serde_json::to_value(ApplyReport {
            dry_run: dry,
            journal: journal_dir.display().to_string(),
            prepared: &prep,
            steps: prep.entry.steps.iter().map(engine::describe_step).collect(),
            diffs,
            left_out,
            profiles: profiles.clone(),
            result: result.as_ref(),
        })
        .context("cannot encode the report")?;
        if !args.secrets {
            output::redact_json(&mut report);
        }
        if let Some(m) = &measurement {
            report["measure"] = measurement_json(m);
        }
        print_doc("kvmtune.apply", 1, &report)?;
    } else {
        let mut text = render(
            &prep,
            &diffs,
            left_out,
            &profiles,
            dry,
            &journal_dir,
            &output::Style::of(cli),
        );
        if let Some(r) = &result {
            let num =
                r.id.split('-')
                    .next()
                    .unwrap_or(&r.id)
                    .trim_start_matches('0');
            match r.status {
                Status::Applied => {
                    let _ = writeln!(
                        text,
                        "applied {}: {} step(s) made and verified. Undo: kvmtune rollback {num}{}",
                        r.id,
                        r.steps,
                        journal_opt(&journal_dir)
                    );
                }
                Status::Failed => {
                    let _ = writeln!(
                        text,
                        "apply {} FAILED and was rolled back: {}",
                        r.id,
                        r.error.as_deref().unwrap_or("")
                    );
                }
                Status::FailedRollbackIncomplete => {
                    let _ = writeln!(
                        text,
                        "apply {} FAILED and the rollback is INCOMPLETE: {}\nsee `kvmtune history {num}{jo}`; retry with `kvmtune rollback {num}{jo}`",
                        r.id,
                        r.error.as_deref().unwrap_or(""),
                        jo = journal_opt(&journal_dir)
                    );
                }
                Status::Interrupted => {
                    let _ = writeln!(
                        text,
                        "apply {} INTERRUPTED after {} of {} step(s); what was done was rolled back",
                        r.id, r.steps_done, r.steps
                    );
                }
                Status::Conflict => {
                    let _ = writeln!(
                        text,
                        "apply {} STOPPED: a domain was defined by someone else meanwhile; what was done was rolled back",
                        r.id
                    );
                }
            }
        }
        if let Some(m) = &measurement {
            text.push('\n');
            text.push_str(&render_measurement(m, &output::Style::of(cli)));
            if result.as_ref().is_some_and(|r| !r.notes.is_empty()) {
                let num = result
                    .as_ref()
                    .map(|r| {
                        r.id.split('-')
                            .next()
                            .unwrap_or(&r.id)
                            .trim_start_matches('0')
                            .to_string()
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    text,
                    "changes wait for the next start: restart the domain, then `kvmtune history {num}{} --measure {}`",
                    journal_opt(&journal_dir),
                    args.measure.unwrap_or(10)
                );
            }
        }
        print_text(&text)?;
    }
    if let Some(r) = &result {
        if let Some(e) = &r.error {
            output::error(&format!("apply {}: {e}", r.id));
        }
        return Ok(match r.status {
            Status::Applied => Exit::Clean,
            Status::Failed => Exit::ApplyFailed,
            Status::FailedRollbackIncomplete => Exit::RollbackIncomplete,
            Status::Interrupted => Exit::ApplyFailed,
            Status::Conflict => Exit::Error,
        });
    }
    Ok(Exit::Clean)
}

fn save_plan(path: &Path, req: &Request, prep: &engine::Prepared) -> Result<()> {
    let p = Plan::from_request(req, prep);
    let json = serde_json::to_vec_pretty(&p).context("cannot encode the plan")?;
    crate::output::write_output(path, &json, kvmtune_host::fsio::PRIVATE_FILE)
}

/// ` --journal DIR` when the journal is not the one kvmtune would use without the option,
/// so that a printed command acts on the same journal.
fn journal_opt(dir: &Path) -> String {
    let default = std::env::var_os("KVMTUNE_JOURNAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(kvmtune_apply::journal::DEFAULT_DIR));
    if dir == default {
        String::new()
    } else {
        let d = dir.display().to_string();
        format!(" --journal {}", kvmtune_domain::shell_quote(&d))
    }
}

/// What to do about an entry whose apply stopped part way (a crash, a second signal).
fn interrupted_hint(id: &str, journal: &Path) -> String {
    let num = id.split('-').next().unwrap_or(id).trim_start_matches('0');
    format!(
        "the apply stopped part way and was not rolled back: run `kvmtune rollback {num}{}` \
         to restore the state before it",
        journal_opt(journal)
    )
}

/// `--measure`: a window of live figures of `domains` (those running; every running domain
/// when none is named) on `uri`, one frame a second for `secs` seconds. A failure is kept
/// in the window, not raised: the apply itself must not fail because of a measurement.
fn measure_window(
    cli: &Cli,
    uri: &str,
    domains: &[String],
    secs: u64,
    label: &str,
) -> MeasureWindow {
    let started = kvmtune_apply::journal::now();
    let mut w = MeasureWindow {
        label: label.to_string(),
        started,
        seconds: secs,
        domains: Vec::new(),
        frames: Vec::new(),
        error: None,
    };
    let r = (|| -> Result<()> {
        let origin = kvmtune_core::inventory::Origin {
            connect: uri.to_string(),
            root: cli.root.clone(),
            from: None,
        };
        let lv = Libvirt::open(uri, true)?;
        let running: Vec<String> = domains
            .iter()
            .filter(|d| lv.is_active(d).unwrap_or(false))
            .cloned()
            .collect();
        if !domains.is_empty() && running.is_empty() {
            bail!("none of {} is running", domains.join(", "));
        }
        drop(lv);
        let mut watch = kvmtune_core::watch::Watch::open(&origin, running, None)?;
        let interval = std::time::Duration::from_secs(1);
        let start = std::time::Instant::now();
        let mut prev = watch.take()?;
        for n in 1..=secs.max(1) {
            crate::stat::sleep_until(start, n, interval);
            let cur = watch.take()?;
            let fr = watch.frame(&prev, &cur);
            for d in &fr.domains {
                if !w.domains.contains(&d.name) {
                    w.domains.push(d.name.clone());
                }
            }
            w.frames
                .push(serde_json::to_value(&fr).context("cannot encode a frame")?);
            prev = cur;
        }
        Ok(())
    })();
    if let Err(e) = r {
        w.error = Some(crate::one_line(&e));
    }
    w
}

fn window_frames(w: &MeasureWindow) -> Vec<kvmtune_kvmstat::live::Frame> {
    w.frames
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

/// The comparison of an entry's before window with its latest after window (after a
/// restart if measured, else right after the apply).
pub(crate) fn measured_comparison(m: &Measurement) -> Option<kvmtune_kvmstat::compare::Comparison> {
    use kvmtune_kvmstat::compare::{Window, compare};
    let b = m.window("before")?;
    let a = m.window("after-restart").or_else(|| m.window("after"))?;
    let (fb, fa) = (window_frames(b), window_frames(a));
    if fb.is_empty() || fa.is_empty() {
        return None;
    }
    compare(
        &Window::from_frames(
            &format!("before the apply ({} s from {})", b.seconds, b.started),
            &fb,
        ),
        &Window::from_frames(
            &format!("{} ({} s from {})", a.label, a.seconds, a.started),
            &fa,
        ),
    )
    .ok()
}

/// The measurement as text: each window's size or error, then the comparison.
fn render_measurement(m: &Measurement, st: &output::Style) -> String {
    let mut out = String::new();
    for w in &m.windows {
        let _ = writeln!(
            out,
            "measured {}: {} interval(s) of {} from {}{}",
            w.label,
            w.frames.len(),
            if w.domains.is_empty() {
                "no domain".to_string()
            } else {
                w.domains.join(", ")
            },
            w.started,
            w.error
                .as_ref()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        );
    }
    match measured_comparison(m) {
        Some(c) => out.push_str(&crate::compare::render(&c, st)),
        None => {
            let _ = writeln!(
                out,
                "no comparison: a before and an after window with figures are both needed"
            );
        }
    }
    out
}

/// `measure` in JSON: the windows (with their frames) and the comparison.
fn measurement_json(m: &Measurement) -> serde_json::Value {
    serde_json::json!({
        "windows": m.windows,
        "comparison": measured_comparison(m),
    })
}

pub fn run_history(cli: &Cli, args: &HistoryArgs) -> Result<Exit> {
    history(cli, args, None)
}

/// `history` with several hosts: the entries of this machine's journal that were applied
/// through one of their URIs.
pub fn run_history_many(
    cli: &Cli,
    args: &HistoryArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    if args.id.is_some() {
        bail!("history ID shows one entry (with its own host); leave out -c/--hosts");
    }
    let uris: Vec<String> = hosts.into_iter().map(|h| h.uri).collect();
    history(cli, args, Some(&uris))
}

fn history(cli: &Cli, args: &HistoryArgs, only: Option<&[String]>) -> Result<Exit> {
    if cli.from.is_some() {
        bail!(
            "--from reads a bundle; history reads this machine's journal (--journal), which no bundle holds"
        );
    }
    // a reader: it creates no directory and no lock file
    let j = match Journal::existing(&args.journal) {
        Ok(j) => j,
        Err(kvmtune_apply::journal::JournalError::Missing(_)) if args.id.is_none() => {
            if cli.json {
                print_doc(
                    "kvmtune.history",
                    1,
                    &serde_json::json!({
                        "journal": args.journal, "entries": [],
                    }),
                )?;
            } else {
                print_text(&format!(
                    "no journal at {} (nothing was applied with it)\n",
                    args.journal.display()
                ))?;
            }
            return Ok(Exit::Clean);
        }
        Err(e) => return Err(e.into()),
    };
    let busy = j.busy();
    if let Some(id) = &args.id {
        let id = j.resolve(id)?;
        let l = j.describe(&id, busy);
        let entry = j.load(&id).ok();
        let log = j.steps_log(&id);
        let outcome = j.outcome(&id).ok().flatten();
        let rb = j.rollback_record(&id).ok().flatten();
        if let Some(secs) = args.measure {
            // after a restart: the entry's domains (every running one for host settings)
            let _lock = j.lock()?;
            let mut m = j.measurement(&id)?.unwrap_or_default();
            let uri = if l.uri.is_empty() {
                cli.connect.clone()
            } else {
                l.uri.clone()
            };
            let w = measure_window(cli, &uri, &l.domains, secs, "after-restart");
            if let Some(e) = &w.error
                && w.frames.is_empty()
            {
                bail!("history {} --measure: {e}", l.id);
            }
            m.put(w);
            j.record_measurement(&id, &m)?;
        }
        let measurement = j.measurement(&id)?;
        if cli.json {
            print_doc(
                "kvmtune.history-entry",
                1,
                &serde_json::json!({
                    "entry": l, "steps": entry.as_ref().map(|e| e.steps.iter().map(engine::describe_step).collect::<Vec<_>>()),
                    "log": log.lines().collect::<Vec<_>>(), "outcome": outcome, "rollback": rb,
                    "measure": measurement.as_ref().map(measurement_json),
                }),
            )?;
        } else {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{}  {}  {}",
                l.id,
                l.created.as_deref().unwrap_or("?"),
                l.status
            );
            if !l.command.is_empty() {
                let _ = writeln!(out, "command: {}", l.command.join(" "));
            }
            if !l.uri.is_empty() {
                let _ = writeln!(
                    out,
                    "libvirt: {}{}",
                    l.uri,
                    if kvmtune_libvirt::is_local(&l.uri) {
                        ""
                    } else {
                        " (another host: rollback goes through it)"
                    }
                );
            }
            if let Some(e) = &l.error {
                let _ = writeln!(out, "error: {e}");
            }
            if l.status == EntryStatus::Interrupted {
                let _ = writeln!(out, "{}", interrupted_hint(&l.id, &args.journal));
            }
            if let Some(e) = &entry {
                let _ = writeln!(out, "steps ({} of {} done):", l.steps_done, l.steps);
                let marks = parse_step_marks(&log);
                for s in &e.steps {
                    let mark = match marks.get(&s.n) {
                        Some(StepMark::Done) => "done",
                        Some(StepMark::Failed(_)) => "FAIL",
                        Some(StepMark::Begun) => "begun",
                        None => "-",
                    };
                    let _ = writeln!(
                        out,
                        "  {:>3}. [{mark:>5}] {}",
                        s.n,
                        engine::describe_step(s)
                    );
                }
            }
            if let Some(o) = &outcome {
                for n in &o.notes {
                    let _ = writeln!(out, "note: {n}");
                }
            }
            if let Some(r) = &rb {
                let _ = writeln!(
                    out,
                    "rolled back at {}{}",
                    r.at,
                    if r.ok { "" } else { " (incomplete)" }
                );
                for e in &r.errors {
                    let _ = writeln!(out, "  error: {e}");
                }
            }
            if let Some(m) = &measurement {
                out.push('\n');
                out.push_str(&render_measurement(m, &output::Style::of(cli)));
            }
            print_text(&out)?;
        }
        return Ok(Exit::Clean);
    }
    let list: Vec<_> = j
        .entries()?
        .iter()
        .map(|id| j.describe(id, busy))
        .filter(|l| only.is_none_or(|uris| uris.contains(&l.uri)))
        .collect();
    if cli.json {
        print_doc(
            "kvmtune.history",
            1,
            &serde_json::json!({
                "journal": args.journal, "entries": list,
            }),
        )?;
    } else {
        let mut out = String::new();
        if list.is_empty() {
            match only {
                Some(uris) => {
                    let _ = writeln!(
                        out,
                        "no journal entries for {} in {}",
                        uris.join(", "),
                        args.journal.display()
                    );
                }
                None => {
                    let _ = writeln!(out, "no journal entries in {}", args.journal.display());
                }
            }
        }
        for l in &list {
            let mut what: Vec<String> = l.domains.clone();
            what.extend(l.host.iter().map(|h| format!("host:{h}")));
            if !l.uri.is_empty() && !kvmtune_libvirt::is_local(&l.uri) {
                what.push(format!("on {}", l.uri));
            }
            let _ = writeln!(
                out,
                "{:<22} {:<21} {:<26} {:>3}/{:<3} {}",
                l.id,
                l.created.as_deref().unwrap_or("?"),
                l.status,
                l.steps_done,
                l.steps,
                what.join(", ")
            );
            if let (Some(e), true) = (&l.error, l.status == EntryStatus::Corrupt) {
                let _ = writeln!(out, "    {e}");
            }
            if l.status == EntryStatus::Interrupted {
                let _ = writeln!(out, "    {}", interrupted_hint(&l.id, &args.journal));
            }
        }
        print_text(&out)?;
    }
    Ok(Exit::Clean)
}

pub fn run_rollback(cli: &Cli, args: &RollbackArgs) -> Result<Exit> {
    rollback(cli, args, None, None)
}

/// `rollback --last` with several hosts: each host's last entry that is still in force, the
/// hosts in parallel under one journal lock (taken once, before any host).
pub fn run_rollback_many(
    cli: &Cli,
    args: &RollbackArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    if args.id.is_some() || !args.last {
        bail!(
            "rollback over several hosts takes --last (each host's last entry); an entry ID names its own host: leave out -c/--hosts"
        );
    }
    if cli.from.is_some() {
        bail!("--from reads a bundle; rollback changes a live host");
    }
    let journal = Journal::existing(&args.journal)?;
    let host_lock = lock_host()?;
    let lock = journal.lock()?;
    let shared = Arc::new(Shared {
        journal,
        lock,
        stop: Arc::new(AtomicBool::new(false)),
        _host_lock: host_lock,
    });
    let mut patient = cli.clone();
    patient.host_timeout = cli.host_timeout.max(600);
    let args = args.clone();
    crate::multi::run(
        &patient,
        hosts,
        "rollback",
        Box::new(move |cli, h| rollback(cli, &args, Some(&h.uri), Some(&shared))),
    )
}

/// Roll back an entry; `uri`: only an entry applied through that URI (`--last` of one host
/// among several).
fn rollback(
    cli: &Cli,
    args: &RollbackArgs,
    uri: Option<&str>,
    shared: Option<&Shared>,
) -> Result<Exit> {
    if cli.from.is_some() {
        bail!("--from reads a bundle; rollback changes a live host");
    }
    let own = match shared {
        Some(_) => None,
        None => {
            let j = Journal::existing(&args.journal)?;
            let lock = j.lock()?;
            Some((j, lock))
        }
    };
    let (j, lock) = match (shared, &own) {
        (Some(s), _) => (&s.journal, &s.lock),
        (None, Some((j, l))) => (j, l),
        (None, None) => bail!("internal error: no journal"),
    };
    let id = match (&args.id, args.last) {
        (Some(id), _) => j.resolve(id)?,
        (None, true) => {
            let mut pick = None;
            for id in j.entries()?.iter().rev() {
                let l = j.describe(id, false);
                if uri.is_some_and(|u| u != l.uri) {
                    continue;
                }
                match l.status {
                    EntryStatus::RolledBack
                    | EntryStatus::Failed
                    | EntryStatus::InterruptedRolledBack
                    | EntryStatus::Conflict => continue,
                    EntryStatus::Corrupt => bail!(
                        "the last entry {id} is corrupt ({}); name an entry to roll back",
                        l.error.unwrap_or_default()
                    ),
                    _ => {
                        pick = Some(id.clone());
                        break;
                    }
                }
            }
            pick.with_context(|| match uri {
                Some(u) => format!("nothing to roll back for {u} in {}", args.journal.display()),
                None => format!("nothing to roll back in {}", args.journal.display()),
            })?
        }
        (None, false) => bail!("name the entry to roll back (see `kvmtune history`), or --last"),
    };
    let entry = j.load(&id)?;
    let lv = Libvirt::open(
        if entry.uri.is_empty() {
            &cli.connect
        } else {
            &entry.uri
        },
        false,
    )?;
    let mut env = env_for(cli, &lv)?;
    if cli.root.is_none() {
        env.root = PathBuf::from(&entry.root);
    }
    let _host_lock = match shared {
        Some(_) => None,
        None => Some(lock_host()?),
    };
    let r = engine::rollback(&env, j, lock, &id, args.force)?;
    if cli.json {
        print_doc("kvmtune.rollback", 1, &serde_json::json!({ "result": r}))?;
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rollback {}: {}",
            r.id,
            if r.ok { "done, verified" } else { "INCOMPLETE" }
        );
        for a in &r.actions {
            let _ = writeln!(out, "  {a}");
        }
        for n in &r.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for e in &r.errors {
            let _ = writeln!(out, "  error: {e}");
        }
        if r.actions.is_empty() && r.ok {
            let _ = writeln!(out, "  (everything was already as journaled)");
        }
        print_text(&out)?;
    }
    Ok(if r.ok {
        Exit::Clean
    } else {
        Exit::RollbackIncomplete
    })
}
