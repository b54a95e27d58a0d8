"""Backtest jobs of the UI's Test tools: one at a time on a daemon thread, with progress,
the last few results kept in memory (nothing is written)."""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimir_limit_optimizer.catalogue import Catalogue
from mimir_limit_optimizer.config.errors import ConfigError
from mimir_limit_optimizer.config.models import Config
from mimir_limit_optimizer.web.ui.model import UiError

SUITE_DIR = Path("bench") / "scenarios"
KEEP = 5  # finished jobs kept


def scenario_folder() -> Path | None:
    """bench/scenarios under the working directory, else under the source checkout."""
    checkout = Path(__file__).resolve().parents[3] / SUITE_DIR
    for candidate in (Path.cwd() / SUITE_DIR, checkout):
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class Job:
    id: str
    name: str
    done: int = 0
    total: int = 0
    step: str = "starting"
    finished: bool = False
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


class BacktestJobs:
    def __init__(self, config: Callable[[], Config], catalogue: Catalogue) -> None:
        self.config = config
        self.catalogue = catalogue
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, name: str, text: str) -> str:
        # Imported here: the service starts without the backtest (and matplotlib) loaded.
        from mimir_limit_optimizer.backtest.scenario import parse_scenarios

        try:
            scenarios = parse_scenarios(text, name, self.catalogue)
        except ConfigError as exc:
            raise UiError(f"the scenario file has problems: {exc}", status=422) from exc
        with self._lock:
            if any(not j.finished for j in self._jobs.values()):
                raise UiError("a backtest is running: wait for it to finish", status=409)
            job = Job(secrets.token_hex(8), name)
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
        threading.Thread(
            target=self._run, args=(job, scenarios), name="ui-backtest", daemon=True
        ).start()
        return job.id

    def _run(self, job: Job, scenarios: list[Any]) -> None:
        from mimir_limit_optimizer.backtest.generate import build_case
        from mimir_limit_optimizer.backtest.plot import plot_png
        from mimir_limit_optimizer.backtest.strategies import default_strategies
        from mimir_limit_optimizer.backtest.suite import run_suite, score_fields

        def progress(done: int, total: int, label: str) -> None:
            job.done, job.total, job.step = done, total, label

        try:
            cases = [build_case(s, self.catalogue) for s in scenarios]
            strategies = default_strategies(self.config(), self.catalogue)
            result = run_suite(cases, strategies, progress=progress)
            png = plot_png(result)
            job.result = {
                "totals": [score_fields(s) for s in result.totals],
                "dominance": result.dominance(),
                "plot": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            }
        except Exception as exc:  # a job's failure is shown on its page, never raised
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = True

    def status(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UiError(f"no backtest job {job_id!r} (only the last {KEEP} are kept)", status=404)
        return {
            "id": job.id, "name": job.name, "done": job.done, "total": job.total,
            "step": job.step, "finished": job.finished, "error": job.error,
            "result": job.result,
        }  # fmt: skip
