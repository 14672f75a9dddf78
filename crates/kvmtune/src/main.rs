//! kvmtune: find and fix performance problems of KVM virtual machines.
//!
//! The binary is thin: each command module parses its arguments into a request, calls the
//! library (`kvmtune-core` and the crates below it) and renders the result through
//! [`output`].

mod alloc;
mod apply;
mod audit;
mod cli;
mod compare;
mod complete;
mod diagnose;
mod exporter;
mod fleet;
mod host_cmd;
mod manpage;
mod multi;
mod output;
mod plan_cmd;
mod render;
mod report;
mod rules_cmd;
mod sarif;
mod snapshot;
mod stat;
mod top;

use std::process::ExitCode;

// libvirt's C functions, loaded from libvirt.so.0 on the first connection instead of at
// start-up (`kvmtune_libvirt::dynload`)
kvmtune_libvirt::lazy_bindings!();

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};
use kvmtune_core::inventory::Origin;
pub use output::{Exit, print_text};

fn main() -> ExitCode {
    quiet_libvirt_log();
    // a shell asking for completions (the scripts of `kvmtune completions`): answer, exit
    complete::handle_env(Cli::command);
    let cli = parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        // `kvmtune ... | head`: the reader is gone, which ends any command normally
        Err(err) if output::is_broken_pipe(&err) => ExitCode::from(Exit::Clean as u8),
        Err(err) => {
            output::error(&one_line(&err));
            ExitCode::from(Exit::Error as u8)
        }
    }
}

/// libvirt's client library logs its warnings and errors on stderr by default (a TLS
/// certificate that fails validation is five lines of `virNetTLSContext...`), beside the one
/// line kvmtune prints for the same error. Unless the user asked for libvirt's log
/// (`LIBVIRT_LOG_OUTPUTS` or `LIBVIRT_DEBUG`), it goes nowhere: every libvirt error still
/// reaches kvmtune as the call's error.
fn quiet_libvirt_log() {
    if std::env::var_os("LIBVIRT_LOG_OUTPUTS").is_none()
        && std::env::var_os("LIBVIRT_DEBUG").is_none()
    {
        // SAFETY: this is the first thing `main` does: no other thread exists yet that could
        // read or write the environment at the same time (libvirt reads it later, when the
        // first connection initialises the library).
        unsafe { std::env::set_var("LIBVIRT_LOG_OUTPUTS", "4:file:/dev/null") };
    }
}

/// The command line, with `connect` set to the first `-c` URI (what single-host commands
/// use) and whether `-c` was given on the command line.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.connect = cli
        .connects
        .first()
        .cloned()
        .unwrap_or_else(|| "qemu:///system".to_string());
    cli.connect_given =
        matches.value_source("connect") == Some(clap::parser::ValueSource::CommandLine);
    cli
}

/// The error and its causes on one line; a cause whose text its parent already shows (as
/// most library errors include their source) is not repeated.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for c in err.chain() {
        let t = c.to_string();
        if line.contains(&t) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&t);
    }
    line
}

/// Where this run reads from (`-c`, `--root`, `--from`).
pub fn origin(cli: &Cli) -> Origin {
    Origin {
        connect: cli.connect.clone(),
        root: cli.root.clone(),
        from: cli.from.clone(),
    }
}

/// Where host files are read from, as chosen by --root / --from.
pub fn host_source(cli: &Cli) -> Result<Box<dyn kvmtune_host::Source>> {
    Ok(origin(cli).host_source()?)
}

pub fn use_color(cli: &Cli) -> bool {
    output::use_color(cli.color)
}

/// A JSON document whose body carries its own `kind` and `version` (older commands; new
/// code uses [`output::print_doc`]).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    output::print_json(value)
}

fn run(cli: &Cli) -> Result<Exit> {
    if let Some(hosts) = fleet::hosts(cli)? {
        let name = match &cli.command {
            Command::Host(args) => return host_cmd::run_many(cli, args, hosts),
            Command::Audit(args) => return audit::run_many(cli, args, hosts),
            Command::Fleet(args) => return fleet::run(cli, args, Some(hosts)),
            Command::Snapshot(args) => return snapshot::run_many(cli, args, hosts),
            Command::Apply(args) => return apply::run_apply_many(cli, args, hosts),
            Command::Plan(args) => return plan_cmd::run_many(cli, args, hosts),
            Command::Stat(args) => return stat::run_many(cli, args, hosts),
            Command::Diagnose(args) => return diagnose::run_many(cli, args, hosts),
            Command::Report(args) => return report::run_many(cli, args, hosts),
            Command::History(args) => return apply::run_history_many(cli, args, hosts),
            Command::Rollback(args) => return apply::run_rollback_many(cli, args, hosts),
            Command::Top(_) => "top",
            Command::Exporter(_) => "exporter",
            // commands that never talk to libvirt ignore the hosts
            Command::Rules { .. }
            | Command::Compare(_)
            | Command::Explain { .. }
            | Command::Completions { .. }
            | Command::Manpage { .. } => "",
        };
        if !name.is_empty() {
            return Err(fleet::refuse(name, hosts.len()));
        }
    }
    match &cli.command {
        Command::Fleet(args) => fleet::run(cli, args, None),
        Command::Host(args) => host_cmd::run(cli, args),
        Command::Snapshot(args) => snapshot::run(cli, args),
        Command::Audit(args) => audit::run(cli, args),
        Command::Apply(args) => apply::run_apply(cli, args),
        Command::Plan(args) => plan_cmd::run(cli, args),
        Command::Stat(args) => stat::run(cli, args),
        Command::Top(args) => top::run(cli, args),
        Command::Diagnose(args) => diagnose::run(cli, args),
        Command::Compare(args) => compare::run(cli, args),
        Command::Report(args) => report::run(cli, args),
        Command::History(args) => apply::run_history(cli, args),
        Command::Rollback(args) => apply::run_rollback(cli, args),
        Command::Exporter(args) => exporter::run(cli, args),
        Command::Rules { profile } => rules_cmd::list(cli, profile.as_deref()),
        Command::Explain { rule } => rules_cmd::explain(cli, rule),
        Command::Completions { shell } => {
            let script = complete::script(*shell, &Cli::command())
                .context("cannot write the completion script")?;
            if cli.json {
                output::print_doc(
                    "kvmtune.completions",
                    1,
                    &serde_json::json!({"shell": shell.to_string(), "script": script}),
                )?;
            } else {
                print_text(&script)?;
            }
            Ok(Exit::Clean)
        }
        Command::Manpage { out_dir } => {
            match out_dir {
                Some(dir) => {
                    kvmtune_host::fsio::create_dir(dir, 0o755)?;
                    manpage::write_all(dir).with_context(|| {
                        format!("cannot write man pages into {}", dir.display())
                    })?;
                    if cli.json {
                        output::print_doc(
                            "kvmtune.manpage",
                            1,
                            &serde_json::json!({"written_to": dir}),
                        )?;
                    }
                }
                None => {
                    let page = manpage::main_page().context("cannot render the man page")?;
                    if cli.json {
                        output::print_doc(
                            "kvmtune.manpage",
                            1,
                            &serde_json::json!({"manpage": page}),
                        )?;
                    } else {
                        print_text(&page)?;
                    }
                }
            }
            Ok(Exit::Clean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_its_parent_already_shows_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let shown = format!("cannot read x: {io}");
        #[derive(Debug)]
        struct E(String, std::io::Error);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.1)
            }
        }
        let e = anyhow::Error::new(E(shown.clone(), io)).context("audit");
        assert_eq!(one_line(&e), format!("audit: {shown}"));
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
