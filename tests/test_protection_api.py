"""The circuit-breaker REST API on a real Protection: status is open to read; enable and
disable need the configured bearer token (401 without it or with a wrong one, 403 while none
is configured), flip the runtime switch (audited as a user action) and never log the token;
a token file is read at each request, so rotating it takes effect at once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mimir_limit_optimizer.web.protection_api import build_protection_router
from tests.test_protection_controller import GAMMA_BLAST, Rig, config, scenario

TOKEN = "s3cret-token"
BASE = "/api/v1/circuit-breaker"


class Client:
    """Requests to the app in process (httpx's ASGI transport: Starlette's real HTTP
    handling without a socket)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mlo") as client:
                return await client.request(method, path, headers=sent)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(
        self, path: str, *, token: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.request("POST", path, token=token, headers=headers)


def client_for(rig: Rig) -> Client:
    app = FastAPI()
    app.include_router(build_protection_router(rig.protection))
    return Client(app)


def test_status_is_readable_without_a_token(tmp_path: Path) -> None:
    rig = Rig(tmp_path, scenario(blasts=(GAMMA_BLAST,)), config())
    rig.run(GAMMA_BLAST.start + 90)
    body = client_for(rig).get(f"{BASE}/status").json()
    assert body["enabled"] is True and body["acting"] is True and body["mode"] == "prod"
    assert {b["tenant"] for b in body["circuitBreaker"]["breakers"]} == {"gamma"}
    assert {c["tenant"] for c in body["clamps"]} == {"gamma"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "not-bearer", "empty"],
)
def test_mutations_need_the_token(tmp_path: Path, headers: dict[str, str]) -> None:
    rig = Rig(tmp_path, scenario(), config())
    client = client_for(rig)
    for action in ("enable", "disable"):
        response = client.post(f"{BASE}/{action}", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert rig.protection.status()["enabledSource"] == "config"


def test_enable_and_disable_flip_the_switch_and_never_log_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig = Rig(tmp_path, scenario(), config())
    client = client_for(rig)
    off = client.post(f"{BASE}/disable", token=TOKEN)
    assert off.status_code == 200
    assert off.json()["enabled"] is False and off.json()["enabledSource"] == "api"
    assert client.get(f"{BASE}/status").json()["acting"] is False
    on = client.post(f"{BASE}/enable", token=TOKEN)
    assert on.json()["enabled"] is True
    events = [e for e in rig.events() if e.category == "user"]
    assert [e.action for e in events] == ["circuit_breaker_disabled", "circuit_breaker_enabled"]
    assert events[0].details["actor"].startswith("api")
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(e.details) for e in rig.events())


def test_without_a_configured_token_mutations_are_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path, scenario(), config(circuitBreaker={"apiToken": None}))
    response = client_for(rig).post(f"{BASE}/disable", token="x")
    assert response.status_code == 403 and "apiToken" in response.json()["detail"]


def test_a_token_file_is_read_at_each_request(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("first\n")
    cfg = config(circuitBreaker={"apiToken": None, "apiTokenFile": str(secret)})
    rig = Rig(tmp_path, scenario(), cfg)
    client = client_for(rig)
    assert (
        client.post(f"{BASE}/disable", headers={"Authorization": "Bearer first"}).status_code == 200
    )
    secret.write_text("second\n")
    assert (
        client.post(f"{BASE}/enable", headers={"Authorization": "Bearer first"}).status_code == 401
    )
    assert (
        client.post(f"{BASE}/enable", headers={"Authorization": "Bearer second"}).status_code == 200
    )
