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

/// At most 40 characters of `s`, for error messages about garbled files.
pub(crate) fn short(s: &str) -> String {
    let t: String = s.trim().chars().take(40).collect();
    if s.trim().chars().count() > 40 {
        format!("{t}...")
    } else {
        t
    }
}
