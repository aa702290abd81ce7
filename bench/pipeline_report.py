"""What bench/pipeline.py reports: the steps as a table (stdout and docs/benchmarks.md) and a chart."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proc_cpu import QUIET_GAP_SECONDS, Usage

SERVICES = ("ingest", "contacts", "router", "outbound", "media")
SERVERS = ("broker", "database", "cache")
BEGIN, END = "<!-- pipeline:begin -->", "<!-- pipeline:end -->"


@dataclass(frozen=True)
class Window:
    """Part of a step (`--windows`): from `start` s into it, for `seconds`."""

    start: float
    seconds: float
    offered: int  # messages posted in it that were offered
    p50: float  # their webhook → offered latency
    p99: float
    cores: dict[str, float]  # what each process group used in it, idle included (1.0: one core all the time)


@dataclass(frozen=True)
class Step:
    rate: float
    offered: int
    accepted: int
    shed: int
    failed: int
    http_p50: float
    http_p99: float
    p50: float
    p99: float
    not_offered: int
    seconds: float
    cpu_ms: dict[str, float]  # CPU per accepted message, idle subtracted, per process group
    wakeups: dict[str, float]  # the same for the times its threads were woken (proc_cpu.Usage)
    replies: int | None = None  # the replies step: replies accepted by the API
    replies_refused: int = 0
    reply_p50: float = math.nan
    reply_p99: float = math.nan
    replies_unsent: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    reply_rate: float = 0.0
    # the database's own CPU by command shape over the step: shape → [commands, documents, CPU seconds]
    database_commands: dict[str, list[float]] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(self.cpu_ms.values())

    def line(self) -> str:
        reply = "" if self.replies is None else (
            f"; replies {self.replies} (refused {self.replies_refused}, not sent {self.replies_unsent}) "
            f"accepted→provider p50 {self.reply_p50:.0f} / p99 {self.reply_p99:.0f} ms")
        return (f"{self.rate:5.0f} msg/s offered: {self.offered} posted, {self.accepted} accepted, "
                f"{self.shed} answered 503, {self.failed} failed; HTTP p50 {self.http_p50:.0f} / p99 "
                f"{self.http_p99:.0f} ms; offered p50 {_ms(self.p50)} / p99 {_ms(self.p99)} ({self.not_offered} not "
                f"offered); CPU {self.total_ms:.1f} ms/msg" + reply)


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:.0f} ms"


def render_markdown(steps: list[Step], idle: dict[str, Usage], ceilings: dict[str, Any], command: str) -> str:
    inbound = [step for step in steps if step.replies is None]
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (load average at the end {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores), `.venv/bin/python bench/pipeline.py {command}`".rstrip(),
        "",
        "| offered msg/s | posted | accepted | 503 | failed | webhook HTTP p50 / p99 | webhook → offered p50 / p99 "
        "| not offered | CPU ms/msg (all) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for step in inbound:
        lines.append(f"| {step.rate:.0f} | {step.offered} | {step.accepted} | {step.shed} | {step.failed} | "
                     f"{step.http_p50:.0f} / {step.http_p99:.0f} ms | {_ms(step.p50)} / {_ms(step.p99)} | "
                     f"{step.not_offered} | {step.total_ms:.1f} |")
    names = [name for name in (*SERVICES, *SERVERS) if name in idle]
    if ceilings.get("seeded"):
        lines += ["", ceilings["seeded"] + "."]
    lines += _per_process("CPU per accepted message, idle subtracted (ms):", inbound, names,
                          lambda step: step.cpu_ms, digits=2)
    lines += _per_process("Wake-ups per accepted message, idle subtracted (the times a thread of the process was "
                          "woken: voluntary context switches, from /proc):", inbound, names,
                          lambda step: step.wakeups, digits=1)
    for step in steps:
        lines += _windows(step, names)
    lines += ["", "Idle, before any load (% of a core; wake-ups a second): " + ", ".join(
        f"{name} {idle[name].cpu_seconds * 100:.1f} ({idle[name].wakeups:.0f})" for name in names) + "."]
    for step in steps:
        if step.replies is not None:
            lines += ["", f"Agents' replies at {step.reply_rate:.0f}/s alongside {step.rate:.0f} "
                          f"inbound msg/s: {step.replies} accepted (202), {step.replies_refused} refused, "
                          f"{step.replies_unsent} not sent within the step; API accepted → provider called p50 "
                          f"{step.reply_p50:.0f} ms, p99 {step.reply_p99:.0f} ms. Inbound in that step: "
                          f"{step.accepted}/{step.offered} accepted, offered p50 {_ms(step.p50)} / p99 "
                          f"{_ms(step.p99)}.", *_reply_cpu(step, inbound)]
    refused = [f"{step.rate:.0f}/s: " + ", ".join(f"{key}: {count}" for key, count in sorted(step.refusals.items()))
               for step in steps if step.refusals]
    if refused:
        lines += ["", "Refusals by step (what, status, code): " + "; ".join(refused) + "."]
    for step in steps:
        if step.database_commands:
            lines += ["", *_database_commands(step)]
    if ceilings.get("infrastructure"):
        lines += ["", "The infrastructure alone, same run: " + "; ".join(ceilings["infrastructure"]) + "."]
    if ceilings.get("reference_ms"):
        before, after = ceilings["reference_ms"]
        lines += ["", f"The machine's speed: a fixed pure-Python loop (`proc_cpu.reference_cpu_ms`) took {before:.0f} "
                      f"ms of CPU before the run and {after:.0f} ms after it (more: every process's CPU per message "
                      "inflated alike)."]
    if ceilings.get("woken_us"):
        warm, woken = ceilings["woken_us"]
        lines += ["", f"What a wake-up costs: a small fixed piece of Python (`proc_cpu.woken_cpu_us`) took {warm:.0f} "
                      f"µs of CPU back to back and {woken:.0f} µs after each {QUIET_GAP_SECONDS * 1000:.0f} ms sleep "
                      "(the wake-up and cold caches: what a process woken for each message pays besides its work)."]
    if ceilings.get("round_trips"):
        lines += ["", "Round trips per accepted inbound message, counted over the whole run (counting mode; the "
                      "agents' setup and any replies step included):", "",
                  "| service | database | cache | Kafka records produced |", "|---|---|---|---|"]
        total = max(1, sum(step.accepted for step in steps))
        for name, counts in ceilings["round_trips"].items():
            lines.append(f"| {name} | {counts.get('database', 0) / total:.2f} | {counts.get('cache', 0) / total:.2f} "
                         f"| {counts.get('kafka_produced', 0) / total:.2f} |")
        by_command = [f"{name}: " + ", ".join(f"{command} {times / total:.2f}" for (kind, command), times in sorted(
            commands.items(), key=lambda item: -item[1]) if kind == "database" and times / total >= 0.02)
            for name, commands in ceilings.get("round_trip_commands", {}).items() if commands]
        if by_command:
            lines += ["", "Database commands per accepted message (≥ 0.02): " + "; ".join(by_command) + "."]
    return "\n".join(lines) + "\n"


def _per_process(title: str, steps: list[Step], names: list[str], values: Callable[[Step], dict[str, float]],
                 digits: int) -> list[str]:
    """A table of one figure per process group and step, with the step's total."""
    lines = ["", title, "", "| offered msg/s | " + " | ".join(names) + " | total |", "|---" * (len(names) + 2) + "|"]
    for step in steps:
        figures = values(step)
        lines.append(f"| {step.rate:.0f} | " + " | ".join(f"{figures.get(name, 0):.{digits}f}" for name in names)
                     + f" | {sum(figures.values()):.{digits}f} |")
    return lines


