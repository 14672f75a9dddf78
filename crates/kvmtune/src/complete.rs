//! Shell completion: `kvmtune completions SHELL` prints a small script that asks kvmtune
//! itself for candidates (clap_complete's dynamic engine), and the value completers the
//! arguments of [`crate::cli`] carry.
//!
//! The shell calls `_KVMTUNE_COMPLETE=SHELL kvmtune -- WORDS...`; [`handle_env`] answers
//! before anything else runs. Completers are quiet and quick: nothing ever goes to stderr
//! (an error is no candidate), files are only read, and only domain names ask libvirt (a
//! read-only connection, given up after [`LIBVIRT_TIMEOUT`]).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Shells, Zsh};

/// The environment variable the completion scripts set. Not clap's default `COMPLETE`:
/// that name is common enough that a user's environment may hold it.
pub const ENV_VAR: &str = "_KVMTUNE_COMPLETE";

/// The shells kvmtune completes: clap_complete's, with bash's words rejoined ([`BashJoined`]).
const SHELLS: Shells<'static> = Shells(&[&BashJoined, &Elvish, &Fish, &Powershell, &Zsh]);

/// How long domain-name completion waits for libvirt.
pub const LIBVIRT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Answer a completion request and exit, when the shell made one; otherwise return.
/// `command` builds the command line's definition (`Cli::command`): passed in, so that
/// cli.rs, which names this module's completers, is not also imported by it.
pub fn handle_env(command: fn() -> clap::Command) {
    if std::env::var_os(ENV_VAR).is_none_or(|v| v.is_empty() || v == "0") {
        return;
    }
    // a completer must never print into the user's shell, not even a panic message
    std::panic::set_hook(Box::new(|_| {}));
    let done = clap_complete::CompleteEnv::with_factory(command)
        .var(ENV_VAR)
        .shells(SHELLS)
        .try_complete(std::env::args_os(), std::env::current_dir().ok().as_deref());
    match done {
        Ok(true) => std::process::exit(0),
        Ok(false) => {}
        // the shell falls back to its default completion
        Err(_) => std::process::exit(1),
    }
}

/// The script `kvmtune completions SHELL` prints: what to source (or install) for SHELL.
pub fn script(shell: clap_complete::Shell, cmd: &clap::Command) -> std::io::Result<String> {
    let name = shell.to_string();
    let Some(completer) = SHELLS.completer(&name) else {
        return Err(std::io::Error::other(format!("no completion for {name}")));
    };
    // the program the script calls: as invoked (a bare name is looked up in PATH when the
    // shell completes; a relative path is made absolute)
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kvmtune"));
    let argv0 = if argv0.components().count() > 1 && argv0.is_relative() {
        std::env::current_dir()
            .map(|d| d.join(&argv0))
            .unwrap_or(argv0)
    } else {
        argv0
    };
    let commands: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    let install = match shell {
        clap_complete::Shell::Bash => {
            "source it (`source <(kvmtune completions bash)` in ~/.bashrc), or save it as \
             /usr/share/bash-completion/completions/kvmtune"
        }
        clap_complete::Shell::Zsh => {
            "source it (`source <(kvmtune completions zsh)` in ~/.zshrc, after compinit)"
        }
        clap_complete::Shell::Fish => {
            "save it as ~/.config/fish/completions/kvmtune.fish, or run \
             `kvmtune completions fish | source`"
        }
        clap_complete::Shell::PowerShell => {
            "add `kvmtune completions powershell | Out-String | Invoke-Expression` to $PROFILE"
        }
        _ => "evaluate it in your shell's rc file",
    };
    let about = format!(
        "kvmtune completion for {name}: {install}. It asks kvmtune for the candidates: \
         commands ({}), options, rule ids, profiles, host-setting keys, fix classes, journal \
         entries and libvirt domains.",
        commands.join(", ")
    );
    let mut out: String = textwrap::wrap(
        &about,
        textwrap::Options::new(78)
            .word_separator(textwrap::WordSeparator::AsciiSpace)
            .word_splitter(textwrap::WordSplitter::NoHyphenation)
            .break_words(false),
    )
    .iter()
    .map(|l| format!("# {l}\n"))
    .collect();
    let mut buf = Vec::new();
    completer.write_registration(
        ENV_VAR,
        "kvmtune",
        "kvmtune",
        &argv0.to_string_lossy(),
        &mut buf,
    )?;
    out.push_str(&String::from_utf8_lossy(&buf));
    Ok(out)
}

