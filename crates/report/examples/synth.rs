//! Write a synthetic report: `cargo run -p kvmtune-report --example synth -- ROOT DOMAINS
//! SECONDS OUT.html` (ROOT: a host tree such as tests/fixtures/hosts/b-book-2socket/root).
//! bench/report.py uses it for the size benchmark.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, domains, seconds, out] = args.as_slice() else {
        eprintln!("usage: synth ROOT DOMAINS SECONDS OUT.html");
        return std::process::ExitCode::from(2);
    };
    let (Ok(domains), Ok(seconds)) = (domains.parse::<usize>(), seconds.parse::<usize>()) else {
        eprintln!("DOMAINS and SECONDS are numbers");
        return std::process::ExitCode::from(2);
    };
    let host = kvmtune_host::collect(&kvmtune_host::RootDir::new(root));
    let t = std::time::Instant::now();
    let report = kvmtune_report::synth::report(host, "synthetic-host", domains, seconds);
    let html = kvmtune_report::render(&report);
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if let Err(e) = std::fs::write(out, &html) {
        eprintln!("cannot write {out}: {e}");
        return std::process::ExitCode::from(2);
    }
    println!("{} bytes, built in {ms:.1} ms", html.len());
    std::process::ExitCode::SUCCESS
}
