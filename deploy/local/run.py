"""`make run`: the whole system on this machine. Starts the local broker, database and cache, creates the
topics, writes a sample channel file on first run, starts the five services, the console and hooks (each its own
process and port), waits until every /readyz is green, seeds the demo tenant through the APIs (seed.py), writes
.run/demo.env (URLs and tokens for README's "First hour"), prints where the APIs are and a console sign-in link
per demo user, and on Ctrl-C stops all it started. `make run BOT=1` (`--bot`) also starts the example bot
(examples/faq_bot) with an integration token and routes new conversations of the sandbox channel to it first."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx

from parley_common.auth import issue_token
from parley_common.channels import Channels, SandboxChannel, TelegramChannel
from parley_common.kafka import ensure_topics

sys.path.insert(0, str(Path(__file__).resolve().parent))
import infra
from seed import seed_bot, seed_demo

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = REPO / ".run"
SERVICES = {"ingest": 8001, "contacts": 8002, "router": 8003, "outbound": 8004, "media": 8005, "console": 8006,
            "hooks": 8007}
# This machine's webhook receivers are local (a test server on 127.0.0.1, plain http): allowed here only.
LOCAL_ONLY = {"PARLEY_HOOKS_ALLOW_PRIVATE_TARGETS": "true", "PARLEY_HOOKS_ALLOW_PLAIN_HTTP": "true"}
# Whose console sign-in link is printed, with the token of .run/demo.env it carries.
SIGN_IN = {"alice": "PARLEY_TOKEN", "bob": "PARLEY_BOB_TOKEN", "sam": "PARLEY_MANAGER_TOKEN"}
READY_TIMEOUT_S = 90.0
BOT_ID, BOT_CHANNEL = "faq-bot", "sb-demo"  # `make run BOT=1`: the example bot answers the sandbox channel first


def sample_channels(path: Path) -> None:
    """A local channel file with random secrets (never real ones), written once."""
    if path.exists():
        return
    path.write_text(f"""# Local channels for `make run` (generated; secrets are random and only for this machine).
channels:
  - {{id: wa-demo, type: whatsapp, tenant_id: demo, phone_number_id: "100000000000001",
     access_token: "{secrets.token_hex(16)}", app_secret: "{secrets.token_hex(16)}", verify_token: "{secrets.token_hex(8)}"}}
  - {{id: fb-demo, type: messenger, tenant_id: demo, page_id: "200000000000001",
     page_access_token: "{secrets.token_hex(16)}", app_secret: "{secrets.token_hex(16)}", verify_token: "{secrets.token_hex(8)}"}}
  - {{id: ig-demo, type: instagram, tenant_id: demo, instagram_account_id: "300000000000001",
     page_access_token: "{secrets.token_hex(16)}", app_secret: "{secrets.token_hex(16)}", verify_token: "{secrets.token_hex(8)}"}}
  - {{id: tg-demo, type: telegram, tenant_id: demo, bot_token: "123456:{secrets.token_hex(16)}",
     webhook_secret: "{secrets.token_hex(16)}"}}
  - {{id: vb-demo, type: viber, tenant_id: demo, auth_token: "{secrets.token_hex(16)}", sender_name: "Parley demo"}}
  - {{id: mail-demo, type: email, tenant_id: demo, address: "support@demo.invalid",
     inbound_secret: "{secrets.token_hex(16)}"}}
  - {{id: sb-demo, type: sandbox, tenant_id: demo, secret: "{secrets.token_hex(16)}"}}
