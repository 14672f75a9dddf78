//! [`prepare`]: read the state and turn a request into numbered steps.

use std::collections::BTreeMap;

use super::{ApplyError, Env, Prepared, Request, canonical, dom_err};
use crate::hostset;
use crate::journal::{Action, DomainBefore, Entry, FileBefore, HostBefore, Step};
use crate::settings;
use crate::sha256;

/// Read the state and compute the steps. Changes nothing.
pub fn prepare(env: &Env, req: &Request) -> Result<Prepared, ApplyError> {
    let mut entry = Entry {
        kind: crate::journal::KIND.into(),
        version: crate::journal::VERSION,
        id: String::new(),
        created: crate::journal::now(),
        command: req.command.clone(),
        uri: env.virt.uri().to_string(),
        root: env.root.display().to_string(),
        domains: Vec::new(),
        host: Vec::new(),
        files: Vec::new(),
        steps: Vec::new(),
    };
    let mut later = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    let mut new_settings = BTreeMap::new();
    let mut steps: Vec<(String, Action)> = Vec::new();
    let listed = env.virt.list()?;
    for ch in &req.domains {
        let Some(r) = listed.iter().find(|d| d.name == ch.name) else {
            return Err(dom_err(&ch.name, "no such domain"));
        };
        let xml = env.virt.xml(&ch.name, true)?;
        let sha = sha256(&xml);
        if !ch.base_sha256.is_empty() && sha != ch.base_sha256 {
            return Err(dom_err(
                &ch.name,
                "its stored XML changed since the audit or plan was made (hash differs); \
                 audit or plan again",
            ));
        }
        let active = env.virt.is_active(&ch.name)?;
        let live_xml = if active {
            Some(env.virt.xml(&ch.name, false)?)
        } else {
            None
        };
        let affinity = match (&env.proc, active) {
            (Some(p), true) => p.pid(&ch.name).and_then(|pid| p.affinity(pid).ok()),
            _ => None,
        };
        if let Some(new) = &ch.new_inactive {
            // the new definition must be this domain's, or defining it changes another
            crate::check::identity(new, &ch.name, &r.uuid, false)
                .map_err(|why| dom_err(&ch.name, format!("the new definition: {why}")))?;
            let (Some(a), Some(b)) = (canonical(&xml), canonical(new)) else {
                return Err(dom_err(
                    &ch.name,
                    "the new definition is not well-formed XML",
                ));
            };
            if a != b {
                let s = settings::read_xml(new).map_err(|e| dom_err(&ch.name, e.to_string()))?;
                new_settings.insert(ch.name.clone(), s);
                steps.push((ch.name.clone(), Action::Define { xml: new.clone() }));
            }
        }
        let mut notes = Vec::new();
        if let (Some(target), Some(lx)) = (&ch.live_target, &live_xml) {
            let cur = settings::read_xml(lx).map_err(|e| dom_err(&ch.name, e.to_string()))?;
            let (ops, wait) = settings::live_ops(&cur, target, &env.host_cpus, affinity.as_ref());
            notes.extend(wait);
            for op in ops {
                steps.push((ch.name.clone(), Action::Live(op)));
            }
        } else if !active && ch.new_inactive.is_some() {
            // nothing runs: the new definition is what the next start uses
        } else if active && ch.live_target.is_none() && ch.new_inactive.is_some() {
            notes.push(
                "the running domain is left as it is: only its stored definition changes".into(),
            );
        }
        if !notes.is_empty() {
            later.insert(ch.name.clone(), notes);
        }
        reasons.insert(ch.name.clone(), ch.reasons.clone());
        entry.domains.push(DomainBefore {
            name: ch.name.clone(),
            uuid: r.uuid.clone(),
            active,
            inactive_sha256: sha,
            inactive_xml: xml,
            live_xml,
            affinity,
        });
    }
    for w in &req.host {
        let old = env
            .read_setting(&w.key, &w.path)
            .map_err(|e| ApplyError::Host {
                path: if env.remote {
                    w.key.clone()
                } else {
                    w.path.clone()
                },
                why: e,
            })?;
        if old != w.value {
            steps.push(("host".into(), Action::Host(w.clone())));
        }
        entry.host.push(HostBefore {
            key: w.key.clone(),
            path: w.path.clone(),
            old,
        });
    }
    if req.persist && !req.host.is_empty() && env.remote {
        return Err(ApplyError::Host {
            path: env.virt.uri().to_string(),
            why: "--persist writes files on the host: over a remote connection it cannot (run kvmtune on that host)".into(),
        });
    }
    if req.persist && !req.host.is_empty() {
        let mut olds: BTreeMap<String, Option<String>> = BTreeMap::new();
        for p in [hostset::SYSCTL_FILE, hostset::TMPFILES_FILE] {
            let old = hostset::read_file(&env.root, p).map_err(|e| ApplyError::Host {
                path: p.into(),
                why: e.to_string(),
            })?;
            olds.insert(p.to_string(), old);
        }
        let files = hostset::persist_files(&req.host, &|p| olds.get(p).cloned().flatten());
        for f in files {
            let old = olds.get(&f.path).cloned().flatten();
            if old.as_deref() != Some(f.content.as_str()) {
                entry.files.push(FileBefore {
                    path: f.path.clone(),
                    old,
                });
                steps.push(("host".into(), Action::File(f)));
            }
        }
    }
    entry.steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, (subject, action))| Step {
            n: i + 1,
            subject,
            action,
        })
        .collect();
    Ok(Prepared {
        entry,
        later,
        reasons,
        new_settings,
    })
}
