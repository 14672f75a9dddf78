//! The domain model: a lossless XML document ([`xml`]), the typed view of a libvirt domain
//! ([`model`]), edits on the document that fixes and plans are made of ([`edit`]), and
//! libvirt's domain capabilities ([`caps`]).

pub mod caps;
pub mod edit;
pub mod json_text;
pub mod model;
pub mod secrets;
pub mod xml;
pub use caps::DomainCaps;
pub use edit::{Edit, Op, Seg, Target};
pub use model::{Domain, DomainError, GuestOs, Invalid};
pub use xml::{Document, NodeId, XmlError};

/// A word quoted for a POSIX shell: left as it is when it holds only characters no shell
/// treats specially, else in single quotes (a `'` inside written as `'\''`). Every command
/// kvmtune suggests (`virsh edit NAME`, ...) quotes the domain name with it, so a name like
/// `x$(touch /tmp/p);y` is one harmless word.
pub fn shell_quote(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.,:/=@+%".contains(&b));
    if plain {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(format!("'{}'", s.replace('\'', "'\\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("web-01.prod"), "web-01.prod");
        assert_eq!(shell_quote("x$(touch /tmp/p);y"), "'x$(touch /tmp/p);y'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
