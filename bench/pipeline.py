"""The cost of one message, measured from outside (issue 17): the five services as separate processes on fresh
test-profile servers, signed WhatsApp webhooks from a separate load process, one new customer per message, in
steps of offered load.

Per step: offered and accepted webhooks, the webhook HTTP answer p50/p99, webhook → conversation `offered`
p50/p99 (the load process reads the router's `ConversationChanged` from its topic, its consumer paced as the
services' are; the offer's time is its record's timestamp, when the router produced it), and CPU and wake-ups per
accepted message of every process (the five services, broker, database, cache; from /proc, each process group's idle
rate — measured first, over `--idle-seconds` — subtracted). An optional step adds agents' replies (POST /v1/messages as
the agents) alongside inbound load and times accepted → provider called. Then, in the same run and once the
services have stopped, the infrastructure alone: broker produce → consume, database single inserts (back to back,
one every 10 ms, and from 4 connections at once), `insert_many` and small bulk inserts, upserts and updates, and a
bare HTTP route (from 32 connections and one request every 10 ms); and what a wake-up costs a small piece of Python
(`proc_cpu.woken_cpu_us`).
A stopped run (SIGTERM) stops its services and load process on the way out; a killed one leaves the services.

    .venv/bin/python bench/pipeline.py                        # 20,50,100,200,400 msg/s, 30 s each (~6 min)
    .venv/bin/python bench/pipeline.py --rates 50,200 --step-seconds 10 --idle-seconds 10 --replies 100@250
    .venv/bin/python bench/pipeline.py ... --docs             # also rewrites the section in docs/benchmarks.md

The servers are the test profile's (PARLEY_LOCAL_{KAFKA,MONGO,REDIS}_PORT move them), restarted with
`infra.py start --fresh` unless `--keep-infra`. Writes the table to stdout, the chart to `--chart`
(docs/pipeline.png by default). `--count` also reports each service's round trips per message
(PARLEY_COUNT_ROUND_TRIPS, see parley_common.round_trips); `--database-commands` the database's own CPU per
message by command shape (deploy/local/mongo_command_cpu.py); `--windows S` each step also by windows of S seconds:
the latency of the messages posted in each and the cores each process used in it (what grows while a step runs).

`--open N` puts N open conversations in place before the idle measurement, so idle and per-message cost are
measured against a deployment's data rather than an empty database: the router's bot conversations of the
bench team with their open-conversation pointer and first timeline entry (bench/router_routing.py's seeder,
bulk inserts straight into the router's database), their last activity spread over the past week.

    .venv/bin/python bench/pipeline.py --open 100000 --rates 50 --no-ceilings --count   # against 1,000: grows?"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "deploy" / "local"))

import httpx  # noqa: E402
import infra as local_infra  # noqa: E402
import mongo_command_cpu  # noqa: E402
from e2e_journey import meta_signed, whatsapp_text  # noqa: E402
from e2e_provider import E2EProvider, free_port  # noqa: E402
from e2e_system import SERVICES, TENANT, WHATSAPP, System, running_system  # noqa: E402
from fastapi import Request  # noqa: E402
from pipeline_report import Step, Window, render_chart, render_markdown, update_docs  # noqa: E402
from proc_cpu import QUIET_GAP_SECONDS, ProcessGroups, Usage, reference_cpu_ms, woken_cpu_us  # noqa: E402
from router_routing import seed_open_conversations  # noqa: E402

from parley_common.kafka_seams import IDLE_FETCH_BACKOFF_MS, pace_idle_fetches  # noqa: E402
from parley_common.mongo import mongo_client  # noqa: E402
from parley_common.round_trips import read_commands, read_counts  # noqa: E402
from parley_common.tasks import running  # noqa: E402

INFRA = ("kafka", "mongo", "redis")
COMMAND_CPU = REPO / ".run" / "test" / "mongo-command-cpu.json"  # --database-commands
TEAM = "bench"
HEARTBEAT_EVERY = 15.0
HEARTBEAT_RETRY = 1.0
SETTLE_AFTER_SEEDING = 10.0  # the database's own work after a bulk load is not the idle cost
UPGRADED_NUMBER_RATE = 1000.0  # messages/s: WhatsApp raises a number's 80/s up to this (the channels reference, §1)


@dataclass
class Plan:
    rates: list[float]
    step_seconds: float
    drain_seconds: float
    replies: tuple[float, float] | None  # (replies/s, inbound msg/s) of the extra step
    agents: int
    concurrency: int
    window_seconds: float = 0.0  # > 0: each step also read in windows of this length (`--windows`)


@dataclass
class StepResult:
    rate: float
    offered: int = 0
    accepted: int = 0
    shed: int = 0  # 503
    refusals: dict[str, int] = field(default_factory=dict)  # error code → count, webhooks and replies
    failed: int = 0  # other statuses, time-outs, connection errors
    http_ms: list[float] = field(default_factory=list)
    offered_ms: list[float] = field(default_factory=list)
    posted_s: list[float] = field(default_factory=list)  # when each of `offered_ms` was posted, s into the step
    not_offered: int = 0
    seconds: float = 0.0
    replies: dict[str, float] = field(default_factory=dict)  # wa_id → monotonic time the API accepted it
    replies_refused: int = 0
    reply_rate: float = 0.0


# --- the load process ---------------------------------------------------------------------------------------------

class Load:
    """Posts signed webhooks at a rate (open loop: a slow answer does not slow the offered rate) and reads the
    router's `offered` events back."""

    def __init__(self, ingest: str, outbound: str, bootstrap: str, namespace: str, tokens: dict[str, str],
                 concurrency: int) -> None:
        self.ingest = f"{ingest}/webhooks/whatsapp/{WHATSAPP.id}"
        self.outbound = f"{outbound}/v1/messages"
        self.bootstrap = bootstrap
        self.topic = f"{namespace}.parley.conversations.events.v1"
        self.tokens = tokens
        self.concurrency = concurrency
        # wa_id → wall-clock time its webhook was posted, to compare with the offer's record timestamp; noted before
        # the post, as its offer may be read before the webhook's answer
        self.posted_wall: dict[str, float] = {}
        self.accepted: set[str] = set()  # wa_ids whose webhook was answered 200
        self.offered_at: dict[str, float] = {}  # wa_id → wall-clock time the router produced its `offered`
        self.offered_to: dict[str, str] = {}  # wa_id → the agent offered the conversation: only they may answer
        self.customers = 0
        self.reachable: list[str] = []  # customers already offered: agents may answer them

    async def run(self, plan: Plan, control: Connection) -> None:
        import aiohttp
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="latest",
                                    group_id=f"bench-{uuid.uuid4().hex}")
        await consumer.start()
        await consumer.seek_to_end()
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=10.0)
        try:
            async with (running(self._read(consumer)),
                        aiohttp.ClientSession(connector=connector, timeout=timeout) as session):
                steps = [(rate, None) for rate in plan.rates]
                if plan.replies:
                    steps.append((plan.replies[1], plan.replies[0]))
                for rate, reply_rate in steps:
                    control.recv()  # the orchestrator took its CPU snapshot
                    result = await self._step(session, rate, reply_rate, plan)
                    control.send(result)
        finally:
            await consumer.stop()

    async def _read(self, consumer: Any) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    user = event.get("external_user_id")
                    if event.get("change") == "offered" and user in self.posted_wall and user not in self.offered_at:
                        self.offered_at[user] = record.timestamp / 1000 if record.timestamp > 0 else now
                        self.offered_to[user] = (event.get("assignee") or {}).get("id", "")

    async def _step(self, session: Any, rate: float, reply_rate: float | None, plan: Plan) -> StepResult:
        result = StepResult(rate, reply_rate=reply_rate or 0.0)
        users: list[str] = []
        tasks: set[asyncio.Task[None]] = set()
        reply_targets = list(self.reachable)
        started, started_wall = time.monotonic(), time.time()
        posted = replied = 0
        while (elapsed := time.monotonic() - started) < plan.step_seconds:
            for _ in range(int(elapsed * rate) - posted):
                users.append(self._next_user())
                tasks.add(asyncio.create_task(self._post(session, users[-1], result)))
                posted += 1
            if reply_rate:
                for _ in range(min(int(elapsed * reply_rate), len(reply_targets)) - replied):
                    tasks.add(asyncio.create_task(self._reply(session, reply_targets[replied], result)))
                    replied += 1
            tasks = {task for task in tasks if not task.done()}
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        result.offered = posted
        accepted = [user for user in users if user in self.accepted]
        drain_until = time.monotonic() + plan.drain_seconds
        while time.monotonic() < drain_until and any(user not in self.offered_at for user in accepted):  # noqa: ASYNC110 - fed by the reader task
            await asyncio.sleep(0.1)
        result.seconds = time.monotonic() - started
        for user in accepted:
            if user in self.offered_at:
                result.offered_ms.append((self.offered_at[user] - self.posted_wall[user]) * 1000)
                result.posted_s.append(self.posted_wall[user] - started_wall)
                if self.offered_to[user] in self.tokens:
                    self.reachable.append(user)
            else:
                result.not_offered += 1
        if reply_rate and replied < reply_rate * plan.step_seconds * 0.9:
            print(f"pipeline: only {replied} customers to reply to; run inbound steps first", file=sys.stderr)
        return result

    def _next_user(self) -> str:
        self.customers += 1
        return f"4479{os.getpid() % 100:02d}{self.customers:07d}"

    async def _post(self, session: Any, user: str, result: StepResult) -> None:
        import aiohttp

        payload = whatsapp_text(user, f"wamid.bench.{uuid.uuid4().hex}", "hello, I need help", int(time.time()),
                                WHATSAPP.phone_number_id, name="Bench Customer")
        body, headers = meta_signed(WHATSAPP.app_secret, payload)
        posted = time.monotonic()
        self.posted_wall[user] = time.time()
        try:
            async with session.post(self.ingest, data=body, headers=headers) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, type(exc).__name__.encode()
        if status != 200:
            _note_refusal(result, "webhook", status, answer)
        result.http_ms.append((time.monotonic() - posted) * 1000)
        if status == 200:
            result.accepted += 1
            self.accepted.add(user)
        elif status == 503:
            result.shed += 1
        else:
            result.failed += 1

    async def _reply(self, session: Any, user: str, result: StepResult) -> None:
        import aiohttp

        token = self.tokens[self.offered_to[user]]
        body = {"channel_id": WHATSAPP.id, "recipient": {"external_user_id": user},
                "content": {"kind": "text", "text": "Hello, how can I help?"}}
        try:
            async with session.post(self.outbound, json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 0, type(exc).__name__.encode()
        if status == 202:
            result.replies[user] = time.monotonic()
        else:
            result.replies_refused += 1
            _note_refusal(result, "reply", status, answer)


def _note_refusal(result: StepResult, what: str, status: int, answer: bytes) -> None:
    """Counts by what was refused, status and the error's machine-readable code (or the client's exception)."""
    try:
        code = json.loads(answer)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = answer.decode(errors="replace")[:40]
    key = f"{what} {status or 'no answer'} {code}"
    result.refusals[key] = result.refusals.get(key, 0) + 1


def _load_process(args: tuple[Any, ...], plan: Plan, control: Connection) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    # paced as the services' consumers are: unpaced, its reader re-fetched thousands of times a second from the local
    # broker (which answers an empty fetch at once), taking half a core from the services and adding the broker's
    # answers to the broker's CPU per message; the latency is read from the offer's record timestamp, not the pace
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    asyncio.run(Load(*args).run(plan, control))


def _exit_when_orphaned(parent: int) -> None:
    """The load process ends with the run that started it, however that ended: one left behind by a killed run kept
    reading from the next run's broker, half a core taken from every later measurement."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


# --- the orchestrator ---------------------------------------------------------------------------------------------

class TimedProvider(E2EProvider):
    """The fake provider, noting when each WhatsApp send reached it (monotonic clock: shared by the processes)."""

    def __init__(self, access_token: str) -> None:
        self.called_at: dict[str, float] = {}
        super().__init__(access_token)

    async def _receive(self, endpoint: str, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await super()._receive(endpoint, request)
        self.called_at.setdefault(str(body.get("to", "")).lstrip("+"), time.monotonic())
        return body


def restart_infra(keep: bool) -> dict[str, str]:
    infra = [sys.executable, str(REPO / "deploy/local/infra.py")]
    if not keep:
        subprocess.run([*infra, "stop", "--profile", "test"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*infra, "start", "--profile", "test", "--fresh"], check=True)
    return local_infra.environment("test")


def infra_pids() -> dict[str, int]:
    names = {"kafka": "broker", "mongo": "database", "redis": "cache"}
    return {names[name]: int((REPO / ".run/test" / f"{name}.pid").read_text()) for name in INFRA}


def staff(system: System, agents: int) -> list[str]:
    """A team of `agents` agents online (capacity 1,000 each, offers that never time out during the run) and one
    rule routing every conversation to it, through the router's API as a manager would."""
    logins = [f"bench-agent-{number:03d}" for number in range(agents)]
    with httpx.Client(base_url=system.url("router"), headers=system.auth("sam", "manager"), timeout=30.0) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            (f"/v1/teams/{TEAM}", {"strategy": "round_robin", "offer_timeout_seconds": 86_400})]
        calls += [(f"/v1/agents/{login}", {"teams": [TEAM], "default_capacity": 1000}) for login in logins]
        calls += [("/v1/routing", {"rules": [{"id": "all", "target_kind": "team", "target_id": TEAM}]})]
        for path, body in calls:
            response = client.put(path, json=body)
            response.raise_for_status()
    heartbeat(system, logins)
    return logins


