#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune report` proven in a real browser: headless Chromium loads the page of the lab
//! (live, with statistics) and of the book's 2-socket host fixture, and the test checks
//!
//! - no console message at all (a CSP violation, a script error, a failed load are each
//!   one): Chromium's log (`--enable-logging=stderr --v=1`) has no `CONSOLE` line;
//! - no network request by the page: every URL request Chromium's network service starts is
//!   logged (`NetworkDelegate::NotifyBeforeURLRequest`); none may be the page's (the
//!   browser's own update, time and account services are not the page's and are left out;
//!   a proxy on a closed port keeps any request from leaving the machine). Two control
//!   pages prove the checks see what they must: one whose image the CSP blocks (a console
//!   message) and one without CSP whose image is requested (a request);
//! - every section and picture is in the DOM Chromium dumps, and the DOM holds no script
//!   and no reference to anything outside the page;
//! - a full-page screenshot (PNG, 1024 px wide) is saved; `KVMTUNE_BLESS_SCREENSHOTS=1`
//!   copies them to docs/img/report-{lab,book}.png;
//! - one known cell of the topology map, rendered alone, has its colour in the screenshot.
//!
//! Without Chromium the tests skip, unless KVMTUNE_REQUIRE_LAB=1 (CI), where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The Chromium binary (`CHROMIUM`, else `chromium` or `chromium-browser` on PATH), or
/// `None` (a skip) when there is none and the lab is not required.
fn chromium() -> Option<String> {
    if let Ok(c) = std::env::var("CHROMIUM") {
        return Some(c);
    }
    for c in ["chromium", "chromium-browser"] {
        if have(c) {
            return Some(c.to_string());
        }
    }
    assert!(
        !lab_required(),
        "KVMTUNE_REQUIRE_LAB=1 but no Chromium: apt-get install -y --no-install-recommends chromium"
    );
    eprintln!("skipping: no chromium");
    None
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Hosts of Chromium's own services (component updates, network time, accounts,
/// dictionaries): requests the browser makes whatever page it shows.
const BROWSER_HOSTS: [&str; 4] = [
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "redirector.gvt1.com",
];

struct Load {
    /// Chromium's stdout: the DOM with --dump-dom.
    out: String,
    /// Chromium's log.
    log: String,
}

impl Load {
    /// Console messages of the page.
    fn console(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .collect()
    }

    /// URL requests that are not the browser's own nor of the page itself.
    fn requests(&self) -> Vec<String> {
        self.log
            .lines()
            .filter_map(|l| l.split("NotifyBeforeURLRequest: ").nth(1))
            .map(|u| u.trim().to_string())
            .filter(|u| {
                let host = u
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split(['/', ':', '?']).next())
                    .unwrap_or("");
                !u.starts_with("file:") && !u.starts_with("data:") && !BROWSER_HOSTS.contains(&host)
            })
            .collect()
    }
}

/// Run headless Chromium on a file: `extra` says what to do (--dump-dom, --screenshot).
fn chromium_on(bin: &str, page: &Path, extra: &[String]) -> Load {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--enable-logging=stderr",
        "--v=1",
        // nothing leaves the machine, whatever is requested
        "--proxy-server=127.0.0.1:9",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(&url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start chromium");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return true;
        }
        false
    });
    let o = child.wait_with_output().unwrap();
    let _ = tx.send(());
    assert!(!watchdog.join().unwrap(), "chromium hung on {url}");
    Load {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        log: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn dump_dom(bin: &str, page: &Path) -> Load {
    chromium_on(bin, page, &["--dump-dom".to_string()])
}

fn screenshot(bin: &str, page: &Path, png: &Path, w: u32, h: u32) -> Load {
    let _ = std::fs::remove_file(png);
    let l = chromium_on(
        bin,
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={w},{h}"),
        ],
    );
    assert!(
        png.exists(),
        "no screenshot of {}: {}",
        page.display(),
        l.log
    );
    l
}

struct Image {
    width: usize,
    height: usize,
    /// RGBA, row by row.
    rgba: Vec<u8>,
}

