//! The collect layer: everything a run judges, gathered once.
//!
//! [`Origin`] says where host facts and libvirt are (the live host and a libvirt URI, a
//! captured `--root` tree, or a support bundle); [`Select`] which domains (XML files,
//! names, all). [`Inventory::gather`] reads them once: host facts, domain capabilities and
//! every domain's XML, parsed. Commands then take the inventory instead of re-reading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kvmtune_bundle::{Bundle, BundleDomain, LibvirtCapture};
use kvmtune_domain::{Document, Domain, DomainCaps};
use kvmtune_host::{Host, RootDir, Source};
use kvmtune_libvirt::Libvirt;

use crate::{Error, Result};

/// Where a run reads from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The libvirt URI (`-c`).
    pub connect: String,
    /// A captured host tree read instead of `/` (`--root`).
    pub root: Option<PathBuf>,
    /// A support bundle read instead of the host and libvirt (`--from`).
    pub from: Option<PathBuf>,
}

impl Origin {
    pub fn local(connect: &str) -> Origin {
        Origin {
            connect: connect.to_string(),
            root: None,
            from: None,
        }
    }

    /// Where host files are read from: the bundle, the `--root` tree, or `/`.
    pub fn host_source(&self) -> Result<Box<dyn Source>> {
        if let Some(bundle) = &self.from {
            let b = Bundle::read(bundle)?;
            return Ok(Box::new(b.source()));
        }
        match &self.root {
            Some(root) => {
                if !root.is_dir() {
                    return Err(Error::msg(format!(
                        "--root {}: not a directory",
                        root.display()
                    )));
                }
                Ok(Box::new(RootDir::new(root)))
            }
            None => Ok(Box::new(RootDir::live())),
        }
    }

    /// Whether the host is another machine reached through libvirt: a remote URI, and
    /// neither `--root` nor `--from` saying where the host's files are.
    pub fn is_remote(&self) -> bool {
        self.from.is_none() && self.root.is_none() && !kvmtune_libvirt::is_local(&self.connect)
    }

    /// The host's facts and where they came from: the bundle's, the `--root` tree's, the
    /// remote host's as its libvirt reports them, or this machine's.
    pub fn host_facts(&self) -> Result<(Host, String)> {
        if let Some(bundle) = &self.from {
            let b = Bundle::read(bundle)?;
            if let Some(f) = bundle_node_facts(&b) {
                return Ok((
                    crate::remote::host_from_libvirt(&f),
                    format!(
                        "bundle {} (a remote host: facts as its libvirt {} reported them)",
                        bundle.display(),
                        f.uri
                    ),
                ));
            }
        }
        if self.is_remote() {
            let lv = Libvirt::open(&self.connect, false)
                .or_else(|_| Libvirt::open(&self.connect, true))
                .map_err(|e| Error::msg(format!("libvirt {}: {e}", self.connect)))?;
            let host = crate::remote::host_from_libvirt(&lv.node_facts());
            return Ok((
                host,
                format!(
                    "libvirt {} (another host: what libvirt does not report is unknown)",
                    self.connect
                ),
            ));
        }
        let src = self.host_source()?;
        Ok((kvmtune_host::collect(src.as_ref()), src.describe()))
    }

    /// The directory host files are read from and written to (`/` or `--root`).
    pub fn root_dir(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| PathBuf::from("/"))
    }
}

/// The remote host's facts a bundle holds (`libvirt/node.json`), when it captured a remote
/// host and has no host files. A garbled file is no facts (the bundle's other parts stand).
pub fn bundle_node_facts(b: &Bundle) -> Option<kvmtune_libvirt::NodeFacts> {
    if !b.manifest.capture.files.is_empty() {
        return None;
    }
    let text = b.manifest.libvirt.node_facts.as_deref()?;
    serde_json::from_str(text).ok()
}