def _windows(step: Step, names: list[str]) -> list[str]:
    """The step by window (`--windows`): how the latency and each process's CPU moved while it ran."""
    if not step.windows:
        return []
    what = f"{step.rate:.0f} msg/s" + (f" with {step.reply_rate:.0f} replies/s" if step.replies is not None else "")
    length = step.windows[1].start if len(step.windows) > 1 else step.windows[0].seconds  # the last may be longer
    lines = ["", f"The {what} step by {length:.0f} s (webhook → offered of the messages posted in "
                 "each window; the cores each process used in it, idle included; the last window holds the drain):", "",
             "| from s | offered | p50 / p99 | " + " | ".join(names) + " |", "|---" * (len(names) + 3) + "|"]
    for window in step.windows:
        lines.append(f"| {window.start:.0f} | {window.offered} | {_ms(window.p50)} / {_ms(window.p99)} | "
                     + " | ".join(f"{window.cores.get(name, 0):.2f}" for name in names) + " |")
    return lines


def _reply_cpu(replies: Step, inbound: list[Step]) -> list[str]:
    """What a reply added to each process's CPU: the replies step's CPU less what its inbound messages cost in the
    inbound step of the same rate (when the run had one), per reply accepted."""
    alone = next((step for step in inbound if step.rate == replies.rate), None)
    if alone is None or not replies.replies:
        return []
    added = {name: (replies.cpu_ms[name] - alone.cpu_ms.get(name, 0.0)) * replies.accepted / replies.replies
             for name in replies.cpu_ms}
    return ["", "CPU per reply, the same rate's inbound cost subtracted (ms): " + ", ".join(
        f"{name} {cpu:.2f}" for name, cpu in added.items()) + f"; {sum(added.values()):.1f} in all."]


