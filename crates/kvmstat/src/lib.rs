//! KVM statistics for kvmtune.
//!
//! - [`perf`]: recorded `perf kvm stat` and `kvm_stat` output.
//! - [`exits`]: exit reasons by kind, and the [`exits::ExitProfile`] the rules judge.
//! - [`live`]: live sampling (libvirt and /proc) and per-VM figures of each interval.
//! - [`log`]: `kvmtune stat --json` logs, read back and merged.
//! - [`diagnose`]: the diagnosis rules.
//! - [`compare`]: two windows compared, with a significance test (did a change help).

pub mod compare;
pub mod diagnose;
pub mod exits;
pub mod live;
pub mod log;
pub mod perf;
