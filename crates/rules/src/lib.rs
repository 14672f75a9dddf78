//! kvmtune's judgement. Pure functions of the models: no I/O.
//!
//! - [`audit`]: the domain audit rules.
//! - [`host_checks`]: the host checks of `kvmtune host --check`.
//! - [`profile`]: loading a scenario profile and checking its `[rules]` table against the
//!   rules that exist (the profiles themselves are configuration, in `kvmtune-profile`).

pub mod audit;
pub mod host_checks;

pub use host_checks::{Check, HostRule, Verdict, check_host, rules as host_rules};
pub use kvmtune_profile::{Counts, Severity};
pub use profile::{Profile, ProfileError, load_profile};

pub mod profile {
    //! Profiles as the judges see them: `kvmtune-profile`'s types, and a loader that also
    //! refuses `[rules]` entries naming no rule.
    pub use kvmtune_profile::*;

    /// Load a profile (built-in name or path) and check that its `[rules]` overrides name
    /// existing audit rules.
    pub fn load_profile(name_or_path: &str) -> Result<Profile, ProfileError> {
        let profile = Profile::load(name_or_path)?;
        let unknown = crate::audit::unknown_rule_overrides(&profile);
        if !unknown.is_empty() {
            return Err(ProfileError::Invalid {
                name: name_or_path.to_string(),
                message: format!("[rules] names unknown rule(s) {}", unknown.join(", ")),
            });
        }
        Ok(profile)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_rules_override_naming_no_rule_is_refused() {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("unknown-rule.toml");
            std::fs::write(
                &f,
                "include = \"server\"\n[rules]\n\"disk-cahce\" = \"off\"\n",
            )
            .unwrap();
            let err = load_profile(f.to_str().unwrap()).unwrap_err().to_string();
            assert!(err.contains("disk-cahce"), "{err}");
            let ok = dir.path().join("known-rule.toml");
            std::fs::write(
                &ok,
                "include = \"server\"\n[rules]\n\"disk-cache\" = \"off\"\n",
            )
            .unwrap();
            assert!(load_profile(ok.to_str().unwrap()).is_ok());
        }
    }
}
