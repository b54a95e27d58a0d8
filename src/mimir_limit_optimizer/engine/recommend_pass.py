"""The state one recommendation pass shares between its limits (engine/recommend.py): the
in-scope tenant rows, the analysis window, the tiers and the reusable float32 buffers."""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.engine.policy import tenant_tiers
from mimir_limit_optimizer.engine.results import LimitResult
from mimir_limit_optimizer.engine.tenants import TenantMatcher
from mimir_limit_optimizer.engine.usage import AnyFloatArray, FloatArray, Observation


class Pass:
    """State shared by the limits of one pass (tenant rows, window, tiers)."""

    def __init__(self, obs: Observation, config: Config, now: float) -> None:
        self.obs = obs
        self.config = config
        self.now = now
        scoping = config.tenant_scoping
        if scoping.include_list or scoping.skip_list:
            matcher = TenantMatcher(
                scoping.include_list, scoping.skip_list, use_regex=scoping.use_regex
            )
            self.rows = np.asarray(matcher.select(obs.tenants), dtype=bool)
        else:  # no pattern: every tenant (no pattern match per tenant, 0.3 s at 100,000)
            self.rows = np.ones(len(obs.tenants), dtype=bool)
        self.all_rows = bool(self.rows.all())
        self.tenants = (
            tuple(obs.tenants)
            if self.all_rows
            else tuple(t for t, keep in zip(obs.tenants, self.rows, strict=True) if keep)
        )
        ts = obs.timestamps
        start = now - config.trend_analysis.analysis_window
        lo = int(np.searchsorted(ts, start, side="right"))
        hi = int(np.searchsorted(ts, now, side="right"))
        self.window = slice(lo, hi)
        self.timestamps = ts[self.window]
        self.tiers = tenant_tiers(config, self.tenants)
        self.n = len(self.tenants)
        self._buffers: dict[str, npt.NDArray[np.float32]] = {}

    def buffer(self, name: str, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
        """A float32 (N, T) array the limits take turns in (`demand`: accepted + discarded
        when the discards are not the engine's own): a new one per limit costs its page
        faults each time, as much as a third of a sort. Handed out again only when nothing
        else holds it or a view of it (a view holds a reference to its base), so a result
        that kept one would get a new array, never a reused one."""
        held = self._buffers.get(name)
        # Besides `held`, only the dict's own reference: nothing else holds it.
        if held is None or held.shape != shape or extra_references(held) > 1:
            held = np.empty(shape, dtype=np.float32)
            self._buffers[name] = held
        return held

    def take(self, array: FloatArray) -> FloatArray:
        """In-scope rows of a (N,) array."""
        return array if self.all_rows else array[self.rows]

    def take_window(self, array: AnyFloatArray) -> AnyFloatArray:
        """In-scope rows and the analysis window of a (N, T) array (a view when every
        tenant is in scope)."""
        rows = array if self.all_rows else array[self.rows]
        return rows[:, self.window]


def extra_references(value: object) -> int:
    """References to `value` besides the caller's own name for it: 0 when nothing else holds
    it. Counted against a fresh local, so it does not depend on how the interpreter counts
    its operand stack (CPython 3.14 borrows references there, and `sys.getrefcount` reports
    one less than 3.11-3.13 for the same code)."""
    probe = object()
    return sys.getrefcount(value) - sys.getrefcount(probe) - 1


def undefined(result: LimitResult, mask: npt.NDArray[np.bool_], reason: str) -> None:
    for i in np.flatnonzero(mask):
        if result.undefined_reason[i] is None:
            result.undefined_reason[i] = reason
