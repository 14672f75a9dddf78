//! Where `kvmtune audit` gets its domains, host facts and domain capabilities.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};

use crate::audit::{Context, Input, is_file_arg};
use crate::cli::{AuditArgs, Cli};
use kvmtune_bundle::LibvirtCapture;
use kvmtune_rules::audit::DomainCaps;

/// Domains of a libvirt capture (live or from a bundle), selected by name or all.
fn from_capture(
    cap: &LibvirtCapture,
    names: &[&str],
    all: bool,
    origin: &str,
) -> Result<Vec<Input>> {
    for n in names {
        if !cap.domains.iter().any(|d| d.name == *n) {
            bail!("no domain named {n} in {origin}");
        }
    }
    let mut out = Vec::new();
    for d in &cap.domains {
        if !all && !names.contains(&d.name.as_str()) {
            continue;
        }
        // audit the persistent config (what fixes edit); fall back to the live XML
        let Some(text) = d.inactive_xml.clone().or_else(|| d.live_xml.clone()) else {
            bail!(
                "domain {} in {origin}: no XML ({})",
                d.name,
                d.errors.join("; ")
            );
        };
        out.push(Input {
            origin: format!("{origin}:{}", d.name),
            path: None,
            text,
            active: d.active,
        });
    }
    Ok(out)
}

fn caps_of(cap: &LibvirtCapture) -> Result<BTreeMap<String, DomainCaps>> {
    let mut m = BTreeMap::new();
    for (t, xml) in &cap.domain_capabilities {
        let c = DomainCaps::parse(xml).with_context(|| format!("domain capabilities ({t})"))?;
        m.insert(t.clone(), c);
    }
    Ok(m)
}

pub fn gather(cli: &Cli, args: &AuditArgs) -> Result<(Vec<Input>, Context)> {
    let (files, names): (Vec<&str>, Vec<&str>) = args
        .targets
        .iter()
        .map(String::as_str)
        .partition(|t| is_file_arg(t));
    let mut inputs = Vec::new();
    for f in &files {
        let text = std::fs::read(f)
            .with_context(|| format!("cannot read {f}"))
            .and_then(|b| String::from_utf8(b).with_context(|| format!("{f}: not UTF-8 text")))?;
        inputs.push(Input {
            origin: format!("file:{f}"),
            path: Some(f.into()),
            text,
            active: false,
        });
    }
    let want_libvirt = args.all || !names.is_empty();
    if let Some(bundle_path) = &cli.from {
        let b = kvmtune_bundle::Bundle::read(bundle_path)?;
        let origin = format!("bundle {}", bundle_path.display());
        if want_libvirt || files.is_empty() {
            inputs.extend(from_capture(
                &b.manifest.libvirt,
                &names,
                args.all || names.is_empty(),
                "bundle",
            )?);
        }
        let host = kvmtune_host::collect(&b.source());
        let caps = caps_of(&b.manifest.libvirt)?;
        let caps_origin = if caps.is_empty() {
            "none (assumptions are stated)".to_string()
        } else {
            origin.clone()
        };
        return Ok((
            inputs,
            Context {
                host: Some(host),
                host_origin: origin,
                caps,
                caps_origin,
            },
        ));
    }
    let mut caps = BTreeMap::new();
    let mut caps_origin = "none (assumptions are stated)".to_string();
    if want_libvirt {
        let cap = crate::snapshot::capture_libvirt(&cli.connect);
        if let Some(e) = &cap.error {
            bail!("libvirt {}: {e}", cli.connect);
        }
        inputs.extend(from_capture(&cap, &names, args.all, "libvirt")?);
        caps = caps_of(&cap)?;
        if !caps.is_empty() {
            caps_origin = format!("libvirt {}", cli.connect);
        }
    }
    // host facts: always for libvirt domains (they run here); for files only when asked
    let host_wanted = want_libvirt || args.host || cli.root.is_some();
    let (host, host_origin) = if host_wanted {
        let src = crate::host_source(cli)?;
        (Some(kvmtune_host::collect(src.as_ref())), src.describe())
    } else {
        (
            None,
            "none (host rules skipped; --host judges files against this host)".to_string(),
        )
    };
    Ok((
        inputs,
        Context {
            host,
            host_origin,
            caps,
            caps_origin,
        },
    ))
}
