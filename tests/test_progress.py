"""Collection progress for people: nothing for a collection under two seconds, then a log
line at most every few seconds, and a final line once anything was shown."""

from __future__ import annotations

import logging

import pytest

from mimir_limit_optimizer.observability.progress import ProgressLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_a_short_collection_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = ProgressLog(logging.getLogger("t"), "collecting", clock=clock)
    with caplog.at_level(logging.INFO):
        for done in range(1, 11):
            clock.now += 0.1
            progress(done, 10, f"chunk {done}")
    assert lines(caplog) == []


def test_a_long_collection_logs_every_few_seconds_and_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    progress = ProgressLog(logging.getLogger("t"), "collecting", clock=clock, every=5.0)
    with caplog.at_level(logging.INFO):
        for done in range(1, 21):
            clock.now += 1.0  # 20 requests, one a second
            progress(done, 20, f"chunk {done}")
    logged = lines(caplog)
    # Shown from 2 s on, then every 5 s, and the final count.
    assert [line.split(" after")[0] for line in logged] == [
        "collecting: 2/20 (10%)",
        "collecting: 7/20 (35%)",
        "collecting: 12/20 (60%)",
        "collecting: 17/20 (85%)",
        "collecting: 20/20 (100%)",
    ]
    assert logged[-1].endswith("last: chunk 20")


def test_the_cli_prints_lines_when_stderr_is_not_a_terminal() -> None:
    import io

    from rich.console import Console

    from mimir_limit_optimizer.cli.progress import collection_progress

    out = io.StringIO()
    clock = Clock()
    with collection_progress(
        Console(file=out, force_terminal=False), "querying", clock=clock
    ) as cb:
        for done in range(1, 4):
            clock.now += 3.0
            cb(done, 3, f"chunk {done}")
    text = out.getvalue().splitlines()
    assert text[0].startswith("querying: 1/3 (33%) after 3.0s")
    assert text[-1].startswith("querying: 3/3 (100%)")


def test_the_cli_shows_a_bar_on_a_terminal_only_after_two_seconds() -> None:
    import io

    from rich.console import Console

    from mimir_limit_optimizer.cli.progress import collection_progress

    def run(step: float) -> str:
        out = io.StringIO()
        clock = Clock()
        console = Console(file=out, force_terminal=True, width=100)
        with collection_progress(console, "querying", clock=clock) as cb:
            for done in range(1, 4):
                clock.now += step
                cb(done, 3, f"chunk {done}")
        return out.getvalue()

    assert run(0.5) == ""  # 1.5 s in all: nothing
    shown = run(1.0)  # the bar appears at 2 s and ends complete
    assert "querying: chunk 3" in shown
    assert "3/3" in shown
    assert "━" in shown  # the bar itself
