//! The QEMU processes of libvirt domains, read under a root directory:
//!
//! - `ROOT/run/libvirt/qemu/NAME.pid`: the pid of a running domain, checked against
//!   `/proc/PID/cmdline` (a pid file may be stale);
//! - `/proc/PID/task/TID/comm`: which threads are vCPUs (`CPU n/KVM`);
//! - `/proc/PID/stat` and `/proc/PID/task/TID/stat`: the kernel's accounting of the whole
//!   process (exited threads included) and of each thread (user, system and guest time, the
//!   CPU it last ran on, resident memory);
//! - `/proc/PID/task/TID/status`: `Cpus_allowed_list`, the kernel's own record of a thread's
//!   affinity (what a pin must end up as);
//! - `/proc/PID/numa_maps`: memory per NUMA node, as `numastat -p` adds it up.
//!
//! The `parse_*` functions take file contents; [`QemuProcs`] reads the files. Errors name
//! the path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CpuSet;

/// Clock ticks per second of the times in `/proc/PID/stat`. USER_HZ is part of the kernel's
/// ABI and is 100 on x86.
pub const USER_HZ: f64 = 100.0;

/// A file or directory under /proc or the run directory that could not be read or made
/// sense of. Its text starts with the path.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Garbled { path: PathBuf, what: &'static str },
}

impl ProcError {
    pub fn path(&self) -> &Path {
        match self {
            ProcError::Io { path, .. } | ProcError::Garbled { path, .. } => path,
        }
    }
}

fn read(p: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(p).map_err(|error| ProcError::Io {
        path: p.to_path_buf(),
        error,
    })
}

fn read_dir(p: &Path) -> Result<std::fs::ReadDir, ProcError> {
    std::fs::read_dir(p).map_err(|error| ProcError::Io {
        path: p.to_path_buf(),
        error,
    })
}

/// CPU times of a process or thread, in clock ticks ([`USER_HZ`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Times {
    pub utime: u64,
    pub stime: u64,
    /// Time spent running a guest (KVM); also counted in `utime`.
    pub guest: u64,
    /// The CPU the task last ran on.
    pub processor: u32,
    /// Resident memory in pages (4 KiB on x86).
    #[serde(default)]
    pub rss_pages: u64,
}

/// Parse a `stat` line. The command name may hold spaces and parentheses, so fields are
/// counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<Times> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field N is f[N - 3]
    let get = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Times {
        utime: get(14)?,
        stime: get(15)?,
        guest: get(43).unwrap_or(0),
        processor: get(39).and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
        rss_pages: get(24).unwrap_or(0),
    })
}

/// `CPU 3/KVM` -> 3: the vCPU index of a thread, from its `comm`.
pub fn vcpu_index(comm: &str) -> Option<u32> {
    let rest = comm.trim().strip_prefix("CPU ")?;
    let (n, kind) = rest.split_once('/')?;
    matches!(kind, "KVM" | "TCG" | "HVF" | "WHPX").then_some(())?;
    n.parse().ok()
}

/// `Cpus_allowed_list` of a `status` file, normalised (`0-3`), or as written when it is not
/// a CPU list.
pub fn parse_cpus_allowed(status: &str) -> Option<String> {
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

/// Whether a NUL-separated `cmdline` is the QEMU of `domain` (`-name guest=NAME,...`, or
/// the bare name).
pub fn cmdline_names_domain(cmdline: &[u8], domain: &str) -> bool {
    let want = format!("guest={domain}");
    cmdline.split(|&b| b == 0).any(|arg| {
        let a = String::from_utf8_lossy(arg);
        a.split(',').any(|p| p == want) || a == domain
    })
}

/// Sum `N<node>=<pages>` over the mappings, times each mapping's `kernelpagesize_kB`: memory
/// per NUMA node in KiB.
pub fn parse_numa_maps(text: &str) -> BTreeMap<u32, u64> {
    let mut out: BTreeMap<u32, u64> = BTreeMap::new();
    for line in text.lines() {
        let mut page_kib = 4u64;
        let mut pages: Vec<(u32, u64)> = Vec::new();
        for w in line.split_whitespace() {
            if let Some(v) = w.strip_prefix("kernelpagesize_kB=") {
                page_kib = v.parse().unwrap_or(4);
            } else if let Some(rest) = w.strip_prefix('N')
                && let Some((n, c)) = rest.split_once('=')
                && let (Ok(n), Ok(c)) = (n.parse::<u32>(), c.parse::<u64>())
            {
                pages.push((n, c));
            }
        }
        for (n, c) in pages {
            *out.entry(n).or_default() += c * page_kib;
        }
    }
    out
}

/// A vCPU thread of a QEMU process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuThread {
    pub tid: u32,
    pub vcpu: u32,
    /// Its name (`CPU 0/KVM`).
    pub comm: String,
}

