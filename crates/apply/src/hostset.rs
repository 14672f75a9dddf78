//! Host settings `kvmtune apply --set KEY=VALUE` changes, where they live, and the files that
//! make them persistent across reboots (`--persist`).
//!
//! | key | file | values |
//! |---|---|---|
//! | `ksm.run` | /sys/kernel/mm/ksm/run | 0 stop, 1 run, 2 stop and unmerge |
//! | `ksm.merge_across_nodes` | /sys/kernel/mm/ksm/merge_across_nodes | 0, 1 |
//! | `thp.enabled` | /sys/kernel/mm/transparent_hugepage/enabled | always, madvise, never |
//! | `thp.defrag` | /sys/kernel/mm/transparent_hugepage/defrag | always, defer, defer+madvise, madvise, never |
//! | `numa_balancing` | /proc/sys/kernel/numa_balancing | 0, 1 |
//! | `hugepages.SIZE` | /sys/kernel/mm/hugepages/hugepages-SIZEkB/nr_hugepages | a count |
//! | `hugepages.nodeN.SIZE` | /sys/devices/system/node/nodeN/hugepages/hugepages-SIZEkB/nr_hugepages | a count |
//!
//! SIZE is `2M`, `1G` or `2048kB`. All paths are read and written under a root directory,
//! so a captured tree and the live host are handled the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One host setting to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWrite {
    /// The key as the user wrote it (`thp.enabled`).
    pub key: String,
    /// The absolute path on the host (`/sys/kernel/mm/transparent_hugepage/enabled`).
    pub path: String,
    pub value: String,
}

/// A whole file kvmtune writes with `--persist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrite {
    pub path: String,
    pub content: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("host setting {0}: expected KEY=VALUE")]
    Syntax(String),
    #[error(
        "host setting {key}: unknown key (known: ksm.run, ksm.merge_across_nodes, thp.enabled, thp.defrag, numa_balancing, hugepages.SIZE, hugepages.nodeN.SIZE)"
    )]
    Key { key: String },
    #[error("host setting {key}={value}: expected {expected}")]
    Value {
        key: String,
        value: String,
        expected: String,
    },
}

fn page_kib(size: &str) -> Option<u64> {
    let s = size.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("kB").or_else(|| s.strip_suffix("K")) {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('M') {
        (n, 1024)
    } else if let Some(n) = s.strip_suffix('G') {
        (n, 1024 * 1024)
    } else {
        return None;
    };
    num.parse::<u64>().ok().map(|n| n * mult).filter(|&k| k > 0)
}

/// The known host setting files: the path of a key (`thp.enabled`), whatever its value.
pub fn path_for_key(key: &str) -> Result<String, SetError> {
    let unknown = || SetError::Key {
        key: key.escape_debug().to_string(),
    };
    Ok(match key {
        "ksm.run" => "/sys/kernel/mm/ksm/run".into(),
        "ksm.merge_across_nodes" => "/sys/kernel/mm/ksm/merge_across_nodes".into(),
        "thp.enabled" => "/sys/kernel/mm/transparent_hugepage/enabled".into(),
        "thp.defrag" => "/sys/kernel/mm/transparent_hugepage/defrag".into(),
        "numa_balancing" => "/proc/sys/kernel/numa_balancing".into(),
        k if k.starts_with("hugepages.") => {
            let (node, kib) = hugepage_key(k).ok_or_else(unknown)?;
            match node {
                None => format!("/sys/kernel/mm/hugepages/hugepages-{kib}kB/nr_hugepages"),
                Some(n) => format!(
                    "/sys/devices/system/node/node{n}/hugepages/hugepages-{kib}kB/nr_hugepages"
                ),
            }
        }
        _ => return Err(unknown()),
    })
}

/// `hugepages.SIZE` or `hugepages.nodeN.SIZE`: the node (if any) and the page size in KiB.
fn hugepage_key(key: &str) -> Option<(Option<u32>, u64)> {
    let parts: Vec<&str> = key.split('.').collect();
    let (node, size) = match parts.as_slice() {
        ["hugepages", size] => (None, *size),
        ["hugepages", node, size] => {
            let n = node
                .strip_prefix("node")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())?;
            (Some(n), *size)
        }
        _ => return None,
    };
    Some((node, page_kib(size)?))
}

