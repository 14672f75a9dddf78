//! libvirt access for kvmtune, through the `virt` crate (no `virsh` subprocess).
//!
//! This first cut covers what support bundles need: capabilities, domain capabilities and
//! every domain's inactive and live XML.

use serde::{Deserialize, Serialize};
use virt::connect::Connect;
use virt::sys;

/// A failed libvirt call: what kvmtune tried and libvirt's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("libvirt: {op}: {message}")]
pub struct LibvirtError {
    pub op: String,
    pub message: String,
}

impl LibvirtError {
    fn new(op: impl Into<String>, err: &virt::error::Error) -> Self {
        LibvirtError {
            op: op.into(),
            message: err.message().to_string(),
        }
    }
}

/// One domain as listed by the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRef {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    /// The libvirt domain id of a running domain.
    pub id: Option<u32>,
}

/// An open libvirt connection.
pub struct Libvirt {
    conn: Connect,
    uri: String,
}

impl Libvirt {
    /// Open `uri` (e.g. `qemu:///system`, `qemu+ssh://host/system`).
    pub fn open(uri: &str, read_only: bool) -> Result<Libvirt, LibvirtError> {
        // libvirt's default handler prints every error to stderr; kvmtune reports its own.
        virt::error::clear_error_callback();
        let conn = if read_only {
            Connect::open_read_only(Some(uri))
        } else {
            Connect::open(Some(uri))
        }
        .map_err(|e| LibvirtError::new(format!("cannot connect to {uri}"), &e))?;
        Ok(Libvirt {
            conn,
            uri: uri.to_string(),
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn hostname(&self) -> Result<String, LibvirtError> {
        self.conn
            .hostname()
            .map_err(|e| LibvirtError::new("hostname", &e))
    }

    /// The host capabilities XML (`virsh capabilities`).
    pub fn capabilities(&self) -> Result<String, LibvirtError> {
        self.conn
            .capabilities()
            .map_err(|e| LibvirtError::new("capabilities", &e))
    }

    /// Domain capabilities XML for a virtualization type (`kvm` or `qemu`), with libvirt's
    /// default emulator, architecture and machine type.
    pub fn domain_capabilities(&self, virttype: &str) -> Result<String, LibvirtError> {
        self.conn
            .domain_capabilities(None, None, None, Some(virttype), 0)
            .map_err(|e| LibvirtError::new(format!("domain capabilities ({virttype})"), &e))
    }

    /// Every domain, active and inactive, sorted by name.
    pub fn domains(&self) -> Result<Vec<DomainRef>, LibvirtError> {
        let list = self
            .conn
            .list_all_domains(0)
            .map_err(|e| LibvirtError::new("list domains", &e))?;
        let mut out = Vec::with_capacity(list.len());
        for d in list {
            let name = d.name().map_err(|e| LibvirtError::new("domain name", &e))?;
            let uuid = d
                .uuid_string()
                .map_err(|e| LibvirtError::new(format!("uuid of {name}"), &e))?;
            let active = d
                .is_active()
                .map_err(|e| LibvirtError::new(format!("state of {name}"), &e))?;
            out.push(DomainRef {
                id: if active { d.id() } else { None },
                name,
                uuid,
                active,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A domain's XML: the stored (inactive) definition, or the live one of a running domain.
    pub fn domain_xml(&self, name: &str, inactive: bool) -> Result<String, LibvirtError> {
        let what = if inactive { "inactive" } else { "live" };
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(|e| LibvirtError::new(format!("look up domain {name}"), &e))?;
        let flags = if inactive {
            sys::VIR_DOMAIN_XML_INACTIVE
        } else {
            0
        };
        dom.xml_desc(flags)
            .map_err(|e| LibvirtError::new(format!("{what} XML of {name}"), &e))
    }
}
