//! Support bundles: one compressed archive holding every host file kvmtune read, the
//! libvirt capabilities, domain capabilities and every domain's inactive and live XML.
//!
//! Layout of the `.tar.gz` (see `docs/bundle.md`):
//!
//! ```text
//! manifest.json                      what is inside, read errors, directory listings, probes
//! host/<absolute path>               each host file as read (host/proc/cpuinfo, ...)
//! host.json                          `kvmtune host --json` as computed at capture time
//! libvirt/capabilities.xml
//! libvirt/domcapabilities-<type>.xml one per virtualization type (kvm, qemu)
//! libvirt/domains/<uuid>.inactive.xml
//! libvirt/domains/<uuid>.live.xml    running domains only
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use kvmtune_host::{Capture, Replay};

/// The bundle format version written by this kvmtune.
pub const BUNDLE_VERSION: u32 = 1;
/// Entries larger than this are refused on reading (a bundle is made of small text files).
const MAX_ENTRY: u64 = 64 * 1024 * 1024;
/// A whole bundle larger than this (uncompressed) is refused: a gzip bomb, not a capture.
const MAX_TOTAL: u64 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write bundle {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read bundle {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("bundle {path} is not a kvmtune bundle: {why}")]
    Format { path: PathBuf, why: String },
}

/// A domain as captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleDomain {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub id: Option<u32>,
    #[serde(skip)]
    pub inactive_xml: Option<String>,
    #[serde(skip)]
    pub live_xml: Option<String>,
    /// Why an XML could not be captured (e.g. the domain vanished mid-capture).
    pub errors: Vec<String>,
}

/// What libvirt told at capture time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibvirtCapture {
    pub uri: Option<String>,
    #[serde(skip)]
    pub capabilities: Option<String>,
    /// Virtualization type → domain capabilities XML.
    #[serde(skip)]
    pub domain_capabilities: BTreeMap<String, String>,
    pub domains: Vec<BundleDomain>,
    /// Why libvirt could not be read at all (no daemon, `--no-libvirt`, ...).
    pub error: Option<String>,
    /// Calls that failed while the rest worked.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `kvmtune.bundle`.
    pub kind: String,
    pub version: u32,
    pub kvmtune_version: String,
    pub created_unix: u64,
    /// Where the host files came from (`live host /`, `host tree DIR`).
    pub origin: String,
    pub host_files: Vec<String>,
    pub capture: Capture,
    pub libvirt: LibvirtCapture,
}

/// A whole bundle in memory.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub host_json: Option<String>,
    /// Where it was read from, for messages.
    pub path: Option<PathBuf>,
}

impl Bundle {
    pub fn new(
        origin: String,
        capture: Capture,
        libvirt: LibvirtCapture,
        host_json: Option<String>,
        created_unix: u64,
    ) -> Bundle {
        Bundle {
            manifest: Manifest {
                kind: "kvmtune.bundle".into(),
                version: BUNDLE_VERSION,
                kvmtune_version: env!("CARGO_PKG_VERSION").into(),
                created_unix,
                origin,
                host_files: capture.files.keys().cloned().collect(),
                capture,
                libvirt,
            },
            host_json,
            path: None,
        }
    }

    /// A host-file source replaying the capture.
    pub fn source(&self) -> Replay {
        let label = match &self.path {
            Some(p) => format!("bundle {}", p.display()),
            None => "bundle".to_string(),
        };
        Replay::new(self.manifest.capture.clone(), label)
    }

