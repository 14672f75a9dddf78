//! A one-host command run on several hosts at once (`plan`, `diagnose`, `snapshot`,
//! `rollback`, `history`): each host's command runs with `-c` that host's URI on a thread of
//! its own (at most `--parallel` at a time, each within `--host-timeout`), its output is kept
//! ([`output::capture`]) and shown grouped by host after a fleet table of the hosts; with
//! `--json` one document whose `hosts[]` carry each host's own document. `stat` streams and has
//! its own loop (`stat::run_many`); `apply` and `rollback` share one journal lock taken before
//! their hosts run (`apply::run_apply_many`, `apply::run_rollback_many`).

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Cli;
use crate::fleet::{self, Answer, Row};
use crate::output::{self, Captured, Exit, Style, print_text};
use kvmtune_core::fleet::{self as core_fleet, HostEntry, Outcome, RunOptions};

/// The JSON document of a command run on several hosts: `kvmtune.fleet-<command>`.
pub const VERSION: u32 = 1;

/// One host's run of the command.
pub struct HostRun {
    /// The fleet facts of the host (its survey), when they could be read.
    pub answer: Option<Answer>,
    /// The command's exit, or its error on one line.
    pub exit: std::result::Result<Exit, String>,
    pub out: Captured,
}

/// How the command is run on one host: `cli` is the host's own command line (its URI in
/// `connect`), `host` its inventory entry.
pub type Job = dyn Fn(&Cli, &HostEntry) -> Result<Exit> + Send + Sync;

/// The command line for one host of a multi-host run.
pub fn one_host(cli: &Cli, h: &HostEntry) -> Cli {
    let mut one = cli.clone();
    one.connect = h.uri.clone();
    one.connects = vec![h.uri.clone()];
    one.connect_given = true;
    one.hosts = None;
    one
}

/// Run `job` on every host in parallel and gather what each printed.
pub fn gather(cli: &Cli, hosts: &[HostEntry], job: Box<Job>) -> Vec<Outcome<HostRun>> {
    let opts = RunOptions {
        parallel: cli.parallel as usize,
        timeout: Duration::from_secs(cli.host_timeout),
    };
    let base = cli.clone();
    core_fleet::run(hosts, opts, move |h| {
        let one = one_host(&base, h);
        // the fleet row: what the host is (domains, CPUs, memory), no audit
        let answer = core_fleet::survey(h, &[], false).ok().map(|survey| Answer {
            source: survey.inventory.host_origin.clone(),
            survey,
            checks: None,
        });
        let (exit, out) = output::capture(|| job(&one, h));
        Ok(HostRun {
            answer,
            exit: exit.map_err(|e| crate::one_line(&e)),
            out,
        })
    })
}

/// The fleet rows of a multi-host run: a host whose survey or command failed is a failed row.
fn rows(hosts: &[HostEntry], outcomes: Vec<Outcome<HostRun>>) -> (Vec<Row>, Vec<HostRun>) {
    let mut answers = Vec::new();
    let mut runs = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(mut run) => {
                let result = match (run.answer.take(), &run.exit) {
                    (_, Err(e)) => Err(e.clone()),
                    (Some(a), Ok(_)) => Ok(a),
                    (None, Ok(_)) => Err("its host facts could not be read".to_string()),
                };
                answers.push(Outcome {
                    result,
                    elapsed: o.elapsed,
                });
                runs.push(run);
            }
            Err(e) => {
                answers.push(Outcome {
                    result: Err(e.clone()),
                    elapsed: o.elapsed,
                });
                runs.push(HostRun {
                    answer: None,
                    exit: Err(e),
                    out: Captured::default(),
                });
            }
        }
    }
    (fleet::rows(hosts, &answers), runs)
}

/// The exit of a multi-host run: 2 when no host's command ran; else the worst exit of the
/// hosts that ran, at least 1 when a host failed.
pub fn exit(runs: &[HostRun]) -> Exit {
    let ok: Vec<Exit> = runs.iter().filter_map(|r| r.exit.clone().ok()).collect();
    if ok.is_empty() {
        return Exit::Error;
    }
    let worst = ok.iter().copied().max().unwrap_or(Exit::Clean);
    if ok.len() < runs.len() {
        worst.max(Exit::Findings)
    } else {
        worst
    }
}

#[derive(Serialize)]
struct HostDoc<'a> {
    host: &'a str,
    uri: &'a str,
    ok: bool,
    exit: Option<u8>,
    error: Option<&'a str>,
    /// What the command printed on stderr (warnings, notes), one line each.
    messages: &'a [String],
    /// The host's own `--json` document (the one-host command's), else null.
    report: serde_json::Value,
}

