"""The web UI in a real browser (Debian's chromium through Playwright) against a real service:
every page loads without a console error or a failed request, the operator's flows work end
to end, and axe-core finds no serious accessibility violation."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, expect

from tests.ui.conftest import TOKEN, Running

PAGES = ("/", "/tenants", "/tenants/tenant-001", "/charts", "/config", "/audit", "/diff", "/tools")


@pytest.fixture
def context(browser: Any) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


class Watch:
    """Console errors and failed requests of one page."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("requestfailed", self._failed)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _failed(self, request: Request) -> None:
        if "/ui/events" not in request.url:  # the event stream is cut when the page changes
            self.problems.append(f"failed: {request.url} {request.failure}")


def log_in(page: Page, running: Running) -> None:
    page.goto(f"{running.base}/login")
    page.fill("#password", TOKEN)
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator(".who .user")).to_have_text("token")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_without_errors(
    running: Running, context: BrowserContext, path: str
) -> None:
    page = context.new_page()
    watch = Watch(page)
    response = page.goto(running.base + path)
    assert response is not None and response.status == 200
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_be_visible()
    for chart in page.locator(".chart").all():
        expect(chart.locator("canvas, p.hint").first).to_be_attached()
    assert watch.problems == []
    assert TOKEN not in page.content() and "api-token-never-shown" not in page.content()


def test_filter_tenants_then_open_a_tenants_chart(
    running: Running, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(f"{running.base}/tenants")
    rows = page.locator("#tenant-table tbody tr")
    expect(rows).to_have_count(12)
    page.fill("#q", "tenant-00[1-3]")
    page.press("#q", "Enter")
    expect(rows).to_have_count(3)
    names = rows.locator("td:first-child a").all_inner_texts()
    assert names == ["tenant-001", "tenant-002", "tenant-003"]
    assert "q=tenant-00" in page.url  # the filter is in the address: shareable, reloadable
    page.click("text=tenant-002")
    expect(page.locator("h1")).to_contain_text("tenant-002")
    expect(page.locator("#limits tbody tr").first).to_be_visible()
    chart = page.locator("figure .chart").first
    expect(chart.locator("canvas")).to_be_attached()
    expect(chart.locator(".u-legend")).to_contain_text("demand")
    expect(chart.locator(".u-legend")).to_contain_text("recommendation")


def test_filter_the_audit_log_and_export_csv(running: Running, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(f"{running.base}/audit")
    page.select_option("#f-action", "update_limits")
    page.fill("#f-tenant", "tenant-001")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"tenant=tenant-001"))  # the swap pushes the filtered URL
    expect(page.locator("#audit-rows tbody tr td:nth-child(6)").first).to_have_text("tenant-001")
    expect(page.locator("#audit-rows tbody tr td:nth-child(5)").first).to_have_text("update_limits")
    shown = int(page.locator("#audit-count").inner_text())
    assert shown > 0
    with page.expect_download() as info:
        page.click("#export-csv")
    text = info.value.path().read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == shown
    assert {r["action"] for r in rows} == {"update_limits"}
    assert {r["tenant"] for r in rows} == {"tenant-001"}


def test_diff_log_in_roll_back_restores_the_file(running: Running, context: BrowserContext) -> None:
    store = running.service.store
    name = running.service.applier.name
    revisions = store.revisions(name)
    baseline = next(r for r in revisions if r.kind == "baseline")
    latest = revisions[0]
    assert latest.id != baseline.id and running.overrides.read_text() != baseline.content
    page = context.new_page()
    page.goto(f"{running.base}/diff?left={baseline.id}&right={latest.id}")
    folded = page.locator("#impact-h ~ details")
    if folded.get_attribute("open") is None:  # long impact lists start folded
        folded.locator("summary").click()
    expect(page.locator("#impact tbody tr").first).to_be_visible()
    # Whether a line is changed or only added depends on the cycle's values (a kept
    # ingestion_rate leaves the baseline's lines in place): either way the file differs.
    differs = page.locator("#side-by-side tr.d-changed, #side-by-side tr.d-added")
    expect(differs.first).to_be_visible()
    # Not logged in: refused inline, nothing written.
    form = page.locator(f"form.rollback:has(input[value='{baseline.id}'])")
    form.locator("input[name=confirm]").fill(str(baseline.id))
    form.locator("button").click()
    expect(page.locator("#flash .error")).to_contain_text("log in")
    assert running.overrides.read_text() != baseline.content
    log_in(page, running)
    page.goto(f"{running.base}/diff?left={baseline.id}&right={latest.id}")
    form = page.locator(f"form.rollback:has(input[value='{baseline.id}'])")
    form.locator("button").click()  # no confirmation typed: refused
    expect(page.locator("#flash .error")).to_contain_text("confirmation")
    form.locator("input[name=confirm]").fill(str(baseline.id))
    form.locator("button").click()
    expect(page.locator("#flash .ok")).to_contain_text(f"restored revision {baseline.id}")
    assert running.overrides.read_text() == baseline.content
    events = store.audit(action="rollback")
    assert events and events[0].details["user"] == "token"
    assert events[0].details["to_revision"] == baseline.id


