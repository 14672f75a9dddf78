#!/usr/bin/env python3
"""Cost of a Prometheus exporter scraped once a second (issue 14, the benchmark):
`kvmtune exporter` against Debian's `prometheus-libvirt-exporter`, side by side in one run.

A private libvirtd (`scripts/libvirtd-private up bench 127.0.0.10`, its own mount namespace)
runs throwaway TCG domains kvmtune-bench-N made from the fleet's web template
(lab/fleet/web.xml: the lab's kernel and busybox initramfs, 1 vCPU, 128 MiB, virtio disk,
balloon, rng). Both exporters run inside that daemon's mount namespace with -c qemu:///system,
exactly as they would on a host (kvmtune reads /proc of the local QEMU processes; a qemu+tcp URI
would make it a remote host). Each runs alone: WARMUP scrapes, then DURATION scrapes at 1 Hz
(default 60). Measured over the DURATION window, from /proc/PID/stat (utime+stime):

  exporter   the exporter process
  libvirtd   the private libvirtd (the calls each scrape makes)
  qemu       the threads other than vCPUs of every QEMU process of that daemon (the main
             loop answers libvirt's QMP round trips; for KVM domains query-stats; here all
             domains are TCG); the vCPU threads, where the guests' own work runs, are left out

and an idle window of the same length with no exporter gives the baseline that libvirtd and
QEMU spend anyway (the guests' own work), subtracted to get what the scrapes cause. Also: the
number of series of the last scrape (sample lines), the exposition size, and the scrape latency
seen by the client (p50, p99).

Sizes: 8 running domains; then, if SIZES includes 64, 64 domains of which the first 8 run and
the rest are started paused (so the guests' own CPU and memory do not drown the measurement:
the exporters' libvirt calls are the same for a paused domain). Run as root, with the lab's
guest files built (`scripts/lab up` or `fleet-up` once):

    python3 bench/exporter.py                  # SIZES=8,64 DURATION=60 WARMUP=5
    KVMTUNE_BIN=/path/to/kvmtune python3 bench/exporter.py

Tears everything down at the end (the domains are transient; `libvirtd-private down bench`).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from qemu_threads import thread_ticks

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DURATION = int(os.environ.get("DURATION", "60"))
WARMUP = int(os.environ.get("WARMUP", "5"))
SIZES = [int(s) for s in os.environ.get("SIZES", "8,64").split(",") if s]
RUNNING = 8
NAME = "bench"
ADDR = os.environ.get("BENCH_ADDR", "127.0.0.10")
LAB_DIR = os.environ.get("KVMTUNE_LAB_DIR", "/var/cache/kvmtune-lab")
WORK = "/var/tmp/kvmtune-bench"
STATE = f"/var/tmp/kvmtune-private/{NAME}"
HZ = os.sysconf("SC_CLK_TCK")
KVMTUNE_PORT = 19910
OTHER_PORT = 19177


def sh(*args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        sys.exit(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return 0
    fields = s[s.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def libvirtd_pid():
    with open(f"{STATE}/libvirtd.pid") as f:
        pid = int(f.read().strip())
    if comm(pid) != "libvirtd":
        sys.exit(f"pid {pid} of {STATE}/libvirtd.pid is not a libvirtd")
    return pid


def mnt_ns(pid):
    return os.readlink(f"/proc/{pid}/ns/mnt")


def qemu_pids(ns):
    """QEMU processes in the private daemon's mount namespace (found now, by the live
    daemon's namespace)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and comm(d).startswith("qemu-system"):
            try:
                if mnt_ns(d) == ns:
                    out.append(int(d))
            except OSError:
                pass
    return out


class Window:
    """CPU ticks of a set of processes between start() and stop(); labels starting with
    "qemu" count only the QEMU processes' non-vCPU threads."""

    def __init__(self, pids):
        self.pids = dict(pids)  # label -> [pid]

    def _ticks(self, label, pid):
        return thread_ticks(pid, vcpu=False) if label.startswith("qemu") else ticks(pid)

    def start(self):
        self.t0 = {k: sum(self._ticks(k, p) for p in v) for k, v in self.pids.items()}
        self.w0 = time.monotonic()

    def stop(self):
        self.wall = time.monotonic() - self.w0
        return {k: (sum(self._ticks(k, p) for p in v) - self.t0[k]) / HZ for k, v in self.pids.items()}


