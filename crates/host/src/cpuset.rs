//! CPU and node lists in the kernel's and libvirt's notation: `0-7,16-23`, `0-10,^5`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A set of CPU (or NUMA node) numbers. Serialized as its list string, e.g. `"0-3,8"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuSet(BTreeSet<u32>);

/// Why a list string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CPU list {input:?}: {why}")]
pub struct CpuSetError {
    pub input: String,
    pub why: &'static str,
}

/// Lists longer than this are refused rather than allocated (a garbled `0-4294967295`).
const MAX_CPU: u32 = 1 << 16;

impl CpuSet {
    pub fn new() -> Self {
        CpuSet(BTreeSet::new())
    }

    pub fn insert(&mut self, cpu: u32) {
        self.0.insert(cpu);
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.union(&other.0).copied().collect())
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.difference(&other.0).copied().collect())
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The one CPU a list names when it is a single number (a vcpupin's usual cpuset):
    /// what [`CpuSet::parse`] reads as a set of that one CPU, found without building it.
    pub fn single(input: &str) -> Option<u32> {
        parse_num(input).filter(|&n| n < MAX_CPU)
    }

    /// Parse a list such as `0-7,16-23`, `0-10,^5` or the empty string.
    pub fn parse(input: &str) -> Result<CpuSet, CpuSetError> {
        // one CPU: the same set as below, without the splitting
        if let Some(n) = CpuSet::single(input) {
            return Ok(CpuSet(BTreeSet::from([n])));
        }
        let err = |why| CpuSetError {
            input: input.to_string(),
            why,
        };
        let mut set = BTreeSet::new();
        let mut excluded = BTreeSet::new();
        for part in input.trim().split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (negate, body) = match part.strip_prefix('^') {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            let (lo, hi) = match body.split_once('-') {
                Some((a, b)) => (parse_num(a).ok_or(err("bad number"))?, {
                    // `0-31:2` (stride) appears in some kernel parameters
                    let (end, stride) = match b.split_once(':') {
                        Some((e, s)) => (e, Some(s)),
                        None => (b, None),
                    };
                    if stride.is_some() {
                        return Err(err("strides are not supported"));
                    }
                    parse_num(end).ok_or(err("bad number"))?
                }),
                None => {
                    let n = parse_num(body).ok_or(err("bad number"))?;
                    (n, n)
                }
            };
            if lo > hi {
                return Err(err("range runs backwards"));
            }
            if hi >= MAX_CPU {
                return Err(err("CPU number too large"));
            }
            let target = if negate { &mut excluded } else { &mut set };
            target.extend(lo..=hi);
        }
        for x in excluded {
            set.remove(&x);
        }
        Ok(CpuSet(set))
    }
}

fn parse_num(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet(iter.into_iter().collect())
    }
}

impl FromStr for CpuSet {
    type Err = CpuSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CpuSet::parse(s)
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for CpuSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CpuSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CpuSet::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_cpu_is_what_parse_reads_as_one_cpu() {
        for input in [
            "0", "7", " 12 ", "65535", "65536", "", "1-2", "1,2", "^3", "x", "-1", "+1",
        ] {
            let parsed = CpuSet::parse(input).ok();
            let one = parsed
                .as_ref()
                .filter(|s| s.len() == 1 && !input.contains(['-', ',', '^']))
                .and_then(|s| s.iter().next());
            assert_eq!(CpuSet::single(input), one, "{input:?}");
        }
    }

    #[test]
    fn parses_and_prints_kernel_and_libvirt_lists() {
        let cases = [
            ("0-7,16-23", "0-7,16-23", 16),
            ("0", "0", 1),
            ("", "", 0),
            ("\n", "", 0),
            ("3,1,2", "1-3", 3),
            ("0-10,^5", "0-4,6-10", 10),
            ("1-4,^2", "1,3-4", 3),
            (" 0 , 2-3 ", "0,2-3", 3),
        ];
        for (input, printed, len) in cases {
            let set = CpuSet::parse(input).unwrap();
            assert_eq!(set.to_string(), printed, "{input:?}");
            assert_eq!(set.len(), len, "{input:?}");
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            "x",
            "1-",
            "-1",
            "5-2",
            "0-99999999",
            "1--2",
            "a,b",
            "0-3:2",
            "\u{fffd}",
        ] {
            assert!(CpuSet::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn serializes_as_a_string() {
        let set = CpuSet::parse("0-3,8").unwrap();
        assert_eq!(serde_json::to_string(&set).unwrap(), "\"0-3,8\"");
        let back: CpuSet = serde_json::from_str("\"0-3,8\"").unwrap();
        assert_eq!(back, set);
    }
}
