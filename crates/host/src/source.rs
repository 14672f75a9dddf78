//! Where host files come from.
//!
//! Every reader in this crate reads through a [`Source`], so the live host (`/`), a captured
//! tree (a test fixture, `--root DIR`) and a support bundle (`--from FILE`) read the same way.
//! Paths are always absolute host paths such as `/proc/cpuinfo`; a source maps them.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Why a host file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ReadErrorKind {
    #[error("not found")]
    NotFound,
    #[error("permission denied")]
    PermissionDenied,
    #[error("not valid UTF-8 text")]
    NotText,
    #[error("{0}")]
    Io(String),
    #[error("cannot parse: {0}")]
    Parse(String),
}

/// A failed read of one host path. The message names the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ReadError {
    pub path: String,
    pub kind: ReadErrorKind,
}

impl ReadError {
    pub fn new(path: &str, kind: ReadErrorKind) -> Self {
        ReadError {
            path: path.to_string(),
            kind,
        }
    }

    pub fn parse(path: &str, what: impl Into<String>) -> Self {
        ReadError::new(path, ReadErrorKind::Parse(what.into()))
    }

    pub fn from_io(path: &str, err: &io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ReadErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ReadErrorKind::PermissionDenied,
            _ => ReadErrorKind::Io(err.to_string()),
        };
        ReadError::new(path, kind)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ReadErrorKind::NotFound
    }
}

/// Whether a device node exists and can be opened read-write by this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Probe {
    pub exists: bool,
    pub openable: bool,
}

/// A read-only view of a host's files.
pub trait Source: Send + Sync {
    /// The bytes of a file.
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError>;
    /// The names in a directory, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, ReadError>;
    /// Whether a path (typically a device node) exists and opens read-write.
    fn probe(&self, path: &str) -> Probe;
    /// A short description for messages, e.g. `live host /` or `bundle x.tar.gz`.
    fn describe(&self) -> String;

    /// The file as UTF-8 text.
    fn read_text(&self, path: &str) -> Result<String, ReadError> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes).map_err(|_| ReadError::new(path, ReadErrorKind::NotText))
    }

    /// The file's text with surrounding white space removed (sysfs values end in a newline).
    fn read_value(&self, path: &str) -> Result<String, ReadError> {
        Ok(self.read_text(path)?.trim().to_string())
    }
}

/// Files under a root directory: `/` for the live host, or a captured tree.
///
/// The live host (`/`) is read as it is: /proc and /sys are full of symbolic links. A
/// captured tree (`--root DIR`) is read as if it were `/` (like a chroot): every symbolic
/// link is resolved inside the tree (an absolute target starts again at the tree's root,
/// `..` never climbs above it), only regular files are read (a FIFO would hang, a device
/// never end), each at most [`fsio::max_input`](crate::fsio::max_input) bytes.
#[derive(Debug, Clone)]
pub struct RootDir {
    root: PathBuf,
    /// A captured tree rather than the live `/`.
    confined: bool,
}

/// Symbolic links followed while resolving one path, as the kernel's limit.
const MAX_LINKS: usize = 40;

fn is_live_root(root: &Path) -> bool {
    root == Path::new("/") || fs::canonicalize(root).is_ok_and(|c| c == Path::new("/"))
}

/// What a path that is not a regular file is, for messages.
fn kind_of(t: &fs::FileType) -> &'static str {
    crate::fsio::describe_type(t)
}

