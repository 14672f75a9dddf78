//! Host facts for kvmtune: CPU topology, NUMA, memory features and KVM, read from a
//! [`Source`] (the live host, a captured tree or a support bundle).
//!
//! `collect(&source)` never fails: a field whose file is missing, unreadable or garbled is
//! left empty and listed in [`Host::unknown`] with the path and the reason.
//!
//! [`process`] reads the QEMU processes of libvirt domains (pid, vCPU threads, /proc
//! accounting, affinity, NUMA placement) under a root directory.

pub mod cpu;
pub mod cpuset;
pub mod fsio;
pub mod kvm;
pub mod memory;
pub mod model;
pub mod numa;
pub mod process;
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
        remote: None,
    }
}

/// A page size in KiB written the way the kernel command line does: `4K`, `2M`, `1G`.
pub fn page_size(kib: u64) -> String {
    if kib >= 1024 * 1024 && kib.is_multiple_of(1024 * 1024) {
        format!("{}G", kib / 1024 / 1024)
    } else if kib >= 1024 && kib.is_multiple_of(1024) {
        format!("{}M", kib / 1024)
    } else {
        format!("{kib}K")
    }
}
