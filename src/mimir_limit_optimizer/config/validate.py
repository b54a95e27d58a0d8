"""Model validation with errors mapped back to lines, and the checks that span fields."""

from __future__ import annotations

import difflib
import re
import types
import typing
import urllib.parse
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mimir_limit_optimizer.config.errors import Findings, KeyPath
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.config.secrets import looks_secret

_RANGE_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "multiple_of",
        "finite_number",
        "too_short",
        "too_long",
        "string_too_short",
        "string_too_long",
    }
)
_CHOICE_ERRORS = frozenset({"enum", "literal_error"})
_VALUE_ERRORS = frozenset({"value_error", "assertion_error"})


def validate_config(data: dict[str, Any], findings: Findings) -> Config | None:
    """The Config, or None after recording every validation error with its line."""
    try:
        # by_name=False: files, variables and flags use the camelCase keys only, so that
        # `buffer_percentage` next to `bufferPercentage` cannot silently pick one.
        return Config.model_validate(data, by_name=False)
    except ValidationError as exc:
        for error in exc.errors():
            _record(error, findings)
        return None


def drop_empty_sections(data: dict[str, Any], model: type[BaseModel] = Config) -> None:
    """A section left empty in YAML (`dynamicLimits:` with every key commented out) is null;
    read it as "use the defaults" instead of rejecting it. Only for sections, lists and maps:
    an empty scalar (`bufferPercentage:`) is still an error."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in data or info.is_required():
            continue
        target = _unwrap(info.annotation)
        if data[key] is None and not _accepts_none(info.annotation):
            if _is_model(target) or typing.get_origin(target) in (dict, list):
                del data[key]
        elif isinstance(data[key], dict) and _is_model(target):
            drop_empty_sections(data[key], target)


def check_config(config: Config, findings: Findings) -> None:
    """Rules that span fields. Reported with the line of the offending value."""
    _check_tiers(config, findings)
    _check_patterns(config, findings)
    _check_bounds(config, findings)
    _check_credentials(config, findings)
    _check_urls(config, findings)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an HTTP endpoint (scheme, host, port), or None when it can."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port  # ValueError when not a number or outside 0-65535
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        shown = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"{shown}: only http:// and https:// are supported"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0 is not a port a server listens on"
    return None


def _check_urls(config: Config, findings: Findings) -> None:
    """Endpoints the service calls: a bad one would fail every cycle after start-up."""
    urls: list[tuple[KeyPath, str]] = [
        (("source", "prometheus", "url"), config.source.prometheus.url)
    ]
    if config.verify.mimir_url:
        urls.append((("verify", "mimirUrl"), config.verify.mimir_url))
    for path, url in urls:
        problem = url_problem(url)
        if problem is not None:
            findings.error(
                path,
                f"invalid URL: {problem}",
                "use http://host:port or https://host:port (port 1-65535), "
                "e.g. http://prometheus:9090",
            )


def _record(error: ErrorDetails, findings: Findings) -> None:
    loc: KeyPath = tuple(p for p in error["loc"] if p != "[key]")
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:] if message else message
    if kind == "extra_forbidden":
        findings.error(loc, "unknown key", _key_suggestion(loc))
        return
    if kind == "missing":
        findings.error(loc, "required key missing", f"add {loc[-1]!r}")
        return
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        shown = _shown_input(loc, error.get("input"))
        fix = "this is a section: write its keys indented below it"
        findings.error(loc, f"wrong type{shown}", fix)
        return
    if kind in _RANGE_ERRORS:
        problem = "out of range"
    elif kind in _CHOICE_ERRORS:
        problem = "not one of the allowed values"
    elif kind in _VALUE_ERRORS:
        problem = "invalid value"
    else:
        problem = "wrong type"
    shown = _shown_input(loc, error.get("input"))
    findings.error(loc, f"{problem}{shown}", message)


def _shown_input(loc: KeyPath, value: object) -> str:
    """` (got 150)`; nothing for secrets or for whole mappings and lists."""
    if any(looks_secret(part) for part in loc) or isinstance(value, dict | list):
        return ""
    text = repr(value)
    return f" (got {text})" if len(text) <= 60 else ""


def _key_suggestion(loc: KeyPath) -> str:
    """`did you mean 'percentile'?` from the keys valid where the unknown key was found."""
    key = str(loc[-1])
    valid = _keys_at(loc[:-1])
    if not valid:
        return "remove it"
    by_name = {name: alias for name, alias in valid.items() if name != alias}
    if key in by_name:
        return f"keys are camelCase: write {by_name[key]!r}"
    close = difflib.get_close_matches(key, list(valid.values()), n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid keys here: " + ", ".join(valid.values())


def _keys_at(path: KeyPath) -> dict[str, str]:
    """Field name -> alias of the model found at `path` inside Config ({} if not a model)."""
    target: Any = Config
    parts = list(path)
    while parts:
        target = _unwrap(target)
        if _is_model(target):
            part = parts.pop(0)
            fields = {info.alias or name: info for name, info in target.model_fields.items()}
            if part not in fields:
                return {}
            target = fields[part].annotation
        elif typing.get_origin(target) in (dict, list):
            parts.pop(0)
            target = typing.get_args(target)[-1]
        else:
            return {}
    target = _unwrap(target)
    if not _is_model(target):
        return {}
    return {name: info.alias or name for name, info in target.model_fields.items()}


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _accepts_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _accepts_none(typing.get_args(annotation)[0])
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _is_model(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, BaseModel)


def _check_tiers(config: Config, findings: Findings) -> None:
    tiers = config.limits.tenant_tiers
    for pattern, tier in config.tenant_tier_mapping.items():
        if tier in tiers:
            continue
        fix = (
            "use one of " + ", ".join(repr(t) for t in tiers)
            if tiers
            else "define the tier under limits.tenantTiers"
        )
        findings.error(("tenantTierMapping", pattern), f"unknown tier {tier!r}", fix)


def _check_patterns(config: Config, findings: Findings) -> None:
    """With useRegex, skipList/includeList items are regular expressions (full match); they
    must compile. (tenantTierMapping keys are always globs.)"""
    scoping = config.tenant_scoping
    if not scoping.use_regex:
        return
    patterns: list[tuple[KeyPath, str]] = [
        *((("tenantScoping", "skipList", i), p) for i, p in enumerate(scoping.skip_list)),
        *((("tenantScoping", "includeList", i), p) for i, p in enumerate(scoping.include_list)),
    ]
    for path, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            findings.error(
                path,
                f"invalid regular expression {pattern!r}: {exc}",
                "fix the expression, or set tenantScoping.useRegex: false to use shell "
                "globs such as 'internal-*'",
            )


def _check_bounds(config: Config, findings: Findings) -> None:
    low, high = config.limits.min_limits, config.limits.max_limits
    for name in low.keys() & high.keys():
        if low[name] > high[name]:
            line = findings.origins.line_of(("limits", "maxLimits", name))
            findings.error(
                ("limits", "minLimits", name),
                f"minimum {low[name]:g} is above the maximum {high[name]:g}"
                + (f" (line {line})" if line else ""),
                "lower the minimum or raise the maximum",
                (line,) if line else (),
            )
    for name, override in config.dynamic_limits.limit_overrides.items():
        if (
            override.min_value is not None
            and override.max_value is not None
            and override.min_value > override.max_value
        ):
            findings.error(
                ("dynamicLimits", "limitOverrides", name, "minValue"),
                f"minValue {override.min_value:g} is above maxValue {override.max_value:g}",
                "lower minValue or raise maxValue",
            )
    histogram = config.trend_analysis.histogram
    if not (
        histogram.lower_percentile <= histogram.target_percentile <= histogram.upper_percentile
    ):
        findings.error(
            ("trendAnalysis", "histogram", "targetPercentile"),
            "percentiles out of order",
            "use lowerPercentile <= targetPercentile <= upperPercentile",
        )


def _check_credentials(config: Config, findings: Findings) -> None:
    """One way to give each credential: two would leave the reader guessing which wins."""
    prometheus = config.source.prometheus
    path: KeyPath = ("source", "prometheus")
    given = [
        key
        for key, value in (
            ("bearerToken", prometheus.bearer_token),
            ("bearerTokenFile", prometheus.bearer_token_file),
            ("bearerTokenEnv", prometheus.bearer_token_env),
            ("basicAuth", prometheus.basic_auth),
        )
        if value is not None
    ]
    if len(given) > 1:
        findings.error(
            (*path, given[1]),
            "more than one credential: " + ", ".join(given),
            "keep exactly one of them",
        )
    auth = prometheus.basic_auth
    if auth is not None:
        sources = [
            key
            for key, value in (
                ("password", auth.password),
                ("passwordFile", auth.password_file),
                ("passwordEnv", auth.password_env),
            )
            if value is not None
        ]
        if len(sources) > 1:
            findings.error(
                (*path, "basicAuth", sources[1]),
                "more than one password source: " + ", ".join(sources),
                "keep exactly one of them",
            )