/// Run a one-host command on several hosts and print the result; `command` names it in the
/// JSON kind (`kvmtune.fleet-<command>`).
pub fn run(cli: &Cli, hosts: Vec<HostEntry>, command: &str, job: Box<Job>) -> Result<Exit> {
    Ok(run_outcomes(cli, hosts, command, job)?.0)
}

/// [`run`], also giving each host's exit (or error) in the order of `hosts`.
pub fn run_outcomes(
    cli: &Cli,
    hosts: Vec<HostEntry>,
    command: &str,
    job: Box<Job>,
) -> Result<(Exit, Vec<std::result::Result<Exit, String>>)> {
    let outcomes = gather(cli, &hosts, job);
    let (rows, runs) = rows(&hosts, outcomes);
    let code = exit(&runs);
    if cli.json {
        let docs: Vec<HostDoc> = rows
            .iter()
            .zip(&runs)
            .map(|(row, run)| HostDoc {
                host: &row.host,
                uri: &row.uri,
                ok: run.exit.is_ok(),
                exit: run.exit.as_ref().ok().map(|e| *e as u8),
                error: run.exit.as_ref().err().map(String::as_str),
                messages: &run.out.stderr,
                report: serde_json::from_str(&run.out.stdout).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        output::print_doc(
            &format!("kvmtune.fleet-{command}"),
            VERSION,
            &serde_json::json!({
                "parallel": cli.parallel,
                "host_timeout_s": cli.host_timeout,
                "summary": fleet::summary(&rows),
                "fleet": rows,
                "hosts": docs,
            }),
        )?;
    } else {
        let style = Style::of(cli);
        let mut text = fleet::render(&rows, &style);
        for (row, run) in rows.iter().zip(&runs) {
            text.push('\n');
            text.push_str(&style.bold(&format!(
                "== {} ({}) ==",
                output::safe(&row.host),
                output::safe(&row.uri)
            )));
            text.push('\n');
            text.push_str(&run.out.stdout);
            if !run.out.stdout.is_empty() && !run.out.stdout.ends_with('\n') {
                text.push('\n');
            }
            if let Err(e) = &run.exit {
                text.push_str(&format!("error: {}\n", output::one_line(e)));
            }
        }
        print_text(&text)?;
        // each host's warnings and notes on stderr, named by host
        for (row, run) in rows.iter().zip(&runs) {
            for m in &run.out.stderr {
                output::note(&format!("{}: {m}", row.host));
            }
        }
    }
    if code == Exit::Error {
        output::error(&format!(
            "{command}: no host answered ({} tried)",
            hosts.len()
        ));
    }
    Ok((code, runs.into_iter().map(|r| r.exit).collect()))
}

/// The profiles for one host of several: the inventory's profile for the host (TOML
/// `profile`) in place of the bare NAME; NAME=DOMAIN pairs stay.
pub fn host_profiles(given: &[String], host: &kvmtune_core::fleet::HostEntry) -> Vec<String> {
    match &host.profile {
        None => given.to_vec(),
        Some(p) => {
            let mut v: Vec<String> = given.iter().filter(|x| x.contains('=')).cloned().collect();
            v.insert(0, p.clone());
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(exit: std::result::Result<Exit, String>) -> HostRun {
        HostRun {
            answer: None,
            exit,
            out: Captured::default(),
        }
    }

    #[test]
    fn exit_is_2_only_when_no_host_ran_and_a_failed_host_is_at_least_1() {
        assert_eq!(exit(&[run_with(Err("x".into()))]), Exit::Error);
        assert_eq!(
            exit(&[run_with(Ok(Exit::Clean)), run_with(Err("x".into()))]),
            Exit::Findings
        );
        assert_eq!(
            exit(&[run_with(Ok(Exit::Clean)), run_with(Ok(Exit::Clean))]),
            Exit::Clean
        );
        assert_eq!(
            exit(&[run_with(Ok(Exit::ApplyFailed)), run_with(Err("x".into()))]),
            Exit::ApplyFailed
        );
    }

    #[test]
    fn a_host_profile_replaces_the_bare_name_and_keeps_the_pairs() {
        let mut h = HostEntry::uri("qemu+tcp://h/system");
        let given = vec!["server".to_string(), "desktop=vm1".to_string()];
        assert_eq!(host_profiles(&given, &h), given);
        h.profile = Some("latency".into());
        assert_eq!(host_profiles(&given, &h), ["latency", "desktop=vm1"]);
    }

    #[test]
    fn output_is_captured_per_thread() {
        let ((), cap) = output::capture(|| {
            let _ = print_text("hello\n");
            output::warning("careful");
        });
        assert_eq!(cap.stdout, "hello\n");
        assert_eq!(cap.stderr, ["warning: careful"]);
    }
}
