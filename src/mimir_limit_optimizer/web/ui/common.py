"""Helpers shared by the UI's pages and API: templates, input parsing with clear errors,
the visitor's identity."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mimir_limit_optimizer.catalogue.units import format_number
from mimir_limit_optimizer.web.ui.auth import Authenticator
from mimir_limit_optimizer.web.ui.model import Actions, ReadModel, Tools, UiError
from mimir_limit_optimizer.web.ui.security import UiRequest

HERE = Path(__file__).parent
RANGES = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "1h": 3600.0, "6h": 21600.0}
NAV = (
    ("/", "Dashboard"),
    ("/tenants", "Tenants"),
    ("/charts", "Metrics"),
    ("/config", "Configuration"),
    ("/audit", "Audit log"),
    ("/diff", "Diff"),
    ("/tools", "Test tools"),
)


@dataclass
class UiContext:
    read: ReadModel
    actions: Actions
    tools: Tools | None
    auth: Authenticator
    templates: Jinja2Templates


def iso(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, time.time() - ts)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} d ago"


def number(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return format_number(float(value), unit)


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.0%}"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(iso=iso, ago=ago, number=number, percent=percent)
    env.globals["nav"] = NAV
    env.autoescape = True
    return templates


def visitor(request: Request) -> UiRequest:
    state: UiRequest = request.state.ui
    return state


def require_login(request: Request, doing: str) -> str:
    user = visitor(request).user
    if user is None:
        raise UiError(f"log in to {doing}", status=401)
    return user


def render(
    ctx: UiContext, request: Request, name: str, status: int = 200, **values: Any
) -> HTMLResponse:
    me = visitor(request)
    values.setdefault("path", request.url.path)
    return ctx.templates.TemplateResponse(
        request,
        name,
        {
            "user": me.user,
            "csrf": me.csrf,
            "can_log_in": ctx.auth.can_log_in(),
            **values,
        },
        status_code=status,
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def opt_str(params: Mapping[str, str], name: str, *, max_len: int = 200) -> str | None:
    value = params.get(name, "").strip()
    if len(value) > max_len:
        raise UiError(f"{name} is longer than {max_len} characters")
    return value or None


def opt_int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UiError(f"{name} must be a whole number, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise UiError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def opt_time(params: Mapping[str, str], name: str) -> float | None:
    """A time from a form: ISO 8601 (`2026-01-02T03:04`, UTC unless an offset is given) or
    unix seconds."""
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise UiError(
            f"{name}: {raw[:40]!r} is not a time; use 2026-01-31T12:00 (UTC) or unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def range_seconds(params: Mapping[str, str], default: str = "24h") -> tuple[str, float]:
    name = params.get("range", default) or default
    if name not in RANGES:
        raise UiError(f"range must be one of {', '.join(RANGES)}")
    return name, RANGES[name]
