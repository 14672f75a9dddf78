#!/usr/bin/env python3
"""Whole CPU cost of watching every VM once a second, tools interleaved over several rounds:

  kvmtune        `kvmtune stat --interval 1 --format jsonl`
  virsh          a shell loop of `virsh domstats --vm --cpu-total --vcpu` every second
  prom-exporter  prometheus-libvirt-exporter (Debian package) scraped once a second
  kvmtune-exp    `kvmtune exporter` scraped once a second

The cost of a tool in a window is the CPU time (utime+stime of all threads, /proc/PID/stat,
in clock ticks) of the tool (with its reaped children: the virsh processes of the loop) +
libvirtd (and virtqemud when it runs) + every QEMU process of the running domains, over
DURATION seconds (default 60) once the tool is warmed up (it has printed or answered once).
Each round also measures an idle window of the same length (no tool running), and each
tool's figure is its window minus that round's idle window: what watching adds, QEMU's
side included (libvirt asks QEMU for the per-vCPU statistics with QMP `query-stats`).
QEMU's part is also split into its vCPU threads (the guests' own work, most of the noise
between windows) and its other threads (the main loop that answers libvirt's QMP commands).
The order of idle and the tools is rotated from round to round; ROUNDS (default 5) rounds;
the summary gives each tool's min and median over rounds.

Another libvirt client would make libvirtd and QEMU work for it during a window: the
libvirtd clients are listed with the admin API (`virt-admin client-list`) at the start and
end of each window. A window is discarded (and said so) when a client other than the tool's
own processes is connected then, or when libvirtd's client ids moved during a window in
which the tool holds one connection (idle, kvmtune, kvmtune-exp: someone connected and left).
With fewer than 2 valid rounds for a tool, nothing is reported for it. No verdict is given
("not measurable") when a tool's median whole cost is negative or the exporter's is smaller
than the spread of the idle windows' QEMU CPU: the guests' own work then moved more than the
tools cost.

At least MIN_DOMAINS (default 8) domains run; missing ones are started as transient guests
(named GUEST_PREFIX-N, default bench-stat-N) and destroyed at the end: GUEST_TYPE=tcg
(default) boots the lab's kernel under TCG (no KVM counters), GUEST_TYPE=kvm-idle is a KVM
guest without a boot device that idles in the firmware (KVM's per-vCPU counters). KVMTUNE_BIN: the kvmtune binary (default: built with cargo in CARGO_TARGET_DIR).
Run as root with the lab up (`scripts/lab up`):

    python3 bench/stat-cost.py            # DURATION=60 MIN_DOMAINS=8 ROUNDS=5
    DURATION=20 ROUNDS=3 GUEST_TYPE=kvm-idle MIN_DOMAINS=12 python3 bench/stat-cost.py
    TOOLS=prom-exporter,kvmtune-exp python3 bench/stat-cost.py   # only these two (and idle)
    PAUSE_OTHERS=1 GUEST_TYPE=kvm-idle python3 bench/stat-cost.py  # the lab's guests paused
    REPLAY=bench/logs/stat-cost-2026-12-01-third.txt python3 bench/stat-cost.py
        # a saved run's summary again (its window lines), with this version's verdict rules
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import urllib.request

from qemu_threads import thread_ticks

URI = "qemu:///system"
DURATION = int(os.environ.get("DURATION", "60"))
MIN_DOMAINS = int(os.environ.get("MIN_DOMAINS", "8"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
GUEST_PREFIX = os.environ.get("GUEST_PREFIX", "bench-stat")
GUEST_TYPE = os.environ.get("GUEST_TYPE", "tcg")
# PAUSE_OTHERS=1: the running domains the bench did not start (the lab's TCG guests, whose
# booted kernels' CPU use moves by a second per minute) are paused for the run and resumed
# at its end; they stay active domains that every tool is asked about
PAUSE_OTHERS = os.environ.get("PAUSE_OTHERS", "") == "1"
LAB_DIR = os.environ.get("KVMTUNE_LAB_DIR", "/var/cache/kvmtune-lab")
PROM_ADDR = os.environ.get("PROM_ADDR", "127.0.0.1:19177")
KVMTUNE_ADDR = os.environ.get("KVMTUNE_ADDR", "127.0.0.1:10126")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")
ALL_TOOLS = ["idle", "kvmtune", "virsh", "prom-exporter", "kvmtune-exp"]
# TOOLS=prom-exporter,kvmtune-exp measures only those (the idle window is always measured)
TOOLS = ["idle"] + [
    t for t in ALL_TOOLS[1:]
    if t in os.environ.get("TOOLS", ",".join(ALL_TOOLS)).split(",")
]

GUEST = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{lab}/vmlinuz</kernel><initrd>{lab}/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet</cmdline></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'><target port='0'/></serial>
    <memballoon model='virtio'/></devices>
</domain>"""