/// Which domains a run is about.
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// XML file paths and domain names, mixed (see [`is_file_arg`]).
    pub targets: Vec<String>,
    /// Every domain of the connection (or bundle).
    pub all: bool,
    /// Judge XML files against this host's facts too (domains of a connection always are).
    pub host_for_files: bool,
}

/// One domain, read and parsed.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Where it came from: `file:PATH`, `libvirt:NAME`, `bundle:NAME`.
    pub origin: String,
    /// For files: the path (fixed XML is named after it).
    pub path: Option<PathBuf>,
    /// The text as read (the stored, inactive XML for libvirt domains).
    pub text: String,
    pub active: bool,
    pub doc: Document,
    pub domain: Domain,
}

impl Parsed {
    /// Whether it is a domain of a live libvirt connection (not a file or a bundle).
    pub fn from_libvirt(&self) -> bool {
        self.origin.starts_with("libvirt:")
    }
}

/// Everything a run judges.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub host: Option<Host>,
    /// Where the host facts came from, or why there are none.
    pub host_origin: String,
    /// Domain capabilities by virt type (`kvm`, `qemu`).
    pub caps: BTreeMap<String, DomainCaps>,
    pub caps_origin: String,
    pub domains: Vec<Parsed>,
    /// Inputs that could not be read or parsed, one line each (the run goes on without
    /// them; commands that act refuse with the first, see [`Inventory::strict`]).
    pub errors: Vec<String>,
    /// The domains are every domain of the host (libvirt or bundle, `--all` and no file):
    /// host-wide judgements (overcommit, hugepage demand, KSM) then speak for the host.
    pub whole_host: bool,
}

/// The host origin of files audited without `--host`.
pub const NO_HOST_FOR_FILES: &str =
    "none (host rules skipped; --host judges files against this host)";

/// The domain capabilities origin when there are none.
pub const NO_CAPS: &str = "none (assumptions are stated)";

/// Is this argument a file rather than a domain name?
pub fn is_file_arg(arg: &str) -> bool {
    // the string tests first: they spare most arguments a stat(2)
    arg.ends_with(".xml") || arg.contains('/') || Path::new(arg).exists()
}

impl Inventory {
    /// Read what `sel` names from `origin`: host facts, domain capabilities, domains.
    ///
    /// An input that cannot be read or parsed becomes a line of [`Inventory::errors`]; a
    /// domain name that does not exist, an unreachable libvirt or an unreadable bundle is an
    /// error of the whole gathering.
    pub fn gather(origin: &Origin, sel: &Select) -> Result<Inventory> {
        let (files, names): (Vec<&str>, Vec<&str>) = sel
            .targets
            .iter()
            .map(String::as_str)
            .partition(|t| is_file_arg(t));
        let mut inv = Inventory::default();
        let mut raw = Vec::new();
        for f in &files {
            // a regular file under the input cap: a FIFO is not waited on, /dev/zero not
            // read without end
            use kvmtune_host::fsio::{ReadError, read_input_text};
            match read_input_text(std::path::Path::new(f)) {
                Ok(text) => raw.push(Raw {
                    origin: format!("file:{f}"),
                    path: Some(f.into()),
                    text,
                    active: false,
                }),
                Err(ReadError::NotText { .. }) => inv.errors.push(format!("{f}: not UTF-8 text")),
                Err(ReadError::Io { source, .. }) => {
                    inv.errors.push(format!("cannot read {f}: {source}"))
                }
                Err(e) => inv.errors.push(e.to_string()),
            }
        }
        let want_libvirt = sel.all || !names.is_empty();
        if let Some(bundle_path) = &origin.from {
            let b = Bundle::read(bundle_path)?;
            let label = format!("bundle {}", bundle_path.display());
            if want_libvirt || files.is_empty() {
                let all = sel.all || names.is_empty();
                raw.extend(from_capture(
                    &b.manifest.libvirt,
                    &names,
                    all,
                    "bundle",
                    &mut inv.errors,
                )?);
                inv.whole_host = all && files.is_empty();
            }
            // a bundle of a remote host holds its facts as libvirt told them, no host files
            inv.host = Some(match bundle_node_facts(&b) {
                Some(f) => crate::remote::host_from_libvirt(&f),
                None => kvmtune_host::collect(&b.source()),
            });
            inv.caps = caps_of(&b.manifest.libvirt)?;
            inv.caps_origin = if inv.caps.is_empty() {
                NO_CAPS.to_string()
            } else {
                label.clone()
            };
            inv.host_origin = label;
            inv.parse(raw);
            return Ok(inv);
        }
        inv.caps_origin = NO_CAPS.to_string();
        if want_libvirt {
            let cap = capture_libvirt(&origin.connect);
            if let Some(e) = &cap.error {
                return Err(Error::msg(format!("libvirt {}: {e}", origin.connect)));
            }
            raw.extend(from_capture(
                &cap,
                &names,
                sel.all,
                "libvirt",
                &mut inv.errors,
            )?);
            inv.whole_host = sel.all && files.is_empty();
            inv.caps = caps_of(&cap)?;
            if !inv.caps.is_empty() {
                inv.caps_origin = format!("libvirt {}", origin.connect);
            }
        }
        // host facts: for libvirt domains (their host's: this machine, or a remote one as its
        // libvirt reports it), for files only when asked; never this machine's facts when
        // the connection names another host
        if want_libvirt || sel.host_for_files || origin.root.is_some() {
            let (host, from) = origin.host_facts()?;
            inv.host = Some(host);
            inv.host_origin = from;
        } else {
            inv.host_origin = NO_HOST_FOR_FILES.to_string();
        }
        inv.parse(raw);
        Ok(inv)
    }

