"""Running the whole system as real processes: the five services (`.venv/bin/parley-<svc>`) on free ports, a
fresh namespace on the shared test infrastructure, a channel file pointing at the local fake provider; waiting
for readiness; stopping with no orphans; dropping the namespace's topics, databases and keys afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from e2e_provider import E2EProvider, free_port

from parley_common.auth import issue_token
from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "contacts", "router", "outbound", "media")
CONSOLE = "console"  # the web app's origin (tests/console start it beside the five)
HOOKS = "hooks"  # webhook subscriptions: started where a test needs it (the OpenAPI contract)
TENANT = "acme"
JWT_SECRET = "e2e-secret-of-at-least-32-bytes-long!"
READY_WITHIN = 60.0
STOP_WITHIN = 15.0


@dataclass(frozen=True)
class WhatsAppChannel:
    id: str
    phone_number_id: str
    app_secret: str
    access_token: str


WHATSAPP = WhatsAppChannel(id="wa-e2e", phone_number_id="106540352242922", app_secret="e2e-app-secret",
                           access_token="e2e-wa-token")


@dataclass(frozen=True)
class TelegramChannel:
    id: str
    bot_token: str
    webhook_secret: str


TELEGRAM = TelegramChannel(id="tg-e2e", bot_token="123:e2e-bot", webhook_secret="e2e-telegram-secret")


@dataclass(frozen=True)
class InstagramChannel:
    id: str
    account_id: str
    app_secret: str
    page_access_token: str


INSTAGRAM = InstagramChannel(id="ig-e2e", account_id="17841400000000001", app_secret="e2e-ig-app-secret",
                             page_access_token="e2e-ig-token")


@dataclass(frozen=True)
class EmailChannel:
    id: str
    address: str
    inbound_secret: str


EMAIL = EmailChannel(id="mail-e2e", address="support@e2e.example", inbound_secret="e2e-mail-relay-secret")
# The channel README's "First hour" writes to, under the id `make run` gives it.
SANDBOX_ID, SANDBOX_SECRET = "sb-demo", "e2e-sandbox-secret"


@dataclass
class Service:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class System:
    namespace: str
    provider: E2EProvider
    services: dict[str, Service]
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.services[service].url

    def auth(self, login: str, role: str = "agent") -> dict[str, str]:
        key = f"{login}/{role}"
        if key not in self.tokens:
            self.tokens[key] = issue_token(JWT_SECRET, TENANT, login, [role])
        return {"Authorization": f"Bearer {self.tokens[key]}"}

    def logs(self) -> str:
        parts = []
        for service in self.services.values():
            text = service.log.read_text(errors="replace") if service.log.exists() else "(no log)"
            parts.append(f"===== parley-{service.name} (pid {service.process and service.process.pid}) =====\n"
                         f"{text[-20_000:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def running_system(endpoints: dict[str, str], provider: E2EProvider, smtp_port: int, tmp: Path,
                   names: tuple[str, ...] = SERVICES, overrides: dict[str, str] | None = None) -> Iterator[System]:
    """The services `names` as processes on free ports in a fresh namespace, ready; stopped and the namespace
    dropped afterwards. `overrides` replace or add environment variables of every service (benchmarks)."""
    namespace = "e2e" + uuid.uuid4().hex[:10]
    asyncio.run(ensure_topics(endpoints["PARLEY_KAFKA_BOOTSTRAP"], namespace))
    ports = {name: free_port() for name in names}
    services = {name: Service(name, ports[name], tmp / f"{name}.log") for name in names}
    system = System(namespace, provider, services, tmp)
    channels = channel_file(tmp / "channels.json", provider.base_url, smtp_port, f"http://127.0.0.1:{ports['ingest']}")
    env = service_env(endpoints, namespace, channels, ports) | (overrides or {})
    system.env = env
    try:
        for service in services.values():
            start(service, env)
        wait_ready(system)
        yield system
    finally:
        killed = stop_all(services)
        if killed:
            warnings.warn(f"e2e: SIGKILLed {killed}: no exit within {STOP_WITHIN}s of SIGTERM", stacklevel=1)
        asyncio.run(drop_namespace(endpoints, namespace))


def channel_file(path: Path, provider_base: str, smtp_port: int, ingest_url: str) -> Path:
    channels = {"channels": [{
        "id": WHATSAPP.id, "type": "whatsapp", "tenant_id": TENANT, "name": "E2E WhatsApp",
        "phone_number_id": WHATSAPP.phone_number_id, "waba_id": "102290129340398",
        "app_secret": WHATSAPP.app_secret, "verify_token": "e2e-verify", "access_token": WHATSAPP.access_token,
        "graph_api_base": f"{provider_base}/graph",
    }, {
        "id": TELEGRAM.id, "type": "telegram", "tenant_id": TENANT, "bot_token": TELEGRAM.bot_token,
        "webhook_secret": TELEGRAM.webhook_secret, "api_base": f"{provider_base}/telegram",
    }, {
        "id": INSTAGRAM.id, "type": "instagram", "tenant_id": TENANT, "instagram_account_id": INSTAGRAM.account_id,
        "app_secret": INSTAGRAM.app_secret, "verify_token": "e2e-verify",
        "page_access_token": INSTAGRAM.page_access_token,
        "graph_api_base": f"{provider_base}/graph",
    }, {
        "id": EMAIL.id, "type": "email", "tenant_id": TENANT, "address": EMAIL.address,
        "inbound_secret": EMAIL.inbound_secret, "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
    }, {
        "id": SANDBOX_ID, "type": "sandbox", "tenant_id": TENANT, "secret": SANDBOX_SECRET,
        "ingest_base_url": ingest_url,
    }]}
    path.write_text(json.dumps(channels, indent=2))
    return path


def service_env(endpoints: dict[str, str], namespace: str, channels: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PARLEY_")}
    env.update({
        "PARLEY_KAFKA_BOOTSTRAP": endpoints["PARLEY_KAFKA_BOOTSTRAP"],
        "PARLEY_MONGO_URI": endpoints["PARLEY_MONGO_URI"],
        "PARLEY_REDIS_URL": endpoints["PARLEY_REDIS_URL"],
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_MEDIA_SIGNING_SECRET": secrets.token_hex(32),
        "PARLEY_MEDIA_ID_SECRET": secrets.token_hex(32),
        "PARLEY_CHANNELS_FILE": str(channels),
        "PARLEY_LOG_JSON": "true",
        "PARLEY_OUTBOUND_MEDIA_BASE_URL": f"http://127.0.0.1:{ports['media']}",
        "PARLEY_MEDIA_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['media']}",
        "PARLEY_ROUTER_SWEEP_INTERVAL_SECONDS": "1",
        "PARLEY_INSTANCE_ID": "e2e-1",  # one replica of each, named as `make run` and Kubernetes name theirs
    })
    for name, port in ports.items():
        env[f"PARLEY_{name.upper()}_PORT"] = str(port)
        env[f"PARLEY_{name.upper()}_HOST"] = "127.0.0.1"
        env[f"PARLEY_CONSOLE_{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
    return env


def start(service: Service, env: dict[str, str]) -> None:
    binary = REPO / ".venv" / "bin" / f"parley-{service.name}"
    with service.log.open("ab") as log:  # appended: a restarted service's log follows its previous run's
        # Its own session, so teardown can signal the whole process group and leave no orphans.
        service.process = subprocess.Popen([str(binary)], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)


def kill_hard(service: Service) -> None:
    """SIGKILL the service's process group (no shutdown, no LeaveGroup, no offset commits) and reap it."""
    assert service.process is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait(timeout=10)


