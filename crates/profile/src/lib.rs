//! Configuration, below every judge: scenario profiles and the one severity vocabulary.
//!
//! A profile is a TOML file; `include = "NAME"` inherits from another, like TuneD's
//! `include=`, and keys of the including file win. This crate knows nothing of the rules:
//! whether a profile's `[rules]` table names real rules is checked by `kvmtune-rules`
//! (`kvmtune_rules::load_profile`) after loading.

use serde::{Deserialize, Serialize};

/// The profiles shipped with kvmtune, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("server", include_str!("../profiles/server.toml")),
    ("latency", include_str!("../profiles/latency.toml")),
    ("dense", include_str!("../profiles/dense.toml")),
    ("desktop", include_str!("../profiles/desktop.toml")),
    ("migratable", include_str!("../profiles/migratable.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "unknown profile {0:?} (built-in: server, latency, dense, desktop, migratable; or a path to a .toml file)"
    )]
    Unknown(String),
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile {name}: {message}")]
    Invalid { name: String, message: String },
    #[error("profile {0}: include loop")]
    Loop(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub host: HostPolicy,
    pub domain: DomainPolicy,
    /// Per-rule overrides: `"dev-tablet" = "off"`, or a severity (`info`, `warn`, `error`).
    #[serde(default)]
    pub rules: std::collections::BTreeMap<String, Level>,
    /// How `kvmtune plan` places domains.
    #[serde(default)]
    pub plan: PlanPolicy,
}

/// Placement policy for `kvmtune plan` (each field overridable per domain on the command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanPolicy {
    /// `dedicated`: each vCPU gets a host CPU of its own; `shared`: vCPUs float over the
    /// node's CPUs not dedicated to anyone.
    pub cpus: CpuPolicy,
    /// SMT siblings of dedicated vCPUs: `prefer` (fill both threads of a core), `isolate`
    /// (one thread per core, the sibling left idle), `require` (whole cores only).
    pub smt: SmtPolicy,
    /// Emulator threads: `housekeeping` (the host's reserved CPUs of the same socket) or
    /// `dedicated` (one more CPU of the domain's node).
    pub emulator: EmulatorPolicy,
    /// Which node a domain goes to when several fit: `spread` (the freest) or `pack` (the
    /// fullest that fits).
    pub fill: Fill,
    /// Host CPUs kept for the host: `one-core-per-socket` (the first core of each socket,
    /// all its threads), `none`, or a cpuset (`0,32`).
    pub reserve: String,
}

impl Default for PlanPolicy {
    fn default() -> Self {
        PlanPolicy {
            cpus: CpuPolicy::Dedicated,
            smt: SmtPolicy::Prefer,
            emulator: EmulatorPolicy::Housekeeping,
            fill: Fill::Spread,
            reserve: "one-core-per-socket".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuPolicy {
    Dedicated,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtPolicy {
    Prefer,
    Isolate,
    Require,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmulatorPolicy {
    Housekeeping,
    Dedicated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fill {
    Spread,
    Pack,
}

/// How bad a finding is: the one vocabulary of audit findings, host checks and diagnoses.
///
/// Host checks map their virt-host-validate verdicts onto it (PASS is no finding, INFO is
/// `info`, WARN is `warn`, FAIL is `error`); diagnoses are `info` or `warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warn" | "warning" => Some(Severity::Warn),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of findings by severity: the `summary` of every report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub error: usize,
    pub warn: usize,
    pub info: usize,
}

impl Counts {
    pub fn add(&mut self, s: Severity) {
        match s {
            Severity::Error => self.error += 1,
            Severity::Warn => self.warn += 1,
            Severity::Info => self.info += 1,
        }
    }
    pub fn of(items: impl IntoIterator<Item = Severity>) -> Counts {
        let mut c = Counts::default();
        for s in items {
            c.add(s);
        }
        c
    }
    /// The worst severity counted.
    pub fn worst(&self) -> Option<Severity> {
        if self.error > 0 {
            Some(Severity::Error)
        } else if self.warn > 0 {
            Some(Severity::Warn)
        } else if self.info > 0 {
            Some(Severity::Info)
        } else {
            None
        }
    }
}

/// A rule's level in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The severity of a rule at this level; `None` when the rule is off.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Level::Off => None,
            Level::Info => Some(Severity::Info),
            Level::Warn => Some(Severity::Warn),
            Level::Error => Some(Severity::Error),
        }
    }
}

impl From<Severity> for Level {
    fn from(s: Severity) -> Level {
        match s {
            Severity::Info => Level::Info,
            Severity::Warn => Level::Warn,
            Severity::Error => Level::Error,
        }
    }
}

/// What a profile wants of domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPolicy {
    /// The CPU mode advised: "host-model" or "host-passthrough".
    pub cpu_mode: String,
    /// Advise hugepages for domains with at least this much memory (MiB); 0 for all.
    pub hugepages_min_mib: u64,
    /// Most vCPUs per host thread over all domains of a host.
    pub vcpu_overcommit: f64,
    /// Most guest memory per byte of host RAM over all domains of a host.
    pub memory_overcommit: f64,
    /// "want": vCPUs are expected to be pinned to dedicated CPUs; "avoid": pinning is
    /// host-specific and unwanted (migratable); "any".
    pub pinning: Want,
    /// The memory balloon: "want" (overcommit relies on it), "avoid" (pointless), "any".
    pub balloon: Want,
    /// The USB tablet: "want" (desktops: mouse sync), "avoid" (servers: idle CPU), "any".
    pub tablet: Want,
    /// Sound, floppy and extra video devices: "avoid" or "any".
    pub legacy_devices: Want,
    /// Disk cache modes accepted without a finding.
    pub disk_cache: Vec<String>,
    /// `<nosharepages/>`: "want" (latency: keep KSM off the guest) or "any".
    pub nosharepages: Want,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPolicy {
    pub ksm: Want,
    pub thp_ok: Vec<String>,
    pub isolcpus: Want,
    pub governor: String,
    pub hugepages: Want,
    pub numa_balancing: Want,
}

/// What a profile wants of a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    On,
    Off,
    Want,
    Avoid,
    Optional,
    Any,
}

impl Profile {
    /// A built-in profile by name, or a profile file by path (anything containing `/` or
    /// ending in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        let value = load_value(name_or_path, 0)?;
        let mut table = value;
        if let Some(t) = table.as_table_mut() {
            t.remove("include");
        }
        let profile: Profile =
            table
                .try_into()
                .map_err(|e: toml::de::Error| ProfileError::Invalid {
                    name: name_or_path.to_string(),
                    message: e.message().to_string(),
                })?;
        Ok(profile)
    }
}

