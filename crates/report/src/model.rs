//! What a report is made of: plain data computed elsewhere (the host model, host checks,
//! audit findings with their fix diffs, the plan before and after, a window of statistics,
//! diagnoses). Nothing here reads a host.

use std::collections::{BTreeMap, BTreeSet};

use kvmtune_host::Host;
use kvmtune_planner::{Outcome, Topo};
use kvmtune_rules::Check;

pub use kvmtune_profile::Severity;

/// The whole page: a fleet overview (several hosts) and one section per host.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The page title, e.g. `kvmtune report: HOST`.
    pub title: String,
    /// When the data was gathered (RFC 3339), shown under the title.
    pub generated: String,
    /// kvmtune's version.
    pub version: String,
    /// One row per host when the report covers several hosts (empty for one host).
    pub fleet: Vec<FleetRow>,
    pub hosts: Vec<HostSection>,
}

/// One host of a fleet report, at a glance.
#[derive(Debug, Clone, Default)]
pub struct FleetRow {
    pub host: String,
    pub uri: String,
    /// The host's error when it could not be read.
    pub error: Option<String>,
    pub domains: usize,
    pub running: usize,
    pub cpus: Option<u32>,
    pub memory_kib: Option<u64>,
    /// Audit findings by severity: error, warn, info.
    pub findings: [usize; 3],
    /// Host checks that gave WARN or FAIL.
    pub checks_failed: usize,
    pub diagnoses: usize,
}

/// Where a domain's CPUs in the topology map come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinSource {
    /// The threads' affinity read from /proc now (a domain running on this host).
    Live,
    /// `<vcpupin>`/`<emulatorpin>` of the domain XML (not running here, or a remote host).
    #[default]
    Xml,
}

impl PinSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PinSource::Live => "live affinity (/proc)",
            PinSource::Xml => "pins from the XML",
        }
    }
}

/// Where one domain's threads may run.
#[derive(Debug, Clone, Default)]
pub struct DomainCpus {
    pub name: String,
    pub running: bool,
    pub vcpus: u32,
    pub memory_kib: u64,
    /// vCPU index -> host CPUs it may run on (absent: unpinned, floats on every CPU).
    pub vcpu_cpus: BTreeMap<u32, Vec<u32>>,
    /// Host CPUs of the emulator threads (absent: unpinned).
    pub emulator_cpus: Option<Vec<u32>>,
    pub source: PinSource,
}

/// One audit finding as the report shows it.
#[derive(Debug, Clone)]
pub struct FindingRow {
    pub rule: String,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// The fix's class (safe, guest-driver, ...), when there is a fix.
    pub class: Option<String>,
    pub risk: String,
    pub fix: Option<String>,
    /// `live` or `next start`.
    pub applies: Option<String>,
    /// The fix as a unified diff of the domain XML (secrets redacted).
    pub diff: Option<String>,
    pub suspect: bool,
}

impl FindingRow {
    /// A row of an audit finding, with the diff its fix makes (if computed).
    pub fn of(f: &kvmtune_rules::audit::Finding, diff: Option<String>) -> FindingRow {
        FindingRow {
            rule: f.rule.to_string(),
            severity: f.severity,
            title: f.title.to_string(),
            message: f.message.clone(),
            class: f.fix.as_ref().map(|x| x.class.as_str().to_string()),
            risk: f
                .fix
                .as_ref()
                .map(|x| x.risk.clone())
                .unwrap_or_else(|| f.risk.to_string()),
            fix: f.fix.as_ref().map(|x| x.summary.clone()),
            applies: f.fix.as_ref().map(|x| {
                match x.applies {
                    kvmtune_rules::audit::Applies::Live => "live",
                    kvmtune_rules::audit::Applies::NextBoot => "next start",
                }
                .to_string()
            }),
            diff: diff.filter(|d| !d.is_empty()),
            suspect: f.suspect,
        }
    }
}

/// One domain's audit.
#[derive(Debug, Clone, Default)]
pub struct DomainAudit {
    pub name: String,
    pub profile: String,
    pub findings: Vec<FindingRow>,
}

/// The placement plan: the host as the planner sees it, where the domains are pinned now
/// and where the plan puts them.
#[derive(Debug, Clone)]
pub struct PlanView {
    pub topology: Topo,
    /// Domains pinned now (unpinned ones float: listed in `floating`).
    pub before: Outcome,
    pub floating: Vec<String>,
    pub after: Outcome,
    pub profile: String,
}

/// One domain over one interval of the statistics window. CPU in % of one host CPU.
#[derive(Debug, Clone, Default)]
pub struct DomSample {
    pub name: String,
    pub host_pct: Option<f64>,
    pub guest_pct: Option<f64>,
    pub overhead_pct: Option<f64>,
    /// Exits per second by kind (io, mmio, halt, ...).
    pub exits: BTreeMap<String, f64>,
    /// The QEMU process's memory on each NUMA node, KiB.
    pub node_kib: BTreeMap<u32, u64>,
    /// Resident memory when per-node figures are not read, KiB.
    pub rss_kib: Option<u64>,
}

/// One interval of the window: seconds since its start, and every domain's figures.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub t_s: f64,
    pub domains: Vec<DomSample>,
}

