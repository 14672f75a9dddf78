//! The command line, defined once: `--help`, completions and the man page come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};
use clap_complete::engine::ArgValueCompleter;

use crate::complete;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  clean: nothing to report, or the command did what was asked
  1  findings: an audit finding at or above --fail-on, a host check WARN or FAIL, a
     diagnosis, a domain the planner could not place
  2  error: bad arguments or input, an unreadable bundle, libvirt unreachable, ...
  3  apply: a change failed and everything was rolled back
  4  apply or rollback: the rollback did not complete

With several hosts (every command but `top`; docs/fleet.md), 2 only when no host answered; a
failed host among answering ones is at least 1. Each command's --help gives its own. A closed output (`kvmtune ... | head`) ends any command
quietly with 0.";

/// `host` and `host --check`.
pub const HOST_EXIT_CODES: &str = "\
Exit codes:
  0  the host view was printed; with --check, every check passed or is informational
  1  --check: a check gave WARN or FAIL
  2  error: an unreadable --root or bundle, a bad --profile

With several hosts (-c repeated, or --hosts): 1 also when some host failed while others
answered; 2 only when no host answered (see `kvmtune fleet --help`).";

/// Commands that only print or write (`snapshot`, `history`, `rules`, `explain`, ...).
pub const PRINT_EXIT_CODES: &str = "\
Exit codes:
  0  done
  2  error: bad arguments, an unreadable or unwritable file, libvirt unreachable";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kvmtune",
    version,
    about = "Find and fix performance problems of KVM virtual machines run by QEMU and libvirt",
    long_about = "Find and fix performance problems of KVM virtual machines run by QEMU and libvirt.\n\n\
        Judge: `host` (the host as KVM sees it; --check judges it), `audit` (domain XML \
        against a scenario profile: findings with evidence, why, fix and risk; fixed XML or \
        diffs), `plan` (place every domain: pins, NUMA nodes, hugepage pools). \
        Act: `apply` (audit fixes, plan files, host settings; dry run unless --yes; \
        journaled and verified), `history`, `rollback`. \
        Watch: `stat` (live per-VM CPU, overhead and KVM exits), `top` (full screen), \
        `diagnose` (name the causes of overhead from live data, logs or perf reports). \
        Keep: `snapshot` (a support bundle for --from). \
        Fleet: `fleet` (many hosts at once; -c repeated or --hosts FILE). \
        Export: `exporter` (Prometheus metrics, or a node_exporter textfile). \
        Reference: `rules`, `explain`, `completions`, `manpage`. \
        Every command reads the live host unless --root or --from says otherwise.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text (schemas: docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// Read host files under DIR instead of / (a captured tree or a test fixture).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "from", value_hint = ValueHint::DirPath)]
    pub root: Option<PathBuf>,

    /// libvirt connection URI, for every command that talks to libvirt: `audit`, `plan`,
    /// `apply`, `rollback`, `stat`, `top`, `diagnose` and `snapshot`. Repeat it for several
    /// hosts, read in parallel (every command but `top`; see docs/fleet.md).
    #[arg(
        long = "connect",
        short = 'c',
        id = "connect",
        global = true,
        value_name = "URI",
        env = "LIBVIRT_DEFAULT_URI",
        default_value = "qemu:///system",
        action = clap::ArgAction::Append
    )]
    pub connects: Vec<String>,

    /// The first (or only) `-c` URI: what every single-host command connects to.
    #[arg(skip)]
    pub connect: String,

    /// Whether `-c` was given on the command line (not from the environment or default).
    #[arg(skip)]
    pub connect_given: bool,

    /// Read the hosts from an inventory file: one libvirt URI per line, or TOML `[[host]]`
    /// tables with `name`, `uri` and `profile` (docs/fleet.md). For `fleet`, `audit` and
    /// `host`; `-c` URIs given too are added after the file's.
    #[arg(long, global = true, value_name = "FILE")]
    pub hosts: Option<PathBuf>,

    /// With several hosts: how many are read at once.
    #[arg(long, global = true, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: u32,

    /// With several hosts: seconds one host may take before it is a failed row.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub host_timeout: u64,

    /// Read everything from a support bundle made by `kvmtune snapshot`.
    #[arg(long, global = true, value_name = "BUNDLE", value_hint = ValueHint::FilePath)]
    pub from: Option<PathBuf>,

    /// More detail: `host` shows every CPU and every KVM module parameter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to colour text output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Show the host as KVM sees it: CPU, NUMA, memory features, KVM devices and modules.
    ///
    /// One view of what lscpu, numactl --hardware, virt-host-validate and /sys/kernel/mm tell.
    /// With --check, judge the host: every QEMU check of virt-host-validate plus kvmtune's
    /// host rules for the chosen profile, each PASS/INFO/WARN/FAIL with a hint.
    #[command(after_help = HOST_EXIT_CODES)]
    Host(HostArgs),

    /// Write a support bundle: every host file kvmtune reads, libvirt capabilities, domain
    /// capabilities and every domain's inactive and live XML, in one .tar.gz.
    ///
    /// Read it anywhere with `kvmtune --from FILE host` (and every other read-only command).
    /// With --root, host files come from that tree while libvirt is still read from --connect.
    #[command(after_help = PRINT_EXIT_CODES)]
    Snapshot(SnapshotArgs),

    /// Audit domain XML against a profile: findings with evidence, why, fix and risk.
    ///
    /// Targets are XML files, or domain names of the libvirt connection (--connect), or of
    /// a bundle with --from. --all audits every domain. Files are judged on their own unless
    /// --host (or --root) adds this host's facts; libvirt and bundle domains always come
    /// with their host. --fix writes fixed XML (-o DIR) or prints diffs (--diff); it never
    /// changes libvirt.
    #[command(after_help = AUDIT_EXIT_CODES)]
    Audit(AuditArgs),

    /// Apply audit fixes, a plan file or host settings: a dry run unless --yes.
    ///
    /// Sources: the fixable findings of an audit of DOMAIN... or --all (only --rule ID...
    /// with --rule), a plan file (--plan), host settings (--set KEY=VALUE). The dry run prints
    /// every change: the stored-XML diff, each live operation (as the virsh command), each
    /// host setting with its old value, and what waits for a domain's next start. With
    /// --yes, the old state is journaled (fsynced) first, each change is made and verified
    /// (stored XML re-read and re-audited; running settings re-read; every pinned thread's
    /// affinity read from /proc), and on any failure everything is rolled back (exit 3).
    #[command(after_help = APPLY_EXIT_CODES)]
    Apply(ApplyArgs),

    /// Place every domain of the host at once: vCPU and emulator pins, NUMA nodes, guest
    /// NUMA cells for domains that must span nodes, hugepage pools, host settings.
    ///
    /// Reads the domains (names or XML files; default every domain of --connect or of the
    /// --from bundle) and the host (live, --root or --from). Writes a plan file with -o that
    /// `kvmtune apply --plan` carries out, and an SVG map with --svg. Already valid pins are
    /// kept; a domain moves only if that places more domains. Objective and policies:
    /// docs/plan.md.
    #[command(after_help = PLAN_EXIT_CODES)]
    Plan(PlanArgs),

    /// Live statistics of running domains: host and guest CPU, overhead, emulator threads,
    /// KVM exits/s by kind, vCPU run delay, memory per NUMA node.
    ///
    /// One libvirt call per interval fetches every domain's CPU, vCPU, balloon and KVM
    /// statistics (no debugfs, no tracepoints); local QEMU processes add /proc accounting.
    /// Prints one block (text), line (--json: JSON Lines) or set of rows (--format csv) per
    /// interval. Figures: docs/stat.md.
    #[command(after_help = STAT_EXIT_CODES)]
    Stat(StatArgs),

    /// Full-screen live view of every running domain, like top and kvm_stat together.
    ///
    /// Keys: up/down (or j/k) select (the selection follows the domain when rows re-sort),
    /// Enter shows a domain's vCPUs and exits, Esc goes back, s/S choose the sort column, r
    /// reverses it, / filters by name, q quits. Columns include memory (RSS, balloon) and the
    /// host node of the vCPUs; the header shows host CPU, memory and KSM saving.
    #[command(after_help = STAT_EXIT_CODES)]
    Top(TopArgs),

    /// Name the causes of a VM's overhead from its exits and CPU figures, with the numbers
    /// behind each and the fix, together with the domain's audit.
    ///
    /// Watches running domains for --duration seconds, or reads a `kvmtune stat --json` log
    /// (--log), or a recorded `perf kvm stat report|live` or `kvm_stat` output
    /// (--perf-report). Rules: docs/diagnose.md.
    #[command(after_help = DIAGNOSE_EXIT_CODES)]
    Diagnose(DiagnoseArgs),

    /// Did a change help? Compare two windows per domain: host CPU, overhead and exits/s by
    /// kind, before and after, with the change and whether it is significant.
    ///
    /// Inputs: two `kvmtune stat --json` logs, two bundles with a stat window (`snapshot
    /// --stat-seconds`), two recorded `perf kvm stat`/`kvm_stat` reports, or one log (or the
    /// --from bundle's window) with --before and --after. Significance: Welch's t-test on the
    /// per-interval values; verdicts improved, worse, no significant change (CPU: lower or
    /// higher). Rules: docs/compare.md.
    #[command(after_help = COMPARE_EXIT_CODES)]
    Compare(CompareArgs),

    /// Many hosts at a glance: one row per host (reached or not), its domains, vCPU and
    /// memory commitment, audit findings, KSM saving and hugepages.
    ///
    /// Hosts come from -c (repeated) or --hosts FILE; they are read in parallel (--parallel)
    /// with a timeout each (--host-timeout). A host that cannot be reached is a row with its
    /// error and the others are still read. Inventory format and authentication:
    /// docs/fleet.md.
    #[command(after_help = FLEET_EXIT_CODES)]
    Fleet(FleetArgs),

    /// Write one self-contained HTML page of the host: topology with the domains on it,
    /// memory per node, host checks, audit findings with fixes as diffs, the placement plan
    /// before and after, live statistics as charts, diagnoses.
    ///
    /// From the live host (-c), a --root tree or a --from bundle (no statistics then); with
    /// several hosts (-c repeated, --hosts) a fleet overview first, then one section per
    /// host, read in parallel. The page fetches nothing (a Content-Security-Policy forbids
    /// it), needs no JavaScript and prints. See docs/report.md.
    #[command(after_help = REPORT_EXIT_CODES)]
    Report(ReportArgs),

    /// List the journal's entries (when, what, result), or show one with its steps.
    #[command(after_help = PRINT_EXIT_CODES)]
    History(HistoryArgs),

    /// Undo a journaled apply: restore each domain's stored XML and running settings, and
    /// every host setting and file, then verify. Works after a crash in the middle of an apply.
    #[command(after_help = ROLLBACK_EXIT_CODES)]
    Rollback(RollbackArgs),

    /// Serve Prometheus metrics: per-VM CPU (host, guest, emulator), KVM exits by kind,
    /// NUMA placement, audit findings and pin drift, host KSM and hugepages.
    ///
    /// Listens on 127.0.0.1:10126 unless --listen says otherwise (`/metrics`, `/`,
    /// `/-/healthy`); each scrape is one libvirt call plus /proc reads, the audit is redone
    /// every --audit-interval or when the running domains change. --textfile DIR writes
    /// DIR/kvmtune.prom once for node_exporter's textfile collector and exits. Metrics,
    /// port and security: docs/exporter.md.
    #[command(after_help = EXPORTER_EXIT_CODES)]
    Exporter(ExporterArgs),

    /// List every rule: audit rules, host checks and diagnosis rules (id, severity, title).
    #[command(after_help = PRINT_EXIT_CODES)]
    Rules {
        /// Show whether each audit rule is on, and at which level, for this profile.
        #[arg(long, short = 'p', value_name = "PROFILE", add = ArgValueCompleter::new(complete::single_profile))]
        profile: Option<String>,
    },

    /// Explain one rule (audit rule, host check or diagnosis): why it matters, the fix, its
    /// risk and its source. Every id any command prints can be explained.
    #[command(after_help = PRINT_EXIT_CODES)]
    Explain {
        /// The rule id (see `kvmtune rules`).
        #[arg(add = ArgValueCompleter::new(complete::rule_ids))]
        rule: String,
    },

    /// Print the shell completion script to source: commands, options, domain names, rule
    /// ids, profiles, host-setting keys, fix classes and journal entries.
    ///
    /// The script asks kvmtune for the candidates (`-c`, LIBVIRT_DEFAULT_URI, --journal and
    /// KVMTUNE_JOURNAL are honoured; only domain names ask libvirt, read-only, briefly).
    /// bash: `source <(kvmtune completions bash)` in ~/.bashrc; zsh: the same in ~/.zshrc after
    /// compinit; fish: `kvmtune completions fish > ~/.config/fish/completions/kvmtune.fish`.
    #[command(after_help = PRINT_EXIT_CODES)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = PRINT_EXIT_CODES)]
    Manpage {
        /// Write kvmtune.1 and kvmtune-COMMAND.1 files into this directory.
        #[arg(short = 'o', long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        out_dir: Option<PathBuf>,
    },
}

