#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn book() -> kvmtune_host::Host {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts/b-book-2socket/root");
    kvmtune_host::collect(&kvmtune_host::RootDir::new(root))
}

/// Every `<svg>...</svg>` of the page (outermost ones).
pub fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<svg") {
        let tail = &rest[i..];
        // nested svgs: count depth
        let mut depth = 0usize;
        let mut pos = 0usize;
        let end = loop {
            let open = tail[pos..].find("<svg").map(|x| x + pos);
            let close = tail[pos..].find("</svg>").map(|x| x + pos);
            match (open, close) {
                (Some(o), Some(c)) if o < c => {
                    depth += 1;
                    pos = o + 4;
                }
                (_, Some(c)) => {
                    depth -= 1;
                    pos = c + 6;
                    if depth == 0 {
                        break pos;
                    }
                }
                _ => panic!("unclosed svg"),
            }
        };
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

fn well_formed(xml: &str) {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut depth = 0i64;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(_) => {}
            Err(e) => panic!("not well-formed: {e}\n{}", &xml[..xml.len().min(400)]),
        }
    }
    assert_eq!(depth, 0, "unbalanced");
}

#[test]
fn escaping_covers_markup_quotes_and_control_characters() {
    assert_eq!(
        esc("<a href=\"x\">'&'</a>\u{1}"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
    );
}

#[test]
fn a_hostile_domain_name_injects_no_markup() {
    let evil = "<script>alert(\"x\")</script>' onload='x\" <img src=x>";
    let mut r = synth::report(book(), evil, 3, 4);
    for d in &mut r.hosts[0].domains {
        d.name = format!("{evil}{}", d.name);
    }
    for a in &mut r.hosts[0].audits {
        a.name = format!("{evil}{}", a.name);
        for f in &mut a.findings {
            f.message = evil.into();
            f.diff = Some(format!("-{evil}\n+{evil}\n"));
        }
    }
    for s in &mut r.hosts[0].stats.samples {
        for d in &mut s.domains {
            d.name = format!("{evil}{}", d.name);
        }
    }
    if let Some(p) = &mut r.hosts[0].plan {
        for x in &mut p.after.placed {
            x.name = format!("{evil}{}", x.name);
        }
    }
    r.hosts[0].diagnoses[0].subject = evil.into();
    let html = render(&r);
    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"), "an img tag got through");
    // no tag carries an `onload` attribute (quoted values aside, where it is escaped text)
    for tag in html.split('<').skip(1).filter_map(|t| t.split('>').next()) {
        let bare: String = tag.split('"').step_by(2).collect();
        assert!(
            !bare.contains("onload"),
            "an attribute got through: <{tag}>"
        );
    }
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload"));
    for s in svgs(&html) {
        well_formed(s);
    }
}

#[test]
fn the_page_is_self_contained_with_every_section_and_accessible_pictures() {
    let r = synth::report(book(), "book", 12, 10);
    let html = render(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    )));
    assert!(html.contains("@media print"));
    assert!(!html.contains("<script"));
    // nothing to fetch: the only URL is the SVG namespace
    for (i, _) in html.match_indices("http") {
        let around = &html[i..(i + 30).min(html.len())];
        assert!(
            around.starts_with("http-equiv") || around.starts_with("http://www.w3.org/2000/svg"),
            "{around}"
        );
    }
    for s in SECTIONS {
        assert!(html.contains(&format!("data-section=\"{s}\"")), "{s}");
    }
    let pics = svgs(&html);
    // topology, memory, two plan maps, exits, memory per node, 12 CPU charts
    assert_eq!(pics.len(), 2 + 2 + 2 + 12, "{}", pics.len());
    for s in &pics {
        well_formed(s);
        let head = &s[..s.find('>').unwrap()];
        assert!(head.contains("role=\"img\""), "{head}");
        assert!(head.contains("aria-labelledby="), "{head}");
        assert!(s.contains("<title id="), "{head}");
        assert!(s.contains("<desc id="), "{head}");
    }
    // tables have headers
    assert_eq!(
        html.matches("<table").count(),
        html.matches("<thead>").count()
    );
    // the topology map marks the reserved CPUs (one core per socket) in words
    assert!(html.contains("0 host"), "reserved CPU 0 not marked");
    // severities are words, not only colours
    assert!(html.contains("▲ WARN") && html.contains("✖ ERROR"));
}

#[test]
fn no_statistics_say_why_and_diagnoses_say_there_is_nothing_to_judge() {
    let mut r = synth::report(book(), "book", 2, 0);
    r.hosts[0].stats.note = "no live statistics in this bundle".into();
    r.hosts[0].diagnoses.clear();
    let html = render(&r);
    assert!(html.contains("no live statistics in this bundle"));
    assert!(html.contains("no live statistics to judge"));
}

#[test]
fn the_current_placement_has_the_pinned_domains_and_names_the_floating_ones() {
    let online: std::collections::BTreeSet<u32> = (0..4).collect();
    let doms = vec![
        DomainCpus {
            name: "pinned".into(),
            vcpus: 2,
            vcpu_cpus: [(0, vec![2]), (1, vec![3])].into_iter().collect(),
            ..Default::default()
        },
        DomainCpus {
            name: "floats".into(),
            vcpus: 1,
            vcpu_cpus: [(0, vec![0, 1, 2, 3])].into_iter().collect(),
            ..Default::default()
        },
    ];
    let (o, floating) = current_placement(&doms, &online, &|c| c / 2);
    assert_eq!(floating, ["floats"]);
    assert_eq!(o.placed.len(), 1);
    assert_eq!(o.placed[0].nodes, [1]);
    assert_eq!(
        o.placed[0].policy.cpus,
        kvmtune_planner::CpuPolicy::Dedicated
    );
}

#[test]
fn sixty_four_domains_and_a_minute_stay_under_two_megabytes() {
    let html = render(&synth::report(book(), "big", 64, 60));
    assert!(html.len() < 2 * 1024 * 1024, "{} bytes", html.len());
}
