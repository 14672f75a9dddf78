//! The journal: one directory per apply under the journal directory (default
//! [`DEFAULT_DIR`]).
//!
//! ```text
//! JOURNAL/lock                       held (flock) while an apply or rollback runs
//! JOURNAL/0007-20261122T101500Z/
//!     entry.json     the state before: each domain's inactive XML (and hash), live XML and
//!                    thread affinities, each host setting's old value, each persistent
//!                    file's old content; and the steps about to be made. Written, fsynced
//!                    and renamed into place before the first change.
//!     steps.log      "begin N" before step N, "ok N" or "fail N: why" after, fsynced
//!     outcome.json   how the apply ended (absent after a crash)
//!     rollback.json  written by `kvmtune rollback`
//!     measure.json   `apply --measure` / `history ID --measure`: stat windows before and
//!                    after (absent in entries made without; an entry without it loads)
//! ```
//!
//! Rollback only needs entry.json: it restores every recorded old value, whether or not
//! the step that changed it ran, so it works after a crash at any point.
//!
//! [`EntryStatus`] says how an entry stands; [`StepMark`] is how far a step got by steps.log.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hostset::{FileWrite, HostWrite};
use crate::settings::LiveOp;
use kvmtune_host::process::Affinity;

mod status;
mod steps;

mod trust;
pub use status::{EntryStatus, Listed};
pub use steps::{StepMark, parse_step_marks};
pub use trust::check_entry;

pub const DEFAULT_DIR: &str = "/var/lib/kvmtune/journal";
pub const KIND: &str = "kvmtune.journal";
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {0}: another kvmtune apply or rollback is running (it holds the lock)")]
    Locked(String),
    #[error("another kvmtune apply or rollback{holder} is running on this host (it holds {path})")]
    HostLocked {
        path: String,
        /// ` (pid N)` when the holder wrote its pid, else empty.
        holder: String,
    },
    #[error("journal entry {path}: corrupt: {why}")]
    Corrupt { path: String, why: String },
    #[error("journal {dir}: no entry {id}")]
    NoEntry { dir: String, id: String },
    #[error("journal {0}: no such directory (nothing was applied with this journal)")]
    Missing(String),
    #[error(
        "journal {0}: not a directory (a journal is a real directory, not a file or a symbolic link)"
    )]
    NotADirectory(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A domain as it was before the apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainBefore {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub inactive_xml: String,
    pub inactive_sha256: String,
    pub live_xml: Option<String>,
    /// Where its threads ran (when this host runs it).
    pub affinity: Option<Affinity>,
}

/// A host setting as it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostBefore {
    pub key: String,
    pub path: String,
    pub old: String,
}

/// A persistent file as it was (`None`: it did not exist).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileBefore {
    pub path: String,
    pub old: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Replace the domain's persistent definition.
    Define {
        xml: String,
    },
    Live(LiveOp),
    Host(HostWrite),
    File(FileWrite),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub n: usize,
    /// A domain name, or "host".
    pub subject: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What the journal records before the first change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub kind: String,
    pub version: u32,
    pub id: String,
    pub created: String,
    pub command: Vec<String>,
    pub uri: String,
    /// The root host settings were read and written under.
    pub root: String,
    pub domains: Vec<DomainBefore>,
    pub host: Vec<HostBefore>,
    pub files: Vec<FileBefore>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every step made and verified.
    Applied,
    /// A step or a verification failed; everything was rolled back.
    Failed,
    /// A step failed and the automatic rollback did not complete either.
    FailedRollbackIncomplete,
    /// SIGINT or SIGTERM stopped the apply before its next step; what was done was rolled
    /// back.
    Interrupted,
    /// A domain's stored XML changed during the apply (someone else defined it); the apply
    /// stopped before its define and what was done was rolled back.
    Conflict,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub finished: String,
    pub error: Option<String>,
    /// Each domain's inactive XML hash after the apply (rollback refuses to overwrite a
    /// domain changed since, unless forced).
    pub after_sha256: BTreeMap<String, String>,
    /// Changes that wait for a domain's next start.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub at: String,
    pub ok: bool,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// A window of live figures recorded around an apply: `kvmtune stat --json` frames of the
