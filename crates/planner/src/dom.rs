//! What the planner places: a domain's size, current pins and policy.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{CpuPolicy, EmulatorPolicy, SmtPolicy};

/// Per-domain policy (the profile's, possibly overridden).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub cpus: CpuPolicy,
    pub smt: SmtPolicy,
    pub emulator: EmulatorPolicy,
}

/// A domain to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dom {
    pub name: String,
    pub vcpus: u32,
    pub memory_kib: u64,
    /// Hugepage size when the domain is backed by hugepages.
    pub page_kib: Option<u64>,
    /// Current vCPU pins (vCPU -> CPUs), from its definition.
    pub pins: BTreeMap<u32, Vec<u32>>,
    pub emulator_pin: Option<Vec<u32>>,
    pub policy: Policy,
}
