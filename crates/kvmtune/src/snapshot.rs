//! `kvmtune snapshot`: capture a host and its libvirt domains into a support bundle.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use kvmtune_bundle::{Bundle, BundleDomain, LibvirtCapture};
use kvmtune_host::{Recorder, RootDir, Source};
use kvmtune_libvirt::Libvirt;

use crate::cli::{Cli, SnapshotArgs};
use crate::{Exit, print_json, print_text};

#[derive(Serialize)]
struct SnapshotReport<'a> {
    kind: &'static str,
    version: u32,
    path: String,
    origin: &'a str,
    host_files: usize,
    unknown_fields: usize,
    libvirt_uri: Option<&'a str>,
    libvirt_error: Option<&'a str>,
    libvirt_errors: &'a [String],
    domains: Vec<&'a str>,
    running: usize,
}

/// Read what libvirt knows. A failure of one call is recorded and the rest goes on; a
/// domain that vanishes mid-capture is noted in its entry.
fn capture_libvirt(uri: &str) -> LibvirtCapture {
    let mut cap = LibvirtCapture {
        uri: Some(uri.to_string()),
        ..LibvirtCapture::default()
    };
    let lv = match Libvirt::open(uri, false).or_else(|_| Libvirt::open(uri, true)) {
        Ok(lv) => lv,
        Err(e) => {
            cap.error = Some(e.to_string());
            return cap;
        }
    };
    match lv.capabilities() {
        Ok(c) => cap.capabilities = Some(c),
        Err(e) => cap.errors.push(e.to_string()),
    }
    for virttype in ["kvm", "qemu"] {
        match lv.domain_capabilities(virttype) {
            Ok(x) => {
                cap.domain_capabilities.insert(virttype.to_string(), x);
            }
            Err(e) => cap.errors.push(e.to_string()),
        }
    }
    let domains = match lv.domains() {
        Ok(d) => d,
        Err(e) => {
            cap.errors.push(e.to_string());
            return cap;
        }
    };
    for d in domains {
        let mut entry = BundleDomain {
            name: d.name.clone(),
            uuid: d.uuid.clone(),
            active: d.active,
            id: d.id,
            inactive_xml: None,
            live_xml: None,
            errors: Vec::new(),
        };
        match lv.domain_xml(&d.name, true) {
            Ok(x) => entry.inactive_xml = Some(x),
            Err(e) => entry.errors.push(e.to_string()),
        }
        if d.active {
            match lv.domain_xml(&d.name, false) {
                Ok(x) => entry.live_xml = Some(x),
                Err(e) => entry.errors.push(e.to_string()),
            }
        }
        cap.domains.push(entry);
    }
    cap
}

pub fn run(cli: &Cli, args: &SnapshotArgs) -> Result<Exit> {
    if cli.from.is_some() {
        bail!("snapshot captures a host; it cannot read from a bundle (--from)");
    }
    let base = match &cli.root {
        Some(r) => {
            if !r.is_dir() {
                bail!("--root {}: not a directory", r.display());
            }
            RootDir::new(r)
        }
        None => RootDir::live(),
    };
    let origin = base.describe();
    let rec = Recorder::new(base);
    let host = kvmtune_host::collect(&rec);
    let host_json =
        serde_json::to_string_pretty(&host).context("cannot serialize the host view")?;
    let libvirt = if args.no_libvirt {
        LibvirtCapture {
            error: Some("not captured (--no-libvirt)".into()),
            ..LibvirtCapture::default()
        }
    } else {
        capture_libvirt(&cli.connect)
    };
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let bundle = Bundle::new(
        origin.clone(),
        rec.capture(),
        libvirt,
        Some(host_json),
        created,
    );
    bundle.write(&args.output)?;

    let lv = &bundle.manifest.libvirt;
    let report = SnapshotReport {
        kind: "kvmtune.snapshot",
        version: 1,
        path: args.output.display().to_string(),
        origin: &origin,
        host_files: bundle.manifest.host_files.len(),
        unknown_fields: host.unknown.len(),
        libvirt_uri: lv.uri.as_deref(),
        libvirt_error: lv.error.as_deref(),
        libvirt_errors: &lv.errors,
        domains: lv.domains.iter().map(|d| d.name.as_str()).collect(),
        running: lv.domains.iter().filter(|d| d.active).count(),
    };
    if cli.json {
        print_json(&report)?;
    } else {
        let t = format!(
            "wrote {}: {} host files from {}, {} domains ({} running)\n",
            report.path,
            report.host_files,
            origin,
            report.domains.len(),
            report.running
        );
        // Warnings go to stderr, so stdout stays the one-line summary.
        if let Some(e) = report.libvirt_error {
            eprintln!("kvmtune: warning: libvirt not captured: {e}");
        }
        for e in report.libvirt_errors {
            eprintln!("kvmtune: warning: libvirt: partial capture: {e}");
        }
        print_text(&t)?;
    }
    Ok(Exit::Clean)
}
