//! Rules for graphics on desktop guests: video models, video memory, SPICE streaming.

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