def test_a_misspelled_key_in_the_editor_shows_its_line(
    running: Running, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(f"{running.base}/config")
    page.fill("#yaml", "mode: dry-run\nupdateIntervall: 5m\n")
    problems = page.locator("#problems")
    expect(problems.locator(".goto-line")).to_have_text("line 2")
    expect(problems).to_contain_text("updateIntervall")
    expect(problems).to_contain_text("updateInterval")  # the suggestion
    page.fill("#yaml", "mode: dry-run\nupdateInterval: 5m\n")
    expect(problems.locator(".ok")).to_contain_text("valid")


def test_switch_the_breaker_without_then_with_login(
    running: Running, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(running.base + "/")
    before = page.locator("#protection-state").inner_text()
    page.click("#breaker-switch")
    expect(page.locator("#flash .error")).to_contain_text("log in")
    assert running.service.protection.status()["enabled"] is (before == "on")
    log_in(page, running)
    page.goto(running.base + "/")
    page.click("#breaker-switch")
    expect(page.locator("#flash .ok")).to_contain_text("switched")
    assert running.service.protection.status()["enabled"] is (before != "on")
    event = running.service.store.audit(category="user", limit=1)[0]
    assert event.action.startswith("protection_") and event.details["user"] == "token"


def test_a_new_cycle_appears_on_the_dashboard_without_a_reload(
    running: Running, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(running.base + "/")
    page.wait_for_load_state("networkidle")
    page.evaluate("() => { window.notReloaded = true; }")
    version = int(page.locator("#last-cycle").get_attribute("data-version") or "0")
    running.service.ui.cycle_requested.set()
    expect(page.locator("#last-cycle")).to_have_attribute(
        "data-version", re.compile(rf"^(?!{version}$)\d+$"), timeout=30_000
    )
    assert page.evaluate("() => window.notReloaded") is True


def test_no_serious_accessibility_violations(running: Running, context: BrowserContext) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = context.new_page()
    found: dict[str, list[str]] = {}
    for path in PAGES:
        page.goto(running.base + path)
        page.wait_for_load_state("networkidle")
        results = axe.run(page)
        serious = [
            f"{v['id']}: {v['help']}"
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        if serious:
            found[path] = serious
    assert found == {}


def test_narrow_screen_has_no_horizontal_page_scroll(running: Running, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 375, "height": 800})
    try:
        page = ctx.new_page()
        for path in PAGES:
            page.goto(running.base + path)
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 375px"
    finally:
        ctx.close()


def test_test_tools_backtest_with_progress_preview_and_what_if(
    running: Running, context: BrowserContext
) -> None:
    page = context.new_page()
    log_in(page, running)
    page.goto(f"{running.base}/tools")
    page.wait_for_load_state("networkidle")
    watch = Watch(page)  # from here: leaving the dashboard after the login aborts its fetches
    page.select_option("#bt-scenario", "steady")
    page.click("#bt-h ~ form button[type=submit]")
    expect(page.locator("#bt-totals")).to_be_visible(timeout=120_000)
    strategies = page.locator("#bt-totals tbody td:first-child").all_inner_texts()
    assert "ours" in strategies and "krr" in strategies  # ours and the baselines
    assert page.locator("#bt-result img.plot").evaluate("img => img.naturalWidth") > 0
    page.fill("#syn-tenants", "7")
    page.click("#syn-h ~ form button[type=submit]")
    expect(page.locator("#syn-table tbody tr")).to_have_count(7)
    expect(page.locator("#syn-result .chart canvas")).to_be_attached()
    page.fill("#wi-tenant", "tenant-004")
    page.fill("#wi-buffer", "80")
    page.click("#wi-h ~ form button[type=submit]")
    expect(page.locator("#wi-result caption")).to_contain_text("buffer 80%")
    assert watch.problems == []


def test_limit_table_edits_show_a_diff_then_save_a_file_that_loads(
    running: Running, context: BrowserContext
) -> None:
    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.config.loader import load_config

    original = running.config_file.read_text()
    page = context.new_page()
    log_in(page, running)
    page.goto(f"{running.base}/config")
    page.wait_for_load_state("networkidle")
    watch = Watch(page)
    cell = page.locator("input[name='o:ingestion_rate:maxValue']")
    expect(cell).to_have_value("")  # the file does not set it
    # A bad value: refused inline (422), the cell marked, nothing written.
    cell.fill("-5")
    page.click("#limit-diff-button")
    expect(page.locator("#cell-errors")).to_contain_text("must be 0 or more")
    expect(cell).to_have_attribute("aria-invalid", "true")
    cell.fill("10MB")
    page.click("#limit-diff-button")
    expect(page.locator("#cell-errors")).to_contain_text("'10MB' is not a number of samples/s")
    assert running.config_file.read_text() == original
    # A good value: the diff shows the new line, the file is unchanged until saved.
    cell.fill("9000000")
    page.click("#limit-diff-button")
    added = page.locator("#limit-yaml-diff tr.d-added")
    expect(added.filter(has_text="maxValue: 9000000")).to_have_count(1)
    expect(cell).not_to_have_attribute("aria-invalid", "true")
    diff_text = page.locator("#limit-diff").inner_text()
    assert TOKEN not in diff_text and "api-token-never-shown" not in diff_text
    assert running.config_file.read_text() == original
    with page.expect_download() as info:  # the edited file, secrets masked
        page.click("#limit-form button[formaction='/config/limits/download']")
    downloaded = info.value.path().read_text(encoding="utf-8")
    assert "maxValue: 9000000" in downloaded and "api-token-never-shown" not in downloaded
    with page.expect_download() as info:  # the editor's own download, in the same way
        page.click("#config-form button[formaction='/config/download']")
    assert "updateInterval: 1h" in info.value.path().read_text(encoding="utf-8")
    try:
        page.click("#limit-save")
        expect(page.locator("#limit-diff .ok")).to_contain_text("saved 1 change(s)")
        saved = running.config_file.read_text()
        assert "maxValue: 9000000" in saved and "limitOverrides:" in saved
        assert TOKEN in saved and "api-token-never-shown-7d2e" in saved  # secrets untouched
        loaded = load_config(running.config_file, env={}, cli={}, catalogue=load_catalogue())
        override = loaded.config.dynamic_limits.limit_overrides["ingestion_rate"]
        assert override.max_value == 9_000_000
        event = running.service.store.audit(action="config_saved", limit=1)[0]
        assert event.details["user"] == "token" and event.details["via"] == "limit table"
        # Saved again from the same page: the page took the new file's fingerprint, and an
        # unchanged table is no change.
        page.click("#limit-save")
        expect(page.locator("#limit-diff .ok")).to_contain_text("nothing to save")
        expected = ("status of 422",)  # the refused cells above
        downloads = ("/download", "ERR_ABORTED")  # a download ends its navigation request
        assert [
            p
            for p in watch.problems
            if not any(e in p for e in expected) and not all(d in p for d in downloads)
        ] == []
    finally:
        running.config_file.write_text(original)


def test_config_page_in_dark_mode_at_375px(running: Running, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 375, "height": 800}, color_scheme="dark")
    try:
        page = ctx.new_page()
        page.goto(f"{running.base}/config")
        page.wait_for_load_state("networkidle")
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        cell = page.locator("input[name='o:ingestion_rate:defaultValue']")
        colour = cell.evaluate("el => getComputedStyle(el).color")
        assert background == "rgb(13, 17, 23)" and colour == "rgb(230, 237, 243)"
        cell.scroll_into_view_if_needed()
        expect(cell).to_be_visible()  # the table scrolls inside its box, not the page
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
    finally:
        ctx.close()
