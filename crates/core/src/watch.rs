//! Live sampling of running domains: one libvirt call per interval, plus /proc for domains
//! of this host, and the CPU -> NUMA node map of the host model for the remote-memory share.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kvmtune_host::Host;
use kvmtune_host::process::QemuProcs;
use kvmtune_kvmstat::live::{Frame, Sampler, Snapshot, VCPU_IDLE_EVERY};
use kvmtune_libvirt::Libvirt;

use crate::inventory::Origin;
use crate::{Error, Result};

/// A sampler on a connection and what its frames need.
pub struct Watch {
    pub sampler: Sampler<Libvirt>,
    /// CPU -> NUMA node of this host (empty for a remote connection or without NUMA facts).
    pub cpu_node: BTreeMap<u32, u32>,
}

/// CPU -> NUMA node, from the host model (empty without NUMA information: then no
/// remote-memory share is computed).
pub fn cpu_nodes(host: &Host) -> BTreeMap<u32, u32> {
    host.numa
        .nodes
        .iter()
        .flat_map(|n| n.cpus.iter().map(move |c| (c, n.id)))
        .collect()
}

/// An interval in seconds, checked (0.1 to 3600).
pub fn check_interval(secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && (0.1..=3600.0).contains(&secs)) {
        return Err(Error::msg(format!(
            "--interval must be between 0.1 and 3600 seconds, not {secs}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Watch {
    /// Open a sampler on `origin.connect`, with /proc (under `--root`) when the domains run
    /// on this host. `only`: these domains, which must be running now. `numa_interval`:
    /// seconds between numa_maps reads (0: never; default: every 10 s on multi-node hosts).
    pub fn open(origin: &Origin, only: Vec<String>, numa_interval: Option<u64>) -> Result<Watch> {
        if origin.from.is_some() {
            return Err(Error::msg(
                "live statistics need a running libvirt; --from reads a bundle",
            ));
        }
        let lv = Libvirt::open(&origin.connect, true)?;
        let local = kvmtune_libvirt::is_local(&origin.connect);
        let cpu_node = if local {
            let src = origin.host_source()?;
            cpu_nodes(&kvmtune_host::collect(src.as_ref()))
        } else {
            BTreeMap::new()
        };
        let procs = local.then(|| QemuProcs::new(origin.root_dir()));
        let mut sampler = Sampler::new(lv, procs, only.clone());
        let nodes: BTreeSet<u32> = cpu_node.values().copied().collect();
        sampler.numa_every = match numa_interval {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None if nodes.len() > 1 => Some(Duration::from_secs(10)),
            None => None,
        };
        let mut w = Watch { sampler, cpu_node };
        // named domains must be running now
        if !only.is_empty() {
            let snap = w.take()?;
            for n in &only {
                if !snap.domains.contains_key(n) {
                    return Err(Error::msg(format!(
                        "domain {n} is not running on {} (or does not exist)",
                        origin.connect
                    )));
                }
            }
        }
        Ok(w)
    }

    /// The idle-domain rule (docs/stat.md, "Idle domains"), on a local host only (where
    /// /proc gives the vCPU threads' CPU time every interval; over a remote URI libvirt's
    /// vCPU times are the only per-vCPU figures): an idle domain's vCPU group is asked for
    /// at every [`VCPU_IDLE_EVERY`]th snapshot, and also once its last reading is
    /// `max_age_s` old when given.
    pub fn idle_rule(&mut self, max_age_s: Option<f64>) {
        if self.sampler.local.is_some() {
            self.sampler.vcpu_idle_every = Some(VCPU_IDLE_EVERY);
            self.sampler.vcpu_idle_max_age_s = max_age_s;
        }
    }

    pub fn take(&mut self) -> Result<Snapshot> {
        self.sampler.snapshot().map_err(Error::Msg)
    }

    /// The figures between two snapshots.
    pub fn frame(&self, prev: &Snapshot, cur: &Snapshot) -> Frame {
        kvmtune_kvmstat::live::frame(prev, cur, &self.cpu_node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_nodes_of_the_book_host() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hosts/b-book-2socket/root");
        let host = kvmtune_host::collect(&kvmtune_host::RootDir::new(root));
        let m = cpu_nodes(&host);
        assert_eq!(m.get(&0), Some(&0));
        assert_eq!(m.get(&8), Some(&1));
        assert_eq!(m.get(&24), Some(&1));
        assert_eq!(m.len(), 32);
    }

    #[test]
    fn intervals_are_checked() {
        assert!(check_interval(1.0).is_ok());
        assert!(check_interval(0.0).is_err());
        assert!(check_interval(f64::NAN).is_err());
        assert!(check_interval(7200.0).is_err());
    }

    #[test]
    fn bundles_cannot_be_watched() {
        let o = Origin {
            connect: "test:///default".into(),
            root: None,
            from: Some("/nonexistent.tar.gz".into()),
        };
        let e = Watch::open(&o, vec![], None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("--from"), "{e}");
    }
}
