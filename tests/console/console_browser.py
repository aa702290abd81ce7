"""Debian's chromium under Playwright, and a signed-in screen that checks itself: every scan runs axe-core (from
the console's npm packages) and fails on a serious or critical violation, and any console error fails the test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, ViewportSize, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = REPO / "services" / "console" / "web" / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = REPO / ".run" / "console-screens"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")


@dataclass
class Browser:
    context: BrowserContext

    def screen(self, base_url: str, token: str | None, viewport: ViewportSize = DESKTOP) -> Screen:
        page = self.context.new_page()
        page.set_viewport_size(viewport)
        screen = Screen(page)
        page.on("console", screen.on_console)
        page.on("pageerror", lambda error: screen.errors.append(f"page error: {error}"))
        page.goto(f"{base_url}/" + (f"#token={token}" if token else ""))
        return screen


@contextlib.contextmanager
def open_browser(profile: Path) -> Iterator[Browser]:
    """A fresh profile each run; CSP bypassed only so the tests can inject axe-core (the app needs no inline code)."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, viewport=DESKTOP,
            bypass_csp=True, accept_downloads=True)
        context.set_default_timeout(20_000)
        # Two cores shared with the whole system: a screen may take a few seconds to follow under load.
        expect.set_options(timeout=15_000)
        try:
            yield Browser(context)
        finally:
            context.close()


@dataclass
class Screen:
    page: Page
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} at {message.location}")

    def check(self, name: str) -> list[dict[str, Any]]:
        """Saves a screenshot, scans the screen with axe-core; answers the blocking violations (none expected)."""
        SCREENS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENS / f"{name}.png"))
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "nodes": [n["html"][:160] for n in v["nodes"][:3]]}
                for v in result["violations"] if v["impact"] in BLOCKING]

    def close(self) -> None:
        self.page.close()
