//! How a journal entry stands, for `kvmtune history` and `kvmtune rollback --last`.

use std::fmt;

use serde::Serialize;

use super::{Journal, JournalError, Status};

/// How an entry stands: how its apply ended, whether it was rolled back since, or that it
/// cannot be read. Serialized (and shown) as `applied`, `failed`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryStatus {
    /// Every step made and verified.
    Applied,
    /// A step or a verification failed; everything was rolled back.
    Failed,
    /// A step failed and the automatic rollback did not complete either.
    FailedRollbackIncomplete,
    /// No outcome and nobody holds the lock: the apply stopped (a crash, a second
    /// signal) part way; `kvmtune rollback` restores the state before it.
    Interrupted,
    /// A signal stopped the apply, and what it had done was rolled back.
    InterruptedRolledBack,
    /// A domain's stored XML changed during the apply; it stopped and was rolled back.
    Conflict,
    /// No outcome yet and the lock is held: an apply is running.
    InProgress,
    /// `kvmtune rollback` restored it.
    RolledBack,
    /// `kvmtune rollback` ran and did not complete.
    RollbackIncomplete,
    /// The entry (or its outcome or rollback record) cannot be read.
    Corrupt,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Applied => "applied",
            EntryStatus::Failed => "failed",
            EntryStatus::FailedRollbackIncomplete => "failed-rollback-incomplete",
            EntryStatus::Interrupted => "interrupted",
            EntryStatus::InterruptedRolledBack => "interrupted-rolled-back",
            EntryStatus::Conflict => "conflict",
            EntryStatus::InProgress => "in-progress",
            EntryStatus::RolledBack => "rolled-back",
            EntryStatus::RollbackIncomplete => "rollback-incomplete",
            EntryStatus::Corrupt => "corrupt",
        }
    }
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, so that width and alignment (`{:<26}`) work as for a string
        f.pad(self.as_str())
    }
}

/// How an entry stands, for `history`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub created: Option<String>,
    pub command: Vec<String>,
    pub status: EntryStatus,
    pub domains: Vec<String>,
    pub host: Vec<String>,
    pub steps: usize,
    pub steps_done: usize,
    pub error: Option<String>,
    /// The libvirt URI the entry's changes went through (`rollback` uses it).
    pub uri: String,
}

impl Journal {
    /// How an entry stands. `running` says whether the lock is held by someone now.
    pub fn describe(&self, id: &str, running: bool) -> Listed {
        let mut l = Listed {
            id: id.to_string(),
            created: None,
            command: Vec::new(),
            status: EntryStatus::Corrupt,
            domains: Vec::new(),
            host: Vec::new(),
            steps: 0,
            steps_done: 0,
            error: None,
            uri: String::new(),
        };
        let entry = match self.load(id) {
            Ok(e) => e,
            Err(e) => {
                l.status = EntryStatus::Corrupt;
                l.error = Some(e.to_string());
                return l;
            }
        };
        l.created = Some(entry.created.clone());
        l.uri = entry.uri.clone();
        l.command = entry.command.clone();
        l.domains = entry.domains.iter().map(|d| d.name.clone()).collect();
        l.host = entry.host.iter().map(|h| h.key.clone()).collect();
        l.steps = entry.steps.len();
        l.steps_done = self.progress(id).1;
        let outcome = self.outcome(id);
        let rb = self.rollback_record(id);
        l.status = match (&outcome, &rb) {
            (Err(e), _) | (_, Err(e)) => {
                l.error = Some(e.to_string());
                EntryStatus::Corrupt
            }
            (_, Ok(Some(r))) => {
                if !r.ok {
                    l.error = Some(r.errors.join("; "));
                }
                if r.ok {
                    EntryStatus::RolledBack
                } else {
                    EntryStatus::RollbackIncomplete
                }
            }
            (Ok(Some(o)), Ok(None)) => {
                l.error.clone_from(&o.error);
                match o.status {
                    Status::Applied => EntryStatus::Applied,
                    Status::Failed => EntryStatus::Failed,
                    Status::FailedRollbackIncomplete => EntryStatus::FailedRollbackIncomplete,
                    Status::Interrupted => EntryStatus::InterruptedRolledBack,
                    Status::Conflict => EntryStatus::Conflict,
                }
            }
            (Ok(None), Ok(None)) => {
                if running {
                    EntryStatus::InProgress
                } else {
                    EntryStatus::Interrupted
                }
            }
        };
        l
    }

    /// Whether some process holds the lock now.
    pub fn busy(&self) -> bool {
        // no lock file, no holder: and a reader must not create one
        if !self.dir.join("lock").exists() {
            return false;
        }
        match self.lock() {
            Ok(_) => false,
            Err(JournalError::Locked(_)) => true,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [EntryStatus; 10] = [
        EntryStatus::Applied,
        EntryStatus::Failed,
        EntryStatus::FailedRollbackIncomplete,
        EntryStatus::Interrupted,
        EntryStatus::InterruptedRolledBack,
        EntryStatus::Conflict,
        EntryStatus::InProgress,
        EntryStatus::RolledBack,
        EntryStatus::RollbackIncomplete,
        EntryStatus::Corrupt,
    ];

    #[test]
    fn status_serializes_and_displays_as_before() {
        let json: Vec<String> = ALL
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        assert_eq!(
            json,
            [
                "\"applied\"",
                "\"failed\"",
                "\"failed-rollback-incomplete\"",
                "\"interrupted\"",
                "\"interrupted-rolled-back\"",
                "\"conflict\"",
                "\"in-progress\"",
                "\"rolled-back\"",
                "\"rollback-incomplete\"",
                "\"corrupt\"",
            ]
        );
        for s in ALL {
            assert_eq!(format!("\"{s}\""), serde_json::to_string(&s).unwrap());
        }
        assert_eq!(format!("[{:<12}]", EntryStatus::Failed), "[failed      ]");
    }
}
