//! Rules for CPU and I/O thread scheduling: SMT topology against pins, iothread pins and use, numatune modes, CPU quotas, CPU model age, invariant TSC.

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