/// `fleet`, and `audit` / `host --check` over several hosts.
pub const FLEET_EXIT_CODES: &str = "\
Exit codes:
  0  every host answered and no finding at or above --fail-on (default: warn)
  1  findings at or above --fail-on on some host, or some host failed (unreachable, login
     refused, no answer within --host-timeout, unreadable domains) while others answered
  2  error: no host answered, or bad arguments or a malformed --hosts file";

#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Profile for each host's audit (a host's `profile` in --hosts comes first): server,
    /// latency, dense, desktop, migratable, or a .toml path.
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE")]
    pub profile: String,

    /// Do not audit: the fastest table (no findings column).
    #[arg(long)]
    pub no_audit: bool,

    /// Exit 1 when a finding is at least this severe: info, warn or error.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Judge the host instead of only describing it.
    #[arg(long)]
    pub check: bool,

    /// Scenario profile for the checks: server, latency, dense, desktop, migratable, or a
    /// path to a profile .toml file.
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE", add = ArgValueCompleter::new(complete::single_profile))]
    pub profile: String,
}

pub const AUDIT_EXIT_CODES: &str = "\
Exit codes:
  0  no finding at or above --fail-on (default: warn)
  1  findings at or above --fail-on
  2  error: an input is malformed or not a domain, libvirt unreachable, unwritable -o DIR, ...

