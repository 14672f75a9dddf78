//! The guest OS: `<os>` (type, firmware, loader, direct kernel boot) and what the XML tells
//! of the guest's operating system.

use super::{Domain, owned, yes};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Os {
    #[serde(skip)]
    pub node: Option<NodeId>,
    /// `hvm`, `linux`, ...
    pub os_type: Option<String>,
    pub arch: Option<String>,
    pub machine: Option<String>,
    /// `<os firmware='efi'>`
    pub firmware: Option<String>,
    pub loader: Option<String>,
    pub loader_type: Option<String>,
    pub loader_secure: Option<bool>,
    pub kernel: Option<String>,
    pub cmdline: Option<String>,
}

/// libosinfo id parts of Linux distributions.
const LINUX_OSINFO: &[&str] = &[
    "linux",
    "fedoraproject.org",
    "redhat.com",
    "centos.org",
    "debian.org",
    "ubuntu.com",
    "suse.com",
    "opensuse.org",
    "archlinux.org",
    "gentoo.org",
    "rockylinux.org",
    "almalinux.org",
    "oracle.com/ol",
    "mageia.org",
    "mandriva.com",
    "slackware.com",
    "nixos.org",
    "voidlinux.org",
    "altlinux.org",
];

/// What the XML says about the guest OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "os", content = "because")]
pub enum GuestOs {
    Windows(String),
    Linux(String),
    Unknown,
}

impl Domain {
    /// The guest OS, as far as the XML shows it: the libosinfo id first, then Windows-only
    /// configuration (a Hyper-V enlightenment that is on, the hypervclock timer).
    pub fn guest_os(&self) -> GuestOs {
        if let Some(id) = &self.os_id {
            if id.contains("microsoft.com/win") {
                return GuestOs::Windows(format!("libosinfo id {id}"));
            }
            if LINUX_OSINFO.iter().any(|v| id.contains(v)) {
                return GuestOs::Linux(format!("libosinfo id {id}"));
            }
            return GuestOs::Unknown; // BSDs, Solaris, ...: neither rule set applies
        }
        // Hyper-V settings that are all off, or a localtime clock alone (dual-boot habits,
        // old Linux installs), say nothing of the guest
        if self.features.hyperv_node.is_some()
            && self.features.hyperv.iter().any(|f| f.state != Some(false))
        {
            return GuestOs::Windows("Hyper-V enlightenments are configured".into());
        }
        if self
            .clock
            .as_ref()
            .is_some_and(|c| c.timer("hypervclock").is_some())
        {
            return GuestOs::Windows("a hypervclock timer is configured".into());
        }
        if self.os.kernel.is_some() || self.os.os_type.as_deref() == Some("linux") {
            return GuestOs::Linux("direct kernel boot".into());
        }
        if self
            .clock
            .as_ref()
            .and_then(|c| c.timer("kvmclock"))
            .is_some_and(|t| t.present == Some(true))
        {
            return GuestOs::Linux("kvmclock is configured".into());
        }
        GuestOs::Unknown
    }
}

pub(super) fn os(doc: &Document, id: Option<NodeId>) -> Os {
    let Some(id) = id else {
        return Os::default();
    };
    let ty = doc.child(id, "type");
    let loader = doc.child(id, "loader");
    let text = |n: &str| doc.child(id, n).map(|c| doc.text(c).trim().to_string());
    Os {
        node: Some(id),
        os_type: ty.map(|t| doc.text(t).trim().to_string()),
        arch: ty.and_then(|t| owned(doc.attr(t, "arch"))),
        machine: ty.and_then(|t| owned(doc.attr(t, "machine"))),
        firmware: owned(doc.attr(id, "firmware")),
        loader: loader.map(|l| doc.text(l).trim().to_string()),
        loader_type: loader.and_then(|l| owned(doc.attr(l, "type"))),
        loader_secure: loader.and_then(|l| yes(doc.attr(l, "secure"))),
        kernel: text("kernel"),
        cmdline: text("cmdline"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libosinfo_ids_classify_the_guest() {
        let with = |id: &str| {
            let x = format!(
                "<domain><name>a</name><metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'><libosinfo:os id='{id}'/></libosinfo:libosinfo></metadata></domain>"
            );
            Domain::parse(&x).unwrap().1.guest_os()
        };
        assert!(matches!(
            with("http://microsoft.com/win/2k22"),
            GuestOs::Windows(_)
        ));
        assert!(matches!(
            with("http://debian.org/debian/12"),
            GuestOs::Linux(_)
        ));
        assert!(matches!(
            with("http://redhat.com/rhel/9.2"),
            GuestOs::Linux(_)
        ));
        assert_eq!(with("http://freebsd.org/freebsd/14.0"), GuestOs::Unknown);
    }

    #[test]
    fn windows_is_not_inferred_from_localtime_alone_nor_from_hyperv_all_off() {
        let os = |inner: &str| {
            let x = format!("<domain><name>a</name>{inner}</domain>");
            Domain::parse(&x).unwrap().1.guest_os()
        };
        assert_eq!(os("<clock offset='localtime'/>"), GuestOs::Unknown);
        assert_eq!(
            os(
                "<features><hyperv mode='custom'><relaxed state='off'/><vapic state='off'/></hyperv></features>"
            ),
            GuestOs::Unknown
        );
        assert!(matches!(
            os(
                "<features><hyperv mode='custom'><relaxed state='off'/><vapic state='on'/></hyperv></features>"
            ),
            GuestOs::Windows(_)
        ));
        assert!(matches!(
            os("<clock offset='localtime'><timer name='hypervclock' present='yes'/></clock>"),
            GuestOs::Windows(_)
        ));
    }
}
