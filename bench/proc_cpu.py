"""CPU time and wake-ups of process groups read from /proc: a service or a local server with whatever it started
(noida-db runs under a launcher), so a benchmark can say which process a message's cost lies in."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
QUIET_GAP_SECONDS = 0.01  # a message every 10 ms, as at 100 msg/s: each finds the process asleep


def _stat_fields(pid: str) -> list[str] | None:
    try:
        # the command name may hold spaces and parentheses: the fields start after the last ")"
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    # The voluntary context switches of the group's live threads: each is a thread going to sleep until something
    # (a socket, a timer, a lock) wakes it, so the count is how many times the group was woken. A thread that ended
    # takes its count with it (unlike its CPU time): the services' and servers' threads mostly live as long as they
    # do, the local database's connection threads as long as their connections.
    wakeups: float

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_seconds + other.cpu_seconds, self.wakeups + other.wakeups)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu_seconds - other.cpu_seconds, self.wakeups - other.wakeups)

    def times(self, factor: float) -> Usage:
        return Usage(self.cpu_seconds * factor, self.wakeups * factor)


def _voluntary_switches(pid: str) -> int:
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for thread in threads:
        try:
            status = Path(f"/proc/{pid}/task/{thread}/status").read_text()
        except OSError:
            continue
        found = status.find("\nvoluntary_ctxt_switches:")
        if found >= 0:
            total += int(status[found:].split(None, 2)[1])
    return total


class ProcessGroups:
    """`leaders` names process-group leaders (each started in its own session); the CPU of a group is the sum of
    user and system time of its live members."""

    def __init__(self, leaders: dict[str, int]) -> None:
        self.leaders = leaders

    def cpu_seconds(self) -> dict[str, float]:
        return {name: usage.cpu_seconds for name, usage in self.usage(wakeups=False).items()}

    def usage(self, wakeups: bool = True) -> dict[str, Usage]:
        by_group = {pid: Usage(0.0, 0) for pid in self.leaders.values()}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(entry.name)
            if fields is None:
                continue
            group = int(fields[2])  # pgrp
            if group in by_group:
                cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, its ended threads' included
                by_group[group] += Usage(cpu, _voluntary_switches(entry.name) if wakeups else 0)
        return {name: by_group[pid] for name, pid in self.leaders.items()}

    def rates_over(self, seconds: float) -> dict[str, Usage]:
        """What each group used per second over the next `seconds`: cores (1.0 = one core busy all the time) and
        wake-ups."""
        before, started = self.usage(), time.monotonic()
        time.sleep(seconds)
        after, elapsed = self.usage(), time.monotonic() - started
        return {name: (after[name] - before[name]).times(1 / elapsed) for name in after}


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
