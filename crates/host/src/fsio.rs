//! Writing files as root without surprises: the one helper every kvmtune writer uses.
//!
//! A regular file is replaced atomically: a temporary in the same directory (created
//! exclusively, with the caller's mode), written, fsynced, renamed over the target, and the
//! directory fsynced. A target that exists and is not a regular file (a symlink, a device
//! node, a FIFO, a socket, a directory) is refused and left alone: renaming over
//! `/dev/null` or a symlink would replace it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Mode of files that hold domain XML, plans, journal entries or bundles.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of directories kvmtune creates for such files.
pub const PRIVATE_DIR: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {what}; refusing to replace it")]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What kind of non-regular thing is at `path`, if any. `None`: nothing there, or a
/// regular file.
pub fn special_kind(path: &Path) -> Option<&'static str> {
    let t = std::fs::symlink_metadata(path).ok()?.file_type();
    (!t.is_file()).then(|| describe_type(&t))
}

/// What a file type is, in words, for messages: `a directory`, `a symbolic link`, `a
/// device node`, `a FIFO`, `a socket`, `a regular file`.
pub fn describe_type(t: &std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() || t.is_block_device() {
        "a device node"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Refuse a target that exists and is not a regular file.
pub fn check_target(path: &Path) -> Result<(), WriteError> {
    match special_kind(path) {
        Some(what) => Err(WriteError::NotRegular {
            path: path.to_path_buf(),
            what,
        }),
        None => Ok(()),
    }
}

/// A file written beside its target and not yet renamed over it.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
}

impl Staged {
    /// Rename the temporary over the target and fsync the directory.
    pub fn commit(self) -> Result<(), WriteError> {
        let r = check_target(&self.dest).and_then(|_| {
            std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
            fsync_dir(&self.dest)
        });
        if r.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        r
    }
    /// Remove the temporary; the target is untouched.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn fsync_dir(path: &Path) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

/// Write `bytes` to a temporary beside `path` (mode `mode`), fsynced, without touching
/// `path`. Refuses when `path` is not a regular file.
pub fn stage(path: &Path, bytes: &[u8], mode: u32) -> Result<Staged, WriteError> {
    check_target(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let mut n = 0u32;
    loop {
        let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp);
        let mut f = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                n += 1;
                continue;
            }
            Err(e) => return Err(io(path)(e)),
        };
        let r = f.write_all(bytes).and_then(|_| f.sync_all());
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(path)(e));
        }
        return Ok(Staged {
            tmp,
            dest: path.to_path_buf(),
        });
    }
}

/// Replace `path` with `bytes` atomically (or leave it as it was), with mode `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    stage(path, bytes, mode)?.commit()
}

/// Write several files all or nothing as far as the file system allows: every file is
/// staged first, and only when all are staged are they renamed into place.
pub fn write_all_atomic(files: &[(PathBuf, Vec<u8>)], mode: u32) -> Result<(), WriteError> {
    let mut staged = Vec::new();
    for (path, bytes) in files {
        match stage(path, bytes, mode) {
            Ok(s) => staged.push(s),
            Err(e) => {
                staged.into_iter().for_each(Staged::discard);
                return Err(e);
            }
        }
    }
    for s in staged {
        s.commit()?;
    }
    Ok(())
}

/// Create a directory (and its parents) with mode `mode` for the ones created. An
/// existing path that is not a directory (or a symlink) is refused.
pub fn create_dir(dir: &Path, mode: u32) -> Result<(), WriteError> {
    if let Some(what) = special_kind(dir) {
        if what == "a directory" {
            return Ok(());
        }
        return Err(WriteError::NotRegular {
            path: dir.to_path_buf(),
            what,
        });
    }
    if dir.exists() {
        return Err(WriteError::NotRegular {
            path: dir.to_path_buf(),
            what: "not a directory",
        });
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io(dir))
}

/// The default cap of an input file kvmtune reads whole (domain XML, plans, journal
/// entries, reports, logs): 64 MiB. `KVMTUNE_MAX_INPUT` (bytes) changes it.
pub const DEFAULT_MAX_INPUT: u64 = 64 << 20;

/// The input cap in force: `KVMTUNE_MAX_INPUT` when set to a number, else
/// [`DEFAULT_MAX_INPUT`].
pub fn max_input() -> u64 {
    std::env::var("KVMTUNE_MAX_INPUT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_INPUT)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {what}; kvmtune reads regular files only")]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{path}: larger than {cap} bytes (KVMTUNE_MAX_INPUT raises the cap)")]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("{path}: not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Read an input file whole: a regular file (a symlink to one is followed), at most `cap`