    fn parse(&mut self, raw: Vec<Raw>) {
        for r in raw {
            match Domain::parse(&r.text) {
                Ok((doc, domain)) => self.domains.push(Parsed {
                    origin: r.origin,
                    path: r.path,
                    text: r.text,
                    active: r.active,
                    doc,
                    domain,
                }),
                Err(e) => self.errors.push(format!("{}: {e}", r.origin)),
            }
        }
    }

    /// For commands that act on the domains: the first input that could not be read is an
    /// error.
    pub fn strict(self) -> Result<Inventory> {
        match self.errors.first() {
            Some(e) => Err(Error::msg(e.clone())),
            None => Ok(self),
        }
    }

    /// A domain by name.
    pub fn domain(&self, name: &str) -> Option<&Parsed> {
        self.domains.iter().find(|p| p.domain.name == name)
    }
}

/// A domain's text before parsing.
#[derive(Debug)]
struct Raw {
    origin: String,
    path: Option<PathBuf>,
    text: String,
    active: bool,
}

/// Domains of a libvirt capture (live or from a bundle), selected by name or all. A domain
/// without XML (it vanished between listing and reading, or libvirt refused) becomes an
/// error line naming it, and the others are still gathered. A name that is not there at
/// all is an error.
fn from_capture(
    cap: &LibvirtCapture,
    names: &[&str],
    all: bool,
    origin: &str,
    errors: &mut Vec<String>,
) -> Result<Vec<Raw>> {
    for n in names {
        if !cap.domains.iter().any(|d| d.name == *n) {
            return Err(Error::msg(format!("no domain named {n} in {origin}")));
        }
    }
    let mut out = Vec::new();
    for d in &cap.domains {
        if !all && !names.contains(&d.name.as_str()) {
            continue;
        }
        // the persistent config (what fixes edit); the live XML when there is none
        let Some(text) = d.inactive_xml.clone().or_else(|| d.live_xml.clone()) else {
            errors.push(format!(
                "{origin}:{}: no XML ({})",
                d.name,
                d.errors.join("; ")
            ));
            continue;
        };
        out.push(Raw {
            origin: format!("{origin}:{}", d.name),
            path: None,
            text,
            active: d.active,
        });
    }
    Ok(out)
}

