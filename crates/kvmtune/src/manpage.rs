//! The man pages: `kvmtune(1)` and one `kvmtune-COMMAND(1)` per command, as git and cargo
//! have them.
//!
//! clap_mangen renders what clap knows (NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS);
//! the rest is roff written here from structured data: EXIT STATUS from each command's
//! exit-code table (parsed from the `after_help` text `--help` shows, so the two cannot
//! drift), EXAMPLES, FILES, ENVIRONMENT and SEE ALSO.

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;

use crate::cli::Cli;

/// What clap_mangen writes before every piece it renders; kept once, at the top of a page.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// The command line as the pages show it (no `help` pseudo-command).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// `kvmtune(1)`.
pub fn main_page() -> io::Result<String> {
    let cmd = command();
    page(&cmd, None)
}

/// Write kvmtune.1 and kvmtune-COMMAND.1 for every command into `dir`.
pub fn write_all(dir: &Path) -> io::Result<()> {
    let cmd = command();
    std::fs::write(dir.join("kvmtune.1"), page(&cmd, None)?)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let file = dir.join(format!("kvmtune-{}.1", sub.get_name()));
        std::fs::write(file, page(sub, Some(sub.get_name()))?)?;
    }
    Ok(())
}

/// One clap_mangen piece, without the preamble it repeats.
fn piece(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<String> {
    let mut buf = Vec::new();
    f(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(text
        .strip_prefix(PREAMBLE)
        .map(str::to_string)
        .unwrap_or(text))
}

/// A page: the main one (`sub` None) or a command's.
fn page(cmd: &clap::Command, sub: Option<&str>) -> io::Result<String> {
    let man = Man::new(cmd.clone())
        .source(format!("kvmtune {}", env!("CARGO_PKG_VERSION")))
        .manual("kvmtune Manual");
    let mut out = String::from(PREAMBLE);
    out.push_str(&piece(|w| man.render_title(w))?);
    // names, options and paths are not hyphenated; lines are filled, not stretched
    out.push_str(".nh\n.ad l\n");
    out.push_str(&piece(|w| man.render_name_section(w))?);
    out.push_str(&piece(|w| man.render_synopsis_section(w))?);
    out.push_str(&piece(|w| man.render_description_section(w))?);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        out.push_str(&piece(|w| man.render_options_section(w))?);
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        out.push_str(&piece(|w| man.render_subcommands_section(w))?);
    }
    let help = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    let exits = ExitStatus::parse(&help);
    for (title, text) in &exits.sections {
        out.push_str(&section(title));
        out.push_str(&para(text));
    }
    out.push_str(&exits.render());
    out.push_str(&examples_section(sub));
    if sub.is_none() {
        out.push_str(&files_section());
        out.push_str(&environment_section());
    }
    out.push_str(&see_also(cmd, sub));
    Ok(out)
}

// ---- roff -------------------------------------------------------------------------------

/// Text made safe for roff: backslashes escaped, no line starting as a request, and no
/// line broken inside a word at its hyphen (`--fail-on`, `kvmtune-apply`).
fn esc(text: &str) -> String {
    let t = text
        .replace('\\', "\\e")
        .split(' ')
        .map(|w| {
            if w.contains('-') {
                format!("\\%{w}")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// A command line or option as roff shows it: bold, with minus signs (`\-`).
fn code(text: &str) -> String {
    format!("\\fB{}\\fR", esc(text).replace('-', "\\-"))
}

fn section(title: &str) -> String {
    if title.contains(' ') {
        format!(".SH \"{title}\"\n")
    } else {
        format!(".SH {title}\n")
    }
}

fn para(text: &str) -> String {
    format!(".PP\n{}\n", esc(text))
}

/// A tagged paragraph: `tag` (already roff) and its text.
fn item(tag: &str, text: &str) -> String {
    format!(".TP\n{tag}\n{}\n", esc(text))
}

// ---- EXIT STATUS --------------------------------------------------------------------------

/// A command's exit codes and the notes around them, as structured data.
#[derive(Debug, Default, PartialEq)]
pub struct ExitStatus {
    /// (code, meaning), in the order given.
    pub codes: Vec<(String, String)>,
    /// Paragraphs about the exit status.
    pub notes: Vec<String>,
    /// Other paragraphs of the help text that are sections of their own: (title, text).
    pub sections: Vec<(String, String)>,
}

impl ExitStatus {
    /// Read an `after_help` text: "Exit codes:", then "  N  meaning" lines (continued on
    /// lines indented deeper), then paragraphs. Hard line breaks are dropped: roff wraps.
    pub fn parse(help: &str) -> ExitStatus {
        let mut st = ExitStatus::default();
        let mut paragraphs: Vec<String> = Vec::new();
        let mut in_codes = false;
        let mut current: Option<String> = None;
        let push = |buf: &mut Option<String>, line: &str| {
            let b = buf.get_or_insert_with(String::new);
            if !b.is_empty() {
                b.push(' ');
            }
            b.push_str(line.trim());
        };
        for line in help.lines() {
            if line.trim() == "Exit codes:" {
                in_codes = true;
                continue;
            }
            if line.trim().is_empty() {
                in_codes = false;
                if let Some(p) = current.take() {
                    paragraphs.push(p);
                }
                continue;
            }
            if in_codes {
                let t = line.trim_start();
                let indent = line.len() - t.len();
                let code: String = t.chars().take_while(char::is_ascii_digit).collect();
                if !code.is_empty() && indent <= 4 {
                    let meaning = t[code.len()..].trim().to_string();
                    st.codes.push((code, meaning));
                } else if let Some((_, m)) = st.codes.last_mut() {
                    m.push(' ');
                    m.push_str(t.trim());
                }
                continue;
            }
            push(&mut current, line);
        }
        if let Some(p) = current.take() {
            paragraphs.push(p);
        }
        for p in paragraphs {
            match p.strip_prefix("Host setting keys for --set:") {
                Some(rest) => st
                    .sections
                    .push(("HOST SETTINGS".into(), format!("Keys for --set:{rest}"))),
                None => st.notes.push(p),
            }
        }
        st
    }

    fn render(&self) -> String {
        if self.codes.is_empty() && self.notes.is_empty() {
            return String::new();
        }
        let mut out = section("EXIT STATUS");
        for (code, meaning) in &self.codes {
            out.push_str(&item(&format!("\\fB{code}\\fR"), meaning));
        }
        for n in &self.notes {
            out.push_str(&para(n));
        }
        out
    }
}

// ---- EXAMPLES -----------------------------------------------------------------------------

/// (what it does, command line) for each page; `None` is the main page.
fn examples(sub: Option<&str>) -> &'static [(&'static str, &'static str)] {
    match sub {
        None => &[
            (
                "Describe the host, then judge it for low-latency guests:",
                "kvmtune host",
            ),
            ("", "kvmtune host --check --profile latency"),
            (
                "Audit every domain of the local libvirtd and print the diffs of the fixes:",
                "kvmtune audit --all --fix --diff",
            ),
            (
                "See what applying the safe fixes of one domain would change, then do it:",
                "kvmtune apply web01",
            ),
            ("", "kvmtune apply web01 --yes"),
            ("Undo the last apply:", "kvmtune rollback --last"),
            (
                "Watch the running domains, or name the causes of their overhead:",
                "kvmtune top",
            ),
            ("", "kvmtune diagnose --duration 10"),
            (
                "Install the bash completion and the man pages:",
                "kvmtune completions bash > /etc/bash_completion.d/kvmtune",
            ),
            ("", "kvmtune manpage -o /usr/local/share/man/man1"),
        ],
        Some("host") => &[
            (
                "Show the host as KVM sees it, every CPU included:",
                "kvmtune host -v",
            ),
            (
                "Judge the host for dense consolidation (exit 1 on WARN or FAIL):",
                "kvmtune host --check --profile dense",
            ),
            (
                "Judge a host captured in a support bundle:",
                "kvmtune --from host1.tar.gz host --check",
            ),
        ],
        Some("snapshot") => &[
            (
                "Write a support bundle:",
                "kvmtune snapshot -o host1.tar.gz",
            ),
            (
                "Host files only, without contacting libvirt:",
                "kvmtune snapshot --no-libvirt -o host1.tar.gz",
            ),
        ],
        Some("audit") => &[
            (
                "Audit one domain of the local libvirtd:",
                "kvmtune audit web01",
            ),
            (
                "Audit every domain, as SARIF for a code-scanning tool:",
                "kvmtune audit --all --format sarif > audit.sarif",
            ),
            (
                "Audit an XML file against this host's facts for low latency:",
                "kvmtune audit --host --profile latency vm.xml",
            ),
            (
                "Write fixed XML for every domain into a directory:",
                "kvmtune audit --all --fix -o fixed/",
            ),
            (
                "One domain with its own profile, the others with server:",
                "kvmtune audit --all -p server -p latency=rt01",
            ),
        ],
        Some("apply") => &[
            (
                "Dry run: what the safe fixes of web01 would change:",
                "kvmtune apply web01",
            ),
            (
                "Apply them, and also those that change what the guest sees:",
                "kvmtune apply web01 --class guest-visible --yes",
            ),
            (
                "Apply the fixes of one rule to every domain:",
                "kvmtune apply --all --rule disk-cache --yes",
            ),
            (
                "Turn transparent hugepages to madvise and reserve 2 MiB pages, persistently:",
                "kvmtune apply --set thp.enabled=madvise --set hugepages.2M=1024 \\\n    --persist --yes",
            ),
            (
                "Carry out a plan made by kvmtune plan:",
                "kvmtune apply --plan host.plan --yes",
            ),
        ],
        Some("plan") => &[
            (
                "Place every domain and write the plan and a map:",
                "kvmtune plan -o host.plan --svg host.svg",
            ),
            (
                "Dedicated CPUs, whole cores only, on a captured host:",
                "kvmtune --from host1.tar.gz plan --cpus dedicated --smt require",
            ),
        ],
        Some("stat") => &[
            ("Every running domain, every second:", "kvmtune stat"),
            (
                "Two domains with their vCPUs, every 5 seconds, 12 times:",
                "kvmtune stat web01 db01 --vcpus -i 5 -n 12",
            ),
            (
                "A log for kvmtune diagnose --log:",
                "kvmtune stat --json -n 60 > stat.jsonl",
            ),
        ],
        Some("top") => &[(
            "The full-screen view, sorted by KVM exits:",
            "kvmtune top --sort exits",
        )],
        Some("compare") => &[
            (
                "Record a minute before and after a change, then see whether it helped:",
                "kvmtune stat --json -n 60 > before.jsonl",
            ),
            ("", "kvmtune compare before.jsonl after.jsonl"),
            (
                "Two windows of one log (frame numbers or RFC 3339 times):",
                "kvmtune compare day.jsonl --before 1..60 --after 121..180",
            ),
            (
                "Two recorded perf kvm stat reports:",
                "kvmtune compare perf-before.txt perf-after.txt",
            ),
        ],
        Some("diagnose") => &[
            (
                "Watch the running domains for 10 seconds:",
                "kvmtune diagnose --duration 10",
            ),
            (
                "Diagnose a recorded perf kvm stat report of db01:",
                "kvmtune diagnose --perf-report perf.txt db01",
            ),
            (
                "Diagnose a kvmtune stat log:",
                "kvmtune diagnose --log stat.jsonl",
            ),
        ],
        Some("report") => &[
            (
                "One page of this host with 10 seconds of live statistics:",
                "kvmtune report -o report.html --stat-seconds 10",
            ),
            (
                "The page of a support bundle (no live statistics):",
                "kvmtune --from bundle.tar.gz report -o report.html",
            ),
            (
                "A fleet overview and one section per host:",
                "kvmtune --hosts hosts.toml report -o fleet.html",
            ),
        ],
        Some("history") => &[
            ("List the journal's entries:", "kvmtune history"),
            ("Show entry 7 with its steps:", "kvmtune history 7"),
        ],
        Some("rollback") => &[
            ("Undo the newest apply:", "kvmtune rollback --last"),
            (
                "Undo entry 7 even though a domain changed since:",
                "kvmtune rollback 7 --force",
            ),
        ],
        Some("exporter") => &[
            (
                "Serve metrics on 127.0.0.1:10126 for a local Prometheus:",
                "kvmtune exporter",
            ),
            (
                "For node_exporter's textfile collector, from a timer:",
                "kvmtune exporter --textfile /var/lib/prometheus/node-exporter",
            ),
        ],
        Some("fleet") => &[
            (
                "The table of three hosts reached over TCP and ssh:",
                "kvmtune -c qemu+tcp://h1/system -c qemu+ssh://root@h2/system fleet",
            ),
            (
                "The same from an inventory, without the audit (fastest):",
                "kvmtune --hosts hosts.toml fleet --no-audit",
            ),
        ],
        Some("rules") => &[
            ("Every rule:", "kvmtune rules"),
            (
                "Which audit rules the latency profile turns on:",
                "kvmtune rules -p latency",
            ),
        ],
        Some("explain") => &[(
            "Why and how to fix disk-cache:",
            "kvmtune explain disk-cache",
        )],
        Some("completions") => &[
            (
                "Complete kvmtune in every bash:",
                "kvmtune completions bash > /etc/bash_completion.d/kvmtune",
            ),
            (
                "In the running zsh (after compinit):",
                "source <(kvmtune completions zsh)",
            ),
            (
                "In fish:",
                "kvmtune completions fish > ~/.config/fish/completions/kvmtune.fish",
            ),
        ],
        Some("manpage") => &[
            (
                "Install every page:",
                "kvmtune manpage -o /usr/local/share/man/man1",
            ),
            (
                "Read the main page without installing it:",
                "kvmtune manpage | man -l -",
            ),
        ],
        Some(_) => &[],
    }
}

fn examples_section(sub: Option<&str>) -> String {
    let list = examples(sub);
    if list.is_empty() {
        return String::new();
    }
    let mut out = section("EXAMPLES");
    for (what, line) in list {
        if !what.is_empty() {
            out.push_str(&para(what));
        }
        out.push_str(&format!(".RS 4\n.nf\n{}\n.fi\n.RE\n", code(line)));
    }
    out
}

// ---- FILES, ENVIRONMENT, SEE ALSO ---------------------------------------------------------

fn files_section() -> String {
    let mut out = section("FILES");
    let files: [(&str, String); 5] = [
        (
            kvmtune_apply::journal::DEFAULT_DIR,
            "The journal: one directory per apply (NNNN-TIMESTAMP) holding the state before \
             it, its steps and how it ended; read by history and rollback. KVMTUNE_JOURNAL or \
             --journal chooses another."
                .into(),
        ),
        (
            kvmtune_apply::journal::HOST_LOCK,
            "Held while an apply or a rollback runs, so that only one changes the host at a \
             time."
                .into(),
        ),
        (
            kvmtune_apply::hostset::SYSCTL_FILE,
            "Written by apply --set --persist: the sysctl settings (numa_balancing) for the \
             next boot."
                .into(),
        ),
        (
            kvmtune_apply::hostset::TMPFILES_FILE,
            "Written by apply --set --persist: the sysfs settings (KSM, transparent \
             hugepages, hugepage pools) for the next boot."
                .into(),
        ),
        (
            "built-in profiles",
            format!(
                "{} are compiled in; a --profile that is a path reads a profile .toml file \
                 instead (its include = \"NAME\" inherits from a built-in one).",
                kvmtune_profile::BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    for (path, text) in files {
        let tag = if path.starts_with('/') {
            format!("\\fI{}\\fR", esc(path))
        } else {
            esc(path)
        };
        out.push_str(&item(&tag, &text));
    }
    out
}

fn environment_section() -> String {
    let mut out = section("ENVIRONMENT");
    let vars = [
        (
            "LIBVIRT_DEFAULT_URI",
            "The libvirt connection when -c/--connect is not given (default qemu:///system).",
        ),
        (
            "KVMTUNE_JOURNAL",
            "The journal directory of apply, history and rollback when --journal is not given.",
        ),
        (
            "NO_COLOR",
            "When set, text output is not coloured (unless --color always).",
        ),
        (
            "KVMTUNE_MAX_INPUT",
            "The largest input file kvmtune reads whole (domain XML, plans, journal entries, \
             reports, logs), in bytes; default 64 MiB.",
        ),
        (
            "KVMTUNE_TEST_INJECT",
            "Fault injection for kvmtune's own tests; never set it otherwise.",
        ),
        (
            crate::complete::ENV_VAR,
            "Set by the completion scripts of kvmtune completions when they ask kvmtune for \
             candidates.",
        ),
    ];
    for (var, text) in vars {
        out.push_str(&item(&format!("\\fB{}\\fR", esc(var)), text));
    }
    out
}

fn see_also(cmd: &clap::Command, sub: Option<&str>) -> String {
    let mut refs: Vec<String> = Vec::new();
    match sub {
        None => {
            for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                refs.push(format!("kvmtune-{}", s.get_name()));
            }
        }
        Some(name) => {
            refs.push("kvmtune".into());
            let related: &[&str] = match name {
                "audit" => &["apply", "explain", "rules"],
                "apply" => &["audit", "plan", "history", "rollback"],
                "plan" => &["apply"],
                "history" => &["apply", "rollback"],
                "rollback" => &["apply", "history"],
                "stat" => &["top", "diagnose"],
                "top" => &["stat", "diagnose"],
                "diagnose" => &["stat", "audit"],
                "compare" => &["stat", "diagnose"],
                "rules" => &["explain"],
                "explain" => &["rules"],
                "host" | "snapshot" => &["snapshot", "host"],
                "fleet" => &["audit", "host"],
                "exporter" => &["stat", "audit"],
                _ => &[],
            };
            refs.extend(
                related
                    .iter()
                    .filter(|r| **r != name)
                    .map(|r| format!("kvmtune-{r}")),
            );
        }
    }
    let mut all: Vec<String> = refs.iter().map(|r| format!("\\fB\\%{r}\\fR(1)")).collect();
    for other in ["virsh", "virt-host-validate", "perf-kvm", "kvm_stat"] {
        all.push(format!("\\fB\\%{other}\\fR(1)"));
    }
    format!("{}.PP\n{}\n", section("SEE ALSO"), all.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_parsed_from_the_help_text() {
        let st = ExitStatus::parse(crate::cli::APPLY_EXIT_CODES);
        let codes: Vec<&str> = st.codes.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(codes, ["0", "2", "3", "4"]);
        assert!(
            st.codes[1]
                .1
                .contains("the journal cannot be written, another apply")
        );
        assert!(!st.codes[1].1.contains("  "), "continuation lines joined");
        assert_eq!(st.sections.len(), 1);
        assert!(st.sections[0].1.contains("hugepages.nodeN.SIZE=COUNT"));
        let root = ExitStatus::parse(crate::cli::EXIT_CODES);
        assert_eq!(root.codes.len(), 5);
        assert_eq!(root.notes.len(), 1);
    }

    #[test]
    fn every_command_has_exit_codes_and_examples() {
        let cmd = command();
        for sub in cmd.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let st = ExitStatus::parse(&help);
            assert!(st.codes.len() >= 2, "{}: exit codes", sub.get_name());
            assert!(
                st.codes.iter().any(|(c, _)| c == "0"),
                "{}: exit 0",
                sub.get_name()
            );
            assert!(
                !examples(Some(sub.get_name())).is_empty(),
                "{}: examples",
                sub.get_name()
            );
        }
    }

    /// An example line fits an 80-column terminal: 7 columns of section indent, 4 more.
    #[test]
    fn examples_fit_80_columns() {
        let mut names: Vec<Option<&str>> = vec![None];
        let cmd = command();
        names.extend(cmd.get_subcommands().map(|s| Some(s.get_name())));
        for n in names {
            for (_, line) in examples(n) {
                for l in line.lines() {
                    assert!(l.len() <= 69, "{n:?}: {l}");
                }
            }
        }
    }
}
