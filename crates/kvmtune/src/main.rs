//! kvmtune: find and fix performance problems of KVM virtual machines.

mod apply;
mod audit;
mod audit_inputs;
mod cli;
mod diagnose;
mod plan_cmd;
mod render;
mod rules_cmd;
mod sarif;
mod snapshot;
mod stat;
mod top;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use serde::Serialize;

use cli::{Cli, ColorChoice, Command};
use kvmtune_host::{RootDir, Source};
use kvmtune_rules::{Verdict, check_host};

/// Process exit codes (documented in `--help` and docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Clean = 0,
    Findings = 1,
    Error = 2,
    /// apply: a change failed and everything was rolled back
    ApplyFailed = 3,
    /// apply or rollback: the rollback did not complete
    RollbackIncomplete = 4,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            // One line: the error and its causes.
            let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
            let _ = writeln!(std::io::stderr(), "kvmtune: error: {}", chain.join(": "));
            ExitCode::from(Exit::Error as u8)
        }
    }
}

/// Where host files are read from, as chosen by --root / --from.
pub fn host_source(cli: &Cli) -> Result<Box<dyn Source>> {
    if let Some(bundle) = &cli.from {
        let b = kvmtune_bundle::Bundle::read(bundle)?;
        return Ok(Box::new(b.source()));
    }
    match &cli.root {
        Some(root) => {
            if !root.is_dir() {
                bail!("--root {}: not a directory", root.display());
            }
            Ok(Box::new(RootDir::new(root)))
        }
        None => Ok(Box::new(RootDir::live())),
    }
}

pub fn use_color(cli: &Cli) -> bool {
    match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
        }
    }
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("cannot write JSON")?;
    writeln!(out).context("cannot write to stdout")?;
    Ok(())
}

/// Write a whole file or nothing: a temporary beside it, fsync, rename.
pub fn write_file_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let r = std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.with_context(|| format!("cannot write {}", path.display()))
}

pub fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("cannot write to stdout")
}

#[derive(Serialize)]
struct CheckReport<'a> {
    kind: &'static str,
    version: u32,
    profile: &'a str,
    source: String,
    summary: Summary,
    checks: &'a [kvmtune_rules::Check],
}

#[derive(Serialize, Default)]
struct Summary {
    pass: usize,
    info: usize,
    warn: usize,
    fail: usize,
}

fn run(cli: &Cli) -> Result<Exit> {
    match &cli.command {
        Command::Host(args) => {
            let src = host_source(cli)?;
            let host = kvmtune_host::collect(src.as_ref());
            if !args.check {
                if cli.json {
                    print_json(&host)?;
                } else {
                    print_text(&render::host(
                        &host,
                        &src.describe(),
                        use_color(cli),
                        cli.verbose > 0,
                    ))?;
                }
                return Ok(Exit::Clean);
            }
            let profile = kvmtune_rules::load_profile(&args.profile)?;
            let checks = check_host(&host, &profile);
            let mut summary = Summary::default();
            for c in &checks {
                match c.verdict {
                    Verdict::Pass => summary.pass += 1,
                    Verdict::Info => summary.info += 1,
                    Verdict::Warn => summary.warn += 1,
                    Verdict::Fail => summary.fail += 1,
                }
            }
            let findings = summary.warn + summary.fail > 0;
            if cli.json {
                print_json(&CheckReport {
                    kind: "kvmtune.host-check",
                    version: 1,
                    profile: &profile.name,
                    source: src.describe(),
                    summary,
                    checks: &checks,
                })?;
            } else {
                print_text(&render::checks(
                    &checks,
                    &profile.name,
                    &src.describe(),
                    use_color(cli),
                ))?;
            }
            Ok(if findings {
                Exit::Findings
            } else {
                Exit::Clean
            })
        }
        Command::Snapshot(args) => snapshot::run(cli, args),
        Command::Audit(args) => audit::run(cli, args),
        Command::Apply(args) => apply::run_apply(cli, args),
        Command::Plan(args) => plan_cmd::run(cli, args),
        Command::Stat(args) => stat::run(cli, args),
        Command::Top(args) => top::run(cli, args),
        Command::Diagnose(args) => diagnose::run(cli, args),
        Command::History(args) => apply::run_history(cli, args),
        Command::Rollback(args) => apply::run_rollback(cli, args),
        Command::Rules { profile } => rules_cmd::list(cli.json, profile.as_deref()),
        Command::Explain { rule } => rules_cmd::explain(cli.json, rule),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "kvmtune", &mut buf);
            let script = String::from_utf8_lossy(&buf).into_owned();
            if cli.json {
                print_json(&serde_json::json!({"shell": shell.to_string(), "script": script}))?;
            } else {
                print_text(&script)?;
            }
            Ok(Exit::Clean)
        }
        Command::Manpage { out_dir } => {
            let cmd = Cli::command();
            match out_dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    clap_mangen::generate_to(cmd, dir).with_context(|| {
                        format!("cannot write man pages into {}", dir.display())
                    })?;
                    if cli.json {
                        print_json(&serde_json::json!({"written_to": dir}))?;
                    }
                }
                None => {
                    let mut buf = Vec::new();
                    clap_mangen::Man::new(cmd)
                        .render(&mut buf)
                        .context("cannot render the man page")?;
                    let page = String::from_utf8_lossy(&buf).into_owned();
                    if cli.json {
                        print_json(&serde_json::json!({"manpage": page}))?;
                    } else {
                        print_text(&page)?;
                    }
                }
            }
            Ok(Exit::Clean)
        }
    }
}
