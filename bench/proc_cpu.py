"""CPU time of process groups read from /proc: a service or a local server with whatever it started (noida-db
runs under a launcher), so a benchmark can say which process a message's cost lies in."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
QUIET_GAP_SECONDS = 0.01  # a message every 10 ms, as at 100 msg/s: each finds the process asleep


def _stat_fields(pid: str) -> list[str] | None:
    try:
        # the command name may hold spaces and parentheses: the fields start after the last ")"
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


class ProcessGroups:
    """`leaders` names process-group leaders (each started in its own session); the CPU of a group is the sum of
    user and system time of its live members."""

    def __init__(self, leaders: dict[str, int]) -> None:
        self.leaders = leaders

    def cpu_seconds(self) -> dict[str, float]:
        by_group = {pid: 0.0 for pid in self.leaders.values()}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(entry.name)
            if fields is None:
                continue
            group = int(fields[2])  # pgrp
            if group in by_group:
                by_group[group] += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        return {name: by_group[pid] for name, pid in self.leaders.items()}

    def rates_over(self, seconds: float) -> dict[str, float]:
        """Cores used by each group over the next `seconds` (1.0 = one core busy all the time)."""
        before, started = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        after, elapsed = self.cpu_seconds(), time.monotonic() - started
        return {name: (after[name] - before[name]) / elapsed for name in after}


def reference_cpu_ms(rounds: int = 5) -> float:
    """CPU time of a fixed pure-Python workload, the median of `rounds`: how fast this machine runs Python now. On a
    shared host the same code takes tens of percent more CPU time at one moment than at another (its cores shared with
    other guests), which moves every process's CPU per message alike; runs are compared with this beside them."""
    times = []
    for _ in range(rounds):
        started = time.process_time()
        sum(number * number for number in range(1_000_000))
        times.append((time.process_time() - started) * 1000)
    return sorted(times)[rounds // 2]


def woken_cpu_us(gap_seconds: float, pieces: int = 300) -> float:
    """CPU time of a small fixed piece of Python (tens of µs on a busy core: a handler's bookkeeping for one message)
    when each piece follows a sleep of `gap_seconds` (0: back to back), the wake-up included, the median of three
    rounds. What a process woken for every message pays on top of the work: on a virtual machine the wake-up, and the
    caches the sleep let go cold, cost several times the piece itself (docs/benchmarks.md, "What a wake-up costs")."""
    numbers = list(range(300))
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(pieces):
            if gap_seconds:
                time.sleep(gap_seconds)
            sorted(str(number) for number in numbers)
        rounds.append((time.process_time() - started) * 1e6 / pieces)
    return sorted(rounds)[1]
