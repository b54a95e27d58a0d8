"""`mlo alert`: check the alert channels of a configuration.

  mlo alert channels                 every configured channel, where it sends, config errors
  mlo alert test --channel slack     send one test alert now and report the outcome

Exit codes of `test`: 0 delivered; 1 the send failed (the message says whether the service
would retry it); 2 no such channel, or its configuration is unusable."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mimir_limit_optimizer.alerting import Priority, send_test_alert
from mimir_limit_optimizer.alerting.channels import build_channel, channel_specs
from mimir_limit_optimizer.alerting.errors import ChannelConfigError
from mimir_limit_optimizer.cli.app import app
from mimir_limit_optimizer.cli.common import CommonOptions, ConfigOpt, fail, load

alert_app = typer.Typer(help="Check the alert channels (Slack, PagerDuty, email, ...).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(alert_app, name="alert")


class TextOrJson(StrEnum):
    TEXT = "text"
    JSON = "json"


FormatOption = Annotated[TextOrJson, typer.Option("--format", "-f", help="text or json.")]


@alert_app.command("test")
def alert_test(
    channel: Annotated[
        str,
        typer.Option(
            "--channel",
            help="slack, pagerduty, email, alertmanager, or a webhook's name (webhook:NAME).",
        ),
    ],
    config: ConfigOpt = None,
    priority: Annotated[
        Priority, typer.Option("--priority", help="Priority of the test alert.")
    ] = Priority.P1,
    resolve: Annotated[
        bool, typer.Option("--resolve", help="Send the resolved notification instead.")
    ] = False,
    fmt: FormatOption = TextOrJson.TEXT,
) -> None:
    """Send one test alert straight to CHANNEL (no queue, no routing, no breaker) and
    report the outcome."""
    loaded, _ = load(CommonOptions(config=config))
    try:
        result = send_test_alert(
            loaded.config.alerting, channel, now=time.time(), priority=priority, resolved=resolve
        )
    except KeyError as exc:
        fail(str(exc.args[0]))
    if fmt is TextOrJson.JSON:
        sys.stdout.write(
            json.dumps(
                {
                    "channel": result.channel,
                    "ok": result.ok,
                    "target": result.target,
                    "detail": result.detail,
                    "retryable": result.retryable,
                    "errorType": result.error_type,
                    "seconds": round(result.seconds, 3),
                },
                indent=2,
            )
            + "\n"
        )
    else:
        console = Console(soft_wrap=True, highlight=False)
        if result.ok:
            console.print(
                f"[green]ok:[/] test alert delivered to {result.channel} ({result.target}) "
                f"in {result.seconds:.2f}s"
            )
        else:
            retry = (
                ""
                if result.retryable is None
                else " (the service would retry it)"
                if result.retryable
                else " (permanent: the service would not retry it)"
            )
            console.print(f"[red]failed:[/] {result.channel}: {result.detail}{retry}")
    if not result.ok:
        raise typer.Exit(2 if result.error_type == "invalid_config" else 1)


@alert_app.command("channels")
def alert_channels(config: ConfigOpt = None, fmt: FormatOption = TextOrJson.TEXT) -> None:
    """List the enabled alert channels: kind, priorities, where they send, config errors."""
    loaded, _ = load(CommonOptions(config=config))
    rows = []
    for spec in channel_specs(loaded.config.alerting):
        try:
            built = build_channel(spec)
        except ChannelConfigError as exc:
            target, problem = "-", str(exc)
        else:
            target, problem = built.describe(), ""
            built.close()
        rows.append(
            {
                "channel": spec.name,
                "kind": spec.kind,
                "priorities": sorted(spec.priorities),
                "target": target,
                "configError": problem or None,
            }
        )
    if fmt is TextOrJson.JSON:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        Console(stderr=True).print("no alert channel is configured (alerting.* in the config)")
        return
    table = Table("channel", "kind", "priorities", "sends to", "configuration")
    for row in rows:
        table.add_row(
            str(row["channel"]),
            str(row["kind"]),
            ",".join(row["priorities"]),  # type: ignore[arg-type]
            str(row["target"]),
            f"[red]{row['configError']}[/]" if row["configError"] else "[green]ok[/]",
        )
    Console(width=200).print(table)
