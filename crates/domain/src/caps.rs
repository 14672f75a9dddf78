//! What the host's QEMU supports, from libvirt's domain capabilities
//! (`virConnectGetDomainCapabilities`, stored in bundles too).

use crate::{Document, XmlError};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct DomainCaps {
    /// `kvm` or `qemu`.
    pub virt_type: String,
    pub machine: Option<String>,
    pub max_vcpus: Option<u32>,
    pub iothreads: Option<bool>,
    pub host_passthrough: Option<bool>,
    pub host_model: Option<bool>,
    /// The named model host-model expands to.
    pub host_model_name: Option<String>,
    /// Custom models and whether each is usable on this host.
    pub models: Vec<(String, bool)>,
    pub hyperv: Option<bool>,
    /// The Hyper-V features libvirt lists. libvirt before 10.x lists only the ones with
    /// parameters (spinlocks, vendor_id): see [`DomainCaps::hyperv_lists_all`].
    pub hyperv_features: Vec<String>,
}

impl DomainCaps {
    pub fn parse(xml: &str) -> Result<DomainCaps, XmlError> {
        let doc = Document::parse(xml)?;
        let r = doc.root();
        let yes = |n: Option<usize>| n.and_then(|n| doc.attr(n, "supported")).map(|s| s == "yes");
        let mut c = DomainCaps {
            virt_type: doc
                .child(r, "domain")
                .map(|d| doc.text(d).trim().to_string())
                .unwrap_or_default(),
            machine: doc
                .child(r, "machine")
                .map(|d| doc.text(d).trim().to_string()),
            max_vcpus: doc
                .child(r, "vcpu")
                .and_then(|v| doc.attr(v, "max"))
                .and_then(|m| m.parse().ok()),
            iothreads: yes(doc.child(r, "iothreads")),
            ..DomainCaps::default()
        };
        if let Some(cpu) = doc.child(r, "cpu") {
            for m in doc.children(cpu, "mode") {
                let sup = doc.attr(m, "supported").map(|s| s == "yes");
                match doc.attr(m, "name") {
                    Some("host-passthrough") => c.host_passthrough = sup,
                    Some("host-model") => {
                        c.host_model = sup;
                        c.host_model_name = doc
                            .child(m, "model")
                            .map(|x| doc.text(x).trim().to_string());
                    }
                    Some("custom") => {
                        c.models = doc
                            .children(m, "model")
                            .map(|x| {
                                (
                                    doc.text(x).trim().to_string(),
                                    doc.attr(x, "usable") == Some("yes"),
                                )
                            })
                            .collect();
                    }
                    _ => {}
                }
            }
        }
        if let Some(f) = doc.child(r, "features") {
            let hv = doc.child(f, "hyperv");
            c.hyperv = yes(hv);
            c.hyperv_features = hv
                .into_iter()
                .flat_map(|h| doc.children(h, "enum").collect::<Vec<_>>())
                .filter(|&e| doc.attr(e, "name") == Some("features"))
                .flat_map(|e| {
                    doc.children(e, "value")
                        .map(|v| doc.text(v).trim().to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        Ok(c)
    }

    /// Whether the Hyper-V feature list is complete (newer libvirt lists every feature
    /// QEMU supports; older releases only those with parameters).
    pub fn hyperv_lists_all(&self) -> bool {
        self.hyperv_features.iter().any(|f| f == "relaxed")
    }

    /// Whether a custom CPU model is usable; `None` when the model is unknown.
    pub fn model_usable(&self, name: &str) -> Option<bool> {
        self.models.iter().find(|(m, _)| m == name).map(|(_, u)| *u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_models_and_hyperv() {
        let x = "<domainCapabilities><domain>kvm</domain><vcpu max='255'/><iothreads supported='yes'/>\
<cpu><mode name='host-passthrough' supported='yes'/><mode name='host-model' supported='yes'><model fallback='forbid'>EPYC-Milan</model></mode>\
<mode name='custom' supported='yes'><model usable='yes' vendor='Intel'>Nehalem</model><model usable='no'>Icelake-Server</model></mode></cpu>\
<features><hyperv supported='yes'><enum name='features'><value>spinlocks</value><value>vendor_id</value></enum></hyperv></features></domainCapabilities>";
        let c = DomainCaps::parse(x).unwrap();
        assert_eq!(c.virt_type, "kvm");
        assert_eq!(c.host_model_name.as_deref(), Some("EPYC-Milan"));
        assert_eq!(c.model_usable("Nehalem"), Some(true));
        assert_eq!(c.model_usable("Icelake-Server"), Some(false));
        assert_eq!(c.hyperv, Some(true));
        assert!(!c.hyperv_lists_all());
    }
}