fn caps_of(cap: &LibvirtCapture) -> Result<BTreeMap<String, DomainCaps>> {
    let mut m = BTreeMap::new();
    for (t, xml) in &cap.domain_capabilities {
        let c = DomainCaps::parse(xml)
            .map_err(|e| Error::msg(format!("domain capabilities ({t}): {e}")))?;
        m.insert(t.clone(), c);
    }
    Ok(m)
}

/// Read what libvirt knows: capabilities, domain capabilities, every domain's XML. A
/// failure of one call is recorded and the rest goes on; a domain that vanishes
/// mid-capture keeps its entry with libvirt's error naming it.
pub fn capture_libvirt(uri: &str) -> LibvirtCapture {
    let mut cap = LibvirtCapture {
        uri: Some(uri.to_string()),
        ..LibvirtCapture::default()
    };
    let lv = match Libvirt::open(uri, false).or_else(|_| Libvirt::open(uri, true)) {
        Ok(lv) => lv,
        Err(e) => {
            cap.error = Some(e.to_string());
            return cap;
        }
    };
    match lv.capabilities() {
        Ok(c) => cap.capabilities = Some(c),
        Err(e) => cap.errors.push(e.to_string()),
    }
    for virttype in ["kvm", "qemu"] {
        match lv.domain_capabilities(virttype) {
            Ok(x) => {
                cap.domain_capabilities.insert(virttype.to_string(), x);
            }
            Err(e) => cap.errors.push(e.to_string()),
        }
    }
    let domains = match lv.domains() {
        Ok(d) => d,
        Err(e) => {
            cap.errors.push(e.to_string());
            return cap;
        }
    };
    cap.domains = capture_domains(&lv, domains);
    cap
}

