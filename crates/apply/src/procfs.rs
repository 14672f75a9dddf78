//! The QEMU process of a running libvirt domain and where its threads may run, read from
//! `/run/libvirt/qemu/NAME.pid` and `/proc/PID/task/TID/{comm,status}` (the kernel's own
//! record of each thread's affinity, which is what a pin must end up as).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kvmtune_host::CpuSet;
use serde::{Deserialize, Serialize};

/// Where a domain's threads may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affinity {
    pub pid: u32,
    /// vCPU index -> `Cpus_allowed_list` of its thread (`CPU n/KVM` or `CPU n/TCG`).
    pub vcpus: BTreeMap<u32, String>,
    /// `Cpus_allowed_list` of the main QEMU thread (an emulator thread).
    pub emulator: String,
}

/// Where libvirt's QEMU driver keeps its runtime files, and /proc.
#[derive(Debug, Clone)]
pub struct Proc {
    pub run_dir: PathBuf,
    pub proc_dir: PathBuf,
}

impl Default for Proc {
    fn default() -> Self {
        Proc {
            run_dir: PathBuf::from("/run/libvirt/qemu"),
            proc_dir: PathBuf::from("/proc"),
        }
    }
}

fn allowed(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| {
            let v = v.trim();
            CpuSet::parse(v)
                .map(|c| c.to_string())
                .unwrap_or_else(|_| v.to_string())
        })
}

/// `CPU 3/KVM` -> 3.
pub fn vcpu_index(comm: &str) -> Option<u32> {
    let rest = comm.trim().strip_prefix("CPU ")?;
    let (n, kind) = rest.split_once('/')?;
    matches!(kind, "KVM" | "TCG" | "HVF" | "WHPX").then_some(())?;
    n.parse().ok()
}

impl Proc {
    /// The QEMU pid of a running domain, when this host runs it.
    pub fn pid(&self, domain: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.run_dir.join(format!("{domain}.pid"))).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        // the pid file may be stale: the process must exist and be that domain's QEMU
        let cmdline = std::fs::read(self.proc_dir.join(pid.to_string()).join("cmdline")).ok()?;
        let want = format!("guest={domain}");
        cmdline
            .split(|&b| b == 0)
            .any(|arg| {
                let a = String::from_utf8_lossy(arg);
                a.split(',').any(|p| p == want) || a == domain
            })
            .then_some(pid)
    }

    /// The affinity of a process's vCPU threads and main thread.
    pub fn affinity(&self, pid: u32) -> Result<Affinity, String> {
        let task = self.proc_dir.join(pid.to_string()).join("task");
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut vcpus = BTreeMap::new();
        let mut emulator = None;
        let entries = std::fs::read_dir(&task).map_err(|e| format!("{}: {e}", task.display()))?;
        for e in entries.flatten() {
            let dir = e.path();
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // a thread may end between listing and reading: skip it
            let (Ok(comm), Ok(status)) = (read(&dir.join("comm")), read(&dir.join("status")))
            else {
                continue;
            };
            let Some(cpus) = allowed(&status) else {
                continue;
            };
            if tid == pid {
                emulator = Some(cpus);
            } else if let Some(v) = vcpu_index(&comm) {
                vcpus.insert(v, cpus);
            }
        }
        Ok(Affinity {
            pid,
            vcpus,
            emulator: emulator.ok_or_else(|| format!("{}: no main thread", task.display()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_threads_are_told_by_name() {
        assert_eq!(vcpu_index("CPU 0/KVM\n"), Some(0));
        assert_eq!(vcpu_index("CPU 12/TCG"), Some(12));
        assert_eq!(vcpu_index("call_rcu"), None);
        assert_eq!(vcpu_index("CPU x/KVM"), None);
    }

    #[test]
    fn reads_a_process_tree() {
        let t = tempfile::tempdir().unwrap();
        let p = Proc {
            run_dir: t.path().join("run"),
            proc_dir: t.path().join("proc"),
        };
        std::fs::create_dir_all(&p.run_dir).unwrap();
        std::fs::write(p.run_dir.join("vm1.pid"), "42\n").unwrap();
        for (tid, comm, cpus) in [
            (42, "qemu-system-x86", "0-3"),
            (43, "CPU 0/KVM", "2"),
            (44, "CPU 1/KVM", "3"),
        ] {
            let d = p.proc_dir.join("42/task").join(tid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(
                d.join("status"),
                format!("Name:\tx\nCpus_allowed_list:\t{cpus}\n"),
            )
            .unwrap();
        }
        std::fs::write(
            p.proc_dir.join("42/cmdline"),
            b"/usr/bin/qemu\0-name\0guest=vm1,debug-threads=on\0",
        )
        .unwrap();
        assert_eq!(p.pid("vm1"), Some(42));
        assert_eq!(p.pid("vm2"), None);
        let a = p.affinity(42).unwrap();
        assert_eq!(a.emulator, "0-3");
        assert_eq!(a.vcpus.get(&1).map(String::as_str), Some("3"));
        // a stale pid file naming another process
        std::fs::write(p.run_dir.join("vm3.pid"), "42\n").unwrap();
        assert_eq!(p.pid("vm3"), None);
    }
}