impl RootDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let confined = !is_live_root(&root);
        RootDir { root, confined }
    }

    pub fn live() -> Self {
        RootDir::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn map(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The real path of host path `path` inside a captured tree, with every symbolic link
    /// resolved inside the tree (the last one too when `follow_last`). No component of the
    /// result but the root is a symbolic link (the last may be, when not `follow_last`).
    fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, ReadError> {
        use std::ffi::OsString;
        use std::path::Component;
        fn push_components(todo: &mut Vec<OsString>, p: &Path) {
            // pushed in reverse: the next component to walk is on top
            let mut parts: Vec<OsString> = Vec::new();
            for c in p.components() {
                match c {
                    Component::Normal(n) => parts.push(n.to_os_string()),
                    Component::ParentDir => parts.push(OsString::from("..")),
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                }
            }
            todo.extend(parts.into_iter().rev());
        }
        let mut todo: Vec<OsString> = Vec::new();
        push_components(&mut todo, Path::new(path));
        let mut done = self.root.clone();
        let mut depth = 0usize;
        let mut links = 0usize;
        while let Some(c) = todo.pop() {
            if c == ".." {
                if depth > 0 {
                    done.pop();
                    depth -= 1;
                }
                continue;
            }
            let candidate = done.join(&c);
            let meta =
                fs::symlink_metadata(&candidate).map_err(|e| ReadError::from_io(path, &e))?;
            let ft = meta.file_type();
            if ft.is_symlink() && (follow_last || !todo.is_empty()) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ReadError::new(
                        path,
                        ReadErrorKind::Io("too many levels of symbolic links".into()),
                    ));
                }
                let target = fs::read_link(&candidate).map_err(|e| ReadError::from_io(path, &e))?;
                if target.is_absolute() {
                    // re-rooted under the tree, as in a chroot
                    done = self.root.clone();
                    depth = 0;
                }
                push_components(&mut todo, &target);
                continue;
            }
            if !todo.is_empty() && !ft.is_dir() {
                return Err(ReadError::new(
                    path,
                    ReadErrorKind::Io("not a directory".into()),
                ));
            }
            done = candidate;
            depth += 1;
        }
        Ok(done)
    }

    /// Read a regular file of a captured tree, at most the input cap.
    fn read_confined(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let real = self.resolve(path, true)?;
        let ioe = |e: io::Error| ReadError::from_io(path, &e);
        let meta = fs::symlink_metadata(&real).map_err(ioe)?;
        let t = meta.file_type();
        if t.is_dir() {
            return Err(ReadError::new(
                path,
                ReadErrorKind::Io("is a directory".into()),
            ));
        }
        let not_regular = |what: &str| {
            ReadError::new(
                path,
                ReadErrorKind::Io(format!(
                    "{what}; only regular files are read in a host tree"
                )),
            )
        };
        if !t.is_file() {
            return Err(not_regular(kind_of(&t)));
        }
        let cap = crate::fsio::max_input();
        let too_large = || {
            ReadError::new(
                path,
                ReadErrorKind::Io(format!(
                    "larger than {cap} bytes (KVMTUNE_MAX_INPUT raises the cap)"
                )),
            )
        };
        if meta.len() > cap {
            return Err(too_large());
        }
        // swapped for a FIFO or a link since the check: neither blocks nor follows
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&real)
            .map_err(ioe)?;
        let ft = f.metadata().map_err(ioe)?.file_type();
        if !ft.is_file() {
            return Err(not_regular(kind_of(&ft)));
        }
        let mut buf = Vec::new();
        f.take(cap + 1).read_to_end(&mut buf).map_err(ioe)?;
        if buf.len() as u64 > cap {
            return Err(too_large());
        }
        Ok(buf)
    }
}