    /// Write the bundle to `path` atomically: a temporary file beside it, renamed at the
    /// end. On any error the temporary file is removed and `path` is left as it was.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let werr = |source| BundleError::Write {
            path: path.to_path_buf(),
            source,
        };
        // built in memory (a bundle is capped in size), then written by the one atomic
        // writer: 0600 (it holds domain XML), never through a symlink or over a device
        let result = (|| -> io::Result<Vec<u8>> {
            let gz = GzEncoder::new(Vec::new(), Compression::default());
            let mut tar = tar::Builder::new(gz);
            let manifest = serde_json::to_vec_pretty(&self.manifest).map_err(io::Error::other)?;
            append(
                &mut tar,
                "manifest.json",
                &manifest,
                self.manifest.created_unix,
            )?;
            for (p, bytes) in &self.manifest.capture.files {
                append(
                    &mut tar,
                    &format!("host{p}"),
                    bytes,
                    self.manifest.created_unix,
                )?;
            }
            if let Some(h) = &self.host_json {
                append(
                    &mut tar,
                    "host.json",
                    h.as_bytes(),
                    self.manifest.created_unix,
                )?;
            }
            let lv = &self.manifest.libvirt;
            if let Some(c) = &lv.capabilities {
                append(
                    &mut tar,
                    "libvirt/capabilities.xml",
                    c.as_bytes(),
                    self.manifest.created_unix,
                )?;
            }
            for (t, x) in &lv.domain_capabilities {
                append(
                    &mut tar,
                    &format!("libvirt/domcapabilities-{t}.xml"),
                    x.as_bytes(),
                    self.manifest.created_unix,
                )?;
            }
            for d in &lv.domains {
                if let Some(x) = &d.inactive_xml {
                    let p = format!("libvirt/domains/{}.inactive.xml", d.uuid);
                    append(&mut tar, &p, x.as_bytes(), self.manifest.created_unix)?;
                }
                if let Some(x) = &d.live_xml {
                    let p = format!("libvirt/domains/{}.live.xml", d.uuid);
                    append(&mut tar, &p, x.as_bytes(), self.manifest.created_unix)?;
                }
            }
            let gz = tar.into_inner()?;
            gz.finish()
        })();
        let bytes = result.map_err(werr)?;
        kvmtune_host::fsio::write_atomic(path, &bytes, kvmtune_host::fsio::PRIVATE_FILE).map_err(
            |e| match e {
                kvmtune_host::fsio::WriteError::Io { source, .. } => werr(source),
                other => werr(io::Error::other(other.to_string())),
            },
        )
    }

    /// Read a bundle written by [`Bundle::write`].
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        Bundle::read_limited(path, MAX_TOTAL)
    }

    fn read_limited(path: &Path, max_total: u64) -> Result<Bundle, BundleError> {
        let rerr = |source| BundleError::Read {
            path: path.to_path_buf(),
            source,
        };
        let ferr = |why: String| BundleError::Format {
            path: path.to_path_buf(),
            why,
        };
        let file = File::open(path).map_err(rerr)?;
        let mut archive = tar::Archive::new(GzDecoder::new(file));
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut total: u64 = 0;
        let iter = archive
            .entries()
            .map_err(|e| ferr(format!("not a gzip'd tar archive ({e})")))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| ferr(format!("corrupt archive ({e})")))?;
            let name = entry
                .path()
                .map_err(|e| ferr(format!("bad entry name ({e})")))?
                .to_string_lossy()
                .into_owned();
            if entry.size() > MAX_ENTRY {
                return Err(ferr(format!(
                    "entry {name} is larger than {MAX_ENTRY} bytes"
                )));
            }
            total = total.saturating_add(entry.size());
            if total > max_total {
                return Err(ferr(format!("more than {max_total} bytes uncompressed")));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| ferr(format!("corrupt entry {name} ({e})")))?;
            entries.insert(name, bytes);
        }
        let raw = entries
            .remove("manifest.json")
            .ok_or_else(|| ferr("no manifest.json".into()))?;
        let mut manifest: Manifest =
            serde_json::from_slice(&raw).map_err(|e| ferr(format!("bad manifest.json ({e})")))?;
        if manifest.kind != "kvmtune.bundle" {
            return Err(ferr(format!("manifest kind is {:?}", manifest.kind)));
        }
        if manifest.version > BUNDLE_VERSION {
            return Err(ferr(format!(
                "bundle version {} is newer than this kvmtune reads ({BUNDLE_VERSION})",
                manifest.version
            )));
        }
        let text = |bytes: Vec<u8>, name: &str| {
            String::from_utf8(bytes).map_err(|_| ferr(format!("{name} is not UTF-8")))
        };
        let mut files = BTreeMap::new();
        let mut host_json = None;
        for (name, bytes) in entries {
            if let Some(p) = name.strip_prefix("host/") {
                files.insert(format!("/{p}"), bytes);
            } else if name == "host.json" {
                host_json = Some(text(bytes, &name)?);
            } else if name == "libvirt/capabilities.xml" {
                manifest.libvirt.capabilities = Some(text(bytes, &name)?);
            } else if let Some(t) = name
                .strip_prefix("libvirt/domcapabilities-")
                .and_then(|r| r.strip_suffix(".xml"))
            {
                let t = t.to_string();
                manifest
                    .libvirt
                    .domain_capabilities
                    .insert(t, text(bytes, &name)?);
            } else if let Some(rest) = name.strip_prefix("libvirt/domains/") {
                let xml = text(bytes, &name)?;
                let (uuid, live) = match (
                    rest.strip_suffix(".inactive.xml"),
                    rest.strip_suffix(".live.xml"),
                ) {
                    (Some(u), _) => (u, false),
                    (_, Some(u)) => (u, true),
                    _ => continue,
                };
                if let Some(d) = manifest.libvirt.domains.iter_mut().find(|d| d.uuid == uuid) {
                    if live {
                        d.live_xml = Some(xml);
                    } else {
                        d.inactive_xml = Some(xml);
                    }
                }
            }
        }
        for f in &manifest.host_files {
            if !files.contains_key(f) {
                return Err(ferr(format!("manifest lists {f} but the archive lacks it")));
            }
        }
        manifest.capture.files = files;
        Ok(Bundle {
            manifest,
            host_json,
            path: Some(path.to_path_buf()),
        })
    }
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmtune_host::{Recorder, RootDir, Source};

    fn sample() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(dir.path().join("proc/sys/kernel/hostname"), "box\n").unwrap();
        let rec = Recorder::new(RootDir::new(dir.path()));
        rec.read("/proc/sys/kernel/hostname").unwrap();
        rec.read("/proc/nothing").unwrap_err();
        rec.list("/proc/sys").unwrap();
        let lv = LibvirtCapture {
            uri: Some("qemu:///system".into()),
            capabilities: Some("<capabilities/>".into()),
            domain_capabilities: [("qemu".to_string(), "<domainCapabilities/>".to_string())].into(),
            domains: vec![BundleDomain {
                name: "vm1".into(),
                uuid: "u-1".into(),
                active: true,
                id: Some(3),
                inactive_xml: Some("<domain/>".into()),
                live_xml: Some("<domain id='3'/>".into()),
                errors: vec![],
            }],
            error: None,
            errors: vec![],
        };
        Bundle::new("test".into(), rec.capture(), lv, Some("{}".into()), 1)
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        let b = sample();
        b.write(&path).unwrap();
        let back = Bundle::read(&path).unwrap();
        assert_eq!(back.manifest.capture, b.manifest.capture);
        assert_eq!(
            back.manifest.libvirt.capabilities.as_deref(),
            Some("<capabilities/>")
        );
        assert_eq!(
            back.manifest.libvirt.domains[0].live_xml.as_deref(),
            Some("<domain id='3'/>")
        );
        let src = back.source();
        assert_eq!(src.read_value("/proc/sys/kernel/hostname").unwrap(), "box");
        assert!(src.read("/proc/nothing").unwrap_err().is_not_found());
        // no temporary file is left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn garbage_is_a_format_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar.gz");
        std::fs::write(&path, b"not an archive at all").unwrap();
        let err = Bundle::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("x.tar.gz") && err.contains("not a kvmtune bundle"),
            "{err}"
        );
        let missing = Bundle::read(&dir.path().join("none.tar.gz"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("none.tar.gz"), "{missing}");
    }

    #[test]
    fn an_oversized_bundle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.tar.gz");
        sample().write(&path).unwrap();
        let err = Bundle::read_limited(&path, 64).unwrap_err().to_string();
        assert!(
            err.contains("big.tar.gz") && err.contains("more than 64 bytes"),
            "{err}"
        );
    }

    #[test]
    fn unwritable_target_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/b.tar.gz");
        let err = sample().write(&path).unwrap_err().to_string();
        assert!(err.contains("b.tar.gz"), "{err}");
    }
}