""")
    path.chmod(0o600)


# The ids come from the shell when the curl runs (`date`): a second run is a new message, never a duplicate.
TELEGRAM_UPDATE = ('{"update_id":\'"$(date +%s)"\',"message":{"message_id":\'"$(date +%s)"\',"date":\'"$(date +%s)"\','
                   '"chat":{"id":42,"type":"private"},"from":{"id":42,"is_bot":false,"first_name":"Ann"},'
                   '"text":"Hello"}}')


SANDBOX_MESSAGE = '{"type":"message","id":"m-\'"$(date +%s%N)"\'","user_id":"ann","name":"Ann","text":"Hello"}'


def customer_writes(channels_file: Path) -> str:
    """A curl that plays a customer writing: to the sandbox channel (its replies come back delivered and read),
    or to the Telegram bot when an older channel file has no sandbox channel."""
    channels = Channels.load(channels_file)
    sandbox, telegram = channels.get("sb-demo"), channels.get("tg-demo")
    if isinstance(sandbox, SandboxChannel):
        return (f"curl -s -X POST http://127.0.0.1:8001/webhooks/sandbox/sb-demo -H 'Content-Type: application/json' "
                f"-H 'Authorization: Bearer {sandbox.secret.get_secret_value()}' "
                f"-d '{SANDBOX_MESSAGE}'")
    secret = telegram.webhook_secret.get_secret_value() if isinstance(telegram, TelegramChannel) else "<secret>"
    return (f"curl -s -X POST http://127.0.0.1:8001/webhooks/telegram/tg-demo -H 'Content-Type: application/json' "
            f"-H 'X-Telegram-Bot-Api-Secret-Token: {secret}' -d '{TELEGRAM_UPDATE}'")


# Every secret a service refuses to start without: random, generated once into .run/ (kept, so tokens,
# signed links and media ids stay valid from one `make run` to the next).
SECRETS = {"PARLEY_JWT_SECRET": "jwt-secret", "PARLEY_MEDIA_SIGNING_SECRET": "media-signing-secret",
           "PARLEY_MEDIA_ID_SECRET": "media-id-secret"}


DEMO_ENV = RUN_DIR / "demo.env"


def url(service: str) -> str:
    return f"http://127.0.0.1:{SERVICES[service]}"


def demo_tokens(jwt_secret: str) -> dict[str, str]:
    return {"PARLEY_TOKEN": issue_token(jwt_secret, "demo", "alice", ["agent"]),
            "PARLEY_BOB_TOKEN": issue_token(jwt_secret, "demo", "bob", ["agent"]),
            "PARLEY_MANAGER_TOKEN": issue_token(jwt_secret, "demo", "sam", ["owner", "manager"])}


def sign_in_links(tokens: dict[str, str]) -> list[str]:
    """One console link per demo user; the token rides in the fragment, which browsers never send to a server."""
    return [f"  {login:5} {url('console')}/#token={tokens[variable]}" for login, variable in SIGN_IN.items()]


def write_demo_env(channels_file: Path, tokens: dict[str, str]) -> None:
    """What README's "First hour" uses: the service URLs, fresh tokens and the sandbox channel's secret."""
    sandbox = Channels.load(channels_file).get("sb-demo")
    values = {**{f"PARLEY_{name.upper()}": url(name) for name in SERVICES}, **tokens,
              "SANDBOX_SECRET": sandbox.secret.get_secret_value() if isinstance(sandbox, SandboxChannel) else ""}
    DEMO_ENV.write_text("".join(f"export {name}='{value}'\n" for name, value in values.items()))
    DEMO_ENV.chmod(0o600)


def local_secret(file_name: str) -> str:
    path = RUN_DIR / file_name
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_services(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    logs = RUN_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = {}
    for name, port in SERVICES.items():
        if infra.port_open(port):
            raise SystemExit(f"run: port {port} for {name} is taken; stop what holds it (or a previous `make run`)")
        # One replica of each, named: restarted after a crash, it takes its consumer groups back at once.
        service_env = {**env, f"PARLEY_{name.upper()}_PORT": str(port), "PARLEY_INSTANCE_ID": "local"}
        with (logs / f"{name}.log").open("ab") as log:
            processes[name] = subprocess.Popen([str(Path(sys.executable).parent / f"parley-{name}")],
                                               env=service_env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, cwd=REPO)
    return processes


def start_bot(env: dict[str, str], jwt_secret: str) -> subprocess.Popen[bytes]:
    """The example bot (examples/faq_bot) as its own process, logging to .run/logs/faq-bot.log."""
    outside = {name: value for name, value in env.items() if name not in SECRETS}  # a bot holds only its token
    bot_env = {**outside, "PYTHONPATH": str(REPO / "examples" / "faq_bot"), "PARLEY_BOT_ROUTER_URL": url("router"),
               "PARLEY_BOT_TOKEN": issue_token(jwt_secret, "demo", BOT_ID, ["integration"])}
    with (RUN_DIR / "logs" / f"{BOT_ID}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "faq_bot"], env=bot_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO)


def wait_ready(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = dict(SERVICES)
    while pending:
        for name in list(pending):
            if processes[name].poll() is not None:
                raise SystemExit(f"run: {name} exited at start; see .run/logs/{name}.log")
            if ready(pending[name]):
                del pending[name]
        if time.monotonic() > deadline:
            raise SystemExit(f"run: not ready after {READY_TIMEOUT_S:.0f}s: {', '.join(pending)} (see .run/logs/)")
        time.sleep(0.3)


def stop_services(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 35
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def welcome(took: float, kafka: str, channels_file: Path, created: list[str], tokens: dict[str, str]) -> None:
    print(f"\nParley is up in {took:.1f}s. APIs (OpenAPI at /docs, AsyncAPI at /asyncapi.json):")
    for name in SERVICES:
        print(f"  {name:9} {url(name)}")
    print(f"\nchannels: {channels_file}   logs: .run/logs/   kafka: {kafka}")
    print(f"demo tenant 'demo': team support (agents alice, bob), every conversation routed to it, template "
          f"order_update on wa-demo{' (seeded now: ' + ', '.join(created) + ')' if created else ''}")
    print(f"{DEMO_ENV.relative_to(REPO)}: service URLs and 12 h tokens (alice and bob agents, sam owner+manager); "
          "README.md 'First hour' walks one conversation with them:")
    print(f"  . {DEMO_ENV.relative_to(REPO)}")
    print("a customer writes to the sandbox channel (its replies come back delivered, then read):")
    print(f"  {customer_writes(channels_file)}")
    print('  curl -s -H "Authorization: Bearer $PARLEY_TOKEN" $PARLEY_ROUTER/v1/conversations')
    print(f"the agent console: {url('console')}; sign in (12 h) as alice or bob (agents) or sam (owner, manager):")
    print("\n".join(sign_in_links(tokens)))
    print("Ctrl-C stops everything.", flush=True)


def main() -> None:
    started = time.monotonic()
    with_bot = "--bot" in sys.argv[1:]
    RUN_DIR.mkdir(exist_ok=True)
    print("infra:")
    for server in infra.servers("run"):
        infra.start(server, fresh=False)
    endpoints = infra.environment("run")
    asyncio.run(ensure_topics(endpoints["PARLEY_KAFKA_BOOTSTRAP"]))
    channels_file = RUN_DIR / "channels.yaml"
    sample_channels(channels_file)
    keys = {variable: local_secret(file_name) for variable, file_name in SECRETS.items()}
    env = {**os.environ, **endpoints, "PARLEY_CHANNELS_FILE": str(channels_file), **keys, **LOCAL_ONLY}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def shut_down(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping services…", flush=True)
        stop_services(processes)
        print("stopping infra…", flush=True)
        for server in infra.servers("run"):
            infra.stop(server)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, shut_down)
    signal.signal(signal.SIGTERM, shut_down)
    try:
        processes.update(start_services(env))
        wait_ready(processes)
        tokens = demo_tokens(keys["PARLEY_JWT_SECRET"])
        try:
            created = seed_demo(url("router"), url("outbound"), tokens["PARLEY_MANAGER_TOKEN"], "wa-demo")
            if with_bot:
                created += seed_bot(url("router"), tokens["PARLEY_MANAGER_TOKEN"], BOT_CHANNEL, BOT_ID)
        except (RuntimeError, httpx.HTTPError) as exc:
            raise SystemExit(f"run: seeding the demo tenant failed: {exc}") from None
    except SystemExit:
        if not stopping:
            stop_services(processes)
            for server in infra.servers("run"):
                infra.stop(server)
        raise
    if with_bot:
        processes[BOT_ID] = start_bot(env, keys["PARLEY_JWT_SECRET"])
        print(f"example bot {BOT_ID} answers new conversations of {BOT_CHANNEL} first (docs/bots.md; write "
              "\"agent\" to be handed to support); log: .run/logs/faq-bot.log")
    write_demo_env(channels_file, tokens)
    welcome(time.monotonic() - started, endpoints["PARLEY_KAFKA_BOOTSTRAP"], channels_file, created, tokens)
    while True:
        for name, process in processes.items():
            if process.poll() is not None and not stopping:
                print(f"run: {name} exited with code {process.returncode}; see .run/logs/{name}.log", flush=True)
                shut_down()
        time.sleep(1)


if __name__ == "__main__":
    main()
