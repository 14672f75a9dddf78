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
//! libvirt/node.json                  a remote host's facts as its libvirt told them
//! libvirt/domcapabilities-<type>.xml one per virtualization type (kvm, qemu)
//! libvirt/domains/<uuid>.inactive.xml
//! libvirt/domains/<uuid>.live.xml    running domains only
//! stat.jsonl                         `snapshot --stat-seconds N`: a `kvmtune stat --json`
//!                                    window (bundle version 2; absent in version 1)
//! ```

use std::collections::BTreeMap;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use kvmtune_host::{Capture, ReadErrorKind, Replay};

/// The bundle format version written by this kvmtune: 1, or 2 when the bundle holds a
/// stat window (`stat.jsonl`), which a version-1 reader would refuse as an unexpected entry:
/// an older kvmtune then says the version is too new instead.
pub const BUNDLE_VERSION: u32 = 2;
/// The entry holding a recorded stat window.
pub const STAT_ENTRY: &str = "stat.jsonl";
/// Entries larger than this are refused on reading, and not written (a bundle is made of
/// small text files): the same cap as `--root` and input files by default
/// ([`kvmtune_host::fsio::DEFAULT_MAX_INPUT`], 64 MiB). Fixed, not `KVMTUNE_MAX_INPUT`:
/// a bundle written on one machine must read on another.
pub const MAX_ENTRY: u64 = kvmtune_host::fsio::DEFAULT_MAX_INPUT;
/// A whole bundle larger than this (uncompressed) is refused: a gzip bomb, not a capture.
/// `snapshot` keeps host files to [`MAX_HOST_FILES`] in all, which leaves room for the
/// manifest, the capabilities and the domains' XML.
pub const MAX_TOTAL: u64 = 512 * 1024 * 1024;
/// The host files `snapshot` puts in a bundle, in all.
pub const MAX_HOST_FILES: u64 = MAX_TOTAL - MAX_ENTRY;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write bundle {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read bundle {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// Not a regular file (a FIFO, a device): refused before reading.
    #[error("cannot read bundle {path}: {why}")]
    Input { path: PathBuf, why: String },
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
    /// The host's facts as libvirt reports them (`kvmtune_libvirt::NodeFacts`, JSON): set
    /// when the bundle captured a remote host, whose files are out of reach.
    #[serde(skip)]
    pub node_facts: Option<String>,
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
    /// A stat window recorded with the bundle (`snapshot --stat-seconds`), in `stat.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<StatWindow>,
}

/// What `stat.jsonl` holds: `kvmtune stat --json` lines over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatWindow {
    /// The entry's name ([`STAT_ENTRY`]).
    pub file: String,
    /// The window asked for, in seconds.
    pub seconds: u64,
    /// Lines (intervals) written.
    pub frames: u64,
    /// Why the window is shorter than asked or empty (a domain stopped, libvirt failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole bundle in memory.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub host_json: Option<String>,
    /// The stat window's JSON Lines (see [`Bundle::with_stat`]).
    pub stat_jsonl: Option<String>,
    /// Where it was read from, for messages.
    pub path: Option<PathBuf>,
}