impl Source for RootDir {
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        if self.confined {
            return self.read_confined(path);
        }
        let real = self.map(path);
        if real.is_dir() {
            return Err(ReadError::new(
                path,
                ReadErrorKind::Io("is a directory".into()),
            ));
        }
        fs::read(&real).map_err(|e| ReadError::from_io(path, &e))
    }

    fn list(&self, path: &str) -> Result<Vec<String>, ReadError> {
        let real = if self.confined {
            self.resolve(path, true)?
        } else {
            self.map(path)
        };
        let entries = fs::read_dir(&real).map_err(|e| ReadError::from_io(path, &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ReadError::from_io(path, &e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn probe(&self, path: &str) -> Probe {
        if self.confined {
            use std::os::unix::fs::OpenOptionsExt;
            let exists = self
                .resolve(path, false)
                .is_ok_and(|p| fs::symlink_metadata(p).is_ok());
            let openable = exists
                && self.resolve(path, true).is_ok_and(|p| {
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                        .open(p)
                        .is_ok()
                });
            return Probe { exists, openable };
        }
        let real = self.map(path);
        let exists = fs::symlink_metadata(&real).is_ok();
        let openable = exists
            && OpenOptions::new()
                .read(true)
                .write(true)
                .open(&real)
                .is_ok();
        Probe { exists, openable }
    }

    fn describe(&self) -> String {
        if self.root == Path::new("/") {
            "live host /".to_string()
        } else {
            format!("host tree {}", self.root.display())
        }
    }
}

/// Everything a [`Recorder`] saw, or a bundle holds: file contents, directory listings and
/// device probes, each with the error the read gave, so a replay fails where the capture did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// Files read successfully: path → bytes.
    #[serde(skip)]
    pub files: BTreeMap<String, Vec<u8>>,
    /// Reads that failed: path → why.
    pub file_errors: BTreeMap<String, ReadErrorKind>,
    /// Directory listings: path → names, or why the listing failed.
    pub dirs: BTreeMap<String, Result<Vec<String>, ReadErrorKind>>,
    /// Device probes: path → result.
    pub probes: BTreeMap<String, Probe>,
}

/// A source that remembers every read it passes through, for support bundles.
pub struct Recorder<S> {
    inner: S,
    seen: Mutex<Capture>,
}

impl<S: Source> Recorder<S> {
    pub fn new(inner: S) -> Self {
        Recorder {
            inner,
            seen: Mutex::new(Capture::default()),
        }
    }

    /// What was read so far.
    pub fn capture(&self) -> Capture {
        match self.seen.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Capture) -> R) -> R {
        match self.seen.lock() {
            Ok(mut c) => f(&mut c),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl<S: Source> Source for Recorder<S> {
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let r = self.inner.read(path);
        self.with(|c| match &r {
            Ok(bytes) => {
                c.files.insert(path.to_string(), bytes.clone());
            }
            Err(e) => {
                c.file_errors.insert(path.to_string(), e.kind.clone());
            }
        });
        r
    }

    fn list(&self, path: &str) -> Result<Vec<String>, ReadError> {
        let r = self.inner.list(path);
        self.with(|c| {
            c.dirs
                .insert(path.to_string(), r.clone().map_err(|e| e.kind));
        });
        r
    }

    fn probe(&self, path: &str) -> Probe {
        let p = self.inner.probe(path);
        self.with(|c| {
            c.probes.insert(path.to_string(), p);
        });
        p
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A source replaying a [`Capture`]: what a support bundle reads from.
#[derive(Debug, Clone)]
pub struct Replay {
    capture: Capture,
    label: String,
}

impl Replay {
    pub fn new(capture: Capture, label: impl Into<String>) -> Self {
        Replay {
            capture,
            label: label.into(),
        }
    }
}

impl Source for Replay {
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        if let Some(bytes) = self.capture.files.get(path) {
            return Ok(bytes.clone());
        }
        let kind = self
            .capture
            .file_errors
            .get(path)
            .cloned()
            .unwrap_or(ReadErrorKind::NotFound);
        Err(ReadError::new(path, kind))
    }

    fn list(&self, path: &str) -> Result<Vec<String>, ReadError> {
        match self.capture.dirs.get(path) {
            Some(Ok(names)) => Ok(names.clone()),
            Some(Err(kind)) => Err(ReadError::new(path, kind.clone())),
            None => Err(ReadError::new(path, ReadErrorKind::NotFound)),
        }
    }

    fn probe(&self, path: &str) -> Probe {
        self.capture.probes.get(path).copied().unwrap_or_default()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_dir_maps_absolute_paths_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
        fs::write(dir.path().join("proc/sys/kernel/hostname"), "box\n").unwrap();
        let src = RootDir::new(dir.path());
        assert_eq!(src.read_value("/proc/sys/kernel/hostname").unwrap(), "box");
        let err = src.read("/proc/cpuinfo").unwrap_err();
        assert_eq!(err.kind, ReadErrorKind::NotFound);
        assert_eq!(err.to_string(), "/proc/cpuinfo: not found");
        assert_eq!(src.list("/proc/sys").unwrap(), vec!["kernel".to_string()]);
    }

    /// A tree with links out of it, a link loop, a FIFO and a file over the cap, beside a
    /// secret outside it.
    fn hostile_tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("shadow");
        fs::write(&secret, "root:$6$salt$HASHHASHHASH:19000:0:99999:7:::\n").unwrap();
        let root = d.path().join("tree");
        fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("sys/a/b")).unwrap();
        fs::write(root.join("etc/inside"), "in the tree\n").unwrap();
        // absolute: re-rooted under the tree, where nothing is
        symlink(&secret, root.join("proc/meminfo")).unwrap();
        // relative, climbing out: stops at the tree's root
        symlink(
            "../../../../../shadow",
            root.join("proc/sys/kernel/hostname"),
        )
        .unwrap();
        // a directory link out of the tree
        symlink("../../../..", root.join("sys/out")).unwrap();
        symlink(d.path(), root.join("sys/outabs")).unwrap();
        // links that stay inside: absolute (re-rooted) and relative
        symlink("/etc/inside", root.join("proc/abs")).unwrap();
        symlink("../../etc/inside", root.join("sys/a/rel")).unwrap();
        symlink("../../../etc", root.join("sys/a/b/up")).unwrap();
        symlink("loop2", root.join("proc/loop1")).unwrap();
        symlink("loop1", root.join("proc/loop2")).unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(root.join("proc/fifo"))
            .status()
            .unwrap();
        assert!(st.success());
        let big = fs::File::create(root.join("proc/big")).unwrap();
        big.set_len(crate::fsio::max_input() + 1).unwrap();
        (d, root, secret)
    }

    #[test]
    fn a_tree_never_reads_outside_itself() {
        let (_d, root, secret) = hostile_tree();
        let src = RootDir::new(&root);
        // the absolute link is re-rooted: <tree>/<secret path> does not exist
        let e = src.read("/proc/meminfo").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(
            src.read(secret.to_str().unwrap())
                .unwrap_err()
                .is_not_found()
        );
        // `..` stops at the tree's root: <tree>/shadow does not exist
        assert!(
            src.read("/proc/sys/kernel/hostname")
                .unwrap_err()
                .is_not_found()
        );
        assert!(src.read("/../shadow").unwrap_err().is_not_found());
        assert!(
            src.read("/proc/../../../shadow")
                .unwrap_err()
                .is_not_found()
        );
        // a directory link out of the tree lists the tree's root instead
        let out = src.list("/sys/out").unwrap();
        assert!(out.contains(&"proc".to_string()) && !out.contains(&"shadow".to_string()));
        assert!(src.read("/sys/out/shadow").unwrap_err().is_not_found());
        assert!(src.list("/sys/outabs").unwrap_err().is_not_found());
        assert!(src.read("/sys/outabs/shadow").unwrap_err().is_not_found());
        // links inside the tree work, absolute ones re-rooted
        assert_eq!(src.read_value("/proc/abs").unwrap(), "in the tree");
        assert_eq!(src.read_value("/sys/a/rel").unwrap(), "in the tree");
        assert_eq!(src.read_value("/sys/a/b/up/inside").unwrap(), "in the tree");
        assert_eq!(src.list("/sys/a/b/up").unwrap(), vec!["inside".to_string()]);
        let e = src.read("/proc/loop1").unwrap_err();
        assert!(e.to_string().contains("symbolic links"), "{e}");
        // probes: a link out of the tree is a dangling link here
        assert!(src.probe("/proc/meminfo").exists);
        assert!(!src.probe("/proc/meminfo").openable);
        assert!(!src.probe("/sys/out/shadow").exists);
    }

    #[test]
    fn a_tree_reads_regular_files_under_the_cap_only() {
        let (_d, root, _) = hostile_tree();
        let src = RootDir::new(&root);
        let t = std::time::Instant::now();
        let e = src.read("/proc/fifo").unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        let e = src.read("/proc/big").unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = src.read("/proc/sys").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        // a FIFO probe does not hang either
        assert!(src.probe("/proc/fifo").exists);
    }

    #[test]
    fn the_live_root_is_not_confined() {
        let live = RootDir::live();
        assert!(!live.confined);
        assert!(!RootDir::new("/.").confined);
        assert!(RootDir::new("/tmp").confined);
        // /proc/self is a symbolic link out of nowhere: still read on the live host
        assert!(live.read_text("/proc/self/stat").is_ok());
        assert_eq!(live.describe(), "live host /");
    }

    #[test]
    fn parse_errors_do_not_echo_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proc")).unwrap();
        fs::write(
            dir.path().join("proc/meminfo"),
            "root:$6$salt$HASHHASHHASH:19000:0:99999:7:::\nMemTotal: 1 kB\n",
        )
        .unwrap();
        let host = crate::collect(&RootDir::new(dir.path()));
        let all = serde_json::to_string(&host.unknown).unwrap();
        assert!(all.contains("/proc/meminfo"), "{all}");
        assert!(!all.contains("HASH") && !all.contains("salt"), "{all}");
    }

    #[test]
    fn non_utf8_is_a_typed_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), [0xff, 0xfe, 0x00]).unwrap();
        let err = RootDir::new(dir.path()).read_text("/x").unwrap_err();
        assert_eq!(err, ReadError::new("/x", ReadErrorKind::NotText));
    }

    #[test]
    fn replay_gives_back_what_the_recorder_saw_including_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "1\n").unwrap();
        let rec = Recorder::new(RootDir::new(dir.path()));
        rec.read("/a").unwrap();
        rec.read("/missing").unwrap_err();
        rec.list("/").unwrap();
        rec.probe("/a");
        let replay = Replay::new(rec.capture(), "test");
        assert_eq!(replay.read_value("/a").unwrap(), "1");
        assert!(replay.read("/missing").unwrap_err().is_not_found());
        assert_eq!(replay.list("/").unwrap(), vec!["a".to_string()]);
        assert!(replay.probe("/a").exists);
        assert!(!replay.probe("/never-probed").exists);
    }
}