/// The statistics window, or why there is none.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub samples: Vec<Sample>,
    /// Why there are no samples, or where they come from.
    pub note: String,
}

/// A diagnosis with its numbers.
#[derive(Debug, Clone)]
pub struct DiagRow {
    pub subject: String,
    pub severity: Severity,
    pub rule: String,
    pub title: String,
    pub message: String,
    /// name, value, unit.
    pub figures: Vec<(String, f64, String)>,
    pub cause: String,
    pub fix: String,
    /// Linked audit findings of the same domain, one line each.
    pub audit: Vec<String>,
}

/// A before/after measurement of a journal entry (`kvmtune apply` with measurements).
#[derive(Debug, Clone, Default)]
pub struct Effect {
    pub entry: String,
    /// figure, before, after, unit.
    pub rows: Vec<(String, f64, f64, String)>,
}

/// Everything about one host.
#[derive(Debug, Clone, Default)]
pub struct HostSection {
    pub name: String,
    /// Where its facts came from (live host, --root tree, bundle, remote libvirt).
    pub source: String,
    /// Why the host could not be read (the rest is empty then).
    pub error: Option<String>,
    pub host: Option<Host>,
    /// CPUs kept for the host (the plan's reservation).
    pub reserved: Vec<u32>,
    pub domains: Vec<DomainCpus>,
    pub checks_profile: String,
    pub checks: Vec<Check>,
    pub audits: Vec<DomainAudit>,
    pub host_findings: Vec<FindingRow>,
    /// The plan (absent: `plan_note` says why).
    pub plan: Option<PlanView>,
    pub plan_note: String,
    pub stats: Stats,
    pub diagnoses: Vec<DiagRow>,
    pub effect: Option<Effect>,
    /// Inputs that could not be read, and other remarks.
    pub notes: Vec<String>,
}

impl Default for PlanView {
    fn default() -> Self {
        let empty = Outcome {
            placed: Vec::new(),
            unplaced: Vec::new(),
            pools: Vec::new(),
            score: kvmtune_planner::Score {
                placed: 0,
                spanning: 0,
                moved: 0,
            },
            host: BTreeMap::new(),
            isolcpus: None,
            warnings: Vec::new(),
        };
        PlanView {
            topology: Topo {
                nodes: Vec::new(),
                threads_per_core: 1,
                reserved: Vec::new(),
                isolated: Vec::new(),
                online: 0,
                distance: Vec::new(),
                shared_overcommit: None,
                memory_free_now: false,
            },
            before: empty.clone(),
            floating: Vec::new(),
            after: empty,
            profile: String::new(),
        }
    }
}

/// Where the domains are pinned now, as a planner outcome (for the planner's map), and the
/// domains that float (no pins narrower than every online CPU). `node_of` maps a host CPU
/// to its NUMA node.
pub fn current_placement(
    domains: &[DomainCpus],
    online: &BTreeSet<u32>,
    node_of: &dyn Fn(u32) -> u32,
) -> (Outcome, Vec<String>) {
    use kvmtune_planner::{CpuPolicy, EmulatorPolicy, Placement, Policy, SmtPolicy};
    let mut placed = Vec::new();
    let mut floating = Vec::new();
    for d in domains {
        let pinned: Vec<(u32, &Vec<u32>)> = d
            .vcpu_cpus
            .iter()
            .filter(|(_, s)| !floats(s, online))
            .map(|(v, s)| (*v, s))
            .collect();
        if pinned.is_empty() {
            floating.push(d.name.clone());
            continue;
        }
        let vcpus: Vec<Vec<u32>> = (0..d.vcpus.max(pinned.len() as u32))
            .map(|v| {
                d.vcpu_cpus
                    .get(&v)
                    .filter(|s| !floats(s, online))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let dedicated = vcpus.iter().all(|s| s.len() == 1);
        let mut nodes: Vec<u32> = vcpus.iter().flatten().map(|c| node_of(*c)).collect();
        nodes.sort_unstable();
        nodes.dedup();
        placed.push(Placement {
            name: d.name.clone(),
            nodes,
            vcpus,
            emulator: d
                .emulator_cpus
                .clone()
                .filter(|e| !floats(e, online))
                .unwrap_or_default(),
            cells: Vec::new(),
            kept: true,
            policy: Policy {
                cpus: if dedicated {
                    CpuPolicy::Dedicated
                } else {
                    CpuPolicy::Shared
                },
                smt: SmtPolicy::Prefer,
                emulator: EmulatorPolicy::Housekeeping,
            },
            page_kib: None,
            memory_kib: d.memory_kib,
        });
    }
    let n = placed.len();
    (
        Outcome {
            placed,
            unplaced: Vec::new(),
            pools: Vec::new(),
            score: kvmtune_planner::Score {
                placed: n,
                spanning: 0,
                moved: 0,
            },
            host: BTreeMap::new(),
            isolcpus: None,
            warnings: Vec::new(),
        },
        floating,
    )
}

/// Whether a set of CPUs is every online CPU, or empty: the domain floats (no pin worth
/// drawing).
pub fn floats(set: &[u32], online: &BTreeSet<u32>) -> bool {
    set.is_empty() || online.iter().all(|c| set.contains(c))
}