def heartbeat(system: System, logins: list[str]) -> None:
    with httpx.Client(base_url=system.url("router"), timeout=30.0) as client:
        for login in logins:
            client.post("/v1/agents/me/heartbeat", json={"presence": "online"},
                        headers=system.auth(login)).raise_for_status()


@contextlib.contextmanager
def heartbeating(system: System, logins: list[str]) -> Iterator[None]:
    import threading

    stop = threading.Event()

    def beat() -> None:
        pause = HEARTBEAT_EVERY
        while not stop.wait(pause):
            try:
                heartbeat(system, logins)
                pause = HEARTBEAT_EVERY
            except httpx.HTTPError as error:  # an agent's console beats again too: offline agents skew the step
                answer = error.response.text[:200] if isinstance(error, httpx.HTTPStatusError) else repr(error)
                print(f"pipeline: the agents' heartbeat failed ({answer}); again in {HEARTBEAT_RETRY} s", flush=True)
                pause = HEARTBEAT_RETRY

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q * 100) - 1))]


def run(plan: Plan, args: argparse.Namespace) -> tuple[list[Step], dict[str, Usage], dict[str, Any]]:
    if args.database_commands:  # the database started afresh, timing its commands (deploy/local/mongo_command_cpu)
        COMMAND_CPU.unlink(missing_ok=True)
        os.environ["PARLEY_LOCAL_MONGO_COMMAND_CPU"] = str(COMMAND_CPU)
    speed_before = reference_cpu_ms()
    endpoints = restart_infra(args.keep_infra)
    provider = TimedProvider(WHATSAPP.access_token).start()
    # the router's own default sweep interval (the journeys' harness shortens it to 1 s for their timeouts)
    overrides = {"PARLEY_ROUTER_SWEEP_INTERVAL_SECONDS": "5",
                 # a number whose throughput Meta raised to 1,000 messages/s: at its default (80/s, inbound and
                 # outbound together) the replies step would measure outbound's rate limiter keeping to it
                 "PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND": json.dumps({WHATSAPP.id: UPGRADED_NUMBER_RATE})}
    if args.count:
        overrides["PARLEY_COUNT_ROUND_TRIPS"] = "true"
    overrides.update(setting.split("=", 1) for setting in args.env)
    commands = COMMAND_CPU if args.database_commands else None
    try:
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
        logs = contextlib.nullcontext(str(args.logs)) if args.logs else tempfile.TemporaryDirectory(prefix="pipeline-")
        with logs as tmp, running_system(endpoints, provider, free_port(), Path(tmp), overrides=overrides) as system:
            logins = staff(system, plan.agents)
            # from staffing on: seeding 100,000 takes longer than the router's presence TTL, and agents gone offline
            # meanwhile left the step's first messages queued until their next heartbeat
            with heartbeating(system, logins):
                seeded = seed_open(endpoints, system, args.open) if args.open else ""
                groups = ProcessGroups({name: system.services[name].process.pid  # type: ignore[union-attr]
                                        for name in SERVICES} | infra_pids())
                print(f"pipeline: measuring idle for {args.idle_seconds:.0f} s …", flush=True)
                idle = groups.rates_over(args.idle_seconds)
                steps = drive(system, endpoints, plan, groups, idle, logins, provider, commands)
            ceilings: dict[str, Any] = {}
            if args.count:
                ceilings["round_trips"], ceilings["round_trip_commands"] = round_trips(system)
            if seeded:
                ceilings["seeded"] = seeded
        # the services stopped: a backlog they were still working off would be counted as the servers' own cost
        if args.ceilings:
            ceilings |= infrastructure_ceilings(endpoints, groups)
        ceilings["reference_ms"] = (speed_before, reference_cpu_ms())  # the servers idle
        ceilings["woken_us"] = (woken_cpu_us(0), woken_cpu_us(QUIET_GAP_SECONDS))
        return steps, idle, ceilings
    finally:
        provider.stop()