/// One thread of a QEMU process at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    pub tid: u32,
    pub comm: String,
    /// The vCPU index of a `CPU n/KVM` or `CPU n/TCG` thread.
    pub vcpu: Option<u32>,
    pub times: Times,
}

/// A QEMU process at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    pub pid: u32,
    /// The whole process, exited threads included.
    pub process: Times,
    /// The vCPU threads.
    pub threads: Vec<Thread>,
}

/// Where a domain's threads may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affinity {
    pub pid: u32,
    /// vCPU index -> `Cpus_allowed_list` of its thread (`CPU n/KVM` or `CPU n/TCG`).
    pub vcpus: BTreeMap<u32, String>,
    /// `Cpus_allowed_list` of the main QEMU thread (an emulator thread).
    pub emulator: String,
}

/// The QEMU processes of a host: its /proc and libvirt's QEMU run directory.
#[derive(Debug, Clone)]
pub struct QemuProcs {
    /// `ROOT/run/libvirt/qemu`, where libvirt writes `NAME.pid`.
    pub run_dir: PathBuf,
    /// `ROOT/proc`.
    pub proc_dir: PathBuf,
}

impl Default for QemuProcs {
    /// The live host: `/proc` and `/run/libvirt/qemu`.
    fn default() -> Self {
        QemuProcs::new("/")
    }
}

impl QemuProcs {
    /// The processes under `root` (`/` for the live host): `root/proc` and
    /// `root/run/libvirt/qemu`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        QemuProcs {
            run_dir: root.join("run/libvirt/qemu"),
            proc_dir: root.join("proc"),
        }
    }

    fn pid_dir(&self, pid: u32) -> PathBuf {
        self.proc_dir.join(pid.to_string())
    }

    /// The QEMU pid of a running domain, when this host runs it: `None` when the pid file
    /// is missing or unreadable, or names a process that is not that domain's QEMU.
    pub fn pid(&self, domain: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.run_dir.join(format!("{domain}.pid"))).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        // the pid file may be stale: the process must exist and be that domain's QEMU
        let cmdline = std::fs::read(self.pid_dir(pid).join("cmdline")).ok()?;
        cmdline_names_domain(&cmdline, domain).then_some(pid)
    }

    /// The vCPU threads of a process, by tid. Threads that end while being listed are
    /// skipped.
    pub fn vcpu_threads(&self, pid: u32) -> Result<Vec<VcpuThread>, ProcError> {
        let task = self.pid_dir(pid).join("task");
        let mut out = Vec::new();
        for e in read_dir(&task)?.flatten() {
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
                continue;
            };
            let comm = comm.trim().to_string();
            if let Some(vcpu) = vcpu_index(&comm) {
                out.push(VcpuThread { tid, vcpu, comm });
            }
        }
        out.sort();
        Ok(out)
    }

    /// `/proc/PID/stat`: the whole process, exited threads included.
    pub fn stat(&self, pid: u32) -> Result<Times, ProcError> {
        stat_at(&self.pid_dir(pid).join("stat"))
    }

    /// `/proc/PID/task/TID/stat`: one thread.
    pub fn thread_stat(&self, pid: u32, tid: u32) -> Result<Times, ProcError> {
        stat_at(&self.pid_dir(pid).join(format!("task/{tid}/stat")))
    }

    /// `Cpus_allowed_list` of a thread (`tid == pid`: the main thread).
    pub fn cpus_allowed(&self, pid: u32, tid: u32) -> Result<String, ProcError> {
        let p = self.pid_dir(pid).join(format!("task/{tid}/status"));
        parse_cpus_allowed(&read(&p)?).ok_or(ProcError::Garbled {
            path: p,
            what: "no Cpus_allowed_list",
        })
    }

    /// The process and the given vCPU threads (from [`QemuProcs::vcpu_threads`]). `None`
    /// when one of the threads is gone (a vCPU unplugged): list them again.
    pub fn sample_threads(
        &self,
        pid: u32,
        vcpus: &[VcpuThread],
    ) -> Result<Option<ProcSample>, ProcError> {
        let process = self.stat(pid)?;
        let mut threads = Vec::with_capacity(vcpus.len());
        for t in vcpus {
            let Ok(times) = self.thread_stat(pid, t.tid) else {
                return Ok(None);
            };
            threads.push(Thread {
                tid: t.tid,
                vcpu: Some(t.vcpu),
                comm: t.comm.clone(),
                times,
            });
        }
        Ok(Some(ProcSample {
            pid,
            process,
            threads,
        }))
    }

    /// The process and its vCPU threads (the other threads are in the process's total).
    pub fn sample(&self, pid: u32) -> Result<ProcSample, ProcError> {
        let list = self.vcpu_threads(pid)?;
        self.sample_threads(pid, &list)?
            .ok_or_else(|| ProcError::Garbled {
                path: self.pid_dir(pid),
                what: "a vCPU thread ended while being read",
            })
    }

    /// Memory of a process per NUMA node, in KiB.
    pub fn numa_kib(&self, pid: u32) -> Result<BTreeMap<u32, u64>, ProcError> {
        Ok(parse_numa_maps(&read(
            &self.pid_dir(pid).join("numa_maps"),
        )?))
    }

    /// The affinity of a process's vCPU threads and main thread. Threads that end while
    /// being read are skipped.
    pub fn affinity(&self, pid: u32) -> Result<Affinity, ProcError> {
        let task = self.pid_dir(pid).join("task");
        let mut vcpus = BTreeMap::new();
        let mut emulator = None;
        for e in read_dir(&task)?.flatten() {
            let dir = e.path();
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // a thread may end between listing and reading: skip it
            let (Ok(comm), Ok(status)) = (read(&dir.join("comm")), read(&dir.join("status")))
            else {
                continue;
            };
            let Some(cpus) = parse_cpus_allowed(&status) else {
                continue;
            };
            if tid == pid {
                emulator = Some(cpus);
            } else if let Some(v) = vcpu_index(&comm) {
                vcpus.insert(v, cpus);
            }
        }
        let emulator = emulator.ok_or(ProcError::Garbled {
            path: task,
            what: "no main thread",
        })?;
        Ok(Affinity {
            pid,
            vcpus,
            emulator,
        })
    }
}