With several hosts (-c repeated, or --hosts): 1 also when some host failed while others
answered; 2 only when no host answered (see `kvmtune fleet --help`).";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Domain XML files and/or domain names.
    #[arg(value_name = "FILE|DOMAIN", add = ArgValueCompleter::new(complete::domains_or_files))]
    pub targets: Vec<String>,

    /// Audit every domain of the libvirt connection (or of the bundle given with --from).
    #[arg(long)]
    pub all: bool,

    /// Scenario profile: server, latency, dense, desktop, migratable, or a .toml path.
    /// NAME=DOMAIN (repeatable) gives one domain its profile. A domain's own metadata
    /// comes before NAME, NAME=DOMAIN before both (see docs/cli.md, "Profiles per domain").
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE", add = ArgValueCompleter::new(complete::profiles))]
    pub profile: Vec<String>,

    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub format: OutputFormat,

    /// Exit 1 when a finding is at least this severe: info, warn or error.
    #[arg(long, value_name = "SEVERITY", add = ArgValueCompleter::new(complete::severities))]
    pub fail_on: Option<String>,

    /// Judge XML files against the host's facts: this machine, the --root tree, or the
    /// host -c names (as its libvirt reports them).
    #[arg(long)]
    pub host: bool,

    /// Apply every finding's fix to a copy of the XML (never to libvirt).
    #[arg(long)]
    pub fix: bool,

    /// With --fix: write the fixed XML into DIR (named after the file, or DOMAIN.xml).
    #[arg(short = 'o', long = "output", value_name = "DIR", requires = "fix", value_hint = ValueHint::DirPath)]
    pub output: Option<PathBuf>,

    /// With --fix: print unified diffs of the changes.
    #[arg(long, requires = "fix")]
    pub diff: bool,

    /// Show passwords (VNC/SPICE `passwd`, cookies) in the report and diffs. By default
    /// they are replaced by *** in every output except the fixed XML files, which are the
    /// domain's definition (written 0600).
    #[arg(long)]
    pub secrets: bool,
}

