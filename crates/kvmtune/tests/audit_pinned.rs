//! `audit FILE...` over domains that pin every vCPU to one host CPU (issue 19): their
//! reports wait for the last file (`pin-overlap` compares them with all the others), yet
//! nothing of them but a few hundred bytes waits in memory, and the output is the one of
//! the whole report in memory, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

/// The four wild domains (three of them pin every vCPU), `n` copies of them in all under
/// other names in `dir`: the copies of one domain pin the same CPUs, so each pinned copy
/// overlaps the others.
fn copies(dir: &Path, n: usize) -> Vec<PathBuf> {
    let wild = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/wild-domains");
    let mut src: Vec<PathBuf> = std::fs::read_dir(&wild)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    src.sort();
    assert_eq!(src.len(), 4, "the wild domains: {src:?}");
    (0..n)
        .map(|i| {
            let from = &src[i % src.len()];
            let to = dir.join(format!(
                "{i:05}-{}",
                from.file_name().unwrap().to_string_lossy()
            ));
            std::fs::copy(from, &to).unwrap();
            to
        })
        .collect()
}

use common::{audit_files as audit, children_max_rss_kib};

#[test]
fn pinned_domains_waiting_for_the_last_file_keep_memory_flat() {
    // (the only test of this binary that waits for a child before this one's figures: getrusage
    // counts every child this process waited for)
    let dir = tempfile::tempdir().unwrap();
    let few = copies(dir.path(), 200);
    let (code, out) = audit(&["--json"], &few, None);
    assert_eq!(code, Some(1));
    let text = String::from_utf8(out).unwrap();
    // the pinned copies overlap: their reports did wait, and got pin-overlap at the end
    assert!(
        text.matches("\"rule\": \"pin-overlap\"").count() >= 150,
        "no overlap found"
    );
    let small = children_max_rss_kib();
    let more = tempfile::tempdir().unwrap();
    let many = copies(more.path(), 1200);
    let (code, _) = audit(&["--json"], &many, None);
    assert_eq!(code, Some(1));
    let large = children_max_rss_kib();
    // each pinned domain's report (about 20 KB of findings) used to stay in memory to the
    // end: 1,000 more of them (750 pinned) took about 13 MiB more; now about 4
    assert!(
        large < small + 8 * 1024,
        "peak RSS {small} KiB for {} files, {large} KiB for {}",
        few.len(),
        many.len()
    );
}

#[test]
fn pinned_domains_finished_at_the_end_print_as_the_whole_report_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = copies(dir.path(), 40);
    files.push("/nonexistent/gone.xml".into());
    for args in [
        vec!["--json"],
        vec![],
        vec!["--color", "always"],
        vec!["--json", "--secrets"],
    ] {
        let (code, spilled) = audit(&args, &files, None);
        // no temporary file: the whole report in memory, printed at once
        let (code2, whole) = audit(&args, &files, Some("/nonexistent/tmp"));
        assert_eq!(code, Some(2), "an unreadable input is exit 2");
        assert_eq!(code, code2);
        let out = String::from_utf8_lossy(&spilled);
        assert!(out.contains("pin-overlap"), "{args:?}: no overlap found");
        assert!(spilled == whole, "{args:?}: the outputs differ");
    }
}

/// A domain that pins its two vCPUs onto host CPUs 2 and 3, with nothing else to report.
fn pinned_clean(dir: &Path, name: &str) -> PathBuf {
    let xml = format!(
        "<domain type='kvm'><name>{name}</name><memory unit='MiB'>1024</memory>\
<vcpu placement='static'>2</vcpu><cputune><vcpupin vcpu='0' cpuset='2'/>\
<vcpupin vcpu='1' cpuset='3'/><emulatorpin cpuset='0-1'/></cputune>\
<os><type arch='x86_64' machine='q35'>hvm</type></os><cpu mode='host-passthrough'/>\
<features><acpi/><apic/></features><clock offset='utc'><timer name='kvmclock' present='yes'/>\
</clock><devices><memballoon model='none'/></devices></domain>"
    );
    let p = dir.join(format!("{name}.xml"));
    std::fs::write(&p, xml).unwrap();
    p
}

#[test]
fn a_pinned_domain_with_no_first_findings_or_none_at_all_prints_as_the_whole_report_does() {
    let dir = tempfile::tempdir().unwrap();
    let a = pinned_clean(dir.path(), "a");
    let b = pinned_clean(dir.path(), "b");
    // alone: no finding at all; with b: only pin-overlap's, added at the end
    for (files, code, overlap) in [(vec![a.clone()], 0, false), (vec![a, b], 1, true)] {
        for args in [vec!["--json"], vec![]] {
            let (got, spilled) = audit(&args, &files, None);
            let (got2, whole) = audit(&args, &files, Some("/nonexistent/tmp"));
            assert_eq!((got, got2), (Some(code), Some(code)), "{args:?} {files:?}");
            let out = String::from_utf8_lossy(&spilled);
            assert_eq!(out.contains("pin-overlap"), overlap, "{out}");
            assert!(spilled == whole, "{args:?} {files:?}: the outputs differ");
        }
    }
}