def seed_open(endpoints: dict[str, str], system: System, count: int) -> str:
    """`count` open conversations of the bench team in the router's database, then a pause for the database to
    settle; what was done, for the report."""
    print(f"pipeline: seeding {count} open conversations …", flush=True)

    async def seed() -> float:
        mongo = mongo_client(endpoints["PARLEY_MONGO_URI"], "bench-pipeline")
        try:
            router_db = mongo[f"parley_router_{system.namespace}"]
            return await seed_open_conversations(router_db, TENANT, WHATSAPP.id, "whatsapp", TEAM, count)
        finally:
            await mongo.close()

    seconds = asyncio.run(seed())
    time.sleep(SETTLE_AFTER_SEEDING)
    return (f"{count:,} open bot conversations of the bench team seeded into the router's database before the "
            f"idle measurement (bench/router_routing.py's seeder, {seconds:.0f} s, then {SETTLE_AFTER_SEEDING:.0f} s "
            "to settle)")


def drive(system: System, endpoints: dict[str, str], plan: Plan, groups: ProcessGroups, idle: dict[str, Usage],
          logins: list[str], provider: TimedProvider, commands: Path | None) -> list[Step]:
    tokens = {login: issue_token_for(system, login) for login in logins}
    control, theirs = multiprocessing.Pipe()
    load_args = (system.url("ingest"), system.url("outbound"), endpoints["PARLEY_KAFKA_BOOTSTRAP"], system.namespace,
                 tokens, plan.concurrency)
    load = multiprocessing.get_context("spawn").Process(target=_load_process, args=(load_args, plan, theirs))
    load.start()
    steps = []
    try:
        count = len(plan.rates) + (1 if plan.replies else 0)
        for number in range(count):
            print(f"pipeline: step {number + 1} of {count} …", flush=True)  # what a profiler from outside waits for
            commands_before = database_commands(commands)
            before = groups.usage()
            control.send("go")
            samples = sampled_until_reported(control, groups, plan.window_seconds)
            result: StepResult = control.recv()
            after = groups.usage()
            spent = mongo_command_cpu.between(commands_before, database_commands(commands))
            used = {name: after[name] - before[name] - idle[name].times(result.seconds) for name in after}
            step = summarise(result, used, provider, replies_step=number >= len(plan.rates), database_commands=spent,
                             windows=step_windows(result, samples, plan.window_seconds))
            print(step.line(), flush=True)
            steps.append(step)
    finally:
        load.join(timeout=30)
        if load.is_alive():
            load.terminate()
    return steps


