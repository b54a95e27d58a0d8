"""Scenario files: a parametric, seeded description of TRUE per-tenant demand.

A scenario is a history window followed by an evaluation window at one step, and tenants
whose demand for one or more usage-driven limits is described by a few parameters (level,
daily and weekly cycles, growth, noise, bursts, spikes, month-end peaks, late start,
dormancy) plus the limit in force. `generate.build_case` turns it into arrays; the same file
and seed always give the same arrays.

A file holds one scenario (a mapping with `name`) or several (`scenarios: [...]`). Keys are
camelCase, like the configuration; every mistake is reported with its file, line, key and a
fix (`ConfigError`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.catalogue import Catalogue, SignalKind
from mimir_limit_optimizer.config.errors import ConfigError, Findings, KeyPath, combine
from mimir_limit_optimizer.config.types import Duration
from mimir_limit_optimizer.config.yaml_file import parse_yaml

DAY = 86400.0
# Bounds that keep one scenario's arrays and replay loops small (a scenario is a test case,
# not a cluster): points per tenant, recommendation cycles, tenants.
MAX_POINTS = 50_000
MAX_CYCLES = 2_000
MAX_TENANTS = 5_000
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=False, alias_generator=to_camel, frozen=True
    )


class Episode(_Model):
    """Demand x `factor` for `duration` from `at` after the history starts: an incident
    spike, a cardinality blast, a backfill."""

    at: Duration = Field(ge=0)
    duration: Duration = Field(gt=0)
    factor: float = Field(gt=0)


class MonthEnd(_Model):
    """Demand x `factor` on the last `days` calendar days (UTC) of every month."""

    factor: float = Field(gt=0)
    days: int = Field(2, ge=1, le=10)


class Bursts(_Model):
    """Short bursts: at each step one starts with `probability`, lasts 1 step up to `length`
    and multiplies demand by a factor drawn from `height` (min, max)."""

    probability: float = Field(ge=0, le=1)
    height: tuple[float, float] = (1.5, 3.0)
    length: Duration = Field(900.0, gt=0)

    @field_validator("height")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError("height is [min, max] with 0 < min <= max, e.g. [1.5, 3]")
        return value


class Dormant(_Model):
    """From `at` after the history starts, demand drops to `level` x what it would be; with
    `until`, it comes back to its full level that long after the history starts (a team back
    from a shutdown, load moved back to this tenant)."""

    at: Duration = Field(ge=0)
    level: float = Field(0.01, ge=0, le=1)
    until: Duration | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Dormant:
        if self.until is not None and self.until <= self.at:
            raise ValueError("`until` must be later than `at` (both from the history start)")
        return self


class Demand(_Model):
    """True demand of one tenant for one limit, in the limit's unit (samples/s, series...)."""

    base: float = Field(gt=0)  # level at the start of the history (before cycles)
    daily: float = Field(0.0, ge=0, lt=1)  # amplitude of the daily cycle, fraction of level
    peak_hour: float = Field(14.0, ge=0, lt=24)  # UTC hour of the daily peak
    weekly: float = Field(0.0, ge=0, lt=1)  # weekend dip (Saturday, Sunday), fraction
    growth: float = Field(0.0, gt=-1, le=1)  # relative change per day, compounded
    noise: float = Field(0.0, ge=0, le=1)  # standard deviation of relative noise
    noise_window: Duration = Field(1800.0, gt=0)  # noise is correlated over this long
    bursts: Bursts | None = None
    spikes: list[Episode] = Field(default_factory=list)
    month_end: MonthEnd | None = None
    start: Duration = Field(0.0, ge=0)  # the tenant exists from this long after history start
    dormant: Dormant | None = None


