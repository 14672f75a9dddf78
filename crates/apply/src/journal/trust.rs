//! What a journal entry may ask rollback to do. An entry is read back from disk, so it is
//! untrusted: it may only name the host settings and persistent files kvmtune writes, under
//! a normalised root, and definitions of the domains it names.

use super::{Action, Entry};
use crate::check::identity;
use crate::hostset;

/// Why a journal entry asks for something rollback must not do: write a file that is not
/// a known host setting or one of kvmtune's persistent files, under a root that is not a
/// normalised absolute path, or define a domain other than the one it names.
pub fn check_entry(e: &Entry) -> Result<(), String> {
    if !hostset::is_normal_abs(&e.root) {
        return Err(format!(
            "root {}: not a normalised absolute path",
            e.root.escape_debug()
        ));
    }
    let host_path = |key: &str, path: &str| -> Result<(), String> {
        match hostset::path_for_key(key) {
            Ok(p) if p == path => Ok(()),
            _ => Err(format!(
                "host setting {} at {}: not a setting kvmtune writes",
                key.escape_debug(),
                path.escape_debug()
            )),
        }
    };
    let file_path = |path: &str| -> Result<(), String> {
        if hostset::is_persist_file(path) {
            Ok(())
        } else {
            Err(format!(
                "file {}: not a file kvmtune writes",
                path.escape_debug()
            ))
        }
    };
    for h in &e.host {
        host_path(&h.key, &h.path)?;
    }
    for f in &e.files {
        file_path(&f.path)?;
    }
    for d in &e.domains {
        identity(&d.inactive_xml, &d.name, &d.uuid, false).map_err(|why| {
            format!(
                "domain {}: journaled definition: {why}",
                d.name.escape_debug()
            )
        })?;
    }
    for s in &e.steps {
        match &s.action {
            Action::Host(w) => host_path(&w.key, &w.path)?,
            Action::File(f) => file_path(&f.path)?,
            Action::Define { xml } => {
                let Some(d) = e.domains.iter().find(|d| d.name == s.subject) else {
                    return Err(format!(
                        "step {}: domain {} is not in the entry",
                        s.n,
                        s.subject.escape_debug()
                    ));
                };
                identity(xml, &d.name, &d.uuid, false)
                    .map_err(|why| format!("step {}: the new definition: {why}", s.n))?;
            }
            Action::Live(_) => {
                if !e.domains.iter().any(|d| d.name == s.subject) {
                    return Err(format!(
                        "step {}: domain {} is not in the entry",
                        s.n,
                        s.subject.escape_debug()
                    ));
                }
            }
        }
    }
    Ok(())
}