fn decode(png: &Path) -> Image {
    let mut dec = png::Decoder::new(std::fs::File::open(png).unwrap());
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width as usize, info.height as usize);
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    Image {
        width: w,
        height: h,
        rgba,
    }
}

impl Image {
    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 4;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2]]
    }

    /// The page without the white below its end (the window is taller than the page).
    fn crop_to_content(&self) -> Image {
        let mut last = 0;
        for y in 0..self.height {
            if (0..self.width).any(|x| self.pixel(x, y) != [255, 255, 255]) {
                last = y;
            }
        }
        let height = (last + 12).min(self.height);
        Image {
            width: self.width,
            height,
            rgba: self.rgba[..height * self.width * 4].to_vec(),
        }
    }

    /// Written as an indexed PNG of 16 colours (4 bits a pixel): the most frequent colours,
    /// every other pixel (text antialiasing) mapped to the nearest of them; compressed hard.
    /// A page of flat colours and text stays readable at a fraction of the RGB size.
    fn write(&self, path: &Path) {
        use std::collections::HashMap;
        let mut freq: HashMap<[u8; 3], usize> = HashMap::new();
        for p in self.rgba.chunks(4) {
            *freq.entry([p[0], p[1], p[2]]).or_default() += 1;
        }
        let mut by: Vec<([u8; 3], usize)> = freq.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let palette: Vec<[u8; 3]> = by.iter().take(16).map(|x| x.0).collect();
        let mut index: HashMap<[u8; 3], u8> = palette
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as u8))
            .collect();
        let mut data = Vec::with_capacity(self.width * self.height);
        for p in self.rgba.chunks(4) {
            let c = [p[0], p[1], p[2]];
            let i = *index.entry(c).or_insert_with(|| {
                let d = |q: &[u8; 3]| -> i32 {
                    (0..3)
                        .map(|k| (i32::from(q[k]) - i32::from(c[k])).pow(2))
                        .sum()
                };
                (0..palette.len())
                    .min_by_key(|&k| d(&palette[k]))
                    .unwrap_or(0) as u8
            });
            data.push(i);
        }
        // two pixels a byte, each row padded to whole bytes
        let packed: Vec<u8> = data
            .chunks(self.width)
            .flat_map(|row| {
                row.chunks(2)
                    .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0))
                    .collect::<Vec<u8>>()
            })
            .collect();
        let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut e = png::Encoder::new(f, self.width as u32, self.height as u32);
        e.set_color(png::ColorType::Indexed);
        e.set_depth(png::BitDepth::Four);
        e.set_palette(palette.concat());
        e.set_compression(png::Compression::Best);
        let mut w = e.write_header().unwrap();
        w.write_image_data(&packed).unwrap();
    }
}

/// The checks every report page must pass in the browser; returns the DOM.
fn check_in_browser(bin: &str, page: &Path, hosts: usize, cpu_charts: bool) -> String {
    let l = dump_dom(bin, page);
    assert!(
        l.console().is_empty(),
        "console messages: {:?}",
        l.console()
    );
    assert!(
        l.requests().is_empty(),
        "network requests: {:?}",
        l.requests()
    );
    let dom = l.out;
    assert!(dom.contains("</html>"), "no DOM dumped: {}", l.log);
    assert!(dom.contains("Content-Security-Policy"));
    assert!(!dom.contains("<script"), "a script in the DOM");
    // nothing outside the page: no src, no href but fragments, no url() but fragments
    assert!(!dom.contains(" src="), "a src attribute");
    for (i, _) in dom.match_indices(" href=\"") {
        assert!(dom[i + 7..].starts_with('#'), "{}", &dom[i..i + 60]);
    }
    for (i, _) in dom.match_indices("url(") {
        assert!(dom[i + 4..].starts_with('#'), "{}", &dom[i..i + 40]);
    }
    for h in 0..hosts {
        for s in ["host", "checks", "audit", "plan", "stats", "diagnoses"] {
            assert!(
                dom.contains(&format!("id=\"h{h}-{s}\" data-section=\"{s}\"")),
                "host {h}: section {s} missing"
            );
        }
        for pic in ["topo", "mem", "plan-before", "plan-after"] {
            assert!(
                dom.contains(&format!("id=\"h{h}-{pic}\"")),
                "host {h}: picture {pic} missing"
            );
        }
        if cpu_charts {
            for pic in ["memnode", "cpu-0"] {
                assert!(
                    dom.contains(&format!("id=\"h{h}-{pic}\"")),
                    "host {h}: chart {pic} missing"
                );
            }
        }
    }
    // every picture has its role and text alternative
    let pics = dom.matches("<svg").count();
    let labelled = dom.matches("role=\"img\"").count();
    assert!(pics >= 4 * hosts, "{pics} pictures");
    assert!(labelled >= 4 * hosts, "{labelled} labelled pictures");
    dom
}

