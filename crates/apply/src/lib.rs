//! `kvmtune apply`, `history` and `rollback`: changes to libvirt domains (their persistent
//! definition and their running state) and to host settings, journaled before they are made,
//! verified after, and rolled back on failure or on request.
//!
//! - [`settings`]: the settings of a domain that can change on a running domain (pins, vCPU
//!   count, NUMA nodeset, memtune, balloon), read from XML, and the live operations that take
//!   a running domain from one set to another; one module per resource (vCPUs and pins,
//!   NUMA, memory) with how it is read, compared, changed live, verified and restored.
//! - [`hostset`]: host settings (KSM, THP, hugepage pools, NUMA balancing) and their
//!   persistent files.
//! - [`journal`]: the on-disk journal: one directory per apply, fsynced before any change.
//! - [`plan`]: plan files, and the domain changes a plan asks for.
//! - [`engine`]: the transaction: check, journal, change, verify, roll back.

pub mod check;
pub mod engine;
#[cfg(test)]
mod fake;
pub mod hostset;
pub mod journal;
pub mod plan;
pub mod settings;

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a text (domain XML hashes in plans and journals).
pub fn sha256(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The test-only fault injection point, driven by `KVMTUNE_TEST_INJECT`: `crash@N` kills
/// the process with SIGKILL just before step N (steps are numbered from 1 in journal order),
/// `exec@N:CMD` runs `sh -c CMD` just before step N. Several are separated by `;`.
/// Unset (always, outside kvmtune's own tests) it does nothing.
pub fn inject(step: usize) {
    let Ok(spec) = std::env::var("KVMTUNE_TEST_INJECT") else {
        return;
    };
    for part in spec.split(';') {
        let (what, rest) = part.split_once('@').unwrap_or((part, ""));
        let (n, cmd) = rest.split_once(':').unwrap_or((rest, ""));
        if n.parse::<usize>().ok() != Some(step) {
            continue;
        }
        match what {
            "crash" => {
                // SAFETY: raise() only sends a signal to this process; SIGKILL cannot be
                // caught, so nothing runs after it. This is the point of the injection.
                unsafe {
                    libc::raise(libc::SIGKILL);
                }
            }
            "exec" => {
                let _ = std::process::Command::new("sh").arg("-c").arg(cmd).status();
            }
            _ => {}
        }
    }
}