def guest_xml(i, work):
    with open(os.path.join(REPO, "lab/fleet/web.xml")) as f:
        x = f.read()
    name = f"kvmtune-bench-{i}"
    x = re.sub(r"<!--.*?-->\s*", "", x, flags=re.S)
    x = x.replace("<name>@HOST@-web</name>", f"<name>{name}</name>")
    x = x.replace('role="fleet web" host="@HOST@"', 'role="bench" host="bench"')
    subs = {
        "@KERNEL@": f"{LAB_DIR}/vmlinuz",
        "@INITRD@": f"{LAB_DIR}/initrd.gz",
        "@DISK@": f"{work}/{name}.img",
        "@LOG@": f"{work}/{name}.serial.log",
        "@USB@": "<controller type='usb' model='none'/>",
        "@CPUTUNE@": "",
        # no io='native': 64 QEMUs with Linux AIO contexts exhaust fs.aio-max-nr
        "@CACHE@": "cache='none' discard='unmap'",
    }
    for k, v in subs.items():
        x = x.replace(k, v)
    return name, x


def ensure_domains(uri, n):
    """Transient domains kvmtune-bench-0..n-1: the first RUNNING run, the others paused."""
    have = set(sh("virsh", "-c", uri, "list", "--all", "--name").split())
    started = False
    for i in range(n):
        name, xml = guest_xml(i, WORK)
        if name in have:
            continue
        img = f"{WORK}/{name}.img"
        if not os.path.exists(img):
            with open(img, "wb") as f:
                f.truncate(16 * 1024 * 1024)
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write(xml)
        args = ["virsh", "-c", uri, "create", f.name]
        if i >= RUNNING:
            args.append("--paused")
        sh(*args)
        os.unlink(f.name)
        started = True
    if started:
        time.sleep(10)  # let the running guests boot to their idle prompt


def nsenter(ns_pid, argv):
    return ["nsenter", f"--mount=/proc/{ns_pid}/ns/mnt", "--"] + argv


def wait_url(url, proc, secs=120):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"{url}: the exporter exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {secs} s")


def scrape_loop(url, n):
    """n scrapes at 1 Hz; latencies and the last body."""
    lat, body = [], b""
    t0 = time.monotonic()
    for i in range(n):
        s = time.monotonic()
        body = urllib.request.urlopen(url, timeout=30).read()
        lat.append(time.monotonic() - s)
        time.sleep(max(0.0, t0 + i + 1 - time.monotonic()))
    return lat, body


