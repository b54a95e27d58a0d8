"""Progress of a collection on the command line: nothing for a short one; after two seconds a
Rich bar with the known total on a terminal, or a log line every few seconds otherwise
(CI logs, pipes), so a 100,000-tenant collection never looks hung."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from mimir_limit_optimizer.observability.progress import SHOW_AFTER, ProgressLog
from mimir_limit_optimizer.sources.base import ProgressCallback


@contextmanager
def collection_progress(
    console: Console, what: str, *, clock: Callable[[], float] = time.monotonic
) -> Iterator[ProgressCallback]:
    """A progress callback for `Source.collect`, shown on `console` (stderr)."""
    if not console.is_terminal:
        logger = logging.Logger("mlo.progress", level=logging.INFO)  # not registered globally
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        yield ProgressLog(logger, what, clock=clock)
        return
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    started = clock()
    task: list[TaskID] = []  # the bar's task, once shown

    def report(done: int, total: int, label: str) -> None:
        if not task:
            if clock() - started < SHOW_AFTER:
                return
            bar.start()
            task.append(bar.add_task(what, total=total))
        bar.update(task[0], completed=done, total=total, description=f"{what}: {label}"[:70])

    try:
        yield report
    finally:
        if task:
            bar.stop()