def database_commands(path: Path | None) -> mongo_command_cpu.Totals:
    """The database's CPU by command shape so far, once its last second is written; {} when not timed."""
    if path is None:
        return {}
    time.sleep(mongo_command_cpu.WRITE_EVERY_S + 0.2)
    return mongo_command_cpu.read(path)


def issue_token_for(system: System, login: str) -> str:
    return system.auth(login)["Authorization"].removeprefix("Bearer ")


def summarise(result: StepResult, used: dict[str, Usage], provider: TimedProvider, replies_step: bool,
              database_commands: mongo_command_cpu.Totals, windows: list[Window]) -> Step:
    reply_ms = [(provider.called_at[user] - accepted) * 1000 for user, accepted in result.replies.items()
                if user in provider.called_at]
    accepted = max(1, result.accepted)
    return Step(
        rate=result.rate, offered=result.offered, accepted=result.accepted, shed=result.shed, failed=result.failed,
        http_p50=percentile(result.http_ms, 0.5), http_p99=percentile(result.http_ms, 0.99),
        p50=percentile(result.offered_ms, 0.5), p99=percentile(result.offered_ms, 0.99),
        not_offered=result.not_offered, seconds=result.seconds,
        cpu_ms={name: usage.cpu_seconds * 1000 / accepted for name, usage in used.items()},
        wakeups={name: usage.wakeups / accepted for name, usage in used.items()},
        refusals=result.refusals, reply_rate=result.reply_rate,
        replies=len(result.replies) if replies_step else None, replies_refused=result.replies_refused,
        reply_p50=percentile(reply_ms, 0.5), reply_p99=percentile(reply_ms, 0.99),
        replies_unsent=len(result.replies) - len(reply_ms), database_commands=database_commands, windows=windows)