def series(body):
    return sum(1 for l in body.decode(errors="replace").splitlines() if l and not l.startswith("#"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_tool(label, argv, url, lvd, ns):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errs = []
    threading.Thread(target=lambda: errs.extend(proc.stderr), daemon=True).start()
    try:
        t_start = time.monotonic()
        wait_url(url, proc)
        first = time.monotonic() - t_start
        scrape_loop(url, WARMUP)
        w = Window({"exporter": [proc.pid], "libvirtd": [lvd], "qemu": qemu_pids(ns)})
        w.start()
        lat, body = scrape_loop(url, DURATION)
        cpu = w.stop()
        if proc.poll() is not None:
            sys.exit(f"{label} exited during the run: {b''.join(errs).decode(errors='replace')}")
        return {
            "tool": label,
            "cpu": cpu,
            "wall": w.wall,
            "series": series(body),
            "bytes": len(body),
            "p50": pct(lat, 50),
            "p99": pct(lat, 99),
            "first": first,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def idle(lvd, ns):
    w = Window({"exporter": [], "libvirtd": [lvd], "qemu": qemu_pids(ns)})
    w.start()
    time.sleep(DURATION)
    return {"tool": "idle", "cpu": w.stop(), "wall": w.wall}


def report(n, results, base):
    print(f"\n{n} domains ({min(n, RUNNING)} running, {max(0, n - RUNNING)} paused), "
          f"{DURATION} scrapes at 1 Hz; CPU seconds over the window, libvirtd and QEMU minus "
          f"the idle baseline (libvirtd {base['cpu']['libvirtd']:.2f} s, QEMU {base['cpu']['qemu']:.2f} s)")
    hdr = f"{'exporter':<30}{'own':>7}{'libvirtd':>9}{'qemu':>7}{'total':>7}{'ms/scrape':>10}{'series':>8}{'KiB':>6}{'p50 ms':>8}{'p99 ms':>8}{'1st s':>7}"
    print(hdr)
    print("-" * len(hdr))
    tot = {}
    for r in results:
        c = r["cpu"]
        lv = c["libvirtd"] - base["cpu"]["libvirtd"]
        qm = c["qemu"] - base["cpu"]["qemu"]
        t = c["exporter"] + max(lv, 0.0) + max(qm, 0.0)
        tot[r["tool"]] = (t, r["series"])
        print(f"{r['tool']:<30}{c['exporter']:>7.2f}{lv:>9.2f}{qm:>7.2f}{t:>7.2f}{t / DURATION * 1000:>10.1f}"
              f"{r['series']:>8}{r['bytes'] / 1024:>6.0f}{r['p50'] * 1000:>8.1f}{r['p99'] * 1000:>8.1f}{r['first']:>7.1f}")
    k, o = tot["kvmtune exporter"], tot["prometheus-libvirt-exporter"]
    if o[0] > 0 and o[1] > 0:
        print(f"kvmtune / prometheus-libvirt-exporter: total CPU {k[0] / o[0]:.2f}x "
              f"(target <= 0.5), series {k[1] / o[1]:.2f}x (target >= 3)")


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (a private libvirtd, nsenter, /proc of QEMU processes)")
    other = shutil.which("prometheus-libvirt-exporter")
    if not other:
        sys.exit("prometheus-libvirt-exporter is not installed "
                 "(apt-get install --no-install-recommends prometheus-libvirt-exporter)")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    kvmtune = os.environ.get("KVMTUNE_BIN") or os.path.join(target, "release/kvmtune")
    if not os.environ.get("KVMTUNE_BIN"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "kvmtune"], cwd=REPO, check=True)
    if subprocess.run([kvmtune, "exporter", "--help"], capture_output=True).returncode != 0:
        sys.exit(f"{kvmtune} has no `exporter` command")
    for f in ("vmlinuz", "initrd.gz"):
        if not os.path.exists(f"{LAB_DIR}/{f}"):
            sys.exit(f"{LAB_DIR}/{f} is missing: run scripts/lab up (or fleet-up) once")
    os.makedirs(WORK, exist_ok=True)
    priv = os.path.join(REPO, "scripts/libvirtd-private")
    uri = sh(priv, "up", NAME, ADDR).strip().splitlines()[-1]
    try:
        lvd = libvirtd_pid()
        ns = mnt_ns(lvd)
        print(f"private libvirtd {uri} (pid {lvd}); {os.cpu_count()} host CPUs; "
              f"kvmtune {sh(kvmtune, '--version').strip()}; prometheus-libvirt-exporter "
              f"{sh('dpkg-query', '-W', '-f', '${Version}', 'prometheus-libvirt-exporter').strip()}", flush=True)
        for n in SIZES:
            ensure_domains(uri, n)
            print(f"\n== {n} domains: idle baseline, kvmtune exporter, prometheus-libvirt-exporter "
                  f"({DURATION} s each)", flush=True)
            base = idle(lvd, ns)
            k = run_tool(
                "kvmtune exporter",
                nsenter(lvd, [kvmtune, "-c", "qemu:///system", "exporter", "--listen", f"127.0.0.1:{KVMTUNE_PORT}"]),
                f"http://127.0.0.1:{KVMTUNE_PORT}/metrics", lvd, ns)
            o = run_tool(
                "prometheus-libvirt-exporter",
                nsenter(lvd, [other, f"--web.listen-address=127.0.0.1:{OTHER_PORT}", "--libvirt.uri=qemu:///system"]),
                f"http://127.0.0.1:{OTHER_PORT}/metrics", lvd, ns)
            report(n, [k, o], base)
    finally:
        for d in sh("virsh", "-c", uri, "list", "--name", check=False).split():
            if d.startswith("kvmtune-bench-"):
                subprocess.run(["virsh", "-c", uri, "destroy", d], capture_output=True)
        subprocess.run([priv, "down", NAME], capture_output=True)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