class TenantLimit(_Model):
    """The limit in force during the history and the demand behind it.

    `current`: a number in the limit's unit, or `"1.5x"`: that multiple of the tenant's peak
    true demand in the history (rounded up to 2 significant digits, as an operator writes
    it). Absent: Mimir's default from the catalogue (a tenant without an override)."""

    current: float | str | None = None
    demand: Demand

    @field_validator("current")
    @classmethod
    def _current_form(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str):
            if not _RELATIVE.match(value):
                raise ValueError("write a number, or a multiple of the history peak like '1.5x'")
        elif value is not None and value < 0:
            raise ValueError("limits are >= 0")
        return value

    def relative_current(self) -> float | None:
        """The `x` multiple when `current` is relative, else None."""
        if isinstance(self.current, str):
            match = _RELATIVE.match(self.current)
            return float(match.group(1)) if match else None
        return None


class Tenant(_Model):
    """One tenant, or `count` similar tenants (`name-01`, ...) whose base levels spread
    log-normally by `spread` and whose daily peaks shift by about an hour."""

    name: str = Field(min_length=1)
    count: int = Field(1, ge=1, le=MAX_TENANTS)
    spread: float = Field(0.0, ge=0, le=3)
    limits: dict[str, TenantLimit] = Field(min_length=1)