/// domains changed (every running domain when only host settings changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureWindow {
    /// `before` (the apply's), `after` (right after it), or `after-restart` (`history ID
    /// --measure`, once next-start changes are in effect).
    pub label: String,
    /// When the window began (RFC 3339).
    pub started: String,
    pub seconds: u64,
    pub domains: Vec<String>,
    /// The frames (`kvmtune.stat` lines), as `stat --json` writes them.
    pub frames: Vec<serde_json::Value>,
    /// Why the window is short or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `measure.json`: the windows of an entry, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub windows: Vec<MeasureWindow>,
}

impl Measurement {
    pub fn window(&self, label: &str) -> Option<&MeasureWindow> {
        self.windows.iter().rev().find(|w| w.label == label)
    }

    /// Add a window, replacing an earlier one of the same label.
    pub fn put(&mut self, w: MeasureWindow) {
        self.windows.retain(|x| x.label != w.label);
        self.windows.push(w);
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// An open journal directory.
pub struct Journal {
    pub dir: PathBuf,
}

/// The journal lock; released when dropped.
pub struct Lock {
    _file: File,
}

/// The host-wide lock, whatever the journal directory and whatever `--root`: see
/// [`lock_host`].
pub const HOST_LOCK: &str = "/run/kvmtune/apply.lock";

/// The host-wide lock; released when dropped (or when the process ends).
pub struct HostLock {
    file: File,
    pub path: PathBuf,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // the pid goes with the lock: whoever holds it next without writing a pid (flock)
        // is not named as this process
        let _ = self.file.set_len(0);
    }
}

/// Open a lock file for flock: created 0600 if missing, never through a symbolic link
/// (`O_NOFOLLOW`), never blocking on a FIFO (`O_NONBLOCK`), and only if it is a regular file.
fn open_lock_file(path: &Path) -> Result<File, JournalError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(kvmtune_host::fsio::PRIVATE_FILE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io(path)(std::io::Error::other(
                    "a symbolic link; kvmtune does not follow links for its locks",
                ))
            } else {
                io(path)(e)
            }
        })?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.file_type().is_file() {
        return Err(io(path)(std::io::Error::other(
            "not a regular file; kvmtune locks regular files only",
        )));
    }
    Ok(file)
}

