"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real `gordon-manager serve`.

One server on the embedded database for the module (tests/console/conftest.py: 5,000 synthetic bars).
Every test fails on a console error or an uncaught exception; the only console errors allowed are the
"Failed to load resource" lines Chromium writes for the HTTP statuses a test provokes on purpose
(the 412 of a concurrent edit, the 401 of a write without the token), each named by the test.
Screenshots of every page go to artifacts/console/ (CI keeps the folder); axe-core checks each page
and fails on a serious or critical violation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.async_api import expect

from tests.console.conftest import ARTIFACTS, CONSOLE, OPERATOR_TOKEN

AXE = CONSOLE / "node_modules" / "axe-core" / "axe.min.js"
# A chart with at least two points, drawn. Waits are selectors or expect(); page.wait_for_function is not used:
# its polls eval() the expression in the page, which the CSP (script-src 'self') refuses once the first check fails.
DRAWN = "[data-testid=chart][data-ready='1']:not([data-points='0']):not([data-points='1'])"
RESOURCE = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class Watched:
    page: object
    errors: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)
    provoked: list[int] = field(default_factory=list)

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        hit = RESOURCE.search(message.text)
        if hit and int(hit.group(1)) in self.allowed:
            self.provoked.append(int(hit.group(1)))
            return
        self.errors.append(f"console: {message.text} at {message.location}")


@pytest.fixture
async def console(browser, served) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, base_url=served.url)
    page = await context.new_page()
    watched = Watched(page=page)
    page.on("console", watched.on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"pageerror: {error}"))
    try:
        yield watched
    finally:
        await context.close()
    assert not watched.errors, watched.errors


def api(served) -> httpx.Client:
    return httpx.Client(base_url=served.url, headers={"X-Operator-Token": OPERATOR_TOKEN}, timeout=10)


async def enter_token(page) -> None:
    await page.get_by_test_id("token-button").click()
    await page.fill("input[name=operatorToken]", OPERATOR_TOKEN)
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_selector("dialog", state="detached")


async def open_console(page, path: str = "/") -> None:
    await page.goto(path)
    await page.wait_for_selector("[data-testid=connection][data-state=live]", timeout=15_000)


async def open_launch_form(page, path: str, ready: str) -> None:
    """A launch form (backtest, sweep) with the token entered and the range of the served bars, once
    ``ready`` (a field filled from the strategy's params) is there."""
    await open_console(page, path)
    await enter_token(page)
    await page.fill("input[name=from]", "2024-01-01T00:00")
    await page.fill("input[name=to]", "2024-01-02T12:00")
    await page.wait_for_selector(ready)


async def launch_until_done(page, button: str, url: re.Pattern[str], badge: str) -> int:
    """Click ``button``, follow to the launched job's page (``url``'s first group is its id) and wait until its
    status badge ``{badge}-{id}`` says done; returns the id."""
    await page.get_by_role("button", name=button).click()
    await page.wait_for_url(url)
    job_id = int(url.search(page.url).group(1))
    await page.wait_for_selector(f"[data-testid={badge}-{job_id}][data-status=done]", timeout=120_000)
    return job_id


