"""``mlops monitor ...``, ``mlops drift analyze`` and ``mlops report``: the quality monitor's commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from workloads.cli.common import console, group, state, step
from workloads.errors import MlopsError
from workloads.specs import list_specs, load_spec

monitor_app = typer.Typer(help="Quality monitor: refresh metric tables, check the inference table.",
                          no_args_is_help=True)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@monitor_app.command("refresh")
def refresh(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec name.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Refresh every model whose processed table exists.")] = False,
    granularity: Annotated[list[str] | None, typer.Option("--granularity", "-g", help="Window size, repeatable (e.g. '1 hour'); default '1 day'.")] = None,
    exact_pvalues: Annotated[bool, typer.Option("--exact-pvalues", help="KS p-values exactly as scipy's.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Recompute every window (local).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Databricks: seconds to wait for the refresh.")] = 3600.0,
) -> None:
    """Refresh the monitor: compute (local) or run (Databricks) and read the profile and drift metric tables."""
    from workloads.monitoring.refresh import refresh_monitor
    from workloads.ports.tables import get_tables

    settings = state.settings()
    if all_models == bool(model):
        raise MlopsError("give either --model NAME or --all")
    specs = [load_spec(model)] if model else [load_spec(n) for n in list_specs()]
    if all_models:
        tables = get_tables(settings)
        deployed = [s for s in specs if tables.exists(settings.table(s.processed_table))]
        for s in specs:
            if s not in deployed:
                console.print(f"[yellow]-[/] {s.name}: no processed inference table yet, skipped")
        specs = deployed
    for spec in specs:
        with step(f"Refreshing the monitor of {spec.name}"):
            result = refresh_monitor(settings, spec, granularity or None, exact_pvalues=exact_pvalues, full=full,
                                     timeout_s=timeout)
        if result.backend == "local":
            for gran in result.granularities:
                console.print(f"  {gran}: {result.recomputed[gran]} window(s) recomputed, "
                              f"{result.unchanged[gran]} unchanged")
        else:
            console.print(f"  refresh {result.refresh_id} {result.state}")
        console.print(f"  {result.profile_rows} profile and {result.drift_rows} drift rows in {result.seconds:.2f}s")


@monitor_app.command("check-inference-table")
def check_inference_table(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec name.")],
    max_age_hours: Annotated[float, typer.Option("--max-age-hours", help="Newest request must be younger than this.")] = 24.0,
    max_error_rate: Annotated[float, typer.Option("--max-error-rate", help="Highest acceptable share of non-2xx.")] = 0.05,
) -> None:
    """Is the payload (inference) table receiving rows, recently, with the expected schema and few errors?"""
    from workloads.monitoring.checks import check_payload_table

    spec = load_spec(model)
    report = check_payload_table(state.settings(), spec, max_age_hours=max_age_hours, max_error_rate=max_error_rate)
    table = Table(title=f"inference table {report.table}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
    console.print(table)
    if not report.ok:
        raise typer.Exit(1)


def drift_analyze(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec name.")],
    days: Annotated[int, typer.Option("--days", help="Look back this many days from the latest window.")] = 7,
    granularity: Annotated[str, typer.Option("--granularity", "-g", help="Window size to read.")] = "1 day",
) -> None:
    """Which features drifted against the baseline, when, and how much (terminal summary)."""
    from workloads.monitoring.checks import drift_summary, metrics_staleness

    spec = load_spec(model)
    summary = drift_summary(state.settings(), spec, days=days, granularity=granularity)
    stale = metrics_staleness(state.settings(), spec)
    if stale:
        console.print(f"[yellow]stale:[/] {stale}", soft_wrap=True)
    table = Table(title=f"{spec.name}: drift against the baseline, last {days} day(s) ({summary.windows} windows)")
    for col in ("feature", "metric", "breached windows", "first breach", "worst", "threshold"):
        table.add_column(col)
    for row in summary.rows:
        style = "red" if row.breached_windows else ""
        table.add_row(row.feature, row.metric, f"{row.breached_windows}/{summary.windows}",
                      _fmt(row.first_breach), _fmt(row.worst), _fmt(row.threshold), style=style)
    console.print(table)
    drifted = sorted({r.feature for r in summary.rows if r.breached_windows})
    console.print(f"drifted features: {', '.join(drifted)}" if drifted else "[green]no feature drifted[/]")


def report(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec name.")],
    out: Annotated[str | None, typer.Option("--out", help="Output HTML path (default <home>/reports/<model>.html).")] = None,
    granularity: Annotated[str, typer.Option("--granularity", "-g", help="Window size to plot.")] = "1 day",
) -> None:
    """Write a self-contained HTML monitoring report (quality, drift heatmap, volume, champion history)."""
    from workloads.monitoring.report import write_report

    with step(f"Writing the monitoring report of {model}"):
        path = write_report(state.settings(), load_spec(model), out, granularity)
    console.print(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    group(app, "drift", "Drift: simulate it, reset it, analyze it.").command("analyze")(drift_analyze)
    app.command("report")(report)