def sampled_until_reported(control: Connection, groups: ProcessGroups,
                           seconds: float) -> list[tuple[float, dict[str, Usage]]]:
    """Each process group's usage now, at every `seconds` after, and when the load process reports its step (none
    when `seconds` is 0)."""
    if not seconds:
        return []
    samples = [(time.monotonic(), groups.usage(wakeups=False))]
    while not control.poll(max(0.0, samples[0][0] + len(samples) * seconds - time.monotonic())):
        samples.append((time.monotonic(), groups.usage(wakeups=False)))
    reported = (time.monotonic(), groups.usage(wakeups=False))
    if len(samples) > 1 and reported[0] - samples[-1][0] < seconds / 10:  # no sliver of a window: the last one grows
        samples.pop()
    return [*samples, reported]


def step_windows(result: StepResult, samples: list[tuple[float, dict[str, Usage]]], seconds: float) -> list[Window]:
    """The step by window of `seconds` from its start (the last one ends with the step, its drain included): the
    webhook → offered latency of the messages posted in each, and the cores each process used in it, idle included."""
    found: list[Window] = []
    for index, ((began, before), (ended, after)) in enumerate(itertools.pairwise(samples)):
        latencies = [latency for latency, posted in zip(result.offered_ms, result.posted_s, strict=True)
                     if index * seconds <= posted < (index + 1) * seconds]
        found.append(Window(index * seconds, ended - began, len(latencies), percentile(latencies, 0.5),
                            percentile(latencies, 0.99),
                            {name: (after[name] - before[name]).cpu_seconds / (ended - began) for name in after}))
    return found