pub const APPLY_EXIT_CODES: &str = "\
Exit codes:
  0  dry run printed, or every change made and verified
  2  error before any change (bad arguments or plan, a domain changed since the plan, the
     journal cannot be written, another apply holds the lock, libvirt unreachable): nothing
     was changed
  3  a change or its verification failed; everything was rolled back
  4  a change failed and the automatic rollback did not complete: see `kvmtune history`

Host setting keys for --set: ksm.run (0|1|2), ksm.merge_across_nodes (0|1), thp.enabled
(always|madvise|never), thp.defrag (always|defer|defer+madvise|madvise|never),
numa_balancing (0|1), hugepages.SIZE=COUNT and hugepages.nodeN.SIZE=COUNT (SIZE 2M, 1G).";

pub const ROLLBACK_EXIT_CODES: &str = "\
Exit codes:
  0  everything restored and verified (or already as journaled)
  2  error: no such entry, a corrupt entry, a domain changed since the apply (see --force),
     libvirt unreachable, another apply holds the lock
  4  the rollback did not complete: the errors name what is left";

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Domains whose audit fixes to apply.
    #[arg(value_name = "DOMAIN", add = ArgValueCompleter::new(complete::domains))]
    pub domains: Vec<String>,

    /// Apply the audit fixes of every domain of the connection.
    #[arg(long)]
    pub all: bool,

    /// Scenario profile of the audit: server, latency, dense, desktop, migratable, or a .toml.
    /// NAME=DOMAIN (repeatable) gives one domain its profile. A domain's own metadata
    /// comes before NAME, NAME=DOMAIN before both (see docs/cli.md, "Profiles per domain").
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE", add = ArgValueCompleter::new(complete::profiles))]
    pub profile: Vec<String>,

    /// The fixes of this rule, whatever their class (repeatable). Without --rule, the
    /// `safe` fixes (plus those of --class) are applied.
    #[arg(long = "rule", value_name = "ID", add = ArgValueCompleter::new(complete::audit_rule_ids))]
    pub rules: Vec<String>,

    /// Also apply the fixes of this class (repeatable): guest-driver, guest-visible,
    /// capacity, migration, safe, or all. By default only `safe` fixes are applied; the
    /// dry run names what it left out (see docs/apply.md).
    #[arg(long = "class", value_name = "CLASS", add = ArgValueCompleter::new(complete::classes))]
    pub classes: Vec<String>,

    /// Write NAME (a built-in profile) into the domains' metadata instead of applying audit
    /// fixes: every later command judges them with it (unless NAME=DOMAIN says otherwise).
    /// Changes the stored definitions only; journaled, undone by `kvmtune rollback`.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(complete::builtin_profiles), conflicts_with_all = ["plan", "rules", "classes", "set", "live"])]
    pub set_profile: Option<String>,

    /// Apply a plan file (kvmtune.plan JSON; see docs/apply.md) instead of audit fixes.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub plan: Option<PathBuf>,

    /// Set a host setting, KEY=VALUE (repeatable; keys below).
    #[arg(long = "set", value_name = "KEY=VALUE", add = ArgValueCompleter::new(complete::host_settings))]
    pub set: Vec<String>,

    /// Also make the host settings persistent: /etc/sysctl.d/90-kvmtune.conf and
    /// /etc/tmpfiles.d/kvmtune.conf (journaled too).
    #[arg(long)]
    pub persist: bool,

    /// Change only the running domains (as virsh --live).
    #[arg(long)]
    pub live: bool,

    /// Change only the stored definitions (as virsh --config). Without --live or --config,
    /// both: the running domain gets what can change live.
    #[arg(long)]
    pub config: bool,

    /// Make the changes (without it, a dry run).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Journal directory.
    #[arg(
        long,
        value_name = "DIR",
        value_hint = ValueHint::DirPath,
        default_value = kvmtune_apply::journal::DEFAULT_DIR,
        env = "KVMTUNE_JOURNAL"
    )]
    pub journal: PathBuf,

    /// Write the changes as a plan file (with each domain's stored-XML hash), to review
    /// and apply later with --plan.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub save_plan: Option<PathBuf>,

    /// Show passwords (VNC/SPICE `passwd`, cookies) in the dry run's diffs and JSON. By
    /// default they are replaced by *** there; what is defined, journaled and saved with
    /// --save-plan keeps them (files 0600).
    #[arg(long)]
    pub secrets: bool,

    /// Prove the effect: record SECS seconds of `stat` figures of the running domains being
    /// changed before the apply and again after it, store both in the journal entry, and show
    /// the comparison (also later with `kvmtune history ID`). Changes that wait for the next
    /// start: restart the domain, then `kvmtune history ID --measure SECS`.
    #[arg(long, value_name = "SECS", requires = "yes")]
    pub measure: Option<u64>,
}

