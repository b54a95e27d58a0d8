"""PNG plots of throttling vs headroom per strategy, and of the sweep's trade-off curves
(matplotlib's Agg canvas, no pyplot: no display, no global state)."""

from __future__ import annotations

import io

from mimir_limit_optimizer.backtest.suite import SuiteResult
from mimir_limit_optimizer.backtest.sweep import SweepResult


def plot_png(result: SuiteResult) -> bytes:
    """Left: suite totals, one point per strategy (lower left is better). Right: the same per
    scenario, one point per strategy x scenario."""
    # Imported here: matplotlib costs ~0.25 s at import, and every `mlo` command loads this
    # module; only --plot needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), dpi=100)
    FigureCanvasAgg(figure)
    totals, per_case = figure.subplots(1, 2)
    colours = {name: f"C{i}" for i, (name, _) in enumerate(result.strategies)}
    for score in result.totals:
        if score.headroom_median is None:
            continue
        totals.scatter(
            score.headroom_median,
            score.throttled_minutes,
            s=80,
            color=colours[score.strategy],
            label=score.strategy,
        )
        totals.annotate(
            score.strategy,
            (score.headroom_median, score.throttled_minutes),
            textcoords="offset points",
            xytext=(6, 6),
        )
    totals.set_title("Suite totals (lower left is better)")
    totals.set_xlabel("median headroom (limit / p99 of true demand)")
    totals.set_ylabel("throttled minutes (tenant x limit)")
    totals.set_yscale("symlog", linthresh=10.0)
    totals.set_ylim(bottom=0)
    totals.grid(alpha=0.3)
    for name, _ in result.strategies:
        points = [
            (s.headroom_median, s.throttled_minutes)
            for s in result.scores
            if s.strategy == name and s.headroom_median is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            per_case.scatter(xs, ys, s=25, alpha=0.7, color=colours[name], label=name)
    per_case.set_title("Per scenario")
    per_case.set_xlabel("median headroom")
    per_case.set_ylabel("throttled minutes")
    per_case.set_xscale("log")
    per_case.set_yscale("symlog", linthresh=10.0)
    per_case.set_ylim(bottom=0)
    per_case.grid(alpha=0.3)
    per_case.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_sweep_png(result: SweepResult) -> bytes:
    """Left: throttled minutes against median headroom, one curve per strategy, each point
    labelled with its knob (buffer % or multiplier). Right: churn against median headroom,
    the same curves. Lower is better on both at equal headroom (the same x)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    throttling, churn = figure.subplots(1, 2)
    for i, curve in enumerate(result.curves):
        colour = f"C{i}"
        points = [
            (s.headroom_median, s.throttled_minutes, s.churn, label)
            for s, label in zip(curve.totals, curve.labels(), strict=True)
            if s.headroom_median is not None
        ]
        if not points:
            continue
        points.sort()
        xs = [p[0] for p in points]
        name = f"{curve.strategy} ({curve.knob})"
        throttling.plot(xs, [p[1] for p in points], "o-", color=colour, label=name)
        churn.plot(xs, [p[2] for p in points], "s--", color=colour, label=name)
        for x, minutes, changes, label in points:
            throttling.annotate(
                f"{label}\nchurn {changes}",
                (x, minutes),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=6,
                color=colour,
            )
            churn.annotate(
                label, (x, changes), textcoords="offset points", xytext=(3, 3), fontsize=6
            )
    throttling.set_title("Throttled minutes vs median headroom (lower is better)")
    throttling.set_xlabel("median headroom (×: time-averaged limit / p99 of true demand)")
    throttling.set_ylabel("throttled minutes (tenant × limit, whole suite)")
    throttling.set_yscale("symlog", linthresh=10.0)
    throttling.set_ylim(bottom=0)
    throttling.grid(alpha=0.3)
    throttling.legend(fontsize="small")
    churn.set_title("Churn vs median headroom (limit changes, lower is calmer)")
    churn.set_xlabel("median headroom (×)")
    churn.set_ylabel("limit changes (tenant × limit × cycle)")
    churn.set_ylim(bottom=0)
    churn.grid(alpha=0.3)
    churn.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