// ---- bash: words split at `=` and `:` -----------------------------------------------

/// The line of clap's bash script that puts the text before the cursor in place of the
/// current word, and what kvmtune's script does instead: a lone `=` or `:` there (bash's
/// own word break, the cursor right after it) is kept, so that [`rejoin`] sees it.
const BASH_CURRENT: &str = "        words[COMP_CWORD]=\"$2\"\n";
const BASH_CURRENT_KEEP_BREAK: &str = "        if [[ -n \"$2\" || \"${words[COMP_CWORD]}\" != [=:] ]]; then\n            words[COMP_CWORD]=\"$2\"\n        fi\n";

/// clap_complete's bash support, with the words bash split at `=` and `:`
/// (`COMP_WORDBREAKS`) joined again: `--set thp.enabled=m` reaches the engine as one word,
/// and the candidates go back without the part bash keeps (`madvise`).
struct BashJoined;

impl EnvCompleter for BashJoined {
    fn name(&self) -> &'static str {
        "bash"
    }

    fn is(&self, name: &str) -> bool {
        Bash.is(name)
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let mut script = Vec::new();
        Bash.write_registration(var, name, bin, completer, &mut script)?;
        let script =
            String::from_utf8_lossy(&script).replacen(BASH_CURRENT, BASH_CURRENT_KEEP_BREAK, 1);
        buf.write_all(script.as_bytes())
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let index: usize = std::env::var("_CLAP_COMPLETE_INDEX")
            .ok()
            .and_then(|i| i.parse().ok())
            .unwrap_or_default();
        let ifs = std::env::var("_CLAP_IFS").unwrap_or_else(|_| "\n".into());
        let joined = rejoin(&args, index);
        let found = clap_complete::engine::complete(cmd, joined.words, joined.index, current_dir)?;
        let values: Vec<String> = found
            .iter()
            .filter_map(|c| {
                let v = c.get_value().to_string_lossy();
                v.strip_prefix(joined.kept.as_str()).map(str::to_string)
            })
            .collect();
        write!(buf, "{}", values.join(&ifs))
    }
}

/// Words with bash's `=`/`:` breaks joined again.
#[derive(Debug, PartialEq)]
struct Joined {
    words: Vec<OsString>,
    /// Where the word being completed is now.
    index: usize,
    /// The part of that word before bash's current word, which bash keeps.
    kept: String,
}

fn is_break(w: &OsStr) -> bool {
    let s = w.to_string_lossy();
    !s.is_empty() && s.chars().all(|c| c == '=' || c == ':')
}

/// Join each `=` or `:` word with the words on both sides (bash splits `KEY=VALUE` and
/// `qemu:///system` so), up to the word being completed (`index`; the engine reads no
/// further). The first word, the program, is never joined.
fn rejoin(words: &[OsString], index: usize) -> Joined {
    let mut out: Vec<String> = Vec::new();
    let mut new_index = index;
    let mut kept = String::new();
    let mut glue_next = false;
    for (i, w) in words.iter().enumerate().take(index.saturating_add(1)) {
        let text = w.to_string_lossy();
        let brk = is_break(w);
        let glue = out.len() >= 2 && (brk || glue_next);
        glue_next = brk && glue;
        match out.last_mut() {
            Some(last) if glue => {
                if i == index {
                    kept.clone_from(last);
                    if brk {
                        // the cursor follows the break: bash's current word is empty
                        kept.push_str(&text);
                    }
                }
                last.push_str(&text);
            }
            _ => out.push(text.into_owned()),
        }
        if i == index {
            new_index = out.len().saturating_sub(1);
        }
    }
    Joined {
        words: out.into_iter().map(OsString::from).collect(),
        index: new_index,
        kept,
    }
}

// ---- what the command line being completed says -------------------------------------

/// The words of the command line being completed (after the `--` the script passes), with
/// bash's `=`/`:` breaks joined (no other shell splits so).
fn words() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => rejoin(&args[i + 1..], usize::MAX).words,
        None => Vec::new(),
    }
}