impl Bundle {
    /// A bundle of what was captured. Anything a reader would refuse is left out here,
    /// with a recorded error naming it: a host file or an XML over [`MAX_ENTRY`] bytes,
    /// and host files past [`MAX_HOST_FILES`] bytes in all.
    pub fn new(
        origin: String,
        mut capture: Capture,
        mut libvirt: LibvirtCapture,
        host_json: Option<String>,
        created_unix: u64,
    ) -> Bundle {
        let mut total: u64 = 0;
        let files = std::mem::take(&mut capture.files);
        for (p, bytes) in files {
            let len = bytes.len() as u64;
            if len > MAX_ENTRY {
                capture.file_errors.insert(
                    p,
                    ReadErrorKind::Io(format!(
                        "larger than {MAX_ENTRY} bytes; not put in the bundle"
                    )),
                );
            } else if total.saturating_add(len) > MAX_HOST_FILES {
                capture.file_errors.insert(
                    p,
                    ReadErrorKind::Io(format!(
                        "host files past {MAX_HOST_FILES} bytes in all; not put in the bundle"
                    )),
                );
            } else {
                total += len;
                capture.files.insert(p, bytes);
            }
        }
        let too_big = |x: &Option<String>| x.as_ref().is_some_and(|x| x.len() as u64 > MAX_ENTRY);
        if too_big(&libvirt.node_facts) {
            libvirt.node_facts = None;
            libvirt.errors.push(format!(
                "node facts: larger than {MAX_ENTRY} bytes; not put in the bundle"
            ));
        }
        if too_big(&libvirt.capabilities) {
            libvirt.capabilities = None;
            libvirt.errors.push(format!(
                "capabilities: larger than {MAX_ENTRY} bytes; not put in the bundle"
            ));
        }
        let big: Vec<String> = libvirt
            .domain_capabilities
            .iter()
            .filter(|(_, x)| x.len() as u64 > MAX_ENTRY)
            .map(|(t, _)| t.clone())
            .collect();
        for t in big {
            libvirt.domain_capabilities.remove(&t);
            libvirt.errors.push(format!(
                "domain capabilities {t}: larger than {MAX_ENTRY} bytes; not put in the bundle"
            ));
        }
        for d in &mut libvirt.domains {
            for (x, which) in [(&mut d.inactive_xml, "inactive"), (&mut d.live_xml, "live")] {
                if too_big(x) {
                    *x = None;
                    d.errors.push(format!(
                        "{which} XML larger than {MAX_ENTRY} bytes; not put in the bundle"
                    ));
                }
            }
        }
        Bundle {
            manifest: Manifest {
                kind: "kvmtune.bundle".into(),
                // 2 only with a stat window (see [`BUNDLE_VERSION`])
                version: 1,
                kvmtune_version: env!("CARGO_PKG_VERSION").into(),
                created_unix,
                origin,
                host_files: capture.files.keys().cloned().collect(),
                capture,
                libvirt,
                stat: None,
            },
            host_json,
            stat_jsonl: None,
            path: None,
        }
    }

    /// Add a recorded stat window (`kvmtune stat --json` lines). Over [`MAX_ENTRY`] bytes it
    /// is left out with the reason in the manifest. The bundle becomes version 2.
    pub fn with_stat(
        mut self,
        seconds: u64,
        jsonl: String,
        frames: u64,
        error: Option<String>,
    ) -> Bundle {
        let (jsonl, frames, error) = if jsonl.len() as u64 > MAX_ENTRY {
            (
                None,
                0,
                Some(format!(
                    "stat window larger than {MAX_ENTRY} bytes; not put in the bundle"
                )),
            )
        } else {
            (Some(jsonl), frames, error)
        };
        self.manifest.stat = Some(StatWindow {
            file: STAT_ENTRY.into(),
            seconds,
            frames,
            error,
        });
        self.stat_jsonl = jsonl;
        self.manifest.version = 2;
        self
    }

    /// A host-file source replaying the capture.
    pub fn source(&self) -> Replay {
        let label = match &self.path {
            Some(p) => format!("bundle {}", p.display()),
            None => "bundle".to_string(),
        };
        Replay::new(self.manifest.capture.clone(), label)
    }