/// bytes. A FIFO, device, socket or directory is refused without opening it for reading
/// (a FIFO would block, `/dev/zero` would never end).
pub fn read_input(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let ioe = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(ioe)?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = describe_type(&t);
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            cap,
        });
    }
    // O_NONBLOCK: should the path be swapped for a FIFO after the check, open does not hang
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ioe)?;
    let opened = f.metadata().map_err(ioe)?;
    if !opened.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    // room for the whole file and the byte that tells it grew: one read(2) and the one at
    // its end, instead of a buffer grown in steps
    let mut buf = Vec::with_capacity(opened.len().min(cap) as usize + 1);
    // one byte more than the cap tells a file that grew past it
    f.take(cap + 1).read_to_end(&mut buf).map_err(ioe)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            cap,
        });
    }
    Ok(buf)
}

/// Open an input file for streaming (a bundle): a regular file (a symlink to one is
/// followed), checked as [`read_input`] checks it, without reading it. The caller caps
/// what it reads.
pub fn open_input(path: &Path) -> Result<File, ReadError> {
    let ioe = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |t: std::fs::FileType| ReadError::NotRegular {
        path: path.to_path_buf(),
        what: describe_type(&t),
    };
    let t = std::fs::metadata(path).map_err(ioe)?.file_type();
    if !t.is_file() {
        return Err(not_regular(t));
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ioe)?;
    let t = f.metadata().map_err(ioe)?.file_type();
    if !t.is_file() {
        return Err(not_regular(t));
    }
    Ok(f)
}

/// [`read_input`] as UTF-8 text, with the cap in force ([`max_input`]).
pub fn read_input_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_input(path, max_input())?;
    String::from_utf8(bytes).map_err(|_| ReadError::NotText {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_regular_file_is_replaced_with_the_mode_asked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.xml");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new", PRIVATE_FILE).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // no temporary left behind
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        // a new file is created too
        write_atomic(&d.path().join("b"), b"x", 0o644).unwrap();
        assert_eq!(std::fs::read(d.path().join("b")).unwrap(), b"x");
    }

    #[test]
    fn symlinks_devices_fifos_and_directories_are_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write_atomic(&link, b"x", PRIVATE_FILE).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let e = write_atomic(Path::new("/dev/null"), b"x", PRIVATE_FILE).unwrap_err();
        assert!(e.to_string().contains("device node"), "{e}");
        assert!(
            std::fs::symlink_metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );

        let fifo = d.path().join("fifo");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status();
        if st.is_ok_and(|s| s.success()) {
            let e = write_atomic(&fifo, b"x", PRIVATE_FILE).unwrap_err();
            assert!(e.to_string().contains("FIFO"), "{e}");
        }
        let e = write_atomic(d.path(), b"x", PRIVATE_FILE).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn several_files_are_staged_before_any_is_renamed() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let bad = d.path().join("bad");
        std::os::unix::fs::symlink("/dev/null", &bad).unwrap();
        let r = write_all_atomic(&[(a.clone(), b"1".to_vec()), (bad, b"2".to_vec())], 0o600);
        assert!(r.is_err());
        assert!(!a.exists(), "nothing is written when one target is refused");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn inputs_are_regular_files_under_a_cap() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("in.xml");
        std::fs::write(&f, "<domain/>").unwrap();
        assert_eq!(read_input_text(&f).unwrap(), "<domain/>");
        let e = read_input(&f, 4).unwrap_err();
        assert!(e.to_string().contains("larger than 4 bytes"), "{e}");
        let e = read_input(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("device node"), "{e}");
        let e = read_input(d.path(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let fifo = d.path().join("fifo");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status();
        if st.is_ok_and(|s| s.success()) {
            let e = read_input(&fifo, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("FIFO"), "{e}");
        }
        let bin = d.path().join("bin");
        std::fs::write(&bin, [0xff, 0xfe]).unwrap();
        assert!(
            read_input_text(&bin)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        assert!(read_input(&d.path().join("missing"), 10).is_err());
    }

    #[test]
    fn private_directories() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("x/y");
        create_dir(&sub, PRIVATE_DIR).unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        create_dir(&sub, PRIVATE_DIR).unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, "").unwrap();
        assert!(create_dir(&f, PRIVATE_DIR).is_err());
    }
}
