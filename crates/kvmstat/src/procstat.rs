//! The kernel's own accounting of a QEMU process, read under a /proc root:
//! `/proc/PID/stat` (the whole process, exited threads included), `/proc/PID/task/TID/stat`
//! (each thread: user, system and guest time, the CPU it last ran on) and
//! `/proc/PID/numa_maps` (memory per NUMA node, as `numastat -p` adds it up).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Clock ticks per second of the times in `/proc/PID/stat`. USER_HZ is part of the kernel's
/// ABI and is 100 on x86 (the only architecture kvmtune's exit names cover).
pub const USER_HZ: f64 = 100.0;

/// CPU times of a process or thread, in clock ticks.
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

/// One thread of a QEMU process.
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

pub use kvmtune_apply::procfs::vcpu_index;

#[derive(Debug, Clone)]
pub struct ProcFs {
    pub root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs {
            root: PathBuf::from("/proc"),
        }
    }
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    fn read(&self, p: &Path) -> Result<String, String> {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The vCPU threads of a process: (tid, vCPU index, name). Threads that end while being
    /// listed are skipped.
    pub fn vcpu_threads(&self, pid: u32) -> Result<Vec<(u32, u32, String)>, String> {
        let task = self.root.join(pid.to_string()).join("task");
        let entries = std::fs::read_dir(&task).map_err(|e| format!("{}: {e}", task.display()))?;
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
                continue;
            };
            let comm = comm.trim().to_string();
            if let Some(v) = vcpu_index(&comm) {
                out.push((tid, v, comm));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The process and the given vCPU threads (from [`ProcFs::vcpu_threads`]). `None` when
    /// one of the threads is gone (a vCPU unplugged): list them again.
    pub fn sample_threads(
        &self,
        pid: u32,
        vcpus: &[(u32, u32, String)],
    ) -> Result<Option<ProcSample>, String> {
        let dir = self.root.join(pid.to_string());
        let stat_path = dir.join("stat");
        let process = parse_stat(&self.read(&stat_path)?)
            .ok_or_else(|| format!("{}: unreadable stat line", stat_path.display()))?;
        let mut threads = Vec::with_capacity(vcpus.len());
        for (tid, v, comm) in vcpus {
            let Ok(stat) =
                std::fs::read_to_string(dir.join("task").join(tid.to_string()).join("stat"))
            else {
                return Ok(None);
            };
            let Some(times) = parse_stat(&stat) else {
                return Ok(None);
            };
            threads.push(Thread {
                tid: *tid,
                vcpu: Some(*v),
                comm: comm.clone(),
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
    pub fn sample(&self, pid: u32) -> Result<ProcSample, String> {
        let list = self.vcpu_threads(pid)?;
        self.sample_threads(pid, &list)?.ok_or_else(|| {
            format!(
                "{}: a vCPU thread ended while being read",
                self.root.join(pid.to_string()).display()
            )
        })
    }

    /// Memory of a process per NUMA node, in KiB.
    pub fn numa_kib(&self, pid: u32) -> Result<BTreeMap<u32, u64>, String> {
        let p = self.root.join(pid.to_string()).join("numa_maps");
        Ok(parse_numa_maps(&self.read(&p)?))
    }
}

/// Sum `N<node>=<pages>` over the mappings, times each mapping's `kernelpagesize_kB`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reads_a_process_tree() {
        let t = tempfile::tempdir().unwrap();
        let fs = ProcFs::new(t.path());
        let d = t.path().join("42");
        std::fs::create_dir_all(d.join("task/42")).unwrap();
        std::fs::create_dir_all(d.join("task/43")).unwrap();
        std::fs::create_dir_all(d.join("task/44")).unwrap();
        let stat = |comm: &str, u: u64, s: u64, g: u64| {
            // fields 3.. after the name; field N at index N - 3
            let mut f = vec!["0".to_string(); 50];
            f[0] = "S".into();
            f[14 - 3] = u.to_string();
            f[15 - 3] = s.to_string();
            f[43 - 3] = g.to_string();
            format!("1 ({comm}) {}", f.join(" "))
        };
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
        let list = fs.vcpu_threads(42).unwrap();
        assert_eq!(list, [(43, 0, "CPU 0/KVM".to_string())]);
        // a vCPU thread gone (unplugged): the caller must list again
        let gone = [(44, 1, "CPU 1/KVM".to_string())];
        assert_eq!(fs.sample_threads(42, &gone).unwrap(), None);
        let e = fs.sample(7).unwrap_err();
        assert!(e.contains("/7/"), "{e}");
        let e = fs.numa_kib(42).unwrap_err();
        assert!(e.contains("numa_maps"), "{e}");
    }
}
