"""Cost control, pure: cost models, the per-day ledger, budgets and their alert thresholds,
the forecast, budget enforcement caps and cost recommendations (docs/cost.md)."""

from mimir_limit_optimizer.engine.cost.advice import CostRecommendation
from mimir_limit_optimizer.engine.cost.enforce import (
    Cap,
    CapDecision,
    CapOutcome,
    StickyScope,
    apply_caps,
)
from mimir_limit_optimizer.engine.cost.ledger import Ledger
from mimir_limit_optimizer.engine.cost.model import PriceModel
from mimir_limit_optimizer.engine.cost.periods import PERIODS, PeriodKind
from mimir_limit_optimizer.engine.cost.report import (
    CostReport,
    build_report,
    plan_caps,
    recommendations,
)
from mimir_limit_optimizer.engine.cost.thresholds import (
    BudgetCheck,
    ThresholdEvent,
    evaluate_thresholds,
)
from mimir_limit_optimizer.engine.cost.usage import (
    SIGNALS,
    CostUsage,
    integrate_daily,
    usage_from_observation,
)

__all__ = [
    "PERIODS",
    "SIGNALS",
    "BudgetCheck",
    "Cap",
    "CapDecision",
    "CapOutcome",
    "CostRecommendation",
    "CostReport",
    "CostUsage",
    "Ledger",
    "PeriodKind",
    "PriceModel",
    "StickyScope",
    "ThresholdEvent",
    "apply_caps",
    "build_report",
    "evaluate_thresholds",
    "integrate_daily",
    "plan_caps",
    "recommendations",
    "usage_from_observation",
]