/// Each domain's XML. A domain that vanished since it was listed keeps its entry, with
/// libvirt's error naming it, and the others are still captured.
pub fn capture_domains(
    lv: &Libvirt,
    domains: Vec<kvmtune_libvirt::DomainRef>,
) -> Vec<BundleDomain> {
    let mut out = Vec::with_capacity(domains.len());
    for d in domains {
        let mut entry = BundleDomain {
            name: d.name.clone(),
            uuid: d.uuid.clone(),
            active: d.active,
            id: d.id,
            inactive_xml: None,
            live_xml: None,
            errors: Vec::new(),
        };
        match lv.domain_xml(&d.name, true) {
            Ok(x) => entry.inactive_xml = Some(x),
            Err(e) => entry.errors.push(e.to_string()),
        }
        if d.active {
            match lv.domain_xml(&d.name, false) {
                Ok(x) => entry.live_xml = Some(x),
                Err(e) => entry.errors.push(e.to_string()),
            }
        }
        out.push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, xml: Option<&str>) -> BundleDomain {
        BundleDomain {
            name: name.into(),
            uuid: String::new(),
            active: false,
            id: None,
            inactive_xml: xml.map(str::to_string),
            live_xml: None,
            errors: match xml {
                None => vec![format!("domain {name}: Domain not found")],
                Some(_) => vec![],
            },
        }
    }

    #[test]
    fn a_domain_that_vanished_is_an_error_line_and_the_rest_is_gathered() {
        let cap = LibvirtCapture {
            domains: vec![
                entry("a", Some("<domain><name>a</name></domain>")),
                entry("gone", None),
            ],
            ..LibvirtCapture::default()
        };
        let mut errors = Vec::new();
        let raw = from_capture(&cap, &[], true, "libvirt", &mut errors).unwrap();
        assert_eq!(raw.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("libvirt:gone") && errors[0].contains("Domain not found"),
            "{errors:?}"
        );
        let err = from_capture(&cap, &["nope"], false, "libvirt", &mut errors).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn files_are_read_once_and_bad_ones_are_error_lines() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good.xml");
        std::fs::write(
            &good,
            "<domain type='kvm'><name>g</name><memory>1024</memory><vcpu>1</vcpu></domain>",
        )
        .unwrap();
        let bad = d.path().join("bad.xml");
        std::fs::write(&bad, "<domain><name>b</name>").unwrap();
        let missing = d.path().join("missing.xml");
        let sel = Select {
            targets: [&good, &bad, &missing]
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            ..Select::default()
        };
        let inv = Inventory::gather(&Origin::local("test:///default"), &sel).unwrap();
        assert_eq!(inv.domains.len(), 1);
        assert_eq!(inv.domains[0].domain.name, "g");
        assert!(inv.domain("g").is_some());
        assert_eq!(inv.errors.len(), 2, "{:?}", inv.errors);
        assert!(
            inv.host.is_none(),
            "files are not judged against this host unless asked"
        );
        assert!(inv.clone().strict().is_err());
    }

    /// Against the lab's real libvirtd: a listed domain that is gone by the time its XML is
    /// read (what a domain undefined mid-capture looks like) keeps an entry with an error
    /// naming it, and the real domains around it are captured whole.
    #[test]
    fn a_domain_that_vanished_mid_capture_is_noted_and_the_rest_captured() {
        if !std::path::Path::new("/run/libvirt/libvirt-sock").exists() {
            assert!(
                std::env::var("KVMTUNE_REQUIRE_LAB").ok().as_deref() != Some("1"),
                "libvirtd required in CI"
            );
            eprintln!("skipped: libvirtd not running");
            return;
        }
        let lv = Libvirt::open("qemu:///system", false).unwrap();
        let mut list = lv.domains().unwrap();
        assert!(!list.is_empty(), "the lab defines domains");
        let ghost = kvmtune_libvirt::DomainRef {
            state: String::new(),
            name: "kvmtune-vanished-domain".into(),
            uuid: "00000000-0000-0000-0000-00000000dead".into(),
            active: true,
            id: Some(9999),
        };
        list.insert(0, ghost);
        let got = capture_domains(&lv, list);
        let g = &got[0];
        assert!(g.inactive_xml.is_none() && g.live_xml.is_none());
        assert_eq!(g.errors.len(), 2, "{:?}", g.errors);
        assert!(
            g.errors[0].contains("kvmtune-vanished-domain"),
            "{}",
            g.errors[0]
        );
        for d in &got[1..] {
            assert!(d.errors.is_empty(), "{}: {:?}", d.name, d.errors);
            assert!(d.inactive_xml.is_some());
            assert_eq!(d.live_xml.is_some(), d.active);
        }
    }

    #[test]
    fn a_remote_connection_is_not_judged_with_this_machines_facts() {
        // nothing listens there: the facts of the named host cannot be read, and this
        // machine's are never used instead, for its domains or for files with --host
        let remote = Origin::local("qemu+tcp://127.0.0.59/system");
        assert!(remote.is_remote());
        let e = remote.host_facts().unwrap_err().to_string();
        assert!(e.contains("127.0.0.59"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("vm.xml");
        std::fs::write(
            &f,
            "<domain type='kvm'><name>vm</name><memory>1048576</memory></domain>",
        )
        .unwrap();
        let sel = Select {
            targets: vec![f.display().to_string()],
            host_for_files: true,
            ..Select::default()
        };
        assert!(Inventory::gather(&remote, &sel).is_err());
        // its own tree is its facts; a local URI is this machine
        let with_tree = Origin {
            root: Some("/srv/db7-tree".into()),
            ..remote.clone()
        };
        assert!(!with_tree.is_remote());
        assert!(!Origin::local("qemu:///system").is_remote());
    }

    #[test]
    fn a_root_that_is_not_a_directory_is_refused() {
        let o = Origin {
            connect: "test:///default".into(),
            root: Some("/nonexistent-kvmtune-root".into()),
            from: None,
        };
        let e = o
            .host_source()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("/nonexistent-kvmtune-root"), "{e}");
    }
}
