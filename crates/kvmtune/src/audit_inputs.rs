//! Where `kvmtune audit` gets its domains, host facts and domain capabilities.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};

use crate::audit::{Context, Input, is_file_arg};
use crate::cli::{AuditArgs, Cli};
use kvmtune_bundle::LibvirtCapture;
use kvmtune_rules::audit::DomainCaps;

/// Domains of a libvirt capture (live or from a bundle), selected by name or all. A domain
/// without XML (it vanished between listing and reading, or libvirt refused) becomes an
/// error line naming it, and the others are still audited. A name that is not there at all
/// is an error.
fn from_capture(
    cap: &LibvirtCapture,
    names: &[&str],
    all: bool,
    origin: &str,
    errors: &mut Vec<String>,
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
            errors.push(format!(
                "{origin}:{}: no XML ({})",
                d.name,
                d.errors.join("; ")
            ));
            continue;
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

const NO_CAPS: &str = "none (assumptions are stated)";

/// The inputs, what they are judged against, and the inputs that could not be read (one
/// line each; the run goes on without them and exits 2).
pub fn gather(cli: &Cli, args: &AuditArgs) -> Result<(Vec<Input>, Context, Vec<String>)> {
    let (files, names): (Vec<&str>, Vec<&str>) = args
        .targets
        .iter()
        .map(String::as_str)
        .partition(|t| is_file_arg(t));
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        let text = std::fs::read(f)
            .with_context(|| format!("cannot read {f}"))
            .and_then(|b| String::from_utf8(b).with_context(|| format!("{f}: not UTF-8 text")));
        match text {
            Ok(text) => inputs.push(Input {
                origin: format!("file:{f}"),
                path: Some(f.into()),
                text,
                active: false,
            }),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let want_libvirt = args.all || !names.is_empty();
    if let Some(bundle_path) = &cli.from {
        let b = kvmtune_bundle::Bundle::read(bundle_path)?;
        let origin = format!("bundle {}", bundle_path.display());
        if want_libvirt || files.is_empty() {
            let all = args.all || names.is_empty();
            inputs.extend(from_capture(
                &b.manifest.libvirt,
                &names,
                all,
                "bundle",
                &mut errors,
            )?);
        }
        let host = kvmtune_host::collect(&b.source());
        let caps = caps_of(&b.manifest.libvirt)?;
        let caps_origin = if caps.is_empty() {
            NO_CAPS.to_string()
        } else {
            origin.clone()
        };
        let ctx = Context {
            host: Some(host),
            host_origin: origin,
            caps,
            caps_origin,
        };
        return Ok((inputs, ctx, errors));
    }
    let mut caps = BTreeMap::new();
    let mut caps_origin = NO_CAPS.to_string();
    if want_libvirt {
        let cap = crate::snapshot::capture_libvirt(&cli.connect);
        if let Some(e) = &cap.error {
            bail!("libvirt {}: {e}", cli.connect);
        }
        inputs.extend(from_capture(
            &cap,
            &names,
            args.all,
            "libvirt",
            &mut errors,
        )?);
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
        let why = "none (host rules skipped; --host judges files against this host)";
        (None, why.to_string())
    };
    Ok((
        inputs,
        Context {
            host,
            host_origin,
            caps,
            caps_origin,
        },
        errors,
    ))
}

/// Domains for commands that act on them (`apply`, `plan`): gathered and parsed like the
/// audit's, but the first input that cannot be read stops the run.
pub fn gather_parsed(
    cli: &Cli,
    targets: &[String],
    all: bool,
    profile: &str,
    host: bool,
) -> Result<(Vec<crate::audit::Parsed>, Context)> {
    let args = AuditArgs {
        targets: targets.to_vec(),
        all,
        profile: profile.to_string(),
        format: crate::cli::OutputFormat::Text,
        fail_on: None,
        host,
        fix: false,
        output: None,
        diff: false,
    };
    let (inputs, ctx, errors) = gather(cli, &args)?;
    if let Some(e) = errors.first() {
        bail!("{e}");
    }
    let (parsed, perrs) = crate::audit::parse_inputs(inputs);
    if let Some(e) = perrs.first() {
        bail!("{e}");
    }
    Ok((parsed, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmtune_bundle::BundleDomain;

    fn entry(name: &str, xml: Option<&str>) -> BundleDomain {
        BundleDomain {
            name: name.into(),
            uuid: String::new(),
            active: false,
            id: None,
            inactive_xml: xml.map(str::to_string),
            live_xml: None,
            errors: match xml {
                None => vec![format!("domain {name}: Domain not found")],
                Some(_) => vec![],
            },
        }
    }

    #[test]
    fn a_domain_that_vanished_is_an_error_line_and_the_rest_is_audited() {
        let cap = LibvirtCapture {
            domains: vec![
                entry("a", Some("<domain><name>a</name></domain>")),
                entry("gone", None),
            ],
            ..LibvirtCapture::default()
        };
        let mut errors = Vec::new();
        let inputs = from_capture(&cap, &[], true, "libvirt", &mut errors).unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("libvirt:gone") && errors[0].contains("Domain not found"),
            "{errors:?}"
        );
        let err = from_capture(&cap, &["nope"], false, "libvirt", &mut errors).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }
}
