"""The read-model facade the UI (pages and /api/v1) reads through, and the actions it may ask
for. The controller implements both (controller/read_model.py); nothing in web/ui reaches into
loops, stores or sources. Every value here is plain data, already free of secrets.

The facade is deliberately narrow (one method per question a page asks) so that it can be
re-pointed at a richer plan read model without touching a template.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

TenantStatus = Literal[
    "throttled", "near limit", "over-provisioned", "undefined", "breaker open", "ok"
]
TENANT_STATUSES: tuple[TenantStatus, ...] = (
    "throttled",
    "near limit",
    "over-provisioned",
    "undefined",
    "breaker open",
    "ok",
)
TENANT_SORTS = ("tenant", "utilisation", "changes", "cost", "status")


class UiError(Exception):
    """Bad input or an unknown object: shown inline with a 4xx (`status`), never a 500."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Health:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CyclePoint:
    at: float
    ok: bool
    duration: float  # seconds
    detail: str
    total_demand: float  # sum over tenants of usage-driven demand of the ingestion rate
    total_limit: float  # sum of the ingestion rate limits in force
    throttled: float  # tenants with discards
    planned: int = 0
    held_back: int = 0


@dataclass(frozen=True)
class Overview:
    mode: str
    frozen: bool
    frozen_by: str | None
    tenants: int
    limits_managed: int
    applied_24h: int
    pending_24h: int
    held_back_24h: int
    throttled_now: int
    open_breakers: int
    protection_enabled: bool
    emergency_level: str
    last_cycle: CyclePoint | None
    health: tuple[Health, ...]
    cycles: tuple[CyclePoint, ...]  # oldest first, for the charts
    target: str


@dataclass(frozen=True)
class TenantRow:
    tenant: str
    status: TenantStatus
    utilisation: float | None  # highest usage p95 / limit over usage-driven limits (0..)
    utilisation_limit: str | None  # which limit that is
    changes: int
    cost: float | None  # per month, in cost units
    currency: str = ""


@dataclass(frozen=True)
class TenantQuery:
    pattern: str = "*"
    status: TenantStatus | None = None
    sort: str = "tenant"
    descending: bool = False
    page: int = 1
    per_page: int = 50


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class LimitView:
    limit: str
    unit: str
    usage_driven: bool
    current: str  # rendered in the limit's unit
    current_value: float | None
    origin: str  # "override in <target>", "default", "tier", ...
    target: str  # where the limit is heading (recommended value before the step cap)
    next_step: str  # what the next cycle would write
    next_value: float | None
    status: str
    reasons: tuple[str, ...]
    confidence: float | None
    held: str | None = None  # why the next step is held back, if it is


@dataclass(frozen=True)
class TenantDetail:
    tenant: str
    status: TenantStatus
    limits: tuple[LimitView, ...]
    breakers: tuple[dict[str, Any], ...]
    clamps: tuple[dict[str, Any], ...]
    cost: dict[str, Any] | None
    events: tuple[AuditRow, ...]
    generated_at: float | None


@dataclass(frozen=True)
class Series:
    """Aligned arrays for a chart: `x` in unix seconds, each series the same length (None for
    a missing point)."""

    x: tuple[float, ...]
    series: dict[str, tuple[float | None, ...]]
    unit: str = ""
    marks: dict[str, float] = field(default_factory=dict)  # horizontal lines (recommendation)


@dataclass(frozen=True)
class AuditQuery:
    tenant: str | None = None
    action: str | None = None
    category: str | None = None
    component: str | None = None
    since: float | None = None
    until: float | None = None
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class AuditRow:
    id: int | None
    timestamp: float
    level: str
    category: str
    component: str
    action: str
    tenant: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class RevisionView:
    id: int
    created_at: float
    kind: str
    actor: str
    sha256: str
    changes: int
    note: str


@dataclass(frozen=True)
class DiffLine:
    left_no: int | None
    left: str
    right_no: int | None
    right: str
    kind: Literal["same", "changed", "added", "removed"]


@dataclass(frozen=True)
class Impact:
    tenant: str
    limit: str
    before: float | None
    after: float | None


@dataclass(frozen=True)
class RevisionDiff:
    left_title: str
    right_title: str
    lines: tuple[DiffLine, ...]  # the changes with a few lines of context
    impact: tuple[Impact, ...]
    hidden: int = 0  # changed lines beyond what is shown
    # Current content vs the pending plan comes in pages of changed tenants:
    page: int = 1
    pages: int = 1
    tenants: int | None = None  # tenants that differ (None: count them from `impact`)
    page_impact: tuple[Impact, ...] | None = None  # the impact of this page's tenants

    @property
    def ups(self) -> int:
        return sum(1 for i in self.impact if (i.after or 0) > (i.before or 0))

    @property
    def downs(self) -> int:
        return sum(1 for i in self.impact if (i.after or 0) < (i.before or 0))