fn source_of(name_or_path: &str) -> Result<String, ProfileError> {
    if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        return Ok(text.to_string());
    }
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        return read_profile_file(name_or_path).map_err(|source| ProfileError::Read {
            path: name_or_path.to_string(),
            source,
        });
    }
    Err(ProfileError::Unknown(name_or_path.to_string()))
}

/// A profile file: a regular file under the input cap (`kvmtune_host::fsio::read_input`);
/// a FIFO, a device or a directory is refused before it is read.
fn read_profile_file(path: &str) -> std::io::Result<String> {
    kvmtune_host::fsio::read_input_text(std::path::Path::new(path)).map_err(|e| match e {
        kvmtune_host::fsio::ReadError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}

fn load_value(name_or_path: &str, depth: usize) -> Result<toml::Value, ProfileError> {
    if depth > 8 {
        return Err(ProfileError::Loop(name_or_path.to_string()));
    }
    let text = source_of(name_or_path)?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| ProfileError::Invalid {
        name: name_or_path.to_string(),
        message: e.message().to_string(),
    })?;
    match value.get("include").and_then(|v| v.as_str()) {
        Some(parent) => {
            let mut base = load_value(parent, depth + 1)?;
            merge(&mut base, value);
            Ok(base)
        }
        None => Ok(value),
    }
}

/// Deep-merge `over` into `base`: tables merge key by key, other values replace.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_levels_share_the_severity_vocabulary() {
        let c = Counts::of([Severity::Warn, Severity::Info, Severity::Warn]);
        assert_eq!((c.error, c.warn, c.info), (0, 2, 1));
        assert_eq!(c.worst(), Some(Severity::Warn));
        assert_eq!(Counts::default().worst(), None);
        assert_eq!(Level::Off.severity(), None);
        assert_eq!(
            Level::from(Severity::Error).severity(),
            Some(Severity::Error)
        );
        assert_eq!(Severity::parse("warning"), Some(Severity::Warn));
        assert_eq!(Severity::parse("fatal"), None);
    }

    #[test]
    fn every_builtin_profile_loads() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap();
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn include_inherits_and_overrides() {
        let server = Profile::load("server").unwrap();
        let latency = Profile::load("latency").unwrap();
        assert_eq!(latency.host.ksm, server.host.ksm, "inherited");
        assert_eq!(latency.host.isolcpus, Want::Want, "overridden");
        assert_eq!(Profile::load("dense").unwrap().host.ksm, Want::On);
    }

    #[test]
    fn bad_profiles_are_clear_errors() {
        assert!(matches!(
            Profile::load("nope"),
            Err(ProfileError::Unknown(_))
        ));
        let dir = std::env::temp_dir().join(format!("kvmtune-prof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(&f, "include = \"server\"\n[host]\nksm = \"sometimes\"\n").unwrap();
        let err = Profile::load(f.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        let f2 = dir.join("loop.toml");
        std::fs::write(&f2, format!("include = {:?}\n", f2.to_str().unwrap())).unwrap();
        assert!(matches!(
            Profile::load(f2.to_str().unwrap()),
            Err(ProfileError::Loop(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_a_device_or_a_directory_is_refused_not_waited_on() {
        let dir = std::env::temp_dir().join(format!("kvmtune-prof-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("p.toml");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let err = Profile::load(fifo.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.toml") && err.contains("a FIFO"), "{err}");
        let err = Profile::load("/dev/zero").unwrap_err().to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("device node"),
            "{err}"
        );
        let err = Profile::load(dir.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
