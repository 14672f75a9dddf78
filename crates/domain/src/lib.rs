pub mod model;
pub mod xml;
pub use model::{Domain, DomainError, GuestOs};
pub use xml::{Document, NodeId, XmlError};
