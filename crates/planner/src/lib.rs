//! The placement planner behind `kvmtune plan`: where every domain of a host runs.
//!
//! A [`Topo`] (NUMA nodes, their cores and SMT threads, memory, the CPUs kept for the host)
//! and a list of [`Dom`]s (vCPUs, memory, page size, current pins, policy) go in; a
//! [`Placement`] per domain comes out: vCPU pins, emulator pin, NUMA nodes (one when the
//! domain fits one node), guest NUMA cells when it must span nodes, and hugepage pools.
//!
//! The objective, lexicographic (docs/plan.md):
//! 1. place as many domains as possible;
//! 2. then make as few domains span nodes as possible (the sum over domains of nodes − 1);
//! 3. then move as few already-placed domains as possible.
//!
//! Invariants, whatever the input: dedicated vCPUs never share a host CPU (nor, under SMT
//! `isolate`, a core); a domain that fits one node gets one node; the memory placed on a node
//! never exceeds what it offers (its ordinary memory plus its free hugepages). A domain that
//! must span takes the closest nodes by NUMA distance; shared vCPUs per CPU stay within
//! [`Topo::shared_overcommit`].

pub mod exact;
pub mod generate;
pub mod svg;

mod dom;
mod invariants;
mod output;
mod passes;
mod topology;

pub use dom::{Dom, Policy};
pub use invariants::violations;
pub use kvmtune_profile::{CpuPolicy, EmulatorPolicy, Fill, SmtPolicy};
pub use output::{Cell, Outcome, Placement, PoolNeed, Score, Unplaced};
pub use passes::{EXACT_MAX_DOMAINS, Order, Pass, nova_first_fit, plan, plan_with, run_pass};
pub use topology::{Core, Node, Topo, host_memory_reserve, topo_from_host, use_free_memory};

#[cfg(test)]
mod tests;