pub const PLAN_EXIT_CODES: &str = "\
Exit codes:
  0  every domain placed
  1  some domain could not be placed (the plan says why)
  2  error: bad arguments, no host facts, unreadable domains, unwritable -o or --svg";

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Domains to place (names or XML files); default: every domain.
    #[arg(value_name = "DOMAIN|FILE", add = ArgValueCompleter::new(complete::domains_or_files))]
    pub targets: Vec<String>,

    /// Profile giving the placement policy ([plan] in the profile): NAME for the host
    /// (fill, reserve) and every domain, NAME=DOMAIN (repeatable) for one domain. A domain's
    /// own metadata comes before NAME, NAME=DOMAIN before both.
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE", add = ArgValueCompleter::new(complete::profiles))]
    pub profile: Vec<String>,

    /// vCPUs: dedicated (a host CPU each) or shared (float over the node's undedicated CPUs).
    #[arg(long, value_name = "POLICY", value_parser = ["dedicated", "shared"])]
    pub cpus: Option<String>,

    /// SMT siblings of dedicated vCPUs: prefer (fill both threads), isolate (one thread per
    /// core), require (whole cores).
    #[arg(long, value_name = "POLICY", value_parser = ["prefer", "isolate", "require"])]
    pub smt: Option<String>,

    /// Emulator threads: housekeeping (the host's reserved CPUs of the socket) or dedicated
    /// (one more CPU of the node).
    #[arg(long, value_name = "POLICY", value_parser = ["housekeeping", "dedicated"])]
    pub emulator: Option<String>,

    /// When several nodes fit: spread (the freest) or pack (the fullest).
    #[arg(long, value_name = "HOW", value_parser = ["spread", "pack"])]
    pub fill: Option<String>,

    /// CPUs kept for the host: one-core-per-socket (default), none, or a cpuset.
    #[arg(long, value_name = "SPEC")]
    pub reserve: Option<String>,

    /// Per-domain policy, DOMAIN:KEY=VALUE with KEY cpus, smt or emulator (repeatable).
    #[arg(long = "policy", value_name = "DOMAIN:KEY=VALUE")]
    pub policy: Vec<String>,

    /// Write the plan file (kvmtune.plan JSON) for `kvmtune apply --plan`.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,

    /// Write an SVG map: nodes, cores, threads coloured by domain.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Show this entry (its id or number) with its steps.
    #[arg(value_name = "ID", add = ArgValueCompleter::new(complete::journal_entries))]
    pub id: Option<String>,

    /// With ID: record SECS seconds of `stat` figures of the entry's running domains now
    /// (after a restart that brought next-start changes into effect), store them in the entry
    /// and compare them with its before window.
    #[arg(long, value_name = "SECS", requires = "id")]
    pub measure: Option<u64>,

    /// Journal directory.
    #[arg(
        long,
        value_name = "DIR",
        value_hint = ValueHint::DirPath,
        default_value = kvmtune_apply::journal::DEFAULT_DIR,
        env = "KVMTUNE_JOURNAL"
    )]
    pub journal: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The entry to roll back (its id or number, see `kvmtune history`).
    #[arg(value_name = "ID", conflicts_with = "last", add = ArgValueCompleter::new(complete::journal_entries))]
    pub id: Option<String>,

    /// Roll back the newest entry that is not rolled back yet.
    #[arg(long)]
    pub last: bool,

    /// Roll back even a domain whose stored XML changed after the apply.
    #[arg(long)]
    pub force: bool,

    /// Journal directory.
    #[arg(
        long,
        value_name = "DIR",
        value_hint = ValueHint::DirPath,
        default_value = kvmtune_apply::journal::DEFAULT_DIR,
        env = "KVMTUNE_JOURNAL"
    )]
    pub journal: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// The bundle file to write (a .tar.gz).
    #[arg(short = 'o', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: PathBuf,

    /// Capture host files only; do not contact libvirt.
    #[arg(long)]
    pub no_libvirt: bool,

    /// Keep secrets in the domain XML (VNC/SPICE/RDP passwords, HTTP cookies). By default
    /// they are replaced with *** so a bundle can be shared.
    #[arg(long)]
    pub secrets: bool,

    /// Also record N seconds of `kvmtune stat --json` figures of the running domains into
    /// the bundle (stat.jsonl), for `--from BUNDLE diagnose` and `compare` elsewhere.
    #[arg(long, value_name = "N", conflicts_with = "no_libvirt")]
    pub stat_seconds: Option<u64>,
}

