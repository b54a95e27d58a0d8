"""The UI's HTTP behaviour without a browser: security headers, login/logout/expiry, CSRF,
the login wall off loopback, clear 4xx answers to bad input (never a 500), no secret in any
response, config save with secrets kept, streamed exports, password hashes."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from mimir_limit_optimizer.config.ui import UiAuth, UiSettings, UiUser
from mimir_limit_optimizer.web.ui import UiParts, install_ui
from mimir_limit_optimizer.web.ui.auth import Authenticator
from mimir_limit_optimizer.web.ui.passwords import hash_password, verify_password
from tests.ui.conftest import TOKEN, Running

API_TOKEN = "api-token-never-shown-7d2e"


@pytest.fixture
def client(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base, timeout=30) as c:
        yield c


def csrf_of(client: httpx.Client, path: str = "/") -> str:
    html = client.get(path).text
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def logged_in(client: httpx.Client) -> str:
    token = csrf_of(client, "/login")
    answer = client.post("/login", data={"password": TOKEN, "csrf_token": token, "next": "/"})
    assert answer.status_code == 303
    return csrf_of(client)


def test_security_headers_on_pages_api_static_and_errors(client: httpx.Client) -> None:
    for path in ("/", "/api/v1/overview", "/static/app.js", "/no-such-page", "/tenants/nope"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_no_inline_script_in_any_page(client: httpx.Client) -> None:
    for path in ("/", "/tenants", "/config", "/audit", "/diff", "/charts", "/tools", "/login"):
        html = client.get(path).text
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, path
        assert " onclick=" not in html and "javascript:" not in html


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(client: httpx.Client) -> None:
    token = csrf_of(client, "/login")
    wrong = client.post("/login", data={"password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong" in wrong.text
    answer = client.post("/login", data={"password": TOKEN, "csrf_token": token, "next": "/"})
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie")
    assert cookie.startswith("mlo_session=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP on loopback
    page = client.get("/").text
    assert 'class="user">token<' in page
    csrf = csrf_of(client)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert 'class="user">' not in client.get("/").text


def test_login_never_redirects_to_another_site(client: httpx.Client) -> None:
    token = csrf_of(client, "/login")
    answer = client.post(
        "/login", data={"password": TOKEN, "csrf_token": token, "next": "//evil.example/x"}
    )
    assert answer.headers["location"] == "/"


def test_state_changes_need_the_csrf_token(client: httpx.Client, running: Running) -> None:
    csrf = logged_in(client)
    refused = client.post("/actions/freeze", data={"frozen": "on"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    other = client.post(
        "/actions/freeze", data={"frozen": "on"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert other.status_code == 403
    assert running.service.ui.actions.frozen_by() is None
    done = client.post("/actions/freeze", data={"frozen": "on"}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and "frozen by token" in done.text
    assert running.service.ui.actions.frozen_by() == "token"
    assert running.service.ui.effective(running.service.provider.config).safety.freeze is True
    client.post("/actions/freeze", data={"frozen": "off"}, headers={"X-CSRF-Token": csrf})
    assert running.service.ui.actions.frozen_by() is None


def test_the_bearer_api_needs_no_csrf_token(client: httpx.Client) -> None:
    answer = client.post(
        "/api/v1/circuit-breaker/enable", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert answer.status_code == 200
    assert API_TOKEN not in answer.text


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/tenants?page=zero", 400, "page must be a whole number"),
        ("/tenants?status=sleepy", 400, "status must be one of"),
        ("/tenants?perPage=100000", 400, "perPage must be between"),
        ("/tenants/nobody", 404, "no tenant 'nobody'"),
        ("/diff?left=1&right=99999", 404, "no revision 99999"),
        ("/diff?left=abc&right=1", 400, "must be a revision id"),
        ("/audit?since=yesterday", 400, "is not a time"),
        ("/api/v1/tenants/tenant-001/series?limit=nonsense", 404, "not a usage-driven limit"),
        ("/api/v1/tenants?sort=size", 400, "sort must be one of"),
        ("/charts?range=1y", 400, "range must be one of"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    client: httpx.Client, path: str, status: int, words: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    assert words in html.unescape(answer.text)
    assert "Traceback" not in answer.text


def test_bad_posts_get_a_clear_4xx(client: httpx.Client) -> None:
    csrf = logged_in(client)
    h = {"X-CSRF-Token": csrf}
    big = client.post(
        "/tools/validate-overrides", files={"file": ("o.yaml", b"#" * (1024 * 1024 + 70_000))},
        headers=h,
    )  # fmt: skip
    assert big.status_code == 413 and "over 1 MiB" in big.text
    bad = client.post("/tools/validate-overrides", data={"text": "overrides: [1, 2"}, headers=h)
    assert bad.status_code == 422 and "line" in bad.text
    assert client.post("/actions/breaker", data={"enabled": "maybe"}, headers=h).status_code == 400
    rollback = client.post("/actions/rollback", data={"revision": "x"}, headers=h)
    assert rollback.status_code == 400 and "choose a revision" in rollback.text
    missing = client.post(
        "/actions/rollback", data={"revision": "99999", "confirm": "99999"}, headers=h
    )
    assert missing.status_code == 404
    save = client.post("/config/save", data={"text": "mode: fast\n"}, headers=h)
    assert save.status_code == 422 and "line 1" in save.text
    promql = client.get("/api/v1/query", params={"q": "up"})
    assert promql.status_code == 409 and "synthetic" in promql.json()["detail"]


def test_promql_needs_a_login(client: httpx.Client) -> None:
    answer = client.get("/api/v1/query", params={"q": "up"})
    assert answer.status_code == 401 and "log in" in answer.json()["detail"]


def test_no_secret_in_any_response(client: httpx.Client) -> None:
    logged_in(client)
    for path in ("/", "/config", "/api/v1/config", "/api/v1/overview", "/api/v1/openapi.json",
                 "/audit/export.json", "/api/v1/circuit-breaker/status"):  # fmt: skip
        text = client.get(path).text
        assert TOKEN not in text and API_TOKEN not in text, path
    editor = client.get("/config").text
    assert "token: &#39;***&#39;" in editor and "apiToken: &#39;***&#39;" in editor


def test_saving_the_config_keeps_secrets_and_is_audited(
    client: httpx.Client, running: Running
) -> None:
    csrf = logged_in(client)
    original = running.config_file.read_text()
    edited = client.get("/config").text
    shown = re.search(r'<textarea id="yaml"[^>]*>(.*?)</textarea>', edited, re.S)
    assert shown is not None
    text = html.unescape(shown.group(1)).replace("updateInterval: 1h", "updateInterval: 2h")
    try:
        answer = client.post("/config/save", data={"text": text}, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        saved = running.config_file.read_text()
        assert "updateInterval: 2h" in saved
        assert TOKEN in saved and API_TOKEN in saved  # *** was put back, never written
        event = running.service.store.audit(action="config_saved", limit=1)[0]
        assert event.details["user"] == "token"
    finally:
        running.config_file.write_text(original)


def test_audit_export_json_is_a_streamed_array(client: httpx.Client) -> None:
    with client.stream("GET", "/audit/export.json", params={"action": "update_limits"}) as r:
        assert r.headers["content-type"].startswith("application/json")
        assert "attachment" in r.headers["content-disposition"]
        body = b"".join(r.iter_bytes())
    rows = json.loads(body)
    assert rows and {row["action"] for row in rows} == {"update_limits"}


def test_off_loopback_every_page_needs_a_login(running: Running) -> None:
    app = FastAPI()
    ui = running.service.ui
    install_ui(
        app,
        UiParts(
            read=ui.read_model, actions=ui.actions,
            settings=lambda: UiSettings(auth=UiAuth(token=TOKEN)),
            host="0.0.0.0", clock=running.service.clock,
        ),
    )  # fmt: skip

    async def probe() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlo") as c:
            return [
                await c.get(p)
                for p in ("/tenants?q=a", "/api/v1/overview", "/static/app.css", "/login")
            ]

    # Its own thread: a Playwright session in this process may own the main thread's loop.
    with ThreadPoolExecutor(1) as pool:
        page, api, static, login = pool.submit(asyncio.run, probe()).result()
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Ftenants%3Fq%3Da"
    assert api.status_code == 401
    assert static.status_code == 200 and login.status_code == 200


def test_sessions_expire_and_repeated_failures_are_refused() -> None:
    now = [1000.0]
    settings = UiSettings(auth=UiAuth(token=TOKEN, session_ttl=60))
    auth = Authenticator(lambda: settings, clock=lambda: now[0], host="127.0.0.1")
    session = auth.start("token")
    now[0] += 59
    assert auth.session(session.id) is not None  # activity pushes the expiry back
    now[0] += 61
    assert auth.session(session.id) is None
    for _ in range(10):
        assert auth.check("10.0.0.9", "", "guess") is None
    assert auth.throttled("10.0.0.9") and not auth.throttled("10.0.0.8")
    now[0] += 301
    assert not auth.throttled("10.0.0.9")


def test_users_log_in_with_scrypt_hashes_never_plain_passwords() -> None:
    hashed = hash_password("correct horse", n=2**10)
    assert verify_password("correct horse", hashed) and not verify_password("wrong", hashed)
    assert not verify_password("x", "scrypt$bad")
    user = UiUser(username="ana", password_hash=hashed)
    settings = UiSettings(auth=UiAuth(users=[user]))
    auth = Authenticator(lambda: settings, clock=lambda: 0.0, host="127.0.0.1")
    assert auth.check("c", "ana", "correct horse") == "ana"
    assert auth.check("c", "ana", "wrong") is None
    assert auth.check("c", "", "correct horse") is None  # no token configured
    with pytest.raises(ValidationError, match="not an scrypt hash"):
        UiUser(username="bob", password_hash="hunter2")


def test_the_tenant_chart_draws_the_limit_in_force_over_time(
    client: httpx.Client, running: Running
) -> None:
    applied = running.service.store.audit(action="update_limits", limit=500)
    event = next(e for e in applied if e.details["limit"] == "ingestion_rate")
    tenant, old, new = event.tenant, event.details["old"], event.details["new"]
    assert tenant is not None and old != new
    series = client.get(
        f"/api/v1/tenants/{tenant}/series", params={"limit": "ingestion_rate", "range": "24h"}
    ).json()
    limit = series["series"]["limit"]
    assert limit[0] == old and limit[-1] == new  # before and after the applied change
    assert set(series["series"]) == {"usage", "demand", "limit"}
    assert len(series["x"]) == len(series["series"]["usage"]) <= 600
    assert "recommendation" in series["marks"]


def test_the_tenant_page_reads_target_and_held_from_the_stored_plan(
    client: httpx.Client, running: Running
) -> None:
    from mimir_limit_optimizer.catalogue import load_catalogue
    from mimir_limit_optimizer.controller.reconcile import last_plan
    from mimir_limit_optimizer.engine.results import render_value

    catalogue = load_catalogue()
    stored = last_plan(running.service.store)
    assert stored is not None
    items = [i for i in stored["items"] if i["tenant"] == "tenant-002"]  # type: ignore[union-attr]
    assert items
    shown = {v["limit"]: v for v in client.get("/api/v1/tenants/tenant-002").json()["limits"]}
    for item in items:
        view = shown[item["limit"]]
        if item["target"] is not None:
            assert view["target"] == render_value(item["target"], catalogue.limits[item["limit"]])
        assert view["held"] == (item["held"] or None)


def test_limit_table_refuses_bad_cells_stale_forms_and_anonymous_saves(
    client: httpx.Client, running: Running
) -> None:
    page = client.get("/config").text
    base = re.search(r'id="lt-base" name="base" value="([0-9a-f]+)"', page)
    assert base is not None
    csrf = csrf_of(client, "/config")
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    form = {"base": base.group(1), "o:ingestion_rate:defaultValue": "30000"}
    diff = client.post("/config/limits/diff", data=form, headers=headers)
    assert diff.status_code == 200 and "defaultValue: 30000" in diff.text
    assert TOKEN not in diff.text and API_TOKEN not in diff.text
    bad = {**form, "o:ingestion_burst_size:minValue": "1.5", "t:nope:ingestion_rate": "1"}
    answer = client.post("/config/limits/diff", data=bad, headers=headers)
    assert answer.status_code == 422
    assert "must be a whole number of samples" in answer.text
    assert "there is no tier &#39;nope&#39;" in answer.text
    loader = {**form, "o:ingestion_rate:minValue": "500", "o:ingestion_rate:maxValue": "100"}
    answer = client.post("/config/limits/diff", data=loader, headers=headers)
    assert answer.status_code == 422 and "minValue 500 is above maxValue 100" in answer.text
    stale = client.post("/config/limits/diff", data={**form, "base": "0" * 64}, headers=headers)
    assert stale.status_code == 409 and "changed since this page was loaded" in stale.text
    before = running.config_file.read_text()
    anonymous = client.post("/config/limits/save", data=form, headers=headers)
    assert anonymous.status_code == 401 and running.config_file.read_text() == before
    download = client.post("/config/limits/download", data=form, headers={"X-CSRF-Token": csrf})
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert "defaultValue: 30000" in download.text and API_TOKEN not in download.text


def test_head_answers_like_get_without_a_body(client: httpx.Client) -> None:
    for path in ("/", "/tenants", "/config", "/diff", "/api/v1/overview", "/static/app.css"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["x-frame-options"] == "DENY"
    assert client.head("/tenants/no-such-tenant").status_code == 404
    assert client.head("/no-such-page").status_code == 404
    stream = client.head("/ui/events", timeout=10)  # an endless stream ends at once
    assert stream.status_code == 200 and stream.content == b""
    assert stream.headers["content-type"].startswith("text/event-stream")