@dataclass(frozen=True)
class ConfigEntry:
    key: str  # dotted camelCase path
    value: str  # rendered, secrets already ***
    origin: str  # default, file, environment, flag


@dataclass(frozen=True)
class ConfigView:
    path: str | None
    yaml: str  # the file as on disk, or the redacted effective config when there is no file
    entries: tuple[ConfigEntry, ...]
    writable: bool
    limits: tuple[dict[str, Any], ...]  # catalogue rows for the limitOverrides table


@dataclass(frozen=True)
class LimitCell:
    name: str  # the form field (see controller/ui_limit_table.py)
    label: str  # what the cell is, for its accessible name
    value: str  # as the file has it; "" when the file does not set it
    hint: str  # what applies when it is empty


@dataclass(frozen=True)
class LimitTableRow:
    limit: str
    unit: str
    signal: str
    mimir_default: str
    managed: bool  # in dynamicLimits.enabledLimits
    cells: tuple[LimitCell, ...]  # limitOverrides fields, then each tier's cap
    enabled: str  # limitOverrides.<limit>.enabled: "", "true" or "false"


@dataclass(frozen=True)
class LimitTable:
    """The catalogue as a table editor of `dynamicLimits.limitOverrides` and tier caps."""

    path: str | None
    base: str  # fingerprint of the file the table was made from
    writable: bool
    tiers: tuple[str, ...]
    tier_buffers: tuple[LimitCell, ...]
    rows: tuple[LimitTableRow, ...]


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str


@dataclass(frozen=True)
class LimitEditPreview:
    """The table's edits as a YAML diff of the config file, and what is wrong with them."""

    changes: tuple[str, ...]  # "dynamicLimits.limitOverrides.x.defaultValue: 1 -> 2"
    errors: dict[str, str]  # form field -> what is wrong with the cell
    problems: tuple[Problem, ...]  # the loader's findings on the edited file
    lines: tuple[DiffLine, ...]  # side by side, secrets masked
    text: str  # the edited file, secrets masked (for a download)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.problems


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str


class ReadModel(Protocol):
    """What pages and the JSON API read."""

    def overview(self) -> Overview: ...

    def tenants(self, query: TenantQuery) -> Page[TenantRow]: ...

    def tenant(self, name: str) -> TenantDetail: ...  # UiError(404) when unknown

    def tenant_series(self, name: str, limit: str, seconds: float) -> Series: ...

    def audit(self, query: AuditQuery) -> Page[AuditRow]: ...

    def audit_stream(self, query: AuditQuery) -> Iterator[AuditRow]: ...  # every match

    def audit_facets(self) -> dict[str, tuple[str, ...]]: ...

    def revisions(self) -> tuple[RevisionView, ...]: ...

    # None: the current content (left) or the pending plan (right); `page` pages the tenants
    # of current vs pending.
    def diff(self, left: int | None, right: int | None, page: int = 1) -> RevisionDiff: ...

    def config(self) -> ConfigView: ...

    def validate_config(self, text: str) -> tuple[Problem, ...]: ...

    def limit_table(self) -> LimitTable: ...

    def preview_limit_edits(self, edits: dict[str, str], base: str) -> LimitEditPreview: ...

    def validate_overrides(self, text: str) -> tuple[Problem, ...]: ...

    def metrics(self, seconds: float) -> dict[str, Series]: ...

    def query(self, promql: str, seconds: float) -> Series: ...  # UiError on a bad query

    def cycle_version(self) -> int: ...  # changes whenever a cycle finishes


class Actions(Protocol):
    """What the UI may change; every call is audited with `actor` by the implementation."""

    def set_breaker(self, enabled: bool, *, actor: str) -> ActionResult: ...

    def set_freeze(self, frozen: bool, *, actor: str) -> ActionResult: ...

    def run_cycle(self, *, actor: str) -> ActionResult: ...

    def rollback(self, revision: int, *, actor: str) -> ActionResult: ...

    def save_config(self, text: str, *, actor: str) -> ActionResult: ...

    def save_limit_edits(self, edits: dict[str, str], base: str, *, actor: str) -> ActionResult: ...


class Tools(Protocol):
    """Test tools: nothing here writes anywhere."""

    def scenarios(self) -> Sequence[str]: ...

    def backtest(self, scenario: str | None, text: str | None) -> dict[str, Any]: ...  # {job}

    def backtest_status(self, job: str) -> dict[str, Any]: ...

    def synthetic_preview(self, tenants: int) -> dict[str, Any]: ...

    def what_if(
        self, tenant: str, buffer: float | None, strategy: str | None
    ) -> dict[str, Any]: ...
