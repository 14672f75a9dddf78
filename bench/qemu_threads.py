"""CPU time of a QEMU process's threads by kind, from /proc (shared by the benches).

vCPU threads (`CPU n/KVM`, `CPU n/TCG`) run the guest's own work, and QEMU reads each
vCPU's KVM statistics there for `query-stats`; the other threads (the main loop, which
answers QMP, I/O and worker threads) are what a statistics call costs QEMU besides.
"""

import os
import re

VCPU_THREAD = re.compile(r"^CPU \d+/(TCG|KVM)$")


def thread_ticks(pid, vcpu):
    """utime+stime (clock ticks) of the live threads of process `pid` that are vCPU
    threads (`vcpu=True`) or are not; threads that end while being read are skipped."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                is_vcpu = VCPU_THREAD.match(f.read().strip()) is not None
            if is_vcpu != vcpu:
                continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
            fields = st[st.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total
