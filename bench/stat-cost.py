#!/usr/bin/env python3
"""CPU cost of watching every VM once a second, side by side in one run:

  kvmtune   `kvmtune stat --interval 1 --count N --format jsonl` (one libvirt call per
            interval for every domain, plus /proc of each QEMU process)
  virsh     a shell loop of `virsh domstats --vm --cpu-total --vcpu` every second
  exporter  prometheus-libvirt-exporter (Debian package) scraped once a second on loopback

Each runs alone for DURATION seconds (default 60) with at least MIN_DOMAINS (default 8)
running domains; missing domains are started as transient TCG guests from the lab's kernel
and destroyed at the end. Client CPU is user+system time of the tool (its children included:
the virsh processes of the loop); libvirtd's CPU over the same window is the server side each
tool makes libvirt spend. Run as root with the lab up (`scripts/lab up`):

    python3 bench/stat-cost.py            # DURATION=60 MIN_DOMAINS=8
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

URI = "qemu:///system"
DURATION = int(os.environ.get("DURATION", "60"))
MIN_DOMAINS = int(os.environ.get("MIN_DOMAINS", "8"))
LAB_DIR = os.environ.get("KVMTUNE_LAB_DIR", "/var/cache/kvmtune-lab")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")

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


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def running():
    return [l for l in sh("virsh", "-c", URI, "list", "--name").split() if l]


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def pidof(name):
    out = sh("pgrep", "-x", name, check=False).split()
    return int(out[0]) if out else None


def run_child(argv, **kw):
    """Run to completion; return (wall seconds, CPU seconds of it and its children)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed: {p.stderr.read().decode()}")
    return wall, ru.ru_utime + ru.ru_stime


def measure(label, fn):
    libvirtd = pidof("libvirtd")
    l0 = ticks(libvirtd)
    wall, client = fn()
    server = (ticks(libvirtd) - l0) / HZ
    print(f"  {label:<9} {wall:6.1f} s wall  client {client:7.3f} s CPU  libvirtd {server:7.3f} s CPU", flush=True)
    return {"tool": label, "wall_s": wall, "client_cpu_s": client, "libvirtd_cpu_s": server}


def kvmtune(binary):
    return run_child([binary, "stat", "--interval", "1", "--count", str(DURATION), "--format", "jsonl"])


def virsh_loop():
    script = (
        f"for i in $(seq {DURATION}); do virsh -c {URI} domstats --vm --cpu-total --vcpu >/dev/null; sleep 1; done"
    )
    return run_child(["bash", "-c", script])


def exporter():
    exe = shutil.which("prometheus-libvirt-exporter")
    if not exe:
        sys.exit("prometheus-libvirt-exporter is not installed (apt-get install prometheus-libvirt-exporter)")
    p = subprocess.Popen(
        [exe, "--web.listen-address=127.0.0.1:19177", f"--libvirt.uri={URI}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = "http://127.0.0.1:19177/metrics"
        for _ in range(50):
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        t0 = time.monotonic()
        c0 = ticks(p.pid)
        for i in range(DURATION):
            body = urllib.request.urlopen(url, timeout=5).read()
            if b"libvirt_domain" not in body:
                sys.exit("the exporter returned no domain metrics")
            target = t0 + (i + 1)
            time.sleep(max(0.0, target - time.monotonic()))
        wall = time.monotonic() - t0
        return wall, (ticks(p.pid) - c0) / HZ
    finally:
        p.terminate()
        p.wait()


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (libvirt's system connection, /proc of QEMU processes)")
    binary = os.path.join(REPO, "target/release/kvmtune")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "kvmtune"], cwd=REPO, check=True)
    started = []
    try:
        n = len(running())
        i = 0
        while n < MIN_DOMAINS:
            name = f"bench-stat-{i}"
            i += 1
            if name in running():
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
                f.write(GUEST.format(name=name, lab=LAB_DIR))
            sh("virsh", "-c", URI, "create", f.name)
            os.unlink(f.name)
            started.append(name)
            n += 1
        time.sleep(8 if started else 0)
        doms = running()
        cpus = os.cpu_count()
        print(f"{len(doms)} running domains, {cpus} host CPUs, {DURATION} s each at a 1 s interval", flush=True)
        results = [
            measure("kvmtune", lambda: kvmtune(binary)),
            measure("virsh", virsh_loop),
            measure("exporter", exporter),
        ]
        k = results[0]
        print()
        print(f"{'tool':<10}{'client CPU':>12}{'kvmtune/it':>12}{'+libvirtd':>12}{'kvmtune/it':>12}")
        for r in results:
            tot = r["client_cpu_s"] + r["libvirtd_cpu_s"]
            ktot = k["client_cpu_s"] + k["libvirtd_cpu_s"]
            r["ratio_client"] = k["client_cpu_s"] / r["client_cpu_s"] if r["client_cpu_s"] else None
            r["ratio_with_libvirtd"] = ktot / tot if tot else None
            print(
                f"{r['tool']:<10}{r['client_cpu_s']:>11.3f}s{r['ratio_client'] or 0:>12.3f}"
                f"{tot:>11.3f}s{r['ratio_with_libvirtd'] or 0:>12.3f}"
            )
        print(json.dumps({"domains": len(doms), "duration_s": DURATION, "results": results}))
    finally:
        for name in started:
            subprocess.run(["virsh", "-c", URI, "destroy", name], capture_output=True)


if __name__ == "__main__":
    main()
