"""Typed `costControl` settings: cost models and prices, budgets (global, per tenant, per team),
alert thresholds and budget enforcement. docs/cost.md explains the arithmetic; every price is
in `globalBudget.currency`, every budget is a spend per UTC day, calendar month or year."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# An amount of money (the configured currency); never negative.
Money = Annotated[float, Field(ge=0)]
# Limits budget enforcement may cap (one per enforceable cost component).
ENFORCEABLE_LIMITS = ("ingestion_rate", "max_global_series_per_user")
CostMethod = Literal["samples", "series", "queries", "composite"]

DEFAULT_THRESHOLDS = (50.0, 75.0, 90.0, 95.0, 100.0)


def _check_floors(floors: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(floors) - set(ENFORCEABLE_LIMITS))
    if unknown:
        raise ValueError(
            f"floors apply to the limits budget enforcement caps ({', '.join(ENFORCEABLE_LIMITS)}),"
            f" not {', '.join(unknown)}"
        )
    return floors


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class CostPrices(_Section):
    """Price of each cost component, in the budget currency."""

    # Per million samples accepted by the distributors; unset: `costPerUnit`.
    per_million_samples: Money | None = None
    # Per active (in-memory, deduplicated) series held for one hour; 1e-5 is about 7.2 per
    # 1,000 series over a 30-day month.
    per_series_hour: Money = 1.0e-5
    # Per 1,000 queries received by the query-frontend.
    per_thousand_queries: Money = 0.0
    # Per GB (10^9 bytes) of chunks fetched by queries (query stats).
    per_fetched_gb: Money = Field(0.0, alias="perFetchedGB")


class CompositeWeights(_Section):
    """Weights of each model's cost in the composite model (the Go optimizer's 0.4 / 0.4 / 0.2)."""

    samples: float = Field(0.4, ge=0)
    series: float = Field(0.4, ge=0)
    queries: float = Field(0.2, ge=0)


class Budget(_Section):
    """A spend limit per UTC day, calendar month and calendar year (each optional)."""

    enabled: bool = True
    daily: Money | None = None
    monthly: Money | None = None
    annual: Money | None = None
    # The Go optimizer's Helm value `globalBudget.amount`: the monthly budget.
    amount: Money | None = None
    # Unset: inherit (tenant entry > perTenantBudgets > team > globalBudget).
    enforce_budget: bool | None = None

    @model_validator(mode="after")
    def _amount_is_monthly(self) -> Budget:
        if self.amount is not None and self.monthly is not None and self.amount != self.monthly:
            raise ValueError(
                "amount is the Go mimir-limit-optimizer's name of monthly: set only one of them"
            )
        return self

    @property
    def monthly_budget(self) -> float | None:
        return self.monthly if self.monthly is not None else self.amount

    def amounts(self) -> dict[Literal["day", "month", "year"], float | None]:
        """Budget per period kind (day, month, year); None = no budget for that period."""
        if not self.enabled:
            return {"day": None, "month": None, "year": None}
        return {"day": self.daily, "month": self.monthly_budget, "year": self.annual}


class GlobalBudget(Budget):
    currency: str = Field("USD", min_length=1, max_length=12)
    # The default mode of every tenant: True = enforce (with autoLimitReduction, in prod).
    enforce_budget: bool | None = False


class TenantBudget(Budget):
    # Per-tenant floors that beat `costControl.floors` (never capped below them).
    floors: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)

    @field_validator("floors")
    @classmethod
    def _known_floors(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_floors(value)


class CostControlSettings(_Section):
    """The Go optimizer's `costControl` section."""

    # The service tracks costs, alerts on budgets and (optionally) enforces them.
    enabled: bool = False
    cost_method: CostMethod = "samples"
    # The Go optimizer's single price: per million samples (default of prices.perMillionSamples).
    cost_per_unit: Money = 0.001
    prices: CostPrices = Field(default_factory=CostPrices)
    composite_weights: CompositeWeights = Field(default_factory=CompositeWeights)
    global_budget: GlobalBudget = Field(default_factory=GlobalBudget)
    # Tenant glob -> its own budget and mode (the Go optimizer's hybrid mode).
    tenant_budgets: dict[str, TenantBudget] = Field(default_factory=dict)
    # The budget and mode of every tenant without a `tenantBudgets` entry.
    per_tenant_budgets: TenantBudget = Field(default_factory=TenantBudget)
    # Tenant glob -> team name (most specific glob wins, as tenantTierMapping).
    teams: dict[str, str] = Field(default_factory=dict)
    # Team name -> budget.
    team_budgets: dict[str, Budget] = Field(default_factory=dict)
    # Percent of a budget at which an alert fires (once per period each).
    alert_thresholds: list[Annotated[float, Field(gt=0, le=1000)]] = Field(
        default_factory=lambda: list(DEFAULT_THRESHOLDS)
    )
    # Lower tenants' limits when a budget they are under is forecast to be exceeded (only in
    # prod mode, and only tenants in enforce mode).
    auto_limit_reduction: bool = False
    # Send budget alerts (costs and thresholds are computed either way).
    budget_alerts: bool = True
    # Compute cost recommendations (headroom, savings, budget crossings).
    cost_optimization: bool = True
    # Budget enforcement never caps a limit below this (nor below the limit's minimum).
    floors: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"ingestion_rate": 1000.0, "max_global_series_per_user": 10000.0}
    )
    # Complete days the month-end forecast fits its trend on.
    forecast_days: int = Field(14, ge=3, le=60)

    @field_validator("floors")
    @classmethod
    def _known_floors(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_floors(value)

    @field_validator("alert_thresholds")
    @classmethod
    def _sorted_unique(cls, value: list[float]) -> list[float]:
        return sorted(set(value))

    @field_validator("team_budgets")
    @classmethod
    def _known_teams(cls, value: dict[str, Budget], info: ValidationInfo) -> dict[str, Budget]:
        named = set(info.data.get("teams", {}).values())
        unknown = sorted(set(value) - named)
        if unknown:
            raise ValueError(
                f"names team(s) {unknown} that no `costControl.teams` glob maps a tenant to; "
                "add `teams: {'<tenant glob>': <team>}`"
            )
        return value

    @property
    def samples_price(self) -> float:
        """Price per million samples: prices.perMillionSamples, else costPerUnit."""
        price = self.prices.per_million_samples
        return self.cost_per_unit if price is None else price
