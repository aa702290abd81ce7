"""The demo tenant `make run` seeds, through the services' public HTTP APIs (as a manager would set it up): team
`support` with agents alice and bob, a routing rule sending every conversation to it, and an approved sample
template on the WhatsApp demo channel. Only what is missing is created, so a re-run changes nothing, and a
team, agent, rule or template the user changed since stays as they left it."""

from __future__ import annotations

from typing import Any

import httpx

TEAM = "support"
AGENTS = ("alice", "bob")
ROUTING = {"rules": [{"id": "everything-to-support", "target_kind": "team", "target_id": TEAM}]}
TEMPLATE: dict[str, Any] = {
    "name": "order_update", "language": "en_US", "category": "utility", "status": "approved",
    "header": {"format": "text", "text": "Order update"}, "body": "Hi {{1}}, your order {{2}} is on its way.",
    "footer": "Parley demo", "variables": [{"name": "1"}, {"name": "2", "max_length": 40}],
    "buttons": [{"type": "quick_reply", "text": "Thanks"}],
}


def seed_demo(router: str, outbound: str, manager_token: str, whatsapp_channel: str) -> list[str]:
    """Create what the demo tenant lacks; answers what was created (empty on a re-run)."""
    created = []
    with httpx.Client(headers={"Authorization": f"Bearer {manager_token}"}, timeout=10.0) as http:
        teams = {team["id"] for team in _ok(http.get(f"{router}/v1/teams"))["items"]}
        if TEAM not in teams:
            _ok(http.put(f"{router}/v1/teams/{TEAM}", json={"name": "Support", "strategy": "round_robin"}))
            created.append(f"team {TEAM}")
        agents = {agent["login"] for agent in _ok(http.get(f"{router}/v1/agents"))["items"]}
        for login in AGENTS:
            if login not in agents:
                _ok(http.put(f"{router}/v1/agents/{login}", json={"teams": [TEAM]}))
                created.append(f"agent {login}")
        if not _ok(http.get(f"{router}/v1/routing"))["rules"]:
            _ok(http.put(f"{router}/v1/routing", json=ROUTING))
            created.append("routing to the team")
        template = f"{outbound}/v1/templates/{whatsapp_channel}"
        if http.get(f"{template}/{TEMPLATE['name']}/{TEMPLATE['language']}").status_code == 404:
            _ok(http.put(template, json=TEMPLATE))
            created.append(f"template {TEMPLATE['name']} on {whatsapp_channel}")
    return created


def seed_bot(router: str, manager_token: str, channel_id: str, bot_id: str) -> list[str]:
    """`make run BOT=1`: a first rule giving new conversations of `channel_id` to the example bot (fallback and
    hand-over team: support), unless the rules have it already."""
    rule = {"id": f"{channel_id}-to-{bot_id}", "target_kind": "bot", "target_id": bot_id, "channel_ids": [channel_id],
            "fallback_team": TEAM}
    with httpx.Client(headers={"Authorization": f"Bearer {manager_token}"}, timeout=10.0) as http:
        routing = _ok(http.get(f"{router}/v1/routing"))
        if any(existing["id"] == rule["id"] for existing in routing["rules"]):
            return []
        _ok(http.put(f"{router}/v1/routing", json={**routing, "rules": [rule, *routing["rules"]]}))
    return [f"rule {rule['id']}"]


def _ok(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise RuntimeError(f"seed: {response.request.method} {response.request.url.path} answered "
                           f"{response.status_code} {response.text[:300]}")
    return response.json()
