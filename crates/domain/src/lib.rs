//! The domain model: a lossless XML document ([`xml`]), the typed view of a libvirt domain
//! ([`model`]), edits on the document that fixes and plans are made of ([`edit`]), and
//! libvirt's domain capabilities ([`caps`]).

pub mod caps;
pub mod edit;
pub mod model;
pub mod secrets;
pub mod xml;
pub use caps::DomainCaps;
pub use edit::{Edit, Op, Seg, Target};
pub use model::{Domain, DomainError, GuestOs};
pub use xml::{Document, NodeId, XmlError};
