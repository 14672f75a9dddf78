#!/usr/bin/env python3
"""Size and render-time benchmark of `kvmtune report` (issue 16).

Builds the report of a 64-domain host with a 60-second statistics window (synthetic figures
through the kvmtune-report library: `cargo run -p kvmtune-report --example synth`, on the
book's 2-socket host fixture), then measures

- its size: must stay under 2 MB;
- its render time in headless Chromium: the page's own clock (performance.now() when the
  load event has fired and two frames are painted), read from a copy of the page with a
  one-line script added (the report itself has no script and its CSP forbids one); must be
  under 2 s. The wall time of `chromium --headless --screenshot` of the real page is printed
  too (1024x768: the whole page laid out, the first screen painted),
  with that of an empty page (Chromium's start-up) for comparison.

Usage: bench/report.py [--domains 64] [--seconds 60] [--chromium chromium] [--runs 3]
Prints the figures and `met` / `NOT MET` for each target; exits 1 when a target is missed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests/fixtures/hosts/b-book-2socket/root")
SIZE_LIMIT = 2 * 1024 * 1024
RENDER_LIMIT_MS = 2000.0

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--proxy-server=127.0.0.1:9",
]

PROBE = (
    "<script>addEventListener('load',()=>requestAnimationFrame(()=>requestAnimationFrame("
    "()=>console.log('KVMTUNE_RENDER_MS '+performance.now().toFixed(1)))))</script>"
)


def chromium(binary, page, extra, profile):
    cmd = [binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + extra + ["file://" + page]
    t = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return time.monotonic() - t, p.stderr.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if shutil.which(a.chromium) is None:
        print(f"no {a.chromium}: apt-get install -y --no-install-recommends chromium")
        return 2
    work = tempfile.mkdtemp(prefix="kvmtune-report-bench-")
    page = os.path.join(work, "report.html")
    subprocess.run(
        ["cargo", "run", "-q", "-p", "kvmtune-report", "--example", "synth", "--",
         FIXTURE, str(a.domains), str(a.seconds), page],
        cwd=ROOT, check=True,
    )
    html = open(page, encoding="utf-8").read()
    size = len(html.encode("utf-8"))
    charts = html.count("<svg")
    # the probe copy: the CSP meta removed, the script added at the end of <head>
    probed = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html, count=1)
    probed = probed.replace("</head>", PROBE + "</head>", 1)
    probe_page = os.path.join(work, "probe.html")
    open(probe_page, "w", encoding="utf-8").write(probed)
    empty = os.path.join(work, "empty.html")
    open(empty, "w").write("<!DOCTYPE html><title>empty</title>")
    renders, walls, empties = [], [], []
    for i in range(a.runs):
        prof = os.path.join(work, f"profile-{i}")
        # a screenshot waits for painted frames (--dump-dom may end before the probe logs)
        _, log = chromium(a.chromium, probe_page, ["--enable-logging=stderr", "--v=0",
                                                   "--screenshot=" + os.path.join(work, "probe.png"),
                                                   "--window-size=1024,768"], prof)
        m = re.search(r"KVMTUNE_RENDER_MS ([0-9.]+)", log)
        if m:
            renders.append(float(m.group(1)))
        shot = os.path.join(work, f"shot-{i}.png")
        wall, _ = chromium(a.chromium, page, ["--screenshot=" + shot, "--window-size=1024,768"], prof)
        walls.append(wall)
        wall0, _ = chromium(a.chromium, empty, ["--screenshot=" + shot, "--window-size=1024,768"], prof)
        empties.append(wall0)
    render = min(renders) if renders else float("nan")
    print(f"report of {a.domains} domains, {a.seconds} s window: {size} bytes "
          f"({size / 1024 / 1024:.2f} MiB), {charts} SVG pictures")
    print(f"  size < 2 MB: {'met' if size < SIZE_LIMIT else 'NOT MET'}")
    if renders:
        print(f"  render in Chromium (page clock, load + 2 frames), best of {len(renders)}: "
              f"{render:.0f} ms (all: {', '.join(f'{r:.0f}' for r in renders)})")
    else:
        print("  render in Chromium: the probe's console line was not found")
    print(f"  render < 2 s: {'met' if renders and render < RENDER_LIMIT_MS else 'NOT MET'}")
    print(f"  chromium --screenshot wall time, best of {len(walls)}: {min(walls):.2f} s "
          f"(an empty page: {min(empties):.2f} s, Chromium's start-up)")
    shutil.rmtree(work, ignore_errors=True)
    ok = size < SIZE_LIMIT and renders and render < RENDER_LIMIT_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