/// The value of a long option (`--long V`, `--long=V`) or short one (`-s V`, `-sV`) in
/// `words`, the last one given.
fn option_value(words: &[OsString], long: &str, short: Option<char>) -> Option<String> {
    let long_eq = format!("{long}=");
    let mut found = None;
    let mut it = words.iter().map(|w| w.to_string_lossy());
    while let Some(w) = it.next() {
        if w == "--" {
            break;
        }
        if w == long {
            found = it.next().map(|v| v.into_owned());
        } else if let Some(v) = w.strip_prefix(&long_eq) {
            found = Some(v.to_string());
        } else if let Some(s) = short {
            let flag = format!("-{s}");
            if w == flag {
                found = it.next().map(|v| v.into_owned());
            } else if let Some(v) = w.strip_prefix(&flag)
                && !w.starts_with("--")
            {
                found = Some(v.trim_start_matches('=').to_string());
            }
        }
    }
    found.filter(|v| !v.is_empty())
}

/// The libvirt URI in use: `-c`/`--connect`, else LIBVIRT_DEFAULT_URI, else qemu:///system.
fn connect_uri(words: &[OsString]) -> String {
    option_value(words, "--connect", Some('c'))
        .or_else(|| std::env::var("LIBVIRT_DEFAULT_URI").ok())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "qemu:///system".to_string())
}

/// The journal in use: `--journal`, else KVMTUNE_JOURNAL, else the default.
fn journal_dir(words: &[OsString]) -> PathBuf {
    option_value(words, "--journal", None)
        .or_else(|| std::env::var("KVMTUNE_JOURNAL").ok())
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(kvmtune_apply::journal::DEFAULT_DIR))
}

fn starts_with(value: &str, current: &OsStr) -> bool {
    value.starts_with(current.to_string_lossy().as_ref())
}

fn candidates<'a>(
    current: &OsStr,
    values: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Vec<CompletionCandidate> {
    values
        .into_iter()
        .filter(|(v, _)| starts_with(v, current))
        .map(|(v, help)| CompletionCandidate::new(v).help(help.map(|h| h.to_string().into())))
        .collect()
}

/// Whether a word is being typed as a path (then files are offered too).
fn looks_like_path(current: &OsStr) -> bool {
    let c = current.to_string_lossy();
    c.starts_with('/') || c.starts_with('.') || c.starts_with('~') || c.contains('/')
}

// ---- libvirt domains --------------------------------------------------------------------

/// The domain names of the connection in use (running ones only with `running`), or none
/// when libvirt does not answer within [`LIBVIRT_TIMEOUT`]. Only a local URI is asked: a
/// remote one could prompt for a password in the middle of a completion.
fn domain_names(running: bool) -> Vec<String> {
    let uri = connect_uri(&words());
    if !kvmtune_libvirt::is_local(&uri) {
        return Vec::new();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    // the thread is left behind on a timeout: the completion process exits right after
    std::thread::spawn(move || {
        let names = kvmtune_libvirt::Libvirt::open(&uri, true)
            .and_then(|lv| lv.domains())
            .map(|list| {
                list.into_iter()
                    .filter(|d| !running || d.active)
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let _ = tx.send(names);
    });
    rx.recv_timeout(LIBVIRT_TIMEOUT).unwrap_or_default()
}

fn complete_domains(current: &OsStr, running: bool) -> Vec<CompletionCandidate> {
    // an option being typed: no domain name starts with '-', so libvirt is not asked
    if current.to_string_lossy().starts_with('-') {
        return Vec::new();
    }
    domain_names(running)
        .into_iter()
        .filter(|n| starts_with(n, current))
        .map(CompletionCandidate::new)
        .collect()
}

/// Every domain of the connection.
pub fn domains(current: &OsStr) -> Vec<CompletionCandidate> {
    complete_domains(current, false)
}

/// Running domains of the connection (`stat`, `top`).
pub fn running_domains(current: &OsStr) -> Vec<CompletionCandidate> {
    complete_domains(current, true)
}

/// Domain names, or files when the word looks like a path (`audit`, `plan`, `diagnose`).
pub fn domains_or_files(current: &OsStr) -> Vec<CompletionCandidate> {
    if looks_like_path(current) {
        return files(current);
    }
    let mut out = domains(current);
    out.extend(files(current));
    out
}

// ---- rules, profiles, classes ---------------------------------------------------------

/// Every rule id (audit rules, host checks, diagnosis rules), for `explain`. Read from the
/// rule tables themselves: the catalog also works out each rule's profiles, which costs
/// parsing every profile.
pub fn rule_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let audit = kvmtune_rules::audit::rules()
        .iter()
        .map(|r| (r.meta.id, Some(r.meta.title)));
    let host = kvmtune_rules::host_checks::rules()
        .iter()
        .map(|h| (h.id, Some(h.title)));
    let diag = kvmtune_kvmstat::diagnose::RULES
        .iter()
        .map(|d| (d.id, Some(d.title)));
    candidates(current, audit.chain(host).chain(diag))
}

/// Audit rule ids, for `apply --rule`.
pub fn audit_rule_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    candidates(
        current,
        kvmtune_rules::audit::rules()
            .iter()
            .map(|r| (r.meta.id, Some(r.meta.title))),
    )
}

/// Built-in profile names only (`apply --set-profile`).
pub fn builtin_profiles(current: &OsStr) -> Vec<CompletionCandidate> {
    candidates(
        current,
        kvmtune_profile::BUILTIN.iter().map(|(n, _)| (*n, None)),
    )
}

/// A profile: a built-in name, a .toml path, or (after `NAME=`) NAME=DOMAIN.
pub fn profiles(current: &OsStr) -> Vec<CompletionCandidate> {
    let text = current.to_string_lossy();
    if let Some((name, dom)) = text.split_once('=') {
        return domains(OsStr::new(dom))
            .into_iter()
            .map(|c| c.add_prefix(format!("{name}=")))
            .collect();
    }
    profile_or_file(current)
}

/// Profiles that take no NAME=DOMAIN form (`host`, `rules`).
pub fn single_profile(current: &OsStr) -> Vec<CompletionCandidate> {
    profile_or_file(current)
}

/// A built-in name, or a .toml file once the word looks like a path (or no name fits).
fn profile_or_file(current: &OsStr) -> Vec<CompletionCandidate> {
    if looks_like_path(current) {
        return toml_files(current);
    }
    let out = builtin_profiles(current);
    if out.is_empty() && !current.is_empty() {
        return toml_files(current);
    }
    out
}

fn toml_files(current: &OsStr) -> Vec<CompletionCandidate> {
    without_dot(
        PathCompleter::any()
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "toml"))
            .complete(current),
    )
}

