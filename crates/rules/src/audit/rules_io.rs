//! Rules for the I/O path: io modes, throttles, queue counts, balloons beside assigned devices, 1 GiB pages.

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
