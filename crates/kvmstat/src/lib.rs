//! KVM statistics for kvmtune.
//!
//! - [`perf`]: recorded `perf kvm stat` and `kvm_stat` output.
//! - [`exits`]: exit reasons by kind, and the [`exits::ExitProfile`] the rules judge.
//! - [`diagnose`]: the diagnosis rules.

pub mod diagnose;
pub mod exits;
pub mod live;
pub mod perf;