class Scenario(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    seed: int = 0
    # Start of the history window (UTC); weekdays and month ends follow the calendar.
    start: dt.datetime = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
    step: Duration = Field(300.0, gt=0)
    history: Duration = Field(7 * DAY, gt=0)
    evaluation: Duration = Field(7 * DAY, gt=0)
    # Time between recommendation cycles in the evaluation window; each strategy's
    # recommendation becomes the limit in force until the next cycle.
    cycle: Duration = Field(1800.0, gt=0)
    tenants: list[Tenant] = Field(min_length=1)

    @field_validator("start")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value

    @property
    def points(self) -> tuple[int, int]:
        """(history points, evaluation points)."""
        return round(self.history / self.step), round(self.evaluation / self.step)

    def tenant_count(self) -> int:
        return sum(t.count for t in self.tenants)


def parse_scenarios(text: str, file: str, catalogue: Catalogue) -> list[Scenario]:
    """Scenarios of one file's `text`; ConfigError (file, line, key, fix) on any mistake."""
    raw = parse_yaml(text, file)
    findings = Findings(raw.origins)
    data = raw.data
    if "scenarios" in data:
        extra = sorted(set(data) - {"scenarios"})
        if extra:
            findings.error((extra[0],), "unknown key", "a file with `scenarios:` has no other key")
        items = data["scenarios"]
        if not isinstance(items, list) or not items:
            findings.error(("scenarios",), "not a list of scenarios", "write `- name: ...` items")
            items = []
        entries: list[tuple[KeyPath, Any]] = [(("scenarios", i), s) for i, s in enumerate(items)]
    elif data:
        entries = [((), data)]
    else:
        entries = []
        findings.errors.append(
            ConfigError(
                "no scenario in the file",
                file=file,
                fix="write one scenario (`name:`, `tenants:`) or a list under `scenarios:`",
            )
        )
    scenarios: list[Scenario] = []
    for path, item in entries:
        _check_limit_names(item, path, findings, catalogue)
        try:
            scenario = Scenario.model_validate(item, by_name=False)
        except ValidationError as exc:
            for details in exc.errors():
                _record(findings, path, tuple(details["loc"]), details["type"], details["msg"])
            continue
        _check(scenario, path, findings)
        scenarios.append(scenario)
    error = combine(findings.errors)
    if error is not None:
        raise error
    return scenarios


def load_scenarios(paths: Sequence[Path], catalogue: Catalogue) -> list[Scenario]:
    """Scenarios of every file in `paths` (a directory means its *.yaml/*.yml files, sorted).
    Scenario names must be unique across the files."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not found:
                raise ConfigError(
                    "no scenario file (*.yaml) in this directory", file=str(path), fix=_FILE_FIX
                )
            files.extend(found)
        else:
            files.append(path)
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read: {exc.strerror}", file=str(file), fix=_FILE_FIX
            ) from exc
        for scenario in parse_scenarios(text, str(file), catalogue):
            if scenario.name in seen:
                raise ConfigError(
                    f"scenario {scenario.name!r} is also defined in {seen[scenario.name]}",
                    file=str(file),
                    fix="give every scenario its own name",
                )
            seen[scenario.name] = str(file)
            scenarios.append(scenario)
    return scenarios


_FILE_FIX = "pass a scenario file or a directory of them (the repository's: bench/scenarios)"


def _check_limit_names(item: Any, path: KeyPath, findings: Findings, catalogue: Catalogue) -> None:
    """Limit names under `tenants[*].limits`, on the raw data: reported even when other keys
    of the same scenario are wrong."""
    usage_driven = [n for n, s in catalogue.limits.items() if s.signal is SignalKind.USAGE]
    tenants = item.get("tenants") if isinstance(item, dict) else None
    for i, tenant in enumerate(tenants if isinstance(tenants, list) else []):
        limits = tenant.get("limits") if isinstance(tenant, dict) else None
        for limit in limits if isinstance(limits, dict) else {}:
            if limit in usage_driven:
                continue
            close = difflib.get_close_matches(limit, usage_driven, n=1, cutoff=0.6)
            fix = (
                f"did you mean {close[0]!r}?" if close else "use one of " + ", ".join(usage_driven)
            )
            findings.error(
                (*path, "tenants", i, "limits", limit),
                "not a usage-driven limit of the catalogue",
                fix,
            )


def _check(scenario: Scenario, path: KeyPath, findings: Findings) -> None:
    """Rules spanning fields: unique tenant names, sizes within bounds."""
    names: set[str] = set()
    for i, tenant in enumerate(scenario.tenants):
        for name in _names(tenant):
            if name in names:
                findings.error(
                    (*path, "tenants", i, "name"),
                    f"tenant {name!r} appears twice",
                    "give every tenant its own name",
                )
            names.add(name)
    history, evaluation = scenario.points
    if history < 2 or evaluation < 1:
        findings.error(
            (*path, "step"), "history and evaluation must hold at least 2 and 1 steps", None
        )
    if history + evaluation > MAX_POINTS:
        findings.error(
            (*path, "step"),
            f"{history + evaluation} points per tenant (at most {MAX_POINTS})",
            "use a longer step or shorter windows",
        )
    if scenario.evaluation / scenario.cycle > MAX_CYCLES:
        findings.error(
            (*path, "cycle"),
            f"more than {MAX_CYCLES} recommendation cycles",
            "use a longer cycle or a shorter evaluation window",
        )
    if scenario.tenant_count() > MAX_TENANTS:
        findings.error((*path, "tenants"), f"more than {MAX_TENANTS} tenants", None)


def tenant_names(scenario: Scenario) -> list[str]:
    return [name for tenant in scenario.tenants for name in _names(tenant)]


def _names(tenant: Tenant) -> Iterable[str]:
    if tenant.count == 1:
        return [tenant.name]
    width = max(2, len(str(tenant.count)))
    return [f"{tenant.name}-{k:0{width}d}" for k in range(1, tenant.count + 1)]


def _record(findings: Findings, base: KeyPath, loc: KeyPath, kind: str, msg: str) -> None:
    path: KeyPath = (*base, *(p for p in loc if p != "[key]"))
    message = msg.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        findings.error(path, "unknown key", _suggest(loc))
    elif kind == "missing":
        findings.error(path, "required key missing", f"add {path[-1]!r}")
    else:
        findings.error(path, "invalid value", message[:1].lower() + message[1:])


def _suggest(loc: KeyPath) -> str:
    """Close keys of the model at `loc` (walking the scenario models)."""
    model: Any = Scenario
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        info = fields.get(str(part))
        model = _model_of(info.annotation) if info is not None else None
        if model is None and str(part) not in fields:  # a limit name inside `limits`
            model = TenantLimit
    if model is None:
        return "remove it"
    valid = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), valid, n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid keys here: " + ", ".join(valid)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X`, `X | None`, `list[X]` or `dict[str, X]`."""
    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
        stack.extend(getattr(item, "__args__", ()))
    return None
