#!/usr/bin/env python3
"""Fleet reading cost (issue 13 §3): `kvmtune fleet` and `kvmtune audit --hosts` over 1, 8 and
32 real libvirtd daemons (the lab's fleet, scripts/lab fleet-up), against a shell loop of
`virsh -c URI capabilities` + `virsh -c URI list` + `virsh -c URI dumpxml DOM` per host doing
the same reading. Per size and tool: wall time, the tool's own CPU time (user+sys of it and its
children), and the CPU the fleet's libvirtd daemons spent serving it (their utime+stime from
/proc before and after), each the median of --runs runs.

    bench/fleet.py [--sizes 1,8,32] [--runs 3] [--bin target/release/kvmtune]

Needs root and scripts/lab up. Large fleets are defined without running guests
(KVMTUNE_LAB_NO_START=1); the fleet is shrunk back to 3 hosts at the end. Results go in
BENCHMARKS.md ("Fleet reading").
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PRIVATE = "/var/tmp/kvmtune-private"


def addr(i):
    # scripts/lab's fleet_addr: 127.0.0.(1+I), skipping 127.0.0.9
    a = 1 + i
    if a >= 9:
        a += 1
    return f"127.0.0.{a}"


def uris(n):
    return [f"qemu+tcp://{addr(i)}/system" for i in range(1, n + 1)]


def daemon_cpu(n):
    """CPU seconds used so far by the libvirtd of fleet1..fleetN."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for i in range(1, n + 1):
        try:
            pid = open(f"{PRIVATE}/fleet{i}/libvirtd.pid").read().strip()
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(cmd, n, shell=False):
    """(wall s, own CPU s, daemons' CPU s) of one run of cmd."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    d0 = daemon_cpu(n)
    t0 = time.monotonic()
    r = subprocess.run(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # libvirtd accounts its work a moment later: let it settle
    time.sleep(0.3)
    d1 = daemon_cpu(n)
    if r.returncode not in (0, 1):
        sys.exit(f"{cmd!r} failed ({r.returncode}): {r.stderr.decode(errors='replace')[:400]}")
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, own, d1 - d0


def virsh_loop(us):
    lines = []
    for u in us:
        lines.append(
            f"virsh -c {u} capabilities >/dev/null; "
            f"for d in $(virsh -c {u} list --all --name); do virsh -c {u} dumpxml --inactive \"$d\" >/dev/null; done"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,8,32")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/kvmtune"))
    a = ap.parse_args()
    if a.bin.endswith("target/release/kvmtune"):
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "kvmtune"], cwd=ROOT, check=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    rows = []
    try:
        for n in sizes:
            env = dict(os.environ, KVMTUNE_LAB_NO_START="1")
            subprocess.run([os.path.join(ROOT, "scripts/lab"), "fleet-up", str(max(n, 3))],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            us = uris(n)
            with tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False) as f:
                f.write("\n".join(us) + "\n")
                hosts = f.name
            tools = [
                ("kvmtune fleet", [a.bin, "--hosts", hosts, "fleet"], False),
                ("kvmtune audit --hosts", [a.bin, "--hosts", hosts, "audit", "--all"], False),
                ("virsh loop", virsh_loop(us), True),
            ]
            for name, cmd, shell in tools:
                runs = [measure(cmd, n, shell) for _ in range(a.runs)]
                med = [statistics.median(x) for x in zip(*runs)]
                rows.append((n, name, *med))
                print(f"{n:>3} hosts  {name:<22} wall {med[0]:7.3f} s  own CPU {med[1]:7.3f} s  "
                      f"libvirtd CPU {med[2]:7.3f} s", flush=True)
            os.unlink(hosts)
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/lab"), "fleet-up", "3"],
                       stdout=subprocess.DEVNULL, check=False)
    print()
    print("ratios (virsh loop / kvmtune; >1: kvmtune cheaper):")
    by = {(n, name): (w, c, d) for n, name, w, c, d in rows}
    for n in sizes:
        v = by[(n, "virsh loop")]
        for name in ("kvmtune fleet", "kvmtune audit --hosts"):
            k = by[(n, name)]
            print(f"{n:>3} hosts  {name:<22} wall x{v[0] / k[0]:5.1f}  "
                  f"CPU (own + libvirtd) x{(v[1] + v[2]) / max(k[1] + k[2], 1e-9):5.1f}")


if __name__ == "__main__":
    main()