async def check_axe(page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation (evaluated through the DevTools protocol, which the CSP allows)."""
    await page.evaluate(AXE.read_text())
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"


async def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def create_bot_in_form(page, name: str, labels: str = "replay.speed=50") -> int:
    await page.get_by_role("link", name="New bot").click()
    await page.fill("input[name=name]", name)
    await page.wait_for_selector("input[name='params-fast']")
    await page.fill("textarea[name=labels]", labels)
    await page.get_by_role("button", name="Create bot").click()
    await page.wait_for_url(re.compile(r"/ui/bots/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


async def test_first_bot_walkthrough_in_the_console(console, served):
    """Create a bot through the form, start it, see it turn running live (no reload) and its equity chart draw."""
    page = console.page
    await open_console(page)
    await check_axe(page, "fleet (empty)")
    await enter_token(page)
    await page.get_by_role("link", name="New bot").click()
    await page.wait_for_selector("input[name='params-fast']")
    await shoot(page, "bot-form")
    await check_axe(page, "bot form")
    await page.get_by_role("link", name="Fleet").click()
    bot_id = await create_bot_in_form(page, "walkthrough")
    await page.evaluate("window.__noReload = true")
    await page.wait_for_selector("[data-testid=observed-state]")
    await page.get_by_role("button", name="start", exact=True).click()
    await page.get_by_test_id("confirm").click()
    await page.wait_for_selector("[data-testid=observed-state][data-state=running]", timeout=60_000)
    await page.wait_for_selector(DRAWN, timeout=60_000)
    await page.wait_for_selector("[data-testid=events] td:has-text('started')", timeout=30_000)
    assert await page.evaluate("window.__noReload") is True  # the same document all along: it came over /ws
    await shoot(page, "bot")
    await check_axe(page, "bot")
    # The fleet shows it running too, live.
    await page.get_by_role("link", name="Fleet").click()
    row = page.get_by_test_id(f"bot-row-{bot_id}")
    await row.locator("[data-testid=observed] .st-running").wait_for()
    await shoot(page, "fleet")
    await check_axe(page, "fleet")
    with api(served) as http:
        assert http.get(f"/bots/{bot_id}").json()["status"]["observedState"] == "running"


async def test_a_concurrent_edit_is_a_412_shown_with_what_changed(console, served):
    console.allowed = {412}
    page = console.page
    with api(served) as http:
        created = http.post("/bots", json={"name": "edited", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",
                                           "params": {"fast": 10, "slow": 30}})
        assert created.status_code == 201, created.text
        bot = created.json()
    await open_console(page, f"/ui/bots/{bot['id']}")
    await enter_token(page)
    await page.get_by_role("button", name="Edit").click()
    await page.fill("input[name='params-fast']", "12")
    with api(served) as http:  # someone else changes the bot meanwhile
        changed = http.patch(f"/bots/{bot['id']}", json={"params": {"slow": 40}}, headers={"If-Match": f'"{bot["version"]}"'})
        assert changed.status_code == 200, changed.text
    await page.get_by_role("button", name=re.compile(r"^Save \(If-Match v1\)")).click()
    conflict = page.get_by_test_id("conflict")
    await conflict.wait_for()
    theirs = page.get_by_test_id("conflict-theirs")
    assert "params.slow" in await theirs.inner_text()
    assert "40" in await theirs.inner_text()
    assert "412" in await page.get_by_test_id("problem").inner_text()
    await shoot(page, "bot-412")
    await check_axe(page, "bot edit conflict")
    # Keep my value over the new version: saved with If-Match v2.
    await page.get_by_role("button", name=re.compile("Keep my values")).click()
    await page.get_by_role("button", name=re.compile(r"^Save \(If-Match v2\)")).click()
    await page.wait_for_selector("[data-testid=config-version]:text-is('3')")
    with api(served) as http:
        params = http.get(f"/bots/{bot['id']}").json()["params"]
    assert params["fast"] == 12
    assert console.provoked == [412]


async def test_a_backtest_runs_and_two_are_compared(console, served):
    page = console.page
    await open_launch_form(page, "/ui/backtests", "input[name='params-fast']")
    first = await launch_until_done(page, "Run backtest", re.compile(r"runs=(\d+)"), "run-status")
    stats = page.get_by_test_id("run-stats")
    await stats.wait_for()
    shown = await stats.inner_text()
    assert all(label in shown for label in ("total return", "Sortino", "profit factor", "SQN"))
    await page.wait_for_selector(DRAWN, timeout=30_000)
    await page.fill("input[name='params-fast']", "5")
    await launch_until_done(page, "Run backtest", re.compile(rf"runs=(\d+),{first}$"), "run-status")
    # The badge follows /ws ('done' can come first); the stats come with the run's detail, read after it.
    await expect(page.get_by_test_id("run-stats")).to_have_count(2, timeout=30_000)
    await shoot(page, "backtests")
    await check_axe(page, "backtests")


async def test_a_sweep_runs_ranks_its_trials_and_one_is_run_in_full(console, served):
    page = console.page
    await open_launch_form(page, "/ui/sweeps", "input[name='values-fast']")
    await page.fill("input[name='values-fast']", "5, 10, 15")
    await page.fill("input[name='values-slow']", "20,30")
    await page.fill("input[name=folds]", "2")
    sweep_id = await launch_until_done(page, "Run sweep", re.compile(r"/ui/sweeps\?id=(\d+)"), "sweep-status")
    # The badge follows /ws; the trials and the heatmap come with the sweep's detail, read after it.
    await expect(page.get_by_test_id("heatmap-cell")).to_have_count(6, timeout=30_000)
    with api(served) as http:
        detail = http.get(f"/backtests/sweeps/{sweep_id}").json()
    assert detail["trialsTotal"] == 6 and sorted(detail["heatmap"]["xValues"] + detail["heatmap"]["yValues"]) == [5, 10, 15, 20, 30]
    rows = page.get_by_test_id("sweep-trial")
    assert await rows.count() == 6
    assert (await rows.first.inner_text()).startswith(f"1\t#{detail['best']['n']}")  # ranked, best first
    assert f"trial #{detail['best']['n']}" in await page.get_by_test_id("sweep-best").inner_text()
    # walk-forward: two folds, each with its in-sample pick evaluated out of sample
    assert detail["walkForward"]["folds"] == 2 and [f["done"] for f in detail["folds"]] == [True, True]
    await expect(page.locator("[data-testid=sweep-folds] tbody tr")).to_have_count(2)
    compared = detail["degradation"]["foldsCompared"]
    assert f"{compared} of 2 folds compared" in await page.get_by_test_id("sweep-walk-forward").inner_text()
    await shoot(page, "sweeps")
    await check_axe(page, "sweeps")
    run = await launch_until_done(page, f"run #{detail['best']['n']} in full",
                                  re.compile(r"/ui/backtests\?runs=(\d+)$"), "run-status")
    with api(served) as http:
        assert http.get(f"/runs/{run}").json()["params"] == {**detail["best"]["params"]}


async def test_a_deploy_is_started_watched_and_aborted(console, served):
    page = console.page
    with api(served) as http:
        bot = http.post("/bots", json={"name": "deployed", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",
                                       "params": {"fast": 10, "slow": 30}, "labels": {"replay.speed": "20"},
                                       "desiredState": "running"}).json()
    await open_console(page, f"/ui/bots/{bot['id']}")
    await page.wait_for_selector("[data-testid=observed-state][data-state=running]", timeout=60_000)
    await enter_token(page)
    await page.get_by_role("navigation").get_by_role("link", name="Deploys", exact=True).click()
    await page.get_by_label("Bot", exact=True).select_option(str(bot["id"]))
    await page.wait_for_selector("input[name='params-fast']")
    await page.fill("input[name='params-fast']", "11")
    await page.get_by_role("button", name="Start deploy").click()
    state = page.get_by_test_id("deploy-state")
    await page.wait_for_selector("[data-testid=deploy-state][data-state=pending], [data-testid=deploy-state][data-state=shadowing], "
                                 "[data-testid=deploy-state][data-state=comparing]", timeout=30_000)
    await shoot(page, "deploys")
    await check_axe(page, "deploys")
    await page.get_by_role("button", name="abort", exact=True).click()
    await page.get_by_test_id("confirm").click()
    await page.wait_for_selector("[data-testid=deploy-state][data-state=aborted]", timeout=30_000)
    assert await state.get_attribute("data-state") == "aborted"


async def test_a_write_without_the_token_asks_for_it(console, served):
    console.allowed = {401}
    page = console.page
    with api(served) as http:
        bot = http.post("/bots", json={"name": "tokenless", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m"}).json()
    await open_console(page, f"/ui/bots/{bot['id']}")
    assert await page.evaluate("sessionStorage.length") == 0
    await page.get_by_role("button", name="start", exact=True).click()
    await page.get_by_test_id("confirm").click()
    dialog = page.get_by_role("dialog", name="Operator token")
    await dialog.wait_for()
    assert "operator token" in (await dialog.inner_text()).lower()
    await page.fill("input[name=operatorToken]", OPERATOR_TOKEN)
    await page.get_by_role("button", name="Save").click()
    assert await page.evaluate("sessionStorage.getItem('gordon.operatorToken')") == OPERATOR_TOKEN
    assert OPERATOR_TOKEN not in page.url
    assert console.provoked == [401]


@pytest.mark.parametrize("path,name", [("/ui/portfolio", "portfolio"), ("/ui/risk", "risk"), ("/ui/ops", "ops"),
                                       ("/ui/deploys", "deploys-empty"), ("/ui/nowhere", "not-found")])
async def test_every_page_renders_cleanly(console, served, path, name):
    page = console.page
    await open_console(page, path)
    await page.wait_for_load_state("networkidle")
    await shoot(page, name)
    await check_axe(page, name)
