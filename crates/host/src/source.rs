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
#[derive(Debug, Clone)]
pub struct RootDir {
    root: PathBuf,
}

impl RootDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RootDir { root: root.into() }
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
}

impl Source for RootDir {
    fn read(&self, path: &str) -> Result<Vec<u8>, ReadError> {
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
        let real = self.map(path);
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
