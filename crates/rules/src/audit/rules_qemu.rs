//! Rules for what libvirt does not see or the guest cannot see: qemu:commandline overrides, a hidden hypervisor CPUID bit, NIC model strings libvirt does not treat as virtio.

use super::Rule;

pub(super) fn rules() -> Vec<Rule> {
    Vec::new()
}

#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    pub(crate) fn cases() -> Vec<Case> {
        Vec::new()
    }
}