    /// The bundle as .tar.gz bytes (version 1 unless it holds a stat window).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        (|| -> io::Result<Vec<u8>> {
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
            if let Some(n) = &lv.node_facts {
                append(
                    &mut tar,
                    "libvirt/node.json",
                    n.as_bytes(),
                    self.manifest.created_unix,
                )?;
            }
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
            if let Some(s) = &self.stat_jsonl {
                append(
                    &mut tar,
                    STAT_ENTRY,
                    s.as_bytes(),
                    self.manifest.created_unix,
                )?;
            }
            let gz = tar.into_inner()?;
            gz.finish()
        })()
    }

    /// Write the bundle to `path`: built in memory (a bundle is capped in size), then
    /// written by the one atomic writer, 0600 (it holds domain XML), never through a symlink
    /// or over a device.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let werr = |source| BundleError::Write {
            path: path.to_path_buf(),
            source,
        };
        let bytes = self.to_bytes().map_err(werr)?;
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
        // a regular file only: a FIFO would hang, a device never end
        let file = kvmtune_host::fsio::open_input(path).map_err(|e| match e {
            kvmtune_host::fsio::ReadError::Io { source, .. } => rerr(source),
            kvmtune_host::fsio::ReadError::NotRegular { what, .. } => BundleError::Input {
                path: path.to_path_buf(),
                why: format!("{what}; kvmtune reads regular files only"),
            },
            other => BundleError::Input {
                path: path.to_path_buf(),
                why: other.to_string(),
            },
        })?;
        let mut archive = tar::Archive::new(GzDecoder::new(file));
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut total: u64 = 0;
        let iter = archive
            .entries()
            .map_err(|e| ferr(format!("not a gzip'd tar archive ({e})")))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| ferr(format!("corrupt archive ({e})")))?;
            let raw_name = entry.path_bytes().into_owned();
            let name = entry_name(&raw_name).map_err(&ferr)?;
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_contiguous()) {
                return Err(ferr(format!("entry {name} is not a regular file")));
            }
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
            if entries.insert(name.clone(), bytes).is_some() {
                return Err(ferr(format!("entry {name} appears twice")));
            }
        }
        // tar stops at its end-of-archive blocks; the gzip trailer (CRC and length) is
        // checked only when the decoder is read to its end
        let mut gz = archive.into_inner();
        let rest = io::copy(
            &mut (&mut gz).take(max_total.saturating_sub(total) + 1),
            &mut io::sink(),
        )
        .map_err(|e| ferr(format!("corrupt gzip stream ({e})")))?;
        if total.saturating_add(rest) > max_total {
            return Err(ferr(format!("more than {max_total} bytes uncompressed")));
        }
        let raw = entries
            .remove("manifest.json")
            .ok_or_else(|| ferr("no manifest.json".into()))?;
        let mut manifest: Manifest =
            serde_json::from_slice(&raw).map_err(|e| ferr(format!("bad manifest.json ({e})")))?;
        if manifest.kind != "kvmtune.bundle" {
            return Err(ferr(format!("manifest kind is {:?}", manifest.kind)));
        }
        if manifest.version == 0 || manifest.version > BUNDLE_VERSION {
            return Err(ferr(format!(
                "bundle version {} is not one this kvmtune reads (1 to {BUNDLE_VERSION})",
                manifest.version
            )));
        }
        validate(&manifest).map_err(|why| ferr(format!("bad manifest.json: {why}")))?;
        let text = |bytes: Vec<u8>, name: &str| {
            String::from_utf8(bytes).map_err(|_| ferr(format!("{name} is not UTF-8")))
        };
        let mut files = BTreeMap::new();
        let mut host_json = None;
        let mut stat_jsonl = None;
        for (name, bytes) in entries {
            if name == STAT_ENTRY && manifest.version >= 2 && manifest.stat.is_some() {
                stat_jsonl = Some(text(bytes, &name)?);
            } else if let Some(p) = name.strip_prefix("host/") {
                files.insert(format!("/{p}"), bytes);
            } else if name == "host.json" {
                host_json = Some(text(bytes, &name)?);
            } else if name == "libvirt/capabilities.xml" {
                manifest.libvirt.capabilities = Some(text(bytes, &name)?);
            } else if name == "libvirt/node.json" {
                manifest.libvirt.node_facts = Some(text(bytes, &name)?);
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
                    _ => return Err(ferr(format!("unexpected entry {name}"))),
                };
                let Some(d) = manifest.libvirt.domains.iter_mut().find(|d| d.uuid == uuid) else {
                    return Err(ferr(format!("entry {name} is no domain of the manifest")));
                };
                if live {
                    d.live_xml = Some(xml);
                } else {
                    d.inactive_xml = Some(xml);
                }
            } else {
                return Err(ferr(format!("unexpected entry {name}")));
            }
        }
        if manifest.stat.as_ref().is_some_and(|s| s.frames > 0) && stat_jsonl.is_none() {
            return Err(ferr(format!(
                "manifest lists a stat window but the archive lacks {STAT_ENTRY}"
            )));
        }
        for f in &manifest.host_files {
            if !files.contains_key(f) {
                return Err(ferr(format!("manifest lists {f} but the archive lacks it")));
            }
        }
        if let Some(f) = files.keys().find(|f| !manifest.host_files.contains(f)) {
            return Err(ferr(format!("archive holds host{f}, not in the manifest")));
        }
        manifest.capture.files = files;
        Ok(Bundle {
            manifest,
            host_json,
            stat_jsonl,
            path: Some(path.to_path_buf()),
        })
    }
}

/// An entry's name: UTF-8, relative, plain components only (no `..`, `.`, empty or
/// absolute parts): nothing in a bundle names a place outside it.
fn entry_name(raw: &[u8]) -> Result<String, String> {
    let name = std::str::from_utf8(raw).map_err(|_| "an entry name is not UTF-8".to_string())?;
    let shown = || name.escape_debug().to_string();
    if name.is_empty()
        || name.len() > 4096
        || name.starts_with('/')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
    {
        return Err(format!(
            "entry \"{}\" is not a plain relative path",
            shown()
        ));
    }
    Ok(name.to_string())
}

