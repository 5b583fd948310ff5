"""`/admin` in a real headless browser: Debian's chromium driven by Playwright (no browser download).

Signs in through the form, checks that the coverage-gap list shows the seeded clusters, that a
click opens the conversations behind one, and that no page logs a console error. Screenshots go
to the test run's artifacts folder: $TEST_ARTIFACTS_DIR, else .cache/test-artifacts/.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from insights_seed import open_seeded
from playwright.async_api import BrowserContext, ConsoleMessage, Page, async_playwright
from pydantic import SecretStr
from test_insights_admin import TOKEN, admin_server

from data.database import Database
from data.embeddings import LocalOnnxEmbedder
from services.indexing.contract import IndexFailure, IndexProgress, IndexResult
from services.insights.config import InsightsConfig

CHROMIUM = Path(os.environ.get("DOCS_BOT_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(
    os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).resolve().parent.parent / ".cache/test-artifacts")
)
# The network is closed: nothing may phone home, and the first run must not wait for anything.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_seeded(tmp_path) as database:
        yield database


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium (`make test` installs it); missing, the test fails with what to do."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium).")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium with a fresh profile (`--user-data-dir`) in this test's folder."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


async def record_index_runs(database: Database) -> None:
    """A finished run with a failed file, then one still running (its lease held), as the indexer does."""
    runs = database.index_runs
    lease, run_id = await runs.begin_run("index:DocChunks", full=False, ttl=300, heartbeat=5, progress={})
    failure = IndexFailure("notes/scan.pdf", "not a PDF file (no %PDF header)")
    result = IndexResult(40, 2, 1, 36, 0, 1, [failure], 310, 310, 12.5, False, False, "DocChunks_1")
    await runs.record_run(result, run_id=run_id)
    await lease.release()
    progress = IndexProgress("indexing", 40, 10, 80, time.time() - 20, False)
    _running, _ = await runs.begin_run(
        "index:DocChunks", full=False, ttl=300, heartbeat=5, progress=progress.to_dict()
    )


class ConsoleWatch:
    """Every console error and uncaught page error, from every page of the context."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type} at {message.location.get('url')}: {message.text}")


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


async def test_gap_list_and_its_conversations_in_a_real_browser(
    seeded: Database, embedder: LocalOnnxEmbedder, browser: BrowserContext
) -> None:
    config = InsightsConfig(admin_token=SecretStr(TOKEN))
    async with admin_server(seeded, embedder, config) as base:
        page = browser.pages[0] if browser.pages else await browser.new_page()
        watch = ConsoleWatch(page)

        await page.goto(f"{base}/admin/login?next=/admin/gaps")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/admin/gaps")

        items = page.locator("#gap-list > li")
        assert await items.count() == 4
        labels = [text.strip() for text in await page.locator("#gap-list a.gap").all_inner_texts()]
        assert labels[0] == "How do I reset my password?"
        assert "VPN" in labels[1] and labels[2:] == [
            "What's the release schedule?",
            "Where can I park my car at the office?",
        ]
        assert "3 questions" in await items.nth(0).inner_text()
        await page.screenshot(path=str(screenshot_path("insights-admin-gaps.png")), full_page=True)

        await page.click("#gap-list a.gap >> nth=0")
        await page.wait_for_url(f"{base}/admin/gaps/q_pw1")
        assert await page.inner_text("#gap-title") == "How do I reset my password?"
        questions = await page.locator("#gap-turns .question").all_inner_texts()
        assert questions == [
            "How do I reset my password?",
            "how can I reset my password",
            "I forgot my password, how do I reset it?",
        ]
        await page.click("#gap-turns summary >> nth=2")  # the 👎 answer, with its sources
        assert "docs/accounts.md" in await page.locator("#gap-turns .turn").nth(2).inner_text()
        await page.screenshot(
            path=str(screenshot_path("insights-admin-gap-conversations.png")), full_page=True
        )

        await page.click("#gap-turns a.conversation-link >> nth=2")
        await page.wait_for_url(f"{base}/admin/conversations/thr_pw3")
        messages = await page.locator("#messages .message").all_inner_texts()
        assert messages[0] == "I forgot my password, how do I reset it?" and "Reset [1]" in messages[1]

        await record_index_runs(seeded)
        for path in ("/admin", "/admin/feedback", "/admin/sources"):
            response = await page.goto(base + path)
            assert response is not None and response.status == 200, path
            name = path.strip("/").replace("/", "-")
            await page.screenshot(path=str(screenshot_path(f"insights-{name}.png")), full_page=True)

        assert "ETA" in await page.inner_text("#running")  # the sources page, last visited
        await page.click("table summary")  # "1 failed file" opens the reasons
        assert "notes/scan.pdf: not a PDF file" in await page.inner_text("table")
        await page.screenshot(path=str(screenshot_path("insights-admin-sources.png")), full_page=True)

        await page.set_viewport_size({"width": 390, "height": 844})  # a phone
        await page.goto(f"{base}/admin/gaps")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the gap list scrolls sideways on a phone ({width}px)"
        await page.screenshot(path=str(screenshot_path("insights-admin-gaps-phone.png")), full_page=True)

        assert watch.problems == []
