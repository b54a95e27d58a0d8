"""The engine sums ratios in float32 (the hour variability's relative deviations, the demand
pass's sums for the discard share): within 1e-5 relative of the same definitions in float64,
at the magnitudes Mimir tenants reach (samples/s to 1e8, bytes and series to 1e12) and
windows of a week at 5 minutes and at 1 minute. tests/test_engine_reference.py compares the
fast passes with a reference of the same float32 definitions; this bounds the definitions
themselves against float64."""

from __future__ import annotations

import numpy as np
import pytest

from mimir_limit_optimizer.catalogue import load_catalogue
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine import hourly
from mimir_limit_optimizer.engine.recommend import recommend
from mimir_limit_optimizer.engine.usage import Observation

NOW = 1_800_000_000.0
TOLERANCE = 1e-5


def _demand(n: int, t: int, scale: float, seed: int) -> np.ndarray:
    """(n, t) float32 demand: levels over 3 decades below `scale`, a daily cycle, 1-60% noise."""
    rng = np.random.default_rng(seed)
    level = scale * 10 ** rng.uniform(-3, 0, size=(n, 1))
    cycle = 1 + 0.4 * np.sin(np.arange(t) / t * 7 * 2 * np.pi)[None, :]
    noise = 1 + rng.uniform(0.01, 0.6, size=(n, 1)) * rng.standard_normal((n, t))
    return np.abs(level * cycle * noise).astype(np.float32)


@pytest.mark.parametrize(("points", "per_hour"), [(2016, 12), (10080, 60)])
@pytest.mark.parametrize("scale", [1e3, 1e8, 1e12])
def test_the_variability_in_float32_is_the_float64_definition(
    points: int, per_hour: int, scale: float
) -> None:
    values = _demand(64, points, scale, seed=points)
    got = hourly.means_and_variability(values, per_hour).variability
    blocks = values.astype(np.float64).reshape(64, points // per_hour, per_hour)
    deviation = np.minimum(np.abs(blocks / blocks.mean(axis=2, keepdims=True) - 1), 1)
    want = hourly.MAD_TO_SIGMA * deviation.reshape(64, points).mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=TOLERANCE)
    assert np.all(want > 0.005)  # the comparison is of real variabilities, not of zeros


@pytest.mark.parametrize("points", [2016, 10080])
@pytest.mark.parametrize("scale", [1e3, 1e8, 1e12])
def test_the_discard_share_in_float32_is_the_float64_definition(points: int, scale: float) -> None:
    n = 32
    step = 7 * 86400 / points
    usage = _demand(n, points, scale, seed=1)
    rng = np.random.default_rng(2)
    # Discards in the last part of the window, 0.1% to 50% of what was accepted.
    discards = np.zeros_like(usage)
    tail = points // 3
    discards[:, -tail:] = usage[:, -tail:] * rng.uniform(0.001, 0.5, size=(n, 1)).astype(np.float32)
    name = "ingestion_rate"
    obs = Observation(
        tenants=tuple(f"tenant-{i}" for i in range(n)),
        timestamps=NOW - step * np.arange(points)[::-1],
        step=step,
        usage={name: usage},
        discards={name: discards},
        current={name: np.full(n, float(scale))},
    )
    result = recommend(obs, Config(), load_catalogue(), now=NOW, limits=[name]).results[name]
    # Discards above the accepted rate are bounded to it for rate_limited (not reached here).
    total_d = discards.astype(np.float64).sum(axis=1)
    want = total_d / (usage.astype(np.float64).sum(axis=1) + total_d)
    np.testing.assert_allclose(result.discard_share, want, rtol=TOLERANCE)
    assert np.all(want > 1e-4)