def _database_commands(step: Step, shown: float = 0.01) -> list[str]:
    """The database's CPU per accepted message by command shape (deploy/local/mongo_command_cpu.py), the shapes
    that take at least `shown` of it."""
    per_message = 1000 / max(1, step.accepted)
    under = sum(cpu for _, _, cpu in step.database_commands.values())
    lines = [f"The database's CPU at {step.rate:.0f} msg/s by command shape: {under * per_message:.2f} ms per "
             f"accepted message under commands, of the database's {step.cpu_ms.get('database', 0):.2f} (the rest: "
             "the wire, WiredTiger's own threads, sweeps; idle subtracted):", "",
             "| command shape | ms per message | commands per message | documents per message | ms per document |",
             "|---|---|---|---|---|"]
    for shape, (commands, documents, cpu) in sorted(step.database_commands.items(), key=lambda item: -item[1][2]):
        if cpu >= shown * under:
            lines.append(f"| `{shape}` | {cpu * per_message:.2f} | {commands * per_message / 1000:.2f} | "
                         f"{documents * per_message / 1000:.2f} | {cpu * 1000 / max(1, documents):.2f} |")
    return lines


def render_chart(steps: list[Step], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inbound = [step for step in steps if step.replies is None]
    figure, (latency, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    accepted = [step.accepted / step.seconds for step in inbound]
    latency.plot([s.rate for s in inbound], [s.p50 for s in inbound], "o-", label="webhook → offered p50")
    latency.plot([s.rate for s in inbound], [s.p99 for s in inbound], "s-", label="webhook → offered p99")
    latency.plot([s.rate for s in inbound], [s.http_p99 for s in inbound], "^--", label="webhook HTTP p99")
    latency.set_yscale("log")
    latency.set_xlabel("offered inbound msg/s")
    latency.set_ylabel("ms")
    latency.set_title("Latency against offered load")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend()
    for step, rate in zip(inbound, accepted, strict=True):
        latency.annotate(f"{rate:.0f}/s", (step.rate, step.p99), textcoords="offset points", xytext=(4, 4), fontsize=7)
    names = [name for name in (*SERVICES, *SERVERS) if inbound and name in inbound[0].cpu_ms]
    bottom = [0.0] * len(inbound)
    positions = range(len(inbound))
    for name in names:
        values = [max(0.0, step.cpu_ms.get(name, 0.0)) for step in inbound]
        cpu.bar(positions, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    cpu.set_xticks(list(positions), [f"{step.rate:.0f}" for step in inbound])
    cpu.set_xlabel("offered inbound msg/s")
    cpu.set_ylabel("CPU ms per accepted message (idle subtracted)")
    cpu.set_title("Where a message's CPU goes")
    cpu.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def update_docs(path: Path, markdown: str) -> None:
    """Replace what is between the pipeline markers in docs/benchmarks.md (appended with a heading if absent)."""
    text = path.read_text()
    block = f"{BEGIN}\n{markdown}{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## The whole pipeline (issue 17) — `bench/pipeline.py`\n\n" + block + "\n"
    path.write_text(text)