fn files(current: &OsStr) -> Vec<CompletionCandidate> {
    without_dot(PathCompleter::any().complete(current))
}

/// Path candidates less the bare `.` offered for an empty word.
fn without_dot(mut list: Vec<CompletionCandidate>) -> Vec<CompletionCandidate> {
    list.retain(|c| c.get_value() != ".");
    list
}

/// `apply --class`.
pub fn classes(current: &OsStr) -> Vec<CompletionCandidate> {
    use kvmtune_rules::audit::FixClass;
    let mut values: Vec<(&str, Option<&str>)> = FixClass::ALL
        .iter()
        .map(|c| (c.as_str(), Some(c.meaning())))
        .collect();
    values.push(("all", Some("every class")));
    candidates(current, values)
}

/// `audit --fail-on`.
pub fn severities(current: &OsStr) -> Vec<CompletionCandidate> {
    candidates(current, [("info", None), ("warn", None), ("error", None)])
}

// ---- host settings ----------------------------------------------------------------------

/// The host-setting keys `apply --set` takes, with the values each allows (empty: a count).
const HOST_KEYS: &[(&str, &[&str])] = &[
    ("ksm.run", &["0", "1", "2"]),
    ("ksm.merge_across_nodes", &["0", "1"]),
    ("thp.enabled", &["always", "madvise", "never"]),
    (
        "thp.defrag",
        &["always", "defer", "defer+madvise", "madvise", "never"],
    ),
    ("numa_balancing", &["0", "1"]),
    ("hugepages.2M", &[]),
    ("hugepages.1G", &[]),
];

/// The NUMA nodes of this host (node0, node1, ...), read from sysfs.
fn numa_nodes() -> Vec<String> {
    let mut nodes: Vec<(u32, String)> = std::fs::read_dir("/sys/devices/system/node")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_prefix("node")?.parse::<u32>().ok()?;
                    Some((n, name))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|(_, n)| n).collect()
}

