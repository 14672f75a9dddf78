//! Live statistics: one libvirt call per interval for every domain (CPU, vCPU, balloon and
//! the kernel's binary KVM statistics; with [`Sampler::vcpu_idle_every`], a second one for
//! the busy domains' vCPUs), plus each local QEMU process's /proc accounting; two snapshots
//! make a [`Frame`] of per-VM figures.
//!
//! - [`sampler`]: collection (libvirt, the QMP fallback, /proc) into [`Snapshot`]s;
//! - [`frame`](mod@frame): figures of each VM between two snapshots.

pub mod frame;
pub mod sampler;

pub use frame::{
    ExitRates, Frame, MemFigures, STAT_SCHEMA, STAT_VERSION, VcpuFigures, VmFigures, figures,
    frame, profile, rfc3339,
};
pub use sampler::{
    DomSnap, Local, RawDomain, RawVcpu, Sampler, Snapshot, StatsSource, VCPU_BUSY_PCT,
    VCPU_IDLE_EVERY, parse_query_stats,
};

#[cfg(test)]
mod fixtures {
    use kvmtune_libvirt::{StatValue, StatsRecord};

    pub fn rec(name: &str, id: u32, cpu_ns: u64, exits: u64, io: u64) -> StatsRecord {
        StatsRecord {
            name: name.into(),
            id: Some(id),
            params: vec![
                ("cpu.time".into(), StatValue::UInt(cpu_ns)),
                ("balloon.current".into(), StatValue::UInt(1 << 20)),
                ("vcpu.0.time".into(), StatValue::UInt(cpu_ns / 2)),
                ("vcpu.0.delay".into(), StatValue::UInt(cpu_ns / 10)),
                ("vcpu.0.exits.sum".into(), StatValue::UInt(exits)),
                ("vcpu.0.io_exits.sum".into(), StatValue::UInt(io)),
                (
                    "vcpu.0.halt_poll_fail_ns.sum".into(),
                    StatValue::UInt(cpu_ns / 4),
                ),
                ("vcpu.0.blocking.cur".into(), StatValue::Bool(false)),
                ("vm.pages_4k.cur".into(), StatValue::UInt(7)),
            ],
        }
    }
}
