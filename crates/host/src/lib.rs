//! Host facts for kvmtune: CPU topology, NUMA, memory features and KVM, read from a
//! [`Source`] (the live host, a captured tree or a support bundle).
//!
//! `collect(&source)` never fails: a field whose file is missing, unreadable or garbled is
//! left empty and listed in [`Host::unknown`] with the path and the reason.

pub mod cpu;
pub mod cpuset;
pub mod kvm;
pub mod memory;
pub mod model;
pub mod numa;
pub mod source;

mod ctx;

pub use cpuset::{CpuSet, CpuSetError};
pub use model::*;
pub use source::{Capture, Probe, ReadError, ReadErrorKind, Recorder, Replay, RootDir, Source};

/// Read every host fact from `src`.
pub fn collect(src: &dyn Source) -> Host {
    let mut cx = ctx::Ctx::new(src);
    let hostname = cx.value("hostname", "/proc/sys/kernel/hostname");
    let kernel = cx.value("kernel", "/proc/sys/kernel/osrelease");
    let cmdline = cpu::read_cmdline(&mut cx);
    let numa = numa::read(&mut cx);
    let cpu = cpu::read(&mut cx, &numa);
    let memory = memory::read(&mut cx);
    let kvm = kvm::read(&mut cx);
    Host {
        kind: "kvmtune.host".to_string(),
        version: HOST_SCHEMA_VERSION,
        hostname,
        kernel,
        cpu,
        cmdline,
        numa,
        memory,
        kvm,
        unknown: cx.into_unknown(),
    }
}