def round_trips(system: System) -> tuple[dict[str, dict[str, float]], dict[str, dict[tuple[str, str], float]]]:
    """Each service's counts so far (the whole run: every step's messages and the agents' setup), by kind and by
    command."""
    with httpx.Client(timeout=10.0) as client:
        metrics = {name: client.get(f"{system.url(name)}/metrics").text for name in SERVICES}
    return ({name: read_counts(text) for name, text in metrics.items()},
            {name: read_commands(text) for name, text in metrics.items()})


def infrastructure_ceilings(endpoints: dict[str, str], groups: ProcessGroups) -> dict[str, float]:
    from infra_ceilings import measure

    print("pipeline: the infrastructure alone …", flush=True)
    return asyncio.run(measure(endpoints, groups))


def parse_plan(args: argparse.Namespace) -> Plan:
    replies = None
    if args.replies:
        reply_rate, _, inbound_rate = args.replies.partition("@")
        replies = (float(reply_rate), float(inbound_rate or 0))
    return Plan([float(rate) for rate in args.rates.split(",") if rate], args.step_seconds, args.drain_seconds,
                replies, args.agents, args.concurrency, args.windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="20,50,100,200,400", help="offered inbound msg/s per step")
    parser.add_argument("--step-seconds", type=float, default=30.0)
    parser.add_argument("--drain-seconds", type=float, default=15.0,
                        help="after a step, wait up to this long for its accepted messages to be offered")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--replies", default="", help="an extra step: REPLIES_PER_S@INBOUND_PER_S, e.g. 100@250")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=512, help="webhook connections of the load process")
    parser.add_argument("--keep-infra", action="store_true", help="use the running test-profile servers as they are")
    parser.add_argument("--no-ceilings", dest="ceilings", action="store_false")
    parser.add_argument("--windows", type=float, default=0.0, metavar="SECONDS",
                        help="also report each step by windows of this length: latency and each process's cores")
    parser.add_argument("--count", action="store_true", help="also count round trips per message per service")
    parser.add_argument("--database-commands", action="store_true",
                        help="also the database's CPU per message by command shape (deploy/local/mongo_command_cpu)")
    parser.add_argument("--open", type=int, default=0, metavar="N",
                        help="N open conversations in the router's database before the idle measurement")
    parser.add_argument("--env", action="append", default=[], metavar="PARLEY_X=VALUE",
                        help="a setting of every service (repeatable), e.g. PARLEY_KAFKA_IDLE_FETCH_BACKOFF_MS=10")
    parser.add_argument("--logs", type=Path, help="keep the services' logs in this directory (else a temporary one)")
    parser.add_argument("--chart", type=Path, default=REPO / "docs" / "pipeline.png")
    parser.add_argument("--docs", action="store_true", help="rewrite the pipeline section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.database_commands and args.keep_infra:
        parser.error("--database-commands starts the database afresh: not with --keep-infra")
    plan = parse_plan(args)
    # stopped (SIGTERM): the services, the fake provider and the load process are stopped on the way out, as at the end
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    steps, idle, ceilings = run(plan, args)
    markdown = render_markdown(steps, idle, ceilings, " ".join(sys.argv[1:]))
    print(markdown)
    render_chart(steps, args.chart)
    print(f"pipeline: chart written to {args.chart}")
    if args.docs:
        update_docs(REPO / "docs" / "benchmarks.md", markdown)
        print("pipeline: docs/benchmarks.md updated")


if __name__ == "__main__":
    main()
