//! kvmtune's judgement. Pure functions of the models: no I/O.
//!
//! - [`profile`]: scenario profiles (server, latency, dense, desktop, migratable) as data.
//! - [`host_checks`]: the host checks of `kvmtune host --check`.

pub mod host_checks;
pub mod profile;

pub use host_checks::{Check, Verdict, check_host};
pub use profile::{Profile, ProfileError};
pub mod audit;