/// Take the host-wide lock ([`HOST_LOCK`], the host's own `/run/kvmtune/apply.lock` even
/// with `--root`: the domains an apply changes are this host's libvirt's), or fail at once
/// naming the holder's pid. apply and rollback hold it for their whole transaction, so two
/// of them never change the same host or domains at once, whatever their journal
/// directories.
pub fn lock_host() -> Result<HostLock, JournalError> {
    use std::io::{Read, Seek};
    let path = PathBuf::from(HOST_LOCK);
    if let Some(dir) = path.parent() {
        kvmtune_host::fsio::create_dir(dir, kvmtune_host::fsio::PRIVATE_DIR)
            .map_err(|e| io(dir)(std::io::Error::other(e.to_string())))?;
    }
    let mut file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => {
            let pid = format!("{}\n", std::process::id());
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(pid.as_bytes()))
                .map_err(io(&path))?;
            Ok(HostLock { file, path })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.take(32).read_to_string(&mut text);
            // a pid left by a process that is gone names nobody
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) if Path::new(&format!("/proc/{pid}")).exists() => format!(" (pid {pid})"),
                _ => String::new(),
            };
            Err(JournalError::HostLocked {
                path: path.display().to_string(),
                holder,
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// A journal file, read as untrusted input: a regular file under the input cap.
fn read_capped(path: &Path) -> Result<Vec<u8>, JournalError> {
    use kvmtune_host::fsio::{ReadError, max_input, read_input};
    read_input(path, max_input()).map_err(|e| match e {
        ReadError::Io { source, .. } => io(path)(source),
        other => JournalError::Corrupt {
            path: path.display().to_string(),
            why: other.to_string(),
        },
    })
}

/// Journal files hold domain XML: written by the one atomic writer, 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    use kvmtune_host::fsio::{PRIVATE_FILE, WriteError, write_atomic};
    write_atomic(path, bytes, PRIVATE_FILE).map_err(|e| match e {
        WriteError::Io { source, .. } => io(path)(source),
        other => io(path)(std::io::Error::other(other.to_string())),
    })
}

impl Journal {
    /// Open (and create) the journal directory.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
            return Err(JournalError::NotADirectory(dir.display().to_string()));
        }
        kvmtune_host::fsio::create_dir(dir, kvmtune_host::fsio::PRIVATE_DIR)
            .map_err(|e| io(dir)(std::io::Error::other(e.to_string())))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
        })
    }

    /// Open a journal directory that exists, creating nothing (history, rollback).
    pub fn existing(dir: &Path) -> Result<Journal, JournalError> {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => Ok(Journal {
                dir: dir.to_path_buf(),
            }),
            Ok(_) => Err(JournalError::NotADirectory(dir.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(JournalError::Missing(dir.display().to_string()))
            }
            Err(e) => Err(io(dir)(e)),
        }
    }

    /// Take the lock, or fail at once if another run holds it.
    pub fn lock(&self) -> Result<Lock, JournalError> {
        let path = self.dir.join("lock");
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(JournalError::Locked(self.dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }

    fn ids(&self) -> Result<Vec<String>, JournalError> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .flatten()
            // entry directories are real directories: a symbolic link would make rollback
            // read and write (rollback.json) wherever it points
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !n.ends_with(".tmp")
                    && n.split('-')
                        .next()
                        .is_some_and(|s| s.parse::<u64>().is_ok())
            })
            .collect();
        ids.sort_by_key(|id| id.split('-').next().and_then(|s| s.parse::<u64>().ok()));
        Ok(ids)
    }

    /// Record the state before an apply, durably; the steps may start once this returns.
    /// On failure nothing is left behind.
    pub fn begin(&self, mut entry: Entry) -> Result<Handle, JournalError> {
        // one entry at a time within this process (an apply over several hosts runs them on
        // threads under one journal lock): the next number is read and taken together
        static BEGIN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = BEGIN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = self
            .ids()?
            .last()
            .and_then(|id| id.split('-').next()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let stamp: String = entry
            .created
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        entry.id = format!("{seq:04}-{stamp}");
        let dir = self.dir.join(&entry.id);
        let tmp = self.dir.join(format!("{}.tmp", entry.id));
        let made = (|| {
            std::fs::DirBuilder::new()
                .mode(kvmtune_host::fsio::PRIVATE_DIR)
                .create(&tmp)
                .map_err(io(&tmp))?;
            let json = serde_json::to_vec_pretty(&entry).map_err(|e| JournalError::Corrupt {
                path: tmp.display().to_string(),
                why: e.to_string(),
            })?;
            write_private(&tmp.join("entry.json"), &json)?;
            write_private(&tmp.join("steps.log"), b"")?;
            fsync_dir(&tmp)?;
            std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
            fsync_dir(&self.dir)
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok(Handle { dir, entry })
    }

    /// Resolve a user's id: the full id, or its number (`7`, `0007`).
    pub fn resolve(&self, id: &str) -> Result<String, JournalError> {
        let ids = self.ids()?;
        if ids.iter().any(|i| i == id) {
            return Ok(id.to_string());
        }
        if let Ok(n) = id.parse::<u64>()
            && let Some(found) = ids
                .iter()
                .find(|i| i.split('-').next().and_then(|s| s.parse::<u64>().ok()) == Some(n))
        {
            return Ok(found.clone());
        }
        Err(JournalError::NoEntry {
            dir: self.dir.display().to_string(),
            id: id.to_string(),
        })
    }

    /// Every entry's id, oldest first.
    pub fn entries(&self) -> Result<Vec<String>, JournalError> {
        self.ids()
    }

    pub fn entry_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Read an entry's before-state.
    pub fn load(&self, id: &str) -> Result<Entry, JournalError> {
        let path = self.dir.join(id).join("entry.json");
        let bytes = read_capped(&path)?;
        let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        if entry.kind != KIND || entry.version > VERSION {
            return Err(JournalError::Corrupt {
                path: path.display().to_string(),
                why: format!(
                    "kind {} version {}: not a journal entry this kvmtune reads",
                    entry.kind, entry.version
                ),
            });
        }
        // an entry is untrusted input: rollback writes only what kvmtune itself would
        trust::check_entry(&entry).map_err(|why| JournalError::Corrupt {
            path: path.display().to_string(),
            why,
        })?;
        Ok(entry)
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        file: &str,
    ) -> Result<Option<T>, JournalError> {
        let path = self.dir.join(id).join(file);
        match read_capped(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| JournalError::Corrupt {
                    path: path.display().to_string(),
                    why: e.to_string(),
                }),
            Err(JournalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn outcome(&self, id: &str) -> Result<Option<Outcome>, JournalError> {
        self.read_json(id, "outcome.json")
    }

    /// The entry's measured windows (`None`: measured never, as in entries made before
    /// `--measure` existed).
    pub fn measurement(&self, id: &str) -> Result<Option<Measurement>, JournalError> {
        self.read_json(id, "measure.json")
    }

    pub fn record_measurement(&self, id: &str, m: &Measurement) -> Result<(), JournalError> {
        let path = self.dir.join(id).join("measure.json");
        let json = serde_json::to_vec_pretty(m).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        write_private(&path, &json)
    }

    pub fn rollback_record(&self, id: &str) -> Result<Option<RollbackRecord>, JournalError> {
        self.read_json(id, "rollback.json")
    }

    pub fn record_rollback(&self, id: &str, r: &RollbackRecord) -> Result<(), JournalError> {
        let path = self.dir.join(id).join("rollback.json");
        let json = serde_json::to_vec_pretty(r).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        write_private(&path, &json)
    }
}

/// An entry being applied.
pub struct Handle {
    pub dir: PathBuf,
    pub entry: Entry,
}

impl Handle {
    /// Append one line to steps.log, durably.
    pub fn log(&self, line: &str) -> Result<(), JournalError> {
        let path = self.dir.join("steps.log");
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(format!("{line}\n").as_bytes())
            .map_err(io(&path))?;
        f.sync_all().map_err(io(&path))
    }

    pub fn finish(&self, o: &Outcome) -> Result<(), JournalError> {
        let path = self.dir.join("outcome.json");
        let json = serde_json::to_vec_pretty(o).map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        write_private(&path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            kind: KIND.into(),
            version: VERSION,
            id: String::new(),
            created: "2026-11-22T10:15:00Z".into(),
            command: vec!["kvmtune".into(), "apply".into()],
            uri: "test:///default".into(),
            root: "/".into(),
            domains: vec![],
            host: vec![HostBefore {
                key: "ksm.run".into(),
                path: "/sys/kernel/mm/ksm/run".into(),
                old: "0".into(),
            }],
            files: vec![],
            steps: vec![],
        }
    }

    #[test]
    fn measurements_are_optional_and_replace_by_label() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let h = j.begin(entry()).unwrap();
        // an entry made without --measure (or by an older kvmtune) loads, with none
        assert!(j.load(&h.entry.id).is_ok());
        assert_eq!(j.measurement(&h.entry.id).unwrap(), None);
        let w = |label: &str, n: u64| MeasureWindow {
            label: label.into(),
            started: "2026-11-30T21:00:00Z".into(),
            seconds: n,
            domains: vec!["vm".into()],
            frames: vec![serde_json::json!({"kind": "kvmtune.stat"})],
            error: None,
        };
        let mut m = Measurement::default();
        m.put(w("before", 5));
        m.put(w("after", 5));
        m.put(w("after", 7));
        assert_eq!(m.windows.len(), 2);
        assert_eq!(m.window("after").unwrap().seconds, 7);
        j.record_measurement(&h.entry.id, &m).unwrap();
        assert_eq!(j.measurement(&h.entry.id).unwrap(), Some(m));
        std::fs::write(j.entry_dir(&h.entry.id).join("measure.json"), "{").unwrap();
        assert!(matches!(
            j.measurement(&h.entry.id),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn entries_are_numbered_and_described() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let h = j.begin(entry()).unwrap();
        assert_eq!(h.entry.id, "0001-20261122T101500Z");
        assert_eq!(
            j.describe(&h.entry.id, false).status,
            EntryStatus::Interrupted
        );
        h.log("begin 1").unwrap();
        h.log("ok 1").unwrap();
        h.finish(&Outcome {
            status: Status::Applied,
            finished: now(),
            error: None,
            after_sha256: BTreeMap::new(),
            notes: vec![],
        })
        .unwrap();
        let d = j.describe(&h.entry.id, false);
        assert_eq!((d.status.as_str(), d.steps_done), ("applied", 1));
        let h2 = j.begin(entry()).unwrap();
        assert!(h2.entry.id.starts_with("0002-"));
        assert_eq!(j.resolve("2").unwrap(), h2.entry.id);
        assert_eq!(j.resolve("0001").unwrap(), h.entry.id);
        assert!(j.resolve("9").is_err());
        // a corrupt entry is reported as such, not skipped and not a panic
        std::fs::write(h2.dir.join("entry.json"), b"{\"kind\": \"kvmtune.jour").unwrap();
        let d = j.describe(&h2.entry.id, false);
        assert_eq!(d.status, EntryStatus::Corrupt);
        assert!(d.error.unwrap().contains("entry.json"));
        assert!(matches!(
            j.load(&h2.entry.id),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn the_lock_is_exclusive() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let l = j.lock().unwrap();
        assert!(matches!(j.lock(), Err(JournalError::Locked(_))));
        assert!(j.busy());
        drop(l);
        assert!(j.lock().is_ok());
    }

    #[test]
    fn the_host_lock_is_one_for_the_host_and_names_its_holder() {
        use std::os::unix::fs::PermissionsExt;
        let l = lock_host().unwrap();
        let dir = Path::new(HOST_LOCK).parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // a second apply, whatever its journal directory or --root, is refused, naming the pid
        let e = lock_host().err().unwrap().to_string();
        assert!(
            e.contains(&format!("(pid {})", std::process::id())) && e.contains("apply.lock"),
            "{e}"
        );
        drop(l);
        assert!(lock_host().is_ok());
    }

    #[test]
    fn an_entry_writing_outside_the_known_paths_is_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let h = j.begin(entry()).unwrap();
        assert!(j.load(&h.entry.id).is_ok());
        let path = h.dir.join("entry.json");
        let good = std::fs::read_to_string(&path).unwrap();
        for (from, to) in [
            ("/sys/kernel/mm/ksm/run", "/../victim/x"),
            ("/sys/kernel/mm/ksm/run", "/etc/shadow"),
            ("\"root\": \"/\"", "\"root\": \"/tmp/../etc\""),
            ("\"root\": \"/\"", "\"root\": \"victim\""),
            (
                "\"files\": []",
                "\"files\": [{\"path\": \"/etc/cron.d/x\", \"old\": \"* * * * * root sh\"}]",
            ),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good, "{to}");
            std::fs::write(&path, &bad).unwrap();
            let e = j.load(&h.entry.id).err().unwrap();
            assert!(matches!(e, JournalError::Corrupt { .. }), "{to}: {e}");
            assert_eq!(e.to_string().lines().count(), 1);
            assert_eq!(
                j.describe(&h.entry.id, false).status,
                EntryStatus::Corrupt,
                "{to}"
            );
        }
        // and the writers refuse such a path whatever hands it to them
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("r");
        std::fs::create_dir(&inner).unwrap();
        assert!(crate::hostset::write_file(&inner, "/../victim/x", Some("x")).is_err());
        assert!(crate::hostset::write(&inner, "/../victim/x", "1").is_err());
        assert!(!root.path().join("victim").exists());
    }

    #[test]
    fn hostile_journal_files_are_not_followed_or_waited_on() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        // a symlinked entry directory is not an entry
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), t.path().join("0001-x")).unwrap();
        assert!(j.entries().unwrap().is_empty());
        assert!(j.resolve("1").is_err());
        // a steps.log that is a FIFO or a link to /dev/zero reads as empty, at once
        std::fs::create_dir(t.path().join("0002-y")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", t.path().join("0002-y/steps.log")).unwrap();
        assert_eq!(j.steps_log("0002-y"), "");
        std::fs::create_dir(t.path().join("0003-z")).unwrap();
        let fifo = t.path().join("0003-z/steps.log");
        if std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
        {
            assert_eq!(j.steps_log("0003-z"), "");
        }
        // the journal's lock file: never through a link, never a FIFO
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let jd = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&victim, jd.path().join("lock")).unwrap();
        let j2 = Journal::open(jd.path()).unwrap();
        let e = j2.lock().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let jf = tempfile::tempdir().unwrap();
        if std::process::Command::new("mkfifo")
            .arg(jf.path().join("lock"))
            .status()
            .is_ok_and(|s| s.success())
        {
            let j3 = Journal::open(jf.path()).unwrap();
            let e = j3.lock().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }
}