/// Parse and check one `KEY=VALUE`.
pub fn parse(spec: &str) -> Result<HostWrite, SetError> {
    // messages show the spec escaped: a value with a newline is one line of error
    let (key, value) = spec
        .split_once('=')
        .ok_or_else(|| SetError::Syntax(spec.escape_debug().to_string()))?;
    let (key, value) = (key.trim(), value.trim());
    let bad = |expected: &str| SetError::Value {
        key: key.escape_debug().to_string(),
        value: value.escape_debug().to_string(),
        expected: expected.into(),
    };
    let path = path_for_key(key)?;
    let allowed: &[&str] = match key {
        "ksm.run" => &["0", "1", "2"],
        "ksm.merge_across_nodes" | "numa_balancing" => &["0", "1"],
        "thp.enabled" => &["always", "madvise", "never"],
        "thp.defrag" => &["always", "defer", "defer+madvise", "madvise", "never"],
        _ => &[],
    };
    if allowed.is_empty() {
        value.parse::<u64>().map_err(|_| bad("a number of pages"))?;
    } else if !allowed.contains(&value) {
        return Err(bad(&allowed.join(", ")));
    }
    Ok(HostWrite {
        key: key.into(),
        path,
        value: value.into(),
    })
}

/// Whether a hugepage pool write is sane on this host: its node exists (`nodes`, when
/// known) and the pages fit in the host's memory (`memory_kib`, when known). Other
/// settings have nothing to check beyond [`parse`].
pub fn check_sane(
    w: &HostWrite,
    nodes: Option<&kvmtune_host::CpuSet>,
    memory_kib: Option<u64>,
) -> Result<(), String> {
    let Some((node, kib)) = hugepage_key(&w.key) else {
        return Ok(());
    };
    if let (Some(n), Some(nodes)) = (node, nodes)
        && !nodes.contains(n)
    {
        return Err(format!(
            "{}: no NUMA node {n} on this host (it has {})",
            w.key,
            if nodes.is_empty() {
                "none".to_string()
            } else {
                nodes.to_string()
            }
        ));
    }
    let count: u64 = w
        .value
        .parse()
        .map_err(|_| format!("{}={}: expected a number of pages", w.key, w.value))?;
    if let Some(mem) = memory_kib
        && count.saturating_mul(kib) > mem
    {
        return Err(format!(
            "{}={}: {count} pages of {kib} KiB are more than the host's memory ({mem} KiB)",
            w.key, w.value
        ));
    }
    Ok(())
}

/// Whether a path is absolute and normalised: no `..`, no `.`, no empty part.
pub fn is_normal_abs(path: &str) -> bool {
    use std::path::Component;
    let p = Path::new(path);
    !path.contains('\0')
        && p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// `path` under `root`.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// `path` under `root`, refused unless `path` is absolute and normalised (no `..`): a
/// path from a journal entry or a plan never leads out of the root.
///
/// Under a root other than `/` (a test tree, `--root`), no component of the path below the
/// root may be a symbolic link: `root/proc -> /proc` must not turn a write into the tree
/// into a write to the live host.
fn checked(root: &Path, path: &str) -> std::io::Result<PathBuf> {
    if is_normal_abs(path) {
        if root != Path::new("/") {
            let mut at = root.to_path_buf();
            for part in path.trim_start_matches('/').split('/') {
                at.push(part);
                match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!(
                                "{} is a symbolic link; kvmtune does not follow links out of {}",
                                at.display(),
                                root.display()
                            ),
                        ));
                    }
                    Ok(_) => {}
                    // what does not exist yet is created inside the root
                    Err(_) => break,
                }
            }
        }
        Ok(under(root, path))
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{path:?} is not a normalised absolute path"),
        ))
    }
}

/// A setting or persist file, read as untrusted input: a regular file under the input cap,
/// never a FIFO (it would block) or a device; "not found" keeps its error kind.
fn read_text(path: &Path) -> std::io::Result<String> {
    use kvmtune_host::fsio::{ReadError, max_input, read_input};
    let bytes = read_input(path, max_input()).map_err(|e| match e {
        ReadError::Io { source, .. } => source,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
    })?;
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not UTF-8 text", path.display()),
        )
    })
}

/// The current value of a setting file: the selected word of a `[x]` list, or the trimmed
/// content.
pub fn read(root: &Path, path: &str) -> std::io::Result<String> {
    let text = read_text(&checked(root, path)?)?;
    let t = text.trim();
    if let Some(start) = t.find('[')
        && let Some(len) = t[start + 1..].find(']')
    {
        return Ok(t[start + 1..start + 1 + len].to_string());
    }
    Ok(t.to_string())
}

