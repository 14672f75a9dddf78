//! Reading context: turns read and parse failures into [`Unknown`] entries.

use crate::model::Unknown;
use crate::source::{ReadError, Source};

pub(crate) struct Ctx<'a> {
    pub src: &'a dyn Source,
    unknown: Vec<Unknown>,
}

impl<'a> Ctx<'a> {
    pub fn new(src: &'a dyn Source) -> Self {
        Ctx {
            src,
            unknown: Vec::new(),
        }
    }

    pub fn into_unknown(self) -> Vec<Unknown> {
        self.unknown
    }

    /// Note that `field` is unknown because of `err`.
    pub fn fail(&mut self, field: &str, err: &ReadError) {
        self.unknown.push(Unknown {
            field: field.to_string(),
            path: err.path.clone(),
            error: err.kind.to_string(),
        });
    }

    /// The trimmed text of a file that should exist; any failure is recorded.
    pub fn value(&mut self, field: &str, path: &str) -> Option<String> {
        match self.src.read_value(path) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(field, &e);
                None
            }
        }
    }

    /// The trimmed text of a file that may legitimately be absent: absence is silent,
    /// other failures (permission, garbled bytes) are recorded.
    pub fn optional(&mut self, field: &str, path: &str) -> Option<String> {
        match self.src.read_value(path) {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.fail(field, &e);
                None
            }
        }
    }

    /// The full text of a file that should exist.
    pub fn text(&mut self, field: &str, path: &str) -> Option<String> {
        match self.src.read_text(path) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(field, &e);
                None
            }
        }
    }

    /// Parse a value with `f`; a parse failure is recorded naming the path.
    pub fn parse<T>(
        &mut self,
        field: &str,
        path: &str,
        raw: Option<String>,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = raw?;
        match f(&raw) {
            Ok(v) => Some(v),
            Err(why) => {
                self.fail(field, &ReadError::parse(path, why));
                None
            }
        }
    }

    /// A directory listing that may be absent: absence gives an empty list silently.
    pub fn list_optional(&mut self, field: &str, path: &str) -> Vec<String> {
        match self.src.list(path) {
            Ok(v) => v,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => {
                self.fail(field, &e);
                Vec::new()
            }
        }
    }
}

/// Parse an unsigned integer, naming the offending text.
pub(crate) fn uint(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("not a number: {:?}", short(s)))
}

/// A short safe excerpt of garbled file content for error messages: at most
/// [`EXCERPT`] characters, and only up to the first character outside a plain set
/// (letters, digits, ` _.,+-/[]()%=`), with `...` when cut. A host file may be anything
/// (a captured tree is untrusted): a message must not echo a password hash or other
/// secret, so `$`, `:`, quotes and control characters end the excerpt.
pub(crate) fn short(s: &str) -> String {
    let t = s.trim();
    let safe = |c: char| c.is_ascii_alphanumeric() || " _.,+-/[]()%=".contains(c);
    let kept: String = t.chars().take_while(|&c| safe(c)).take(EXCERPT).collect();
    if kept.len() < t.len() {
        format!("{kept}...")
    } else {
        kept
    }
}

/// How many characters of garbled content an error message shows at most.
pub(crate) const EXCERPT: usize = 12;

/// A CPU list error without the list itself (it may be anything): why, and a safe
/// excerpt.
pub(crate) fn cpuset_error(e: &crate::cpuset::CpuSetError) -> String {
    format!("invalid CPU list {:?}: {}", short(&e.input), e.why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_stop_before_secrets() {
        assert_eq!(short("  12x  "), "12x");
        assert_eq!(short("0-7,zz,16-"), "0-7,zz,16-");
        assert_eq!(short("always [madvise] never"), "always [madv...");
        assert_eq!(short("$6$rounds=5000$salt$hash"), "...");
        assert_eq!(short("root:$6$salt$hash:19000:0"), "root...");
        assert_eq!(short("x\x1b]0;evil"), "x...");
        assert_eq!(uint("$y$j9T$abc").unwrap_err(), "not a number: \"...\"");
    }
}