/// A full-page screenshot, cropped, saved next to the test's files and (when blessing)
/// under docs/img.
fn full_page(bin: &str, page: &Path, name: &str) -> PathBuf {
    let raw = tmp(&format!("{name}-raw.png"));
    screenshot(bin, page, &raw, 1024, 16000);
    let img = decode(&raw).crop_to_content();
    assert_eq!(img.width, 1024);
    assert!(img.height > 600, "page only {} px high", img.height);
    let out = tmp(&format!("{name}.png"));
    img.write(&out);
    if std::env::var("KVMTUNE_BLESS_SCREENSHOTS").is_ok_and(|v| v == "1") {
        // what docs/ shows stays small
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(size < 500 * 1024, "{name}.png is {size} bytes");
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&out, docs.join(format!("{name}.png"))).unwrap();
    }
    out
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let i = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[i..].split('"').next().unwrap()
}

fn book_report(out: &Path) {
    let root = hosts_dir().join("b-book-2socket/root");
    let doms = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/domains");
    let mut args = vec![
        "--root".to_string(),
        root.display().to_string(),
        "report".into(),
        "-o".into(),
        out.display().to_string(),
        "--stat-seconds".into(),
        "0".into(),
    ];
    let mut files: Vec<String> = std::fs::read_dir(&doms)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("book-")
        })
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    args.extend(files);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn the_checks_see_a_blocked_load_and_a_request() {
    let Some(bin) = chromium() else { return };
    let csp = tmp("control-csp.html");
    std::fs::write(
        &csp,
        format!(
            "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{}\"></head>\
             <body><img src=\"http://example.invalid/x.png\"></body></html>",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        ),
    )
    .unwrap();
    let l = dump_dom(&bin, &csp);
    assert!(
        l.console()
            .iter()
            .any(|c| c.contains("Content Security Policy")),
        "the CSP violation was not seen: {:?}",
        l.console()
    );
    assert!(l.requests().is_empty(), "{:?}", l.requests());
    let open = tmp("control-open.html");
    std::fs::write(
        &open,
        "<!DOCTYPE html><html><body><img src=\"http://example.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let l = dump_dom(&bin, &open);
    assert!(
        l.requests().iter().any(|u| u.contains("example.invalid")),
        "the request was not seen: {:?}",
        l.requests()
    );
}

#[test]
fn the_book_host_report_loads_clean_in_chromium_with_every_section() {
    let Some(bin) = chromium() else { return };
    let page = tmp("report-book.html");
    book_report(&page);
    let dom = check_in_browser(&bin, &page, 1, false);
    // the book's domains are in it, and the pinned ones are drawn on the map
    assert!(dom.contains("cacti"), "book domains missing");
    assert!(
        dom.contains("data-domain="),
        "no domain drawn on the topology map"
    );
    assert!(dom.contains("No live statistics: --stat-seconds 0."));
    full_page(&bin, &page, "report-book");
}

#[test]
fn a_known_cell_of_the_topology_map_has_its_colour_on_screen() {
    let Some(bin) = chromium() else { return };
    let page = tmp("report-book-cell.html");
    book_report(&page);
    let html = std::fs::read_to_string(&page).unwrap();
    // the topology map alone, at its own size, at the top left of the window
    let start = html
        .find("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"h0-topo\"")
        .unwrap();
    let end = start + html[start..].find("</svg>").unwrap() + "</svg>".len();
    let svg = &html[start..end];
    let alone = tmp("topo-alone.html");
    std::fs::write(
        &alone,
        format!(
            "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
             <style>body{{margin:0;background:#fff}}svg{{display:block}}</style></head><body>{svg}</body></html>"
        ),
    )
    .unwrap();
    let cell = &svg[svg.find("<rect data-domain=").unwrap()..];
    let cell = &cell[..cell.find('>').unwrap()];
    let num = |n: &str| attr(cell, n).parse::<f64>().unwrap();
    let (x, y, w, h) = (num("x"), num("y"), num("width"), num("height"));
    let fill = attr(cell, "fill");
    let want: Vec<u8> = (0..3)
        .map(|i| u8::from_str_radix(&fill[1 + 2 * i..3 + 2 * i], 16).unwrap())
        .collect();
    let height: u32 = attr(&svg[..svg.find('>').unwrap()], "height")
        .parse()
        .unwrap();
    let png = tmp("topo-alone.png");
    let l = screenshot(&bin, &alone, &png, 1024, height + 20);
    assert!(l.console().is_empty(), "{:?}", l.console());
    let img = decode(&png);
    // the right end of the stripe, clear of its label
    let (px, py) = ((x + w - 3.0) as usize, (y + h / 2.0) as usize);
    let got = img.pixel(px, py);
    for i in 0..3 {
        assert!(
            (i16::from(got[i]) - i16::from(want[i])).abs() <= 3,
            "pixel ({px},{py}) is {got:?}, the cell's fill {fill} is {want:?}"
        );
    }
    // and a free thread cell of the same map is white below its number
    let marker = ": no pinned domain thread</title><rect data-cpu=";
    let t = &svg[svg.find(marker).expect("a free CPU on the book host") + marker.len() - 15..];
    let t = &t[..t.find('>').unwrap()];
    if attr(t, "fill") == "#fff" {
        let fx = attr(t, "x").parse::<usize>().unwrap() + 30;
        let fy = attr(t, "y").parse::<usize>().unwrap() + 25;
        assert_eq!(
            img.pixel(fx, fy),
            [255, 255, 255],
            "free cell at ({fx},{fy})"
        );
    }
}

#[test]
fn the_lab_report_loads_clean_in_chromium_with_its_charts() {
    let Some(_lab) = lab() else { return };
    let Some(bin) = chromium() else { return };
    let page = tmp("report-lab.html");
    let out = page.display().to_string();
    let o = run(&["report", "-o", &out, "--stat-seconds", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dom = check_in_browser(&bin, &page, 1, true);
    assert!(dom.contains("lab-db-pinned"), "lab domain missing");
    assert!(
        dom.contains("live affinity (/proc)"),
        "no live affinity read"
    );
    full_page(&bin, &page, "report-lab");
    // --json says what was written
    let o = run(&["--json", "report", "-o", &out, "--stat-seconds", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["kind"], "kvmtune.report");
    assert_eq!(j["path"], out);
    assert!(j["bytes"].as_u64().unwrap() > 10_000);
    assert_eq!(j["hosts"][0]["sections"][0], "host");
}

/// A bundle made with `snapshot --stat-seconds` carries its window into the report's charts
/// on another machine (`--from`); one made without says it has none.
#[test]
fn a_bundles_recorded_window_is_charted_and_its_absence_said() {
    let Some(_lab) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let with = t.path().join("with.tar.gz");
    let without = t.path().join("without.tar.gz");
    let o = run(&[
        "snapshot",
        "-o",
        with.to_str().unwrap(),
        "--stat-seconds",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["snapshot", "-o", without.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = t.path().join("r.html");
    let p = page.to_str().unwrap();
    let o = run(&["--from", with.to_str().unwrap(), "report", "-o", p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Recorded in the bundle (2 interval(s)"),
        "no recorded window"
    );
    assert!(html.contains("lab-db-pinned"));
    let o = run(&["--from", without.to_str().unwrap(), "report", "-o", p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("No live statistics in this bundle"),
        "absence not said"
    );
}