/// Write a setting. On the live host the kernel parses the value; in a captured tree
/// (`root` is not `/`) the file is rewritten the way the kernel would then show it: a
/// selector list like `always [madvise] never` gets the new word in brackets.
pub fn write(root: &Path, path: &str, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let target = checked(root, path)?;
    let mut text = format!("{value}\n");
    if root != Path::new("/") {
        let old = read_text(&target)?;
        if old.contains('[') {
            let words: Vec<String> = old
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
                .map(|w| {
                    if w == value {
                        format!("[{w}]")
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            text = format!("{}\n", words.join(" "));
        }
    }
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO planted in a tree fails at once instead of blocking
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&target)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a regular file", target.display()),
        ));
    }
    f.write_all(text.as_bytes())?;
    f.flush()
}

/// What a setting file must read back as after writing `value`, or why not.
pub fn verify(root: &Path, w: &HostWrite) -> Result<(), String> {
    let got = read(root, &w.path).map_err(|e| format!("{}: {e}", w.path))?;
    if got == w.value {
        return Ok(());
    }
    if w.key.starts_with("hugepages.") {
        return Err(format!(
            "{}: asked for {} pages, the kernel has {got} (not enough free contiguous memory?)",
            w.path, w.value
        ));
    }
    Err(format!("{}: wrote {}, reads back {got}", w.path, w.value))
}

