//! The transaction behind `kvmtune apply` and `kvmtune rollback`.
//!
//! [`prepare`] reads the state (each domain's stored and live XML, its threads' affinity,
//! each host setting) and turns the request into numbered steps, changing nothing; it refuses
//! a domain whose stored XML is no longer the one the request was computed from.
//! [`execute`] journals the state before (fsynced), makes the steps in order, verifies each
//! domain and the host after its steps, and on any failure restores everything from the
//! journal. [`rollback`] restores a journal entry on request, also after a crash.
//!
//! What each resource means (how it is read, compared, changed live, verified, restored) is
//! in [`crate::settings`] (domains) and [`crate::hostset`] (host settings).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kvmtune_domain::Document;
use kvmtune_libvirt::Virt;
use serde::Serialize;

use crate::hostset::{FileWrite, HostWrite};
use crate::journal::{Action, Entry, JournalError, Step};
use crate::settings::Settings;
use kvmtune_host::process::QemuProcs as Proc;

mod execute;
mod prepare;
mod rollback;
mod verify;

pub use execute::{Applied, execute, execute_until};
pub use prepare::prepare;
pub use rollback::{Restored, RolledBack, rollback};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("domain {name}: {why}")]
    Domain { name: String, why: String },
    #[error("{0}")]
    Libvirt(#[from] kvmtune_libvirt::LibvirtError),
    #[error("host setting {path}: {why}")]
    Host { path: String, why: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What to change on one domain.
#[derive(Debug, Clone, Default)]
pub struct DomainChange {
    pub name: String,
    /// SHA-256 of the stored XML the change was computed from; the apply refuses if the
    /// stored XML is different now.
    pub base_sha256: String,
    /// The new persistent definition (`None`: leave it).
    pub new_inactive: Option<String>,
    /// The settings the running domain should end with (`None`: leave the running domain).
    pub live_target: Option<Settings>,
    /// Why (rule ids and fix summaries, or "plan").
    pub reasons: Vec<String>,
}

/// Everything one apply changes.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub domains: Vec<DomainChange>,
    pub host: Vec<HostWrite>,
    /// Also write the persistent files for the host settings.
    pub persist: bool,
    /// The command line, for the journal.
    pub command: Vec<String>,
}

/// Where the engine works.
pub struct Env<'a> {
    pub virt: &'a dyn Virt,
    /// Host settings are read and written under this root.
    pub root: PathBuf,
    /// The local /proc and libvirt run directory; `None` when the domains run elsewhere
    /// (a remote URI): thread affinities are then neither recorded nor verified.
    pub proc: Option<Proc>,
    /// Every online host CPU (`0-63`): where an unpinned vCPU may run.
    pub host_cpus: String,
    /// The host is another machine reached through libvirt: host settings are read and
    /// written through libvirt (hugepage pools, KSM's merge_across_nodes), never under
    /// `root`, and no file is written.
    pub remote: bool,
}

impl Env<'_> {
    /// A host setting's current value: the file under the root, or libvirt's for a remote
    /// host.
    pub(crate) fn read_setting(&self, key: &str, path: &str) -> Result<String, String> {
        if self.remote {
            self.virt.read_node_setting(key).map_err(|e| e.to_string())
        } else {
            crate::hostset::read(&self.root, path).map_err(|e| e.to_string())
        }
    }

    /// Write a host setting (see [`Env::read_setting`]).
    pub(crate) fn write_setting(&self, key: &str, path: &str, value: &str) -> Result<(), String> {
        if self.remote {
            self.virt
                .write_node_setting(key, value)
                .map_err(|e| e.to_string())
        } else {
            crate::hostset::write(&self.root, path, value)
                .map_err(|e| format!("cannot write {value} to {path}: {e}"))
        }
    }

    /// Check a written setting reads back as written.
    pub(crate) fn verify_setting(&self, w: &crate::hostset::HostWrite) -> Result<(), String> {
        if !self.remote {
            return crate::hostset::verify(&self.root, w);
        }
        let got = self.read_setting(&w.key, &w.path)?;
        if got == w.value {
            return Ok(());
        }
        if w.key.starts_with("hugepages.") {
            return Err(format!(
                "{} on {}: asked for {} pages, the host has {got} (not enough free contiguous memory?)",
                w.key,
                self.virt.uri(),
                w.value
            ));
        }
        Err(format!(
            "{} on {}: set {}, reads back {got}",
            w.key,
            self.virt.uri(),
            w.value
        ))
    }
}

/// A prepared apply: the journal entry to write (state before and steps) and what waits
/// for a domain's next start.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    pub entry: Entry,
    /// Per domain: changes that take effect at its next start.
    pub later: BTreeMap<String, Vec<String>>,
    /// Per domain: why it changes.
    pub reasons: BTreeMap<String, Vec<String>>,
    /// The new definitions, for verification.
    #[serde(skip)]
    new_settings: BTreeMap<String, Settings>,
}

impl Prepared {
    pub fn is_empty(&self) -> bool {
        self.entry.steps.is_empty()
    }
}

fn dom_err(name: &str, why: impl Into<String>) -> ApplyError {
    ApplyError::Domain {
        name: name.into(),
        why: why.into(),
    }
}

/// The running settings of a domain, read from its live XML.
fn live_settings(env: &Env, name: &str) -> Result<Settings, String> {
    env.virt
        .xml(name, false)
        .map_err(|e| e.to_string())
        .and_then(|x| crate::settings::read_xml(&x).map_err(|e| e.to_string()))
}

fn canonical(xml: &str) -> Option<String> {
    Document::parse(xml).ok().map(|d| d.canonical())
}

/// One line describing a step (dry run, history).
pub fn describe_step(step: &Step) -> String {
    match &step.action {
        Action::Define { .. } => format!("{}: define the new stored XML", step.subject),
        Action::Live(op) => format!("{}: {}", step.subject, op.command(&step.subject)),
        Action::Host(w) => format!("host: {} = {}  ({})", w.key, w.value, w.path),
        Action::File(FileWrite { path, .. }) => format!("host: write {path}"),
    }
}

#[cfg(test)]
mod tests;
