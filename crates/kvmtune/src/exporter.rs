//! `kvmtune exporter`: parse, hand to `kvmtune-exporter`, report.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kvmtune_exporter::{Collector, Format, Options, Scraper, TEXTFILE, encode};

use crate::cli::{Cli, ExporterArgs};
use crate::output::{self, Exit};

/// How long a scrape waits for its collection before it gets the last one: under
/// Prometheus' default scrape timeout (10 s), so that the scrape still gets an answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(8);

pub fn run(cli: &Cli, args: &ExporterArgs) -> Result<Exit> {
    if cli.root.is_some() || cli.from.is_some() {
        bail!("exporter reads a live libvirt and this host: --root and --from cannot be used");
    }
    let opts = Options {
        origin: crate::origin(cli),
        audit_interval: Duration::from_secs(args.audit_interval),
    };
    if let Some(dir) = &args.textfile {
        return textfile(cli, dir, opts);
    }
    if cli.json {
        bail!("exporter serves metrics over HTTP: --json goes only with --textfile");
    }
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if !bound.ip().is_loopback() {
        output::warning(&format!(
            "listening on {bound}, not loopback: whoever reaches it reads every domain's name, \
             findings and figures (docs/exporter.md, security)"
        ));
    }
    output::note(&format!("exporter listening on http://{bound}/metrics"));
    let scraper = Scraper::new(Collector::new(opts), SCRAPE_TIMEOUT)
        .context("cannot start the collector thread")?;
    kvmtune_exporter::http::serve(
        listener,
        kvmtune_exporter::handler(Arc::new(scraper)),
        kvmtune_exporter::http::Limits::default(),
    )
    .with_context(|| format!("serving on {bound}"))?;
    Ok(Exit::Error)
}

/// One collection into DIR/kvmtune.prom, atomically.
fn textfile(cli: &Cli, dir: &std::path::Path, opts: Options) -> Result<Exit> {
    let path = dir.join(TEXTFILE);
    let c = Collector::new(opts).collect_now();
    let text = encode(&c, Format::Text);
    // the error names the path (and refuses a FIFO, device or symlink there)
    kvmtune_host::fsio::write_atomic(&path, text.as_bytes(), 0o644)?;
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    if cli.json {
        output::print_doc(
            "kvmtune.exporter",
            1,
            &serde_json::json!({
                "textfile": path,
                "up": c.up,
                "series": series,
                "error": c.last_error,
            }),
        )?;
    } else {
        output::note(&format!("wrote {} ({series} series)", path.display()));
    }
    if !c.up {
        bail!(
            "{} written with kvmtune_up 0: {}",
            path.display(),
            c.last_error.as_deref().unwrap_or("libvirt unreachable")
        );
    }
    Ok(Exit::Clean)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_default_listen_address_is_the_documented_one() {
        let cmd = crate::cli::Cli::command();
        let sub = cmd.find_subcommand("exporter").unwrap();
        let listen = sub
            .get_arguments()
            .find(|a| a.get_id() == "listen")
            .unwrap();
        let default: Vec<_> = listen.get_default_values().iter().collect();
        assert_eq!(default.len(), 1);
        assert_eq!(
            default[0].to_str().unwrap(),
            kvmtune_exporter::default_listen()
        );
    }
}