pub const STAT_EXIT_CODES: &str = "\
Exit codes:
  0  done: --count intervals printed, the output closed (stat | head), or q / Ctrl-C in top
     (Ctrl-C ends `stat` as the shell reports a SIGINT, 130)
  2  error: libvirt unreachable, a named domain not running, a bad argument";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatFormat {
    Text,
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Args)]
pub struct StatArgs {
    /// Only these domains (default: every running domain).
    #[arg(value_name = "DOMAIN", add = ArgValueCompleter::new(complete::running_domains))]
    pub domains: Vec<String>,

    /// Only this domain (repeatable; the same as naming it).
    #[arg(long = "domain", short = 'd', value_name = "DOMAIN", add = ArgValueCompleter::new(complete::running_domains))]
    pub domain: Vec<String>,

    /// Seconds between samples.
    #[arg(long, short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,

    /// Print this many intervals, then stop (default: until interrupted).
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,

    /// Output: text, jsonl (one JSON object per interval; also --json) or csv (one row per
    /// domain per interval).
    #[arg(long, value_enum, default_value_t = StatFormat::Text, value_name = "FORMAT")]
    pub format: StatFormat,

    /// Show each vCPU: extra rows in text; with --format csv one row per vCPU instead of one
    /// per domain (columns time, interval_s, domain, vcpu, cpu_pct, guest_pct, delay_pct,
    /// exits_per_s, last_cpu); --json always has them.
    #[arg(long)]
    pub vcpus: bool,

