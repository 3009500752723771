"""``mlops alerts``: send a test alert to the configured destinations; list recent alerts from the outbox."""

from __future__ import annotations

import typer
from rich.table import Table

from workloads.cli.common import console, state
from workloads.errors import MlopsError


class AlertDeliveryError(MlopsError):
    """At least one destination did not accept the test alert."""


alerts_app = typer.Typer(
    help="Alert destinations (email, webhook, SNS, local outbox): test them, list recent alerts.",
    no_args_is_help=True,
)


@alerts_app.command("test")
def test_alert(
    model: str = typer.Option("test_model", "--model", "-m", help="Model name to put in the test alert."),
    message: str = typer.Option("test alert from `mlops alerts test`, no action needed", "--message",
                                help="Summary line of the test alert."),
) -> None:
    """Send a test alert to every configured destination and show how each delivery went."""
    from workloads.alerts import Alert, AlertConfigError, destinations_from_settings, send_alert

    settings = state.settings()
    destinations = destinations_from_settings(settings)
    if not destinations:
        raise AlertConfigError("no alert destinations configured: set MLOPS_ALERT_EMAILS, MLOPS_ALERT_WEBHOOK, "
                               "MLOPS_ALERT_SNS_TOPIC or MLOPS_ALERTS_CONFIG (see `python -m pydoc workloads.alerts`)")
    alert = Alert(kind="test", model=model, env=settings.env, summary=message,
                  details={"backend": settings.backend, "catalog": settings.catalog})
    results = send_alert(alert, destinations)
    table = Table(title=f"test alert {alert.id}")
    for column in ("destination", "target", "result", "detail", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for result in results:
        status = "[green]delivered[/]" if result.ok else "[red]FAILED[/]"
        table.add_row(result.destination, result.target, status, result.detail, f"{result.elapsed_ms:.0f}")
    console.print(table)
    failed = sum(not r.ok for r in results)
    if failed:
        # An error (not typer.Exit) so the exit code is non-zero through `main(standalone_mode=False)` too.
        raise AlertDeliveryError(f"{failed} of {len(results)} alert destination(s) failed (see the table above); "
                                 "fix their configuration and rerun `mlops alerts test`")
    console.print(f"[green]✓[/] delivered to all {len(results)} destination(s)")


@alerts_app.command("list")
def list_alerts(
    n: int = typer.Option(20, "--n", "-n", min=1, help="How many of the most recent alerts to show."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's alerts."),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind (breach, promotion, ...)."),
) -> None:
    """Show the most recent alerts from the local outbox (<home>/alerts.jsonl), oldest first."""
    from workloads.alerts import outbox_path, read_outbox

    settings = state.settings()
    alerts = read_outbox(settings.home, n=n, model=model, kind=kind)
    if not alerts:
        console.print(f"no alerts in {outbox_path(settings.home)}")
        return
    table = Table(title=f"last {len(alerts)} alert(s) — {outbox_path(settings.home)}")
    for column in ("time (UTC)", "kind", "model", "env", "summary"):
        table.add_column(column, overflow="fold")
    for alert in alerts:
        table.add_row(alert.time.strftime("%Y-%m-%d %H:%M:%S"), alert.kind, alert.model, alert.env, alert.summary)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