fn stat_at(p: &Path) -> Result<Times, ProcError> {
    parse_stat(&read(p)?).ok_or(ProcError::Garbled {
        path: p.to_path_buf(),
        what: "unreadable stat line",
    })
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
    fn stat_fields_are_counted_after_the_command_name() {
        // a thread name with a space and a parenthesis, as QEMU's `CPU 0/KVM` has
        let line = "8769 (CPU 0/KVM) R 1 8764 8764 0 -1 4194624 0 0 0 0 1405 230 0 0 20 0 6 0 \
                    1234 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 -1 1 0 0 0 1300 0 0";
        let t = parse_stat(line).unwrap();
        assert_eq!(
            (t.utime, t.stime, t.guest, t.processor),
            (1405, 230, 1300, 1)
        );
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) R 1").is_none());
    }

    #[test]
    fn numa_maps_add_up_per_node_and_page_size() {
        let text = "7f0000000000 default anon=10 dirty=10 N0=6 N1=4 kernelpagesize_kB=4\n\
                    7f1000000000 bind:1 file=/dev/hugepages/x huge anon=2 N1=2 kernelpagesize_kB=2048\n\
                    7f2000000000 default\n";
        let m = parse_numa_maps(text);
        assert_eq!(m.get(&0), Some(&24));
        assert_eq!(m.get(&1), Some(&(16 + 4096)));
    }

    #[test]
    fn status_and_cmdline() {
        let status = "Name:\tx\nCpus_allowed:\tf\nCpus_allowed_list:\t0,1,2,3\n";
        assert_eq!(parse_cpus_allowed(status).as_deref(), Some("0-3"));
        assert_eq!(
            parse_cpus_allowed("Cpus_allowed_list:\tjunk\n").as_deref(),
            Some("junk")
        );
        assert_eq!(parse_cpus_allowed("Name:\tx\n"), None);
        let cmd = b"/usr/bin/qemu\0-name\0guest=vm1,debug-threads=on\0";
        assert!(cmdline_names_domain(cmd, "vm1"));
        assert!(!cmdline_names_domain(cmd, "vm"));
        assert!(cmdline_names_domain(b"qemu\0-name\0old\0", "old"));
    }

    /// Writes a `stat` line with these times: fields 3.. after the name, field N at N - 3.
    fn stat(comm: &str, u: u64, s: u64, g: u64) -> String {
        let mut f = vec!["0".to_string(); 50];
        f[0] = "S".into();
        f[14 - 3] = u.to_string();
        f[15 - 3] = s.to_string();
        f[43 - 3] = g.to_string();
        format!("1 ({comm}) {}", f.join(" "))
    }

    #[test]
    fn reads_stat_figures_of_a_process_tree() {
        let t = tempfile::tempdir().unwrap();
        let fs = QemuProcs::new(t.path());
        let d = t.path().join("proc/42");
        std::fs::create_dir_all(d.join("task/42")).unwrap();
        std::fs::create_dir_all(d.join("task/43")).unwrap();
        std::fs::create_dir_all(d.join("task/44")).unwrap();
        std::fs::write(d.join("stat"), stat("qemu-system-x86", 300, 100, 200)).unwrap();
        std::fs::write(d.join("task/42/stat"), stat("qemu-system-x86", 50, 20, 0)).unwrap();
        std::fs::write(d.join("task/42/comm"), "qemu-system-x86\n").unwrap();
        std::fs::write(d.join("task/43/stat"), stat("CPU 0/KVM", 250, 80, 200)).unwrap();
        std::fs::write(d.join("task/43/comm"), "CPU 0/KVM\n").unwrap();
        // a thread that ended while being listed: no files
        let s = fs.sample(42).unwrap();
        assert_eq!(s.process.utime, 300);
        // only vCPU threads: the others are in the process's total
        assert_eq!(s.threads.len(), 1);
        assert_eq!(s.threads[0].vcpu, Some(0));
        assert_eq!(s.threads[0].times.guest, 200);
        assert_eq!(fs.thread_stat(42, 42).unwrap().stime, 20);
        let list = fs.vcpu_threads(42).unwrap();
        assert_eq!(
            list,
            [VcpuThread {
                tid: 43,
                vcpu: 0,
                comm: "CPU 0/KVM".to_string()
            }]
        );
        // a vCPU thread gone (unplugged): the caller must list again
        let gone = [VcpuThread {
            tid: 44,
            vcpu: 1,
            comm: "CPU 1/KVM".to_string(),
        }];
        assert_eq!(fs.sample_threads(42, &gone).unwrap(), None);
        // errors name the path
        let e = fs.sample(7).unwrap_err();
        assert!(e.to_string().contains("/7/"), "{e}");
        assert!(e.path().ends_with("proc/7/task"), "{e}");
        let e = fs.numa_kib(42).unwrap_err();
        assert!(e.to_string().contains("numa_maps"), "{e}");
        std::fs::write(d.join("stat"), "garbage").unwrap();
        let e = fs.stat(42).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("proc/42/stat: unreadable stat line"),
            "{e}"
        );
        std::fs::write(
            d.join("numa_maps"),
            "7f00 default N0=3 kernelpagesize_kB=4\n",
        )
        .unwrap();
        assert_eq!(fs.numa_kib(42).unwrap(), BTreeMap::from([(0, 12)]));
    }

    #[test]
    fn reads_pid_and_affinity_of_a_process_tree() {
        let t = tempfile::tempdir().unwrap();
        let p = QemuProcs::new(t.path());
        assert_eq!(p.run_dir, t.path().join("run/libvirt/qemu"));
        assert_eq!(p.proc_dir, t.path().join("proc"));
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
        assert_eq!(p.cpus_allowed(42, 43).unwrap(), "2");
        let e = p.cpus_allowed(42, 45).unwrap_err();
        assert!(e.to_string().contains("task/45/status"), "{e}");
        // a stale pid file naming another process
        std::fs::write(p.run_dir.join("vm3.pid"), "42\n").unwrap();
        assert_eq!(p.pid("vm3"), None);
        // no main thread
        std::fs::remove_file(p.proc_dir.join("42/task/42/status")).unwrap();
        let e = p.affinity(42).unwrap_err();
        assert!(e.to_string().ends_with("42/task: no main thread"), "{e}");
        let e = p.affinity(9).unwrap_err();
        assert!(e.path().ends_with("proc/9/task"), "{e}");
    }
}