    /// Seconds between reads of each QEMU process's /proc/PID/numa_maps (memory per NUMA
    /// node; it walks the process's page tables). 0: never. Default: 10 on hosts with several
    /// nodes; on a one-node host memory is the resident size and numa_maps is not read.
    #[arg(long, value_name = "SECS")]
    pub numa_interval: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Only these domains (default: every running domain).
    #[arg(value_name = "DOMAIN", add = ArgValueCompleter::new(complete::running_domains))]
    pub domains: Vec<String>,

    /// Seconds between refreshes.
    #[arg(long, short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,

    /// Start sorted by this column: name, host, guest, overhead, emulator, exits, io, delay,
    /// rss, balloon, node.
    #[arg(long, default_value = "host", value_name = "COLUMN",
          value_parser = ["name", "host", "guest", "overhead", "emulator", "exits", "io", "delay",
                          "rss", "balloon", "node"])]
    pub sort: String,

    /// Quit after this many refreshes (for scripts and tests; default: until q).
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
}

pub const DIAGNOSE_EXIT_CODES: &str = "\
Exit codes:
  0  nothing alarming
  1  at least one WARN diagnosis (a cause with its fix; INFO diagnoses alone exit 0)
  2  error: unreadable or unparsable report or log, libvirt unreachable, a domain not running";