def restart(system: System, name: str) -> float:
    """Start the (stopped or killed) service again with its environment; seconds until it answered ready."""
    started = time.monotonic()
    start(system.services[name], system.env)
    wait_ready(system, (name,))
    return time.monotonic() - started


def wait_ready(system: System, names: tuple[str, ...] | None = None) -> None:
    deadline = time.monotonic() + READY_WITHIN
    pending = {name: system.services[name] for name in names or system.services}
    last: dict[str, str] = {}
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for name, service in list(pending.items()):
                assert service.process is not None
                if service.process.poll() is not None:
                    raise RuntimeError(f"parley-{name} exited with {service.process.returncode}\n{system.logs()}")
                try:
                    response = client.get(f"{service.url}/readyz")
                except httpx.HTTPError as exc:
                    last[name] = type(exc).__name__
                    continue
                last[name] = f"{response.status_code} {response.text[:200]}"
                if response.status_code == 200:
                    del pending[name]
            if time.monotonic() > deadline:
                hint = shared_group_hint(system, pending)
                raise RuntimeError(f"not ready within {READY_WITHIN}s: {last}\n{hint}{system.logs()}")
            if pending:
                time.sleep(0.2)


def staff_the_tenant(system: System, agent: str, team: str) -> None:
    """Through the router's API, as a manager: `agent` in `team`, and every conversation routed to `team` — an agent
    sees and answers the conversations of their teams (parley_common.visibility)."""
    manager = system.auth("sam", "manager")
    with httpx.Client(base_url=system.url("router"), headers=manager, timeout=10.0) as client:
        for path, body in ((f"/v1/agents/{agent}", {"teams": [team]}),
                           ("/v1/routing", {"rules": [{"id": "all", "target_kind": "team", "target_id": team}]})):
            response = client.put(path, json=body)
            assert response.status_code == 200, response.text


def shared_group_hint(system: System, pending: dict[str, Service]) -> str:
    """A service that never finishes starting is most often stuck joining a consumer group that other runs on
    the same Kafka share (a group id without the namespace): name such groups."""
    lines = []
    for name, service in pending.items():
        text = service.log.read_text(errors="replace") if service.log.exists() else ""
        shared = sorted({group for group in re.findall(r"\(Re-\)joining group (\S+)", text)
                         if not group.startswith(system.namespace)})
        if shared:
            lines.append(f"HINT: parley-{name} keeps re-joining consumer groups without the namespace {shared}; "
                         "on a shared Kafka other runs' consumers are in them too\n")
    return "".join(lines)


def stop_all(services: dict[str, Service]) -> list[str]:
    """SIGTERM every process group, wait, then SIGKILL the stragglers; returns the ones that had to be killed."""
    running = [s for s in services.values() if s.process is not None and s.process.poll() is None]
    for service in running:
        assert service.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    killed = []
    for service in running:
        assert service.process is not None
        try:
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed.append(service.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=5)
        # Also whatever the service itself may have started in its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGKILL)
    return killed


async def drop_namespace(endpoints: dict[str, str], namespace: str) -> None:
    await drop_namespace_topics(endpoints["PARLEY_KAFKA_BOOTSTRAP"], namespace)
    mongo = mongo_client(endpoints["PARLEY_MONGO_URI"], "parley-e2e")
    try:
        for name in await mongo.list_database_names():
            if name.endswith(f"_{namespace}"):
                await mongo.drop_database(name)
    finally:
        await mongo.close()
    redis = redis_client(endpoints["PARLEY_REDIS_URL"])
    try:
        async for key in redis.scan_iter(match=f"{namespace}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()