/// `apply --set KEY=VALUE`: the keys (with `=`), then the values a key allows.
pub fn host_settings(current: &OsStr) -> Vec<CompletionCandidate> {
    let text = current.to_string_lossy();
    if let Some((key, _)) = text.split_once('=') {
        let Some((_, values)) = HOST_KEYS.iter().find(|(k, _)| *k == key) else {
            return Vec::new();
        };
        let full: Vec<String> = values.iter().map(|v| format!("{key}={v}")).collect();
        return candidates(current, full.iter().map(|f| (f.as_str(), None)));
    }
    let mut keys: Vec<String> = HOST_KEYS.iter().map(|(k, _)| format!("{k}=")).collect();
    for node in numa_nodes() {
        keys.push(format!("hugepages.{node}.2M="));
        keys.push(format!("hugepages.{node}.1G="));
    }
    candidates(current, keys.iter().map(|k| (k.as_str(), None)))
}

// ---- journal ----------------------------------------------------------------------------

/// The entries of the journal in use (`history`, `rollback`), newest first. Reads the
/// directory only; a missing journal has none.
pub fn journal_entries(current: &OsStr) -> Vec<CompletionCandidate> {
    let dir = journal_dir(&words());
    let Ok(j) = kvmtune_apply::journal::Journal::existing(&dir) else {
        return Vec::new();
    };
    let Ok(mut ids) = j.entries() else {
        return Vec::new();
    };
    ids.reverse();
    let text = current.to_string_lossy();
    // `7` finds 0007-...: the number alone is an id too
    let by_number = |id: &str| {
        !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && id
                .split('-')
                .next()
                .map(|n| n.trim_start_matches('0'))
                .is_some_and(|n| n.starts_with(text.trim_start_matches('0')))
    };
    ids.into_iter()
        .filter(|id| id.starts_with(text.as_ref()) || by_number(id))
        .map(CompletionCandidate::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn option_values_in_every_spelling() {
        let uri = "qemu:///session";
        for words in [
            w(&["kvmtune", "-c", uri, "audit", ""]),
            w(&["kvmtune", "--connect", uri, "audit", ""]),
            w(&["kvmtune", "audit", "--connect=qemu:///session", ""]),
            w(&["kvmtune", "audit", "-cqemu:///session", ""]),
        ] {
            assert_eq!(connect_uri(&words), uri, "{words:?}");
        }
        assert_eq!(
            option_value(
                &w(&["kvmtune", "history", "--journal", "/tmp/j"]),
                "--journal",
                None
            ),
            Some("/tmp/j".into())
        );
        assert_eq!(
            option_value(&w(&["kvmtune", "--", "-c", "x"]), "--connect", Some('c')),
            None
        );
    }

    #[test]
    fn bash_word_breaks_are_joined_again() {
        let j = rejoin(
            &w(&["kvmtune", "apply", "--set", "thp.enabled", "=", "m"]),
            5,
        );
        assert_eq!(j.words, w(&["kvmtune", "apply", "--set", "thp.enabled=m"]));
        assert_eq!((j.index, j.kept.as_str()), (3, "thp.enabled="));
        // the cursor right after `=`: the script keeps the `=` word
        let j = rejoin(&w(&["kvmtune", "apply", "--set", "thp.enabled", "="]), 4);
        assert_eq!(j.words, w(&["kvmtune", "apply", "--set", "thp.enabled="]));
        assert_eq!((j.index, j.kept.as_str()), (3, "thp.enabled="));
        let j = rejoin(
            &w(&[
                "kvmtune",
                "--connect",
                "=",
                "qemu",
                ":",
                "///system",
                "audit",
                "x",
                "y",
            ]),
            7,
        );
        assert_eq!(
            j.words,
            w(&["kvmtune", "--connect=qemu:///system", "audit", "x"])
        );
        assert_eq!((j.index, j.kept.as_str()), (3, ""));
        let all = rejoin(
            &w(&["kvmtune", "-c", "qemu", ":", "///session", "audit"]),
            usize::MAX,
        );
        assert_eq!(connect_uri(&all.words), "qemu:///session");
    }

    #[test]
    fn rule_ids_are_the_catalog_ids() {
        let ids: Vec<String> = rule_ids(OsStr::new(""))
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        let catalog: Vec<String> = kvmtune_core::catalog::all()
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(ids, catalog);
    }

    #[test]
    fn host_setting_values_follow_their_key() {
        let v: Vec<String> = host_settings(OsStr::new("thp.enabled=m"))
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert_eq!(v, ["thp.enabled=madvise"]);
        let keys: Vec<String> = host_settings(OsStr::new("ksm"))
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert_eq!(keys, ["ksm.run=", "ksm.merge_across_nodes="]);
    }
}