pub const COMPARE_EXIT_CODES: &str = "\
Exit codes:
  0  compared; no domain got worse
  1  some domain got worse
  2  error: an unreadable or unparsable input, an empty window, a domain in neither window";

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// BEFORE and AFTER: stat logs (JSON Lines), bundles, or perf/kvm_stat reports; or one
    /// log (or bundle) with --before and --after; none with --from BUNDLE and the windows.
    #[arg(value_name = "FILE", num_args = 0..=2, value_hint = ValueHint::FilePath)]
    pub files: Vec<std::path::PathBuf>,

    /// The before window of one log: START..END as RFC 3339 times (a frame's time is the end
    /// of its interval) or frame numbers counted from 1 (`1..30`).
    #[arg(long = "before", value_name = "START..END")]
    pub before_window: Option<String>,

    /// The after window of one log (see --before).
    #[arg(long = "after", value_name = "START..END")]
    pub after_window: Option<String>,

    /// Only this domain (repeatable).
    #[arg(long = "domain", short = 'd', value_name = "DOMAIN")]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DiagnoseArgs {
    /// Domains to watch (default: every running domain); with --perf-report or --log, the
    /// domain (name or XML file) whose audit is shown with the diagnosis.
    #[arg(value_name = "DOMAIN|FILE", add = ArgValueCompleter::new(complete::domains_or_files))]
    pub targets: Vec<String>,

    /// Seconds to watch running domains.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub duration: f64,

    /// Read a `kvmtune stat --json` log instead of watching.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, conflicts_with = "perf_report")]
    pub log: Option<PathBuf>,

    /// Read a recorded `perf kvm stat report`/`live` or `kvm_stat` output instead of
    /// watching.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub perf_report: Option<PathBuf>,

    /// Profile for the audit shown with the diagnosis: NAME, or NAME=DOMAIN (repeatable)
    /// for one domain. A domain's own metadata comes before NAME, NAME=DOMAIN before both.
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE", add = ArgValueCompleter::new(complete::profiles))]
    pub profile: Vec<String>,

    /// Do not audit the domains.
    #[arg(long)]
    pub no_audit: bool,
}

/// `exporter`.
pub const EXPORTER_EXIT_CODES: &str = "\
Exit codes:
  0  --textfile: the file was written (the server runs until it is stopped)
  2  error: cannot listen on the address, --textfile cannot be written (the file is
     written with kvmtune_up 0 when libvirt is unreachable, and the exit is 2), --root or
     --from given, --json without --textfile";

#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// Address to listen on, HOST:PORT (port 0: any free port, printed on stderr). The
    /// default is loopback only; give a non-loopback address to let other machines scrape.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:10126")]
    pub listen: String,

    /// Write DIR/kvmtune.prom atomically (for node_exporter's textfile collector) and exit.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub textfile: Option<PathBuf>,

    /// Seconds between audits (findings, profiles, host figures); also redone when the
    /// running domains change.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(10..=86400))]
    pub audit_interval: u64,
}

pub const REPORT_EXIT_CODES: &str = "\
Exit codes:
  0  the page was written
  2  error: bad arguments, no host facts, libvirt unreachable, an unwritable -o

With several hosts (-c repeated, or --hosts): 1 when some host failed while others answered
(its section says why); 2 only when no host answered.";

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Domains to include (names or XML files); default: every domain.
    #[arg(value_name = "DOMAIN|FILE", add = ArgValueCompleter::new(complete::domains_or_files))]
    pub targets: Vec<String>,

    /// The HTML file to write (`-`: stdout). Refuses symlinks, devices and FIFOs.
    #[arg(short = 'o', long = "output", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: PathBuf,

    /// Seconds of live statistics to sample (one interval a second) for the charts and the
    /// diagnoses; 0: none. A bundle has none.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub stat_seconds: u64,

    /// Profile for the checks, the audit and the plan: NAME, or NAME=DOMAIN (repeatable)
    /// for one domain. A domain's own metadata comes before NAME, NAME=DOMAIN before both.
    #[arg(long, short = 'p', default_value = "server", value_name = "PROFILE", add = ArgValueCompleter::new(complete::profiles))]
    pub profile: Vec<String>,

    /// Journal directory: the latest entry of this host measured with `apply --measure` is
    /// shown with its before/after comparison (none when the journal has no such entry).
    #[arg(
        long,
        value_name = "DIR",
        value_hint = ValueHint::DirPath,
        default_value = kvmtune_apply::journal::DEFAULT_DIR,
        env = "KVMTUNE_JOURNAL"
    )]
    pub journal: PathBuf,
}