# an idle KVM guest: no boot device, SeaBIOS waits in HLT (KVM's per-vCPU counters, which
# libvirt reads with QMP query-stats, without a booting kernel; LAB.md: guests stop after
# decompression on these machines' KVM)
GUEST_KVM_IDLE = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>
    <feature policy='disable' name='svm'/></cpu>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/></devices>
</domain>"""


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def running():
    return [l for l in sh("virsh", "-c", URI, "list", "--name").split() if l]


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rfind(")") + 2 :].split()


def ticks(pid, children=False):
    """utime+stime of every thread of the process (its exited threads included); with
    `children`, also of its children it has waited for."""
    try:
        f = stat_fields(pid)
    except OSError:
        return 0
    t = int(f[11]) + int(f[12])
    if children:
        t += int(f[13]) + int(f[14])
    return t


def ppid(pid):
    try:
        return int(stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return 0


def same_mount_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


def daemons():
    """(name, pid) of libvirtd and virtqemud serving this mount namespace's /run/libvirt
    (other libvirtds in their own namespaces, like the lab's fleet, are not ours)."""
    out = []
    for name in ("libvirtd", "virtqemud"):
        for p in sh("pgrep", "-x", name, check=False).split():
            if same_mount_ns(int(p)):
                out.append((name, int(p)))
    if not out:
        sys.exit("no libvirtd or virtqemud runs in this mount namespace")
    return out


def qemu_pids():
    """Pid of the QEMU process of each running domain."""
    out = {}
    for name in running():
        try:
            with open(f"/run/libvirt/qemu/{name}.pid") as f:
                out[name] = int(f.read().strip())
        except (OSError, ValueError):
            sys.exit(f"no pid file of domain {name} in /run/libvirt/qemu")
    return out


class Clients:
    """libvirt clients, through the admin API of the daemon (virt-admin)."""

    def __init__(self, daemon):
        self.uri = f"{daemon}:///system"
        self.server = daemon

    def list(self):
        """{client id: process id (0 when it left before it was asked)}"""
        out = {}
        text = sh("virt-admin", "-c", self.uri, "client-list", self.server)
        for line in text.splitlines()[2:]:
            parts = line.split()
            if not parts or not parts[0].isdigit():
                continue
            cid = int(parts[0])
            info = subprocess.run(
                ["virt-admin", "-c", self.uri, "client-info", self.server, str(cid)],
                capture_output=True,
                text=True,
            ).stdout
            pid = 0
            for l in info.splitlines():
                k, _, v = l.partition(":")
                if k.strip() == "unix_process_id" and v.strip().isdigit():
                    pid = int(v.strip())
            out[cid] = pid
        return out

    def probe(self):
        """The client id libvirtd gives a new connection (ids only grow), from a short
        virsh connection of our own; None when it could not be seen."""
        p = subprocess.Popen(["virsh", "-c", URI], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True)
        try:
            p.stdin.write("uri\n")
            p.stdin.flush()
            for _ in range(40):
                for cid, pid in self.list().items():
                    if pid == p.pid:
                        return cid
                time.sleep(0.05)
            return None
        finally:
            p.stdin.close()
            p.wait()


def descends(pid, root):
    while pid > 1:
        if pid == root:
            return True
        pid = ppid(pid)
    return False


class Window:
    """Ticks of the tool, the daemons and the QEMU processes, between start() and stop().

    `expected()` gives how many libvirt connections the tool itself opens in the window
    (0 for one held for the whole window); libvirtd's client ids, read with a probe
    connection before and after, must not move by more."""

    def __init__(self, label, clients, tool_pid=None, expected=lambda: 0):
        self.label = label
        self.clients = clients
        self.tool_pid = tool_pid
        self.expected = expected
        self.problems = []

    def check_clients(self, when):
        for cid, pid in self.clients.list().items():
            if pid == 0:
                continue  # gone between the list and its info: one of the tool's short calls
            if self.tool_pid and descends(pid, self.tool_pid):
                continue
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = "?"
            self.problems.append(f"another libvirt client at the {when}: id {cid}, pid {pid} ({comm})")

    def start(self):
        self.daemons = daemons()
        self.qemus = qemu_pids()  # (a libvirt connection: before the probe)
        self.check_clients("start")
        self.id0 = self.clients.probe()
        self.t0 = time.monotonic()
        self.c0 = self._sample()

    def _sample(self):
        return {
            "tool": ticks(self.tool_pid, children=True) if self.tool_pid else 0,
            "libvirt": sum(ticks(p) for _, p in self.daemons),
            "qemu": sum(ticks(p) for p in self.qemus.values()),
            # (part of "qemu", not added to the whole)
            "qemu_vcpu": sum(thread_ticks(p, vcpu=True) for p in self.qemus.values()),
        }

    def stop(self):
        c1 = self._sample()
        self.wall = time.monotonic() - self.t0
        expected = self.expected()
        self.check_clients("end")
        id1 = self.clients.probe()
        qemus = qemu_pids()
        if self.id0 is None or id1 is None:
            self.problems.append("libvirtd's client ids could not be read")
        else:
            self.connections = id1 - self.id0 - 1
            # one more for a call of the tool in flight at a window's edge
            if self.connections > expected + (1 if expected else 0):
                self.problems.append(
                    f"{self.connections} libvirt connections opened during the window, "
                    f"the tool's own: {expected}"
                )
        if qemus != self.qemus:
            self.problems.append("the running domains changed during the window")
        self.ticks = {k: c1[k] - self.c0[k] for k in c1}
        return self


def wait_http(url, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"{what} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            body = urllib.request.urlopen(url, timeout=5).read()
            if b"domain" in body:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not answer on {url}")


def scrape_window(win, url, must):
    done = [0]
    win.expected = lambda: done[0]  # the prometheus exporter connects for each scrape
    win.start()
    t0 = time.monotonic()
    for i in range(DURATION):
        done[0] += 1
        body = urllib.request.urlopen(url, timeout=5).read()
        if must not in body:
            sys.exit(f"{url} returned no domain metrics")
        time.sleep(max(0.0, t0 + i + 1 - time.monotonic()))
    return win.stop()


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_idle(clients, _binary):
    win = Window("idle", clients)
    win.start()
    time.sleep(DURATION)
    return win.stop()


def run_kvmtune(clients, binary):
    p = subprocess.Popen(
        [binary, "stat", "--interval", "1", "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not p.stdout.readline():
            sys.exit("kvmtune stat printed nothing")
        # keep reading its output (a full pipe would stop it)
        drain = subprocess.Popen(["cat"], stdin=p.stdout, stdout=subprocess.DEVNULL)
        win = Window("kvmtune", clients, p.pid)
        win.start()
        time.sleep(DURATION)
        win.stop()
        stop(p)
        drain.wait()
        return win
    finally:
        if p.poll() is None:
            stop(p)


def run_virsh(clients, _binary):
    # one line per call on stdout: the connections the loop opens in the window
    script = f"while :; do echo; virsh -c {URI} domstats --vm --cpu-total --vcpu >/dev/null; sleep 1; done"
    p = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    calls = [0]
    os.set_blocking(p.stdout.fileno(), False)

    def count():
        calls[0] += len(p.stdout.read() or b"")
        return calls[0]

    try:
        time.sleep(1.5)
        win = Window("virsh", clients, p.pid)
        win.start()
        before = count()
        win.expected = lambda: count() - before
        time.sleep(DURATION)
        return win.stop()
    finally:
        stop(p)


def run_prom(clients, _binary):
    exe = shutil.which("prometheus-libvirt-exporter")
    if not exe:
        sys.exit("prometheus-libvirt-exporter is not installed (apt-get install prometheus-libvirt-exporter)")
    p = subprocess.Popen(
        [exe, f"--web.listen-address={PROM_ADDR}", f"--libvirt.uri={URI}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://{PROM_ADDR}/metrics"
        wait_http(url, p, "prometheus-libvirt-exporter")
        return scrape_window(Window("prom-exporter", clients, p.pid), url, b"libvirt_domain")
    finally:
        stop(p)


def run_kvmtune_exporter(clients, binary):
    p = subprocess.Popen(
        [binary, "exporter", "--listen", KVMTUNE_ADDR],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://{KVMTUNE_ADDR}/metrics"
        wait_http(url, p, "kvmtune exporter")
        return scrape_window(Window("kvmtune-exp", clients, p.pid), url, b"kvmtune_domain")
    finally:
        stop(p)


RUN = {
    "idle": run_idle,
    "kvmtune": run_kvmtune,
    "virsh": run_virsh,
    "prom-exporter": run_prom,
    "kvmtune-exp": run_kvmtune_exporter,
}


def settle(started):
    """Wait until the QEMU processes' CPU use is steady (guests just started are still
    booting): three 5 s steps within 15% of each other, at most 3 minutes."""
    rates = []
    for _ in range(36 if started else 6):
        q = qemu_pids()
        a = sum(ticks(p) for p in q.values())
        time.sleep(5)
        rates.append(sum(ticks(p) for p in q.values()) - a)
        last = rates[-3:]
        if len(last) == 3 and max(last) <= 1.15 * max(1, min(last)):
            return


def secs(t):
    return t / HZ


def replay(path):
    """The summary of a saved run: its window lines (`  round N TOOL  tool X s  libvirt Y s
    qemu Z s (vCPU threads V s)`), reported again (with this version's verdict rules)."""
    line = re.compile(
        r"\s+round (\d+) (\S+)\s+tool\s+([-\d.]+) s\s+libvirt\s+([-\d.]+) s\s+"
        r"qemu\s+([-\d.]+) s \(vCPU threads\s+([-\d.]+) s\)"
    )
    rounds = {}
    with open(path) as f:
        for text in f:
            m = line.match(text)
            if not m:
                continue
            n, tool, t, lv, q, v = m.groups()
            w = types.SimpleNamespace(
                problems=["discarded in the run"] if "DISCARDED" in text else [],
                ticks={k: round(float(x) * HZ) for k, x in
                       (("tool", t), ("libvirt", lv), ("qemu", q), ("qemu_vcpu", v))},
            )
            rounds.setdefault(int(n), {})[tool] = w
    # the tools the saved run measured (in every round), whatever TOOLS says now
    global TOOLS
    TOOLS = [t for t in ALL_TOOLS if rounds and all(t in r for r in rounds.values())]
    complete = [r for _, r in sorted(rounds.items())]
    if "idle" not in TOOLS or "prom-exporter" not in TOOLS:
        sys.exit(f"{path}: no rounds with an idle and an exporter window")
    summary = report(complete)
    print(json.dumps({"replayed": path, "rounds": len(complete), "summary": summary}))


def main():
    if os.environ.get("REPLAY"):
        replay(os.environ["REPLAY"])
        return
    if os.geteuid() != 0:
        sys.exit("run as root (libvirt's system connection, /proc of QEMU processes)")
    binary = os.environ.get("KVMTUNE_BIN")
    if not binary:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        binary = os.path.join(target, "release/kvmtune")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "kvmtune"], cwd=REPO, check=True)
    daemon = daemons()[0][0]
    clients = Clients(daemon)
    started = []
    paused = []
    try:
        if PAUSE_OTHERS:
            for name in running():
                if sh("virsh", "-c", URI, "domstate", name).strip() == "running":
                    sh("virsh", "-c", URI, "suspend", name)
                    paused.append(name)
        n = len(running())
        i = 0
        while n < MIN_DOMAINS:
            name = f"{GUEST_PREFIX}-{i}"
            i += 1
            if name in running():
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
                xml = GUEST_KVM_IDLE if GUEST_TYPE == "kvm-idle" else GUEST
                f.write(xml.format(name=name, lab=LAB_DIR))
            sh("virsh", "-c", URI, "create", f.name)
            os.unlink(f.name)
            started.append(name)
            n += 1
        settle(bool(started))
        doms = running()
        if paused:
            print(f"paused for the run: {', '.join(paused)}")
        print(
            f"{len(doms)} running domains, {os.cpu_count()} host CPUs, {ROUNDS} rounds of "
            f"{DURATION} s windows at a 1 s interval; daemons {', '.join(d for d, _ in daemons())}",
            flush=True,
        )
        rounds = []
        for r in range(ROUNDS):
            order = TOOLS[r % len(TOOLS) :] + TOOLS[: r % len(TOOLS)]
            res = {}
            for tool in order:
                w = RUN[tool](clients, binary)
                res[tool] = w
                t = w.ticks
                print(
                    f"  round {r + 1} {tool:<14} tool {secs(t['tool']):6.2f} s  libvirt {secs(t['libvirt']):6.2f} s"
                    f"  qemu {secs(t['qemu']):7.2f} s (vCPU threads {secs(t['qemu_vcpu']):6.2f} s)"
                    f"  ({w.wall:.1f} s wall)"
                    + ("  DISCARDED: " + "; ".join(w.problems) if w.problems else ""),
                    flush=True,
                )
            rounds.append(res)
        summary = report(rounds)
        print(json.dumps({"domains": len(doms), "duration_s": DURATION, "rounds": ROUNDS, "summary": summary}))
    finally:
        for name in started:
            subprocess.run(["virsh", "-c", URI, "destroy", name], capture_output=True)
        for name in paused:
            subprocess.run(["virsh", "-c", URI, "resume", name], capture_output=True)


def report(rounds):
    """Per tool: window minus the same round's idle window, min and median over the valid
    rounds (both the tool's and the idle window valid)."""
    net = {t: [] for t in TOOLS if t != "idle"}
    for res in rounds:
        idle = res["idle"]
        for t in net:
            w = res[t]
            if w.problems or idle.problems:
                continue
            parts = {k: secs(w.ticks[k] - idle.ticks[k]) for k in w.ticks}
            parts["whole"] = parts["tool"] + parts["libvirt"] + parts["qemu"]
            parts["qemu_other"] = parts["qemu"] - parts["qemu_vcpu"]
            net[t].append(parts)
    print()
    print(f"CPU seconds per {DURATION} s window beyond the idle window (tool + libvirt + QEMU), over rounds:")
    print(f"{'tool':<15}{'valid':>6}{'min':>9}{'median':>9}{'ms/s':>8}   median of: tool / libvirt / qemu")
    summary = {}
    for t, rows in net.items():
        if len(rows) < 2:
            print(f"{t:<15}{len(rows):>6}   not reported: fewer than 2 valid rounds")
            continue
        whole = [x["whole"] for x in rows]
        med = {k: statistics.median(x[k] for x in rows) for k in ("tool", "libvirt", "qemu")}
        summary[t] = {"valid": len(rows), "min_s": min(whole), "median_s": statistics.median(whole), **{f"{k}_median_s": v for k, v in med.items()}}
        print(
            f"{t:<15}{len(rows):>6}{min(whole):>9.2f}{statistics.median(whole):>9.2f}"
            f"{1000 * statistics.median(whole) / DURATION:>8.1f}   {med['tool']:.2f} / {med['libvirt']:.2f} / {med['qemu']:.2f}"
        )
    idle = [secs(r["idle"].ticks["qemu"]) for r in rounds if not r["idle"].problems]
    # how far the guests' own work moved between idle windows: a whole cost smaller than
    # this cannot be told from noise
    idle_spread = max(idle) - min(idle) if len(idle) >= 2 else 0.0
    if len(idle) >= 2:
        print(
            f"(noise: the idle windows' QEMU CPU ranged {min(idle):.2f}-{max(idle):.2f} s; "
            f"tool and libvirt figures are exact to a tick, {1 / HZ:.2f} s)"
        )
    # QEMU split: its vCPU threads (the guests' own work: most of the noise) and its other
    # threads (the main loop that answers libvirt's QMP commands, I/O and worker threads)
    print()
    print("QEMU's part split by thread, medians beyond the idle window: vCPU threads / other threads")
    for t, rows in net.items():
        if len(rows) >= 2:
            v = statistics.median(x["qemu_vcpu"] for x in rows)
            o = statistics.median(x["qemu_other"] for x in rows)
            summary[t]["qemu_vcpu_median_s"] = v
            summary[t]["qemu_other_median_s"] = o
            print(f"  {t:<15}{v:7.2f} / {o:5.2f}")
    ok = [r["idle"] for r in rounds if not r["idle"].problems]
    if len(ok) >= 2:
        v = [secs(w.ticks["qemu_vcpu"]) for w in ok]
        o = [secs(w.ticks["qemu"] - w.ticks["qemu_vcpu"]) for w in ok]
        print(
            f"  (idle windows: vCPU threads {min(v):.2f}-{max(v):.2f} s, "
            f"other threads {min(o):.2f}-{max(o):.2f} s)"
        )
    print()
    prom = summary.get("prom-exporter")
    for t, label in (("kvmtune", "kvmtune whole cost"), ("kvmtune-exp", "kvmtune exporter whole cost")):
        s = summary.get(t)
        if not s or not prom:
            print(f"{label} <= 0.5x prometheus-libvirt-exporter: not measured (too few valid rounds)")
            continue
        own = s["tool_median_s"] + s["libvirt_median_s"]
        prom_own = prom["tool_median_s"] + prom["libvirt_median_s"]
        if prom_own > 0:
            s["ratio_to_prom_without_qemu"] = own / prom_own
            print(f"{label} / prometheus-libvirt-exporter without QEMU (tool + libvirt, medians): {own / prom_own:.2f}x")
        if prom["median_s"] <= 0:
            print(
                f"{label} <= 0.5x prometheus-libvirt-exporter: not measurable (the exporter's "
                "median whole cost is within the idle noise; use longer windows or more rounds)"
            )
            continue
        # beside the verdict: the whole cost without QEMU's vCPU threads, where the guests'
        # own noise is (QEMU's main loop answers the QMP commands)
        own_q = own + s.get("qemu_other_median_s", 0.0)
        prom_q = prom_own + prom.get("qemu_other_median_s", 0.0)
        if prom_q > 0:
            s["ratio_to_prom_without_vcpu_threads"] = own_q / prom_q
            print(
                f"{label} / prometheus-libvirt-exporter without QEMU's vCPU threads "
                f"(tool + libvirt + QEMU's other threads, medians): {own_q / prom_q:.2f}x"
            )
        r_med = s["median_s"] / prom["median_s"]
        s["ratio_to_prom_median"] = r_med
        mins = f"{s['min_s'] / prom['min_s']:.2f}x (mins)" if prom["min_s"] > 0 else "mins within noise"
        print(f"{label} / prometheus-libvirt-exporter: {r_med:.2f}x (medians), {mins}")
        # no verdict from noise: a negative cost, or an exporter cost smaller than the spread
        # of the idle windows, says the guests' own work moved more than the tools cost
        if s["median_s"] < 0 or prom["median_s"] < idle_spread:
            s["verdict"] = "not measurable"
            print(
                f"{label} <= 0.5x prometheus-libvirt-exporter: not measurable (the idle "
                f"windows' QEMU CPU spread {idle_spread:.2f} s; medians {s['median_s']:.2f} s "
                f"and {prom['median_s']:.2f} s for the exporter: read the ratios without "
                "QEMU's vCPU threads above)"
            )
            continue
        s["verdict"] = "met" if r_med <= 0.5 else "NOT met"
        print(f"{label} <= 0.5x prometheus-libvirt-exporter: {s['verdict']} (medians)")
    return summary


if __name__ == "__main__":
    main()
