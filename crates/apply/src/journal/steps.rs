//! Reading an entry's steps.log: `begin N` before step N, `ok N` or `fail N: why` after
//! (and `fail verify SUBJECT: why` when a verification fails).

use std::collections::BTreeMap;

use super::Journal;

/// How far a step got, by steps.log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepMark {
    /// Begun, and neither finished nor failed (the run stopped in it).
    Begun,
    /// Made.
    Done,
    /// Failed, and why.
    Failed(String),
}

impl StepMark {
    fn rank(&self) -> u8 {
        match self {
            StepMark::Begun => 0,
            StepMark::Failed(_) => 1,
            StepMark::Done => 2,
        }
    }
}

/// `N` of a line, written as the journal writes it (no sign, no leading zero).
fn step_number(s: &str) -> Option<usize> {
    s.parse::<usize>().ok().filter(|n| n.to_string() == s)
}

/// Each step's mark from the text of a steps.log. A step that is both done and failed (or
/// begun) counts as done, one failed and begun as failed; the first failure's reason is
/// kept. Lines that are not marks (a cut-off last line, a verification failure, garbage)
/// are skipped.
pub fn parse_step_marks(log: &str) -> BTreeMap<usize, StepMark> {
    let mut marks: BTreeMap<usize, StepMark> = BTreeMap::new();
    for line in log.lines() {
        let mark = if let Some(n) = line.strip_prefix("begin ").and_then(step_number) {
            (n, StepMark::Begun)
        } else if let Some(n) = line.strip_prefix("ok ").and_then(step_number) {
            (n, StepMark::Done)
        } else if let Some((n, why)) = line
            .strip_prefix("fail ")
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(n, why)| Some((step_number(n)?, why)))
        {
            let why = why.strip_prefix(' ').unwrap_or(why);
            (n, StepMark::Failed(why.to_string()))
        } else {
            continue;
        };
        match marks.get(&mark.0) {
            Some(old) if old.rank() >= mark.1.rank() => {}
            _ => {
                marks.insert(mark.0, mark.1);
            }
        }
    }
    marks
}

impl Journal {
    /// An entry's steps.log as written (empty when it cannot be read). It is untrusted
    /// input like the rest of the entry: a regular file under the input cap, never a FIFO
    /// or a device (`/dev/zero` would never end).
    pub fn steps_log(&self, id: &str) -> String {
        let path = self.dir.join(id).join("steps.log");
        kvmtune_host::fsio::read_input_text(&path).unwrap_or_default()
    }

    /// Each step's mark, by step number (see [`parse_step_marks`]).
    pub fn step_marks(&self, id: &str) -> BTreeMap<usize, StepMark> {
        parse_step_marks(&self.steps_log(id))
    }

    /// Steps begun and steps finished, from steps.log.
    pub fn progress(&self, id: &str) -> (usize, usize) {
        let text = self.steps_log(id);
        let begun = text.lines().filter(|l| l.starts_with("begin ")).count();
        let done = text.lines().filter(|l| l.starts_with("ok ")).count();
        (begun, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_log() {
        let m = parse_step_marks("begin 1\nok 1\nbegin 2\nok 2\nbegin 3\nfail 3: no\n");
        assert_eq!(
            m,
            BTreeMap::from([
                (1, StepMark::Done),
                (2, StepMark::Done),
                (3, StepMark::Failed("no".into())),
            ])
        );
    }

    #[test]
    fn a_cut_off_last_line_is_skipped() {
        let m = parse_step_marks("begin 1\nok 1\nbegin 2\nok");
        assert_eq!(
            m,
            BTreeMap::from([(1, StepMark::Done), (2, StepMark::Begun)])
        );
        let m = parse_step_marks("begin 1\nfail 1");
        assert_eq!(m, BTreeMap::from([(1, StepMark::Begun)]));
        assert!(parse_step_marks("").is_empty());
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let m = parse_step_marks(
            "begin x\nok -1\nok +2\nok 02\nbegin 1 \nfail verify a: libvirt reports 1 vCPUs\n\
             \u{0}\u{1}\nbegin 4\r\n",
        );
        assert_eq!(m, BTreeMap::from([(4, StepMark::Begun)]));
    }

    #[test]
    fn a_fail_message_keeps_its_colons() {
        let m = parse_step_marks(
            "begin 2\nfail 2: libvirt: pin vCPU 1: Invalid argument: cpu 9\nok 1\n",
        );
        assert_eq!(
            m[&2],
            StepMark::Failed("libvirt: pin vCPU 1: Invalid argument: cpu 9".into())
        );
        assert_eq!(m[&1], StepMark::Done);
        // done wins over failed whatever the order, failed over begun
        let m = parse_step_marks("ok 1\nfail 1: x\nfail 2: y\nbegin 2\nfail 2: z\n");
        assert_eq!(m[&1], StepMark::Done);
        assert_eq!(m[&2], StepMark::Failed("y".into()));
    }
}
