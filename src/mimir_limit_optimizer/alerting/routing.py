"""Which channels an alert goes to, and after which escalation delay.

Rules (alerting.routing) are tried in order: the first matching rule routes, and a rule
with `continue: true` lets the following rules add their channels too. An alert no rule
matches goes where its priority says (the Go optimizer's table unless alerting.priorities changes
it): P0 all channels at once, P1 PagerDuty + Slack after 5m, P2 Slack + email after 15m,
P3 email + webhooks after 1h.

Names: `all`, `webhooks` (every webhook), `webhook:<name>` or a webhook's bare name, and
slack, pagerduty, email, alertmanager. A channel named by a rule but not configured is
reported (channel_not_found); one named by the priority defaults is simply skipped.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from mimir_limit_optimizer.alerting.model import Alert
from mimir_limit_optimizer.config.alerting import AlertingSettings, RouteMatch, RoutingRule


@dataclass(frozen=True)
class Route:
    channel: str
    delay: float  # seconds of escalation delay before the first delivery attempt


@dataclass(frozen=True)
class Routing:
    routes: tuple[Route, ...]
    missing: tuple[str, ...]  # channels a rule named that are not configured


def _globs(patterns: Sequence[str], value: str | None) -> bool:
    if not patterns:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def matches(match: RouteMatch, alert: Alert) -> bool:
    return (
        (not match.severity or alert.severity.value in match.severity)
        and (not match.priority or alert.priority.value in match.priority)
        and _globs(match.component, alert.component)
        and _globs(match.tenant, alert.tenant)
        and _globs(match.type, alert.type)
    )


class Router:
    def __init__(self, settings: AlertingSettings, channels: Sequence[str]) -> None:
        """`channels`: the names of the configured, enabled channels."""
        self._settings = settings
        self._channels = tuple(channels)

    def _expand(self, name: str) -> tuple[list[str], list[str]]:
        """(configured channels `name` stands for, names not configured)."""
        if name == "all":
            return list(self._channels), []
        if name in ("webhooks", "webhook"):
            return [c for c in self._channels if c.startswith("webhook:")], []
        for candidate in (name, f"webhook:{name}"):
            if candidate in self._channels:
                return [candidate], []
        return [], [name]

    def route(self, alert: Alert) -> Routing:
        chosen: dict[str, float] = {}
        missing: list[str] = []
        matched: list[RoutingRule] = []
        for rule in self._settings.routing:
            if matches(rule.match, alert):
                matched.append(rule)
                if not rule.continue_:
                    break
        default_channels, default_delay = self._settings.priorities.policy(alert.priority.value)
        if matched:
            for rule in matched:
                delay = default_delay if rule.escalation is None else rule.escalation
                for name in rule.channels:
                    found, absent = self._expand(name)
                    missing.extend(absent)
                    for channel in found:
                        chosen[channel] = min(delay, chosen.get(channel, delay))
        else:
            for name in default_channels:
                for channel in self._expand(name)[0]:
                    chosen.setdefault(channel, default_delay)
        routes = tuple(Route(c, d) for c, d in chosen.items())
        return Routing(routes, tuple(dict.fromkeys(missing)))