/// A host path as a capture keys it: absolute, plain components, no NUL.
fn host_path_ok(p: &str) -> bool {
    p == "/"
        || (p.len() <= 4096
            && p.strip_prefix('/').is_some_and(|r| {
                r.split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
            }))
}

/// What a reader relies on in a manifest: host paths are absolute and plain, listed names
/// are plain names, domain UUIDs are plain and unique.
fn validate(m: &Manifest) -> Result<(), String> {
    let shown = |p: &str| {
        p.chars()
            .take(200)
            .collect::<String>()
            .escape_debug()
            .to_string()
    };
    let mut seen = std::collections::BTreeSet::new();
    for p in &m.host_files {
        if !host_path_ok(p) || p == "/" {
            return Err(format!(
                "host file \"{}\" is not a plain absolute path",
                shown(p)
            ));
        }
        if !seen.insert(p) {
            return Err(format!("host file {p} is listed twice"));
        }
    }
    let c = &m.capture;
    let keys = c
        .file_errors
        .keys()
        .chain(c.dirs.keys())
        .chain(c.probes.keys());
    for p in keys {
        if !host_path_ok(p) {
            return Err(format!(
                "path \"{}\" is not a plain absolute path",
                shown(p)
            ));
        }
    }
    for (d, names) in &c.dirs {
        if let Ok(names) = names
            && let Some(n) = names
                .iter()
                .find(|n| n.is_empty() || *n == "." || *n == ".." || n.contains(['/', '\0']))
        {
            return Err(format!("listing of {d} holds \"{}\"", shown(n)));
        }
    }
    if let Some(s) = &m.stat
        && s.file != STAT_ENTRY
    {
        return Err(format!(
            "stat window file \"{}\" is not {STAT_ENTRY}",
            shown(&s.file)
        ));
    }
    let mut uuids = std::collections::BTreeSet::new();
    for d in &m.libvirt.domains {
        if d.uuid.is_empty()
            || d.uuid.len() > 64
            || !d
                .uuid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("domain UUID \"{}\" is not a UUID", shown(&d.uuid)));
        }
        if !uuids.insert(d.uuid.as_str()) {
            return Err(format!("domain UUID {} is listed twice", d.uuid));
        }
    }
    Ok(())
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
            node_facts: Some("{\"uri\": \"qemu:///system\"}".into()),
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
    fn a_stat_window_round_trips_and_makes_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        let plain = sample();
        assert_eq!(plain.manifest.version, 1);
        plain.write(&path).unwrap();
        let back = Bundle::read(&path).unwrap();
        assert_eq!(
            (back.manifest.version, back.stat_jsonl, back.manifest.stat),
            (1, None, None)
        );
        let b = sample().with_stat(5, "{\"kind\":\"kvmtune.stat\"}\n".into(), 1, None);
        assert_eq!(b.manifest.version, 2);
        b.write(&path).unwrap();
        let back = Bundle::read(&path).unwrap();
        assert_eq!(back.manifest.version, 2);
        assert_eq!(
            back.stat_jsonl.as_deref(),
            Some("{\"kind\":\"kvmtune.stat\"}\n")
        );
        let s = back.manifest.stat.unwrap();
        assert_eq!((s.file.as_str(), s.seconds, s.frames), (STAT_ENTRY, 5, 1));
        // an old manifest (no `stat`) reads; a stat.jsonl the manifest does not list does not
        let m = manifest_json(|_| {});
        assert!(!String::from_utf8_lossy(&m).contains("\"stat\""));
        let e = read_bytes(&raw_bundle(&[
            (b"manifest.json", &m),
            (b"stat.jsonl", b"{}"),
        ]));
        assert!(e.contains("unexpected entry stat.jsonl"), "{e}");
        // a manifest naming a window the archive lacks
        let m = manifest_json(|v| {
            v["version"] = 2.into();
            v["stat"] = serde_json::json!({"file": "stat.jsonl", "seconds": 5, "frames": 3});
        });
        let e = read_bytes(&raw_bundle(&[(b"manifest.json", &m)]));
        assert!(e.contains("lacks stat.jsonl"), "{e}");
        let m = manifest_json(|v| {
            v["version"] = 2.into();
            v["stat"] = serde_json::json!({"file": "../x", "seconds": 5, "frames": 0});
        });
        assert!(read_bytes(&raw_bundle(&[(b"manifest.json", &m)])).contains("is not stat.jsonl"));
        // too big: left out with the reason
        let big = "x".repeat(MAX_ENTRY as usize + 1);
        let b = sample().with_stat(5, big, 9, None);
        assert!(b.stat_jsonl.is_none());
        let s = b.manifest.stat.unwrap();
        assert_eq!(s.frames, 0);
        assert!(s.error.unwrap().contains("not put in the bundle"));
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

    /// A `.tar.gz` of raw entries: names are put in the header as given (the tar crate
    /// refuses `..` and absolute names on writing, a hostile bundle does not).
    fn raw_bundle(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        let gz = GzEncoder::new(Vec::new(), Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn manifest_json(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v = serde_json::to_value(&sample().manifest).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn read_bytes(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar.gz");
        std::fs::write(&path, bytes).unwrap();
        let e = Bundle::read(&path).unwrap_err().to_string();
        assert!(e.contains("evil.tar.gz"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        e
    }

    #[test]
    fn a_bad_gzip_crc_or_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        sample().write(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let n = good.len();
        // the trailer: CRC32 (4 bytes) then the length (4 bytes)
        for at in [n - 8, n - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            let e = read_bytes(&bad);
            assert!(e.contains("corrupt gzip stream"), "{e}");
        }
        // a truncated trailer too
        let e = read_bytes(&good[..n - 4]);
        assert!(e.contains("corrupt"), "{e}");
        assert!(Bundle::read(&path).is_ok());
    }

    #[test]
    fn entries_cannot_name_a_place_outside_the_bundle() {
        let m = manifest_json(|_| {});
        for name in [
            &b"host/../../etc/shadow"[..],
            b"/etc/shadow",
            b"host//proc/x",
            b"./manifest.json",
        ] {
            let e = read_bytes(&raw_bundle(&[(b"manifest.json", &m), (name, b"x")]));
            assert!(e.contains("not a plain relative path"), "{e}");
        }
        let e = read_bytes(&raw_bundle(&[
            (b"manifest.json", &m),
            (b"surprise.txt", b"x"),
        ]));
        assert!(e.contains("unexpected entry surprise.txt"), "{e}");
        let e = read_bytes(&raw_bundle(&[
            (b"manifest.json", &m),
            (b"libvirt/domains/other.live.xml", b"<domain/>"),
        ]));
        assert!(e.contains("no domain of the manifest"), "{e}");
    }

    #[test]
    fn the_manifest_is_validated() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["host_files"] = serde_json::json!(["/../etc/shadow"])),
                "not a plain absolute path",
            ),
            (
                Box::new(|v| {
                    v["capture"]["file_errors"] = serde_json::json!({"rel": {"kind": "not_found"}})
                }),
                "not a plain absolute path",
            ),
            (
                Box::new(|v| v["libvirt"]["domains"][0]["uuid"] = serde_json::json!("../x")),
                "is not a UUID",
            ),
            (
                Box::new(|v| v["capture"]["dirs"]["/proc"] = serde_json::json!({"Ok": [".."]})),
                "listing of /proc",
            ),
            (
                Box::new(|v| v["version"] = serde_json::json!(0)),
                "bundle version 0",
            ),
            (
                Box::new(|v| v["host_files"] = serde_json::json!([])),
                "not in the manifest",
            ),
        ];
        for (edit, want) in cases {
            let m = manifest_json(edit);
            let e = read_bytes(&raw_bundle(&[
                (b"manifest.json", &m),
                (b"host/proc/sys/kernel/hostname", b"box\n"),
            ]));
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn oversized_captures_are_left_out_with_a_recorded_error() {
        let mut capture = Capture::default();
        capture
            .files
            .insert("/proc/big".into(), vec![b'x'; MAX_ENTRY as usize + 1]);
        capture.files.insert("/proc/small".into(), b"1\n".to_vec());
        let b = Bundle::new("t".into(), capture, LibvirtCapture::default(), None, 1);
        assert_eq!(b.manifest.host_files, vec!["/proc/small".to_string()]);
        let why = b.manifest.capture.file_errors["/proc/big"].to_string();
        assert!(why.contains("not put in the bundle"), "{why}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        b.write(&path).unwrap();
        let back = Bundle::read(&path).unwrap();
        let e = back.source().read("/proc/big").unwrap_err().to_string();
        assert!(
            e.contains("/proc/big") && e.contains("not put in the bundle"),
            "{e}"
        );
    }

    #[test]
    fn a_fifo_is_not_read_as_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("b.tar.gz");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let e = Bundle::read(&fifo).unwrap_err().to_string();
        assert!(e.contains("b.tar.gz") && e.contains("FIFO"), "{e}");
        let e = Bundle::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("device node"), "{e}");
    }
}