/// A whole file under the root, or `None` when it does not exist.
pub fn read_file(root: &Path, path: &str) -> std::io::Result<Option<String>> {
    match read_text(&checked(root, path)?) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write (or, with `None`, remove) a whole file under the root, atomically.
pub fn write_file(root: &Path, path: &str, content: Option<&str>) -> Result<(), String> {
    let dest = checked(root, path).map_err(|e| format!("cannot write {path:?}: {e}"))?;
    let Some(content) = content else {
        return match std::fs::remove_file(&dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {path}: {e}")),
        };
    };
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    // a persist file (sysctl.d, modprobe.d) is world-readable like its neighbours
    kvmtune_host::fsio::write_atomic(&dest, content.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {path}: {e}"))
}

/// What a persistent file must read back as after writing it, or why not.
pub fn verify_file(root: &Path, f: &FileWrite) -> Result<(), String> {
    match checked(root, &f.path).and_then(|p| read_text(&p)) {
        Ok(t) if t == f.content => Ok(()),
        Ok(_) => Err(format!("{}: content differs after writing", f.path)),
        Err(e) => Err(format!("{}: {e}", f.path)),
    }
}

pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-kvmtune.conf";
pub const TMPFILES_FILE: &str = "/etc/tmpfiles.d/kvmtune.conf";

/// Whether a path is one of the files `--persist` writes (the only files rollback restores).
pub fn is_persist_file(path: &str) -> bool {
    path == SYSCTL_FILE || path == TMPFILES_FILE
}

const HEADER: &str =
    "# Written by kvmtune apply --persist; kvmtune rollback restores the previous file.\n";

/// The persistent files for these writes, merged into what the files hold now (`old`, by
/// path): a line kvmtune wrote before for the same setting is replaced, other lines kept.
/// sysctl settings go to sysctl.d, sysfs settings to tmpfiles.d (`w` lines, applied at
/// boot by systemd-tmpfiles).
pub fn persist_files(writes: &[HostWrite], old: &dyn Fn(&str) -> Option<String>) -> Vec<FileWrite> {
    let mut sysctl = Vec::new();
    let mut tmpfiles = Vec::new();
    for w in writes {
        if let Some(rest) = w.path.strip_prefix("/proc/sys/") {
            sysctl.push((rest.replace('/', "."), w.value.clone()));
        } else {
            tmpfiles.push((w.path.clone(), w.value.clone()));
        }
    }
    let mut out = Vec::new();
    if !sysctl.is_empty() {
        let mut lines: Vec<String> = old(SYSCTL_FILE)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("# Written by kvmtune"))
            .filter(|l| {
                let k = l.split('=').next().unwrap_or("").trim();
                !sysctl.iter().any(|(key, _)| key == k)
            })
            .map(str::to_string)
            .collect();
        lines.extend(sysctl.iter().map(|(k, v)| format!("{k} = {v}")));
        out.push(FileWrite {
            path: SYSCTL_FILE.into(),
            content: format!("{HEADER}{}\n", lines.join("\n")),
        });
    }
    if !tmpfiles.is_empty() {
        let mut lines: Vec<String> = old(TMPFILES_FILE)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("# Written by kvmtune"))
            .filter(|l| {
                let p = l.split_whitespace().nth(1).unwrap_or("");
                !tmpfiles.iter().any(|(path, _)| path == p)
            })
            .map(str::to_string)
            .collect();
        lines.extend(tmpfiles.iter().map(|(p, v)| format!("w {p} - - - - {v}")));
        out.push(FileWrite {
            path: TMPFILES_FILE.into(),
            content: format!("{HEADER}{}\n", lines.join("\n")),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_settings() {
        assert_eq!(
            parse("thp.enabled=never").unwrap().path,
            "/sys/kernel/mm/transparent_hugepage/enabled"
        );
        assert_eq!(
            parse("hugepages.node1.1G=4").unwrap().path,
            "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages"
        );
        assert_eq!(
            parse("hugepages.2048kB=512").unwrap().path,
            "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
        );
        assert!(matches!(
            parse("thp.enabled=sometimes"),
            Err(SetError::Value { .. })
        ));
        assert!(matches!(parse("ksm.speed=1"), Err(SetError::Key { .. })));
        assert!(matches!(
            parse("hugepages.nodeX.2M=1"),
            Err(SetError::Key { .. })
        ));
        assert!(matches!(
            parse("hugepages.2M=many"),
            Err(SetError::Value { .. })
        ));
        assert!(matches!(parse("ksm.run"), Err(SetError::Syntax(_))));
    }

    #[test]
    fn reads_the_selected_word() {
        let t = tempfile::tempdir().unwrap();
        let p = "/sys/kernel/mm/transparent_hugepage/enabled";
        std::fs::create_dir_all(under(t.path(), p).parent().unwrap()).unwrap();
        std::fs::write(under(t.path(), p), "always [madvise] never\n").unwrap();
        assert_eq!(read(t.path(), p).unwrap(), "madvise");
        write(t.path(), p, "never").unwrap();
        assert_eq!(read(t.path(), p).unwrap(), "never");
        // a tree keeps the kernel's way of showing the choice
        assert_eq!(
            std::fs::read_to_string(under(t.path(), p)).unwrap(),
            "always madvise [never]\n"
        );
    }

    #[test]
    fn persist_files_replace_their_own_lines_only() {
        let w = vec![
            parse("numa_balancing=0").unwrap(),
            parse("ksm.run=0").unwrap(),
        ];
        let old = |p: &str| {
            (p == SYSCTL_FILE)
                .then(|| "vm.swappiness = 10\nkernel.numa_balancing = 1\n".to_string())
        };
        let files = persist_files(&w, &old);
        assert_eq!(files.len(), 2);
        assert!(
            files[0]
                .content
                .contains("vm.swappiness = 10\nkernel.numa_balancing = 0\n")
        );
        assert!(!files[0].content.contains("numa_balancing = 1"));
        assert!(
            files[1]
                .content
                .contains("w /sys/kernel/mm/ksm/run - - - - 0")
        );
    }

    #[test]
    fn a_symlink_in_a_root_tree_is_not_followed_out_of_it() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("sys/kernel")).unwrap();
        std::fs::write(outside.path().join("sys/kernel/x"), "1\n").unwrap();
        // root/proc -> outside/sys: a write "under the root" would land outside
        std::os::unix::fs::symlink(outside.path().join("sys"), t.path().join("proc")).unwrap();
        let e = checked(t.path(), "/proc/kernel/x").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(checked(t.path(), "/etc/sysctl.d/90-kvmtune.conf").is_ok());
        assert!(checked(t.path(), "/../x").is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("sys/kernel/x")).unwrap(),
            "1\n"
        );
    }

    #[test]
    fn setting_files_in_a_tree_are_never_waited_on_or_read_endlessly() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("proc/sys/kernel");
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("numa_balancing");
        if std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(read(t.path(), "/proc/sys/kernel/numa_balancing").is_err());
            assert!(write(t.path(), "/proc/sys/kernel/numa_balancing", "0").is_err());
        }
        std::fs::remove_file(&fifo).unwrap();
        let f = std::fs::File::create(&fifo).unwrap();
        f.set_len(kvmtune_host::fsio::max_input() + 1).unwrap();
        let e = read(t.path(), "/proc/sys/kernel/numa_balancing").unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
