//! kvmtune as a library. Every front end (the CLI today; the exporter and the HTML report
//! next) gathers one [`inventory::Inventory`] per run and calls the services here on it:
//!
//! - [`inventory`]: the collect layer: where host facts come from (live `/`, a `--root`
//!   tree, a bundle), the domains (libvirt, XML files, a bundle), parsed once, with their
//!   domain capabilities.
//! - [`audit`]: the audit of an inventory, the fixed XML and its diffs.
//! - [`catalog`]: every rule of every kind (audit, host check, diagnosis), for `rules` and
//!   `explain`.
//! - [`profiles`]: the profile of each domain (command line, metadata, default).
//! - [`fixes`]: audit fixes as apply requests, and the re-audit that verifies them.
//! - [`placement`]: the planner on an inventory, and its plan file.
//! - [`diagnosis`]: diagnoses tied to the audit findings that explain them.
//! - [`fleet`]: many hosts at once: the host inventory, a bounded parallel run with a
//!   per-host timeout, the fleet table's figures.
//! - [`watch`]: live sampling of running domains (stat, top, diagnose).
//!
//! Nothing here prints; results are plain data the front ends render.

pub mod audit;
pub mod catalog;
pub mod diagnosis;
pub mod fixes;
pub mod fleet;
pub mod inventory;
pub mod placement;
pub mod profiles;
pub mod remote;
pub mod watch;

/// An error of a kvmtune service: one line, naming the thing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bundle(#[from] kvmtune_bundle::BundleError),
    #[error(transparent)]
    Libvirt(#[from] kvmtune_libvirt::LibvirtError),
    #[error(transparent)]
    Profile(#[from] kvmtune_rules::ProfileError),
    #[error(transparent)]
    Apply(#[from] kvmtune_apply::engine::ApplyError),
    /// Anything else, as a sentence naming what it is about.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    pub fn msg(s: impl Into<String>) -> Error {
        Error::Msg(s.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A unified diff of two texts, `a/NAME` and `b/NAME` in its header.
pub fn unified_diff(name: &str, old: &str, new: &str, context: usize) -> String {
    let name = name.trim_start_matches('/');
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(context)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_name_both_sides_and_are_empty_for_equal_texts() {
        let d = unified_diff("/etc/x.xml", "a\nb\n", "a\nc\n", 3);
        assert!(d.starts_with("--- a/etc/x.xml\n+++ b/etc/x.xml\n"), "{d}");
        assert!(d.contains("-b\n+c\n"), "{d}");
        assert_eq!(unified_diff("x", "same\n", "same\n", 3), "");
    }
}
