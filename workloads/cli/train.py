"""``mlops train`` and ``mlops batch``: fit and register a model version; score a batch with the champion."""

from __future__ import annotations

import typer
from rich.table import Table

from workloads.cli.common import console, state, step


def _specs(model: str | None, all_models: bool):
    from workloads.errors import SpecError
    from workloads.specs import list_specs, load_spec

    if all_models and model:
        raise SpecError(f"give --model {model} or --all, not both")
    if all_models:
        return [load_spec(n) for n in list_specs()]
    if not model:
        raise SpecError("give --model NAME or --all; models: " + ", ".join(list_specs()))
    return [load_spec(model)]


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        model: str | None = typer.Option(None, "--model", "-m", help="Model spec name."),
        all_models: bool = typer.Option(False, "--all", help="Train every model spec."),
    ) -> None:
        """Validate data, train, register a version; the first passing version becomes champion."""
        from workloads.training import train_model

        settings = state.settings()
        table = Table("model", "version", "alias", "metrics", "thresholds")
        for spec in _specs(model, all_models):
            with step(f"Training {spec.name} ({spec.trainer})"):
                result = train_model(settings, spec)
            shown = {k: v for k, v in result.metrics.items() if k in spec.thresholds or k in ("rmse", "mae", "r2")}
            table.add_row(spec.name, str(result.version), result.alias or "-",
                          ", ".join(f"{k}={v:.3f}" for k, v in shown.items()),
                          "[green]pass[/]" if result.passed else "[red]" + "; ".join(result.failures) + "[/]")
        console.print(table)

    @app.command("batch")
    def batch(
        model: str = typer.Option(..., "--model", "-m", help="Model spec name."),
        table_name: str | None = typer.Option(None, "--table", help="Source table (default: bakehouse holdout)."),
    ) -> None:
        """Score a batch with the champion into <model>_predictions, with lineage columns."""
        from workloads.batch import score_batch
        from workloads.specs import load_spec

        spec = load_spec(model)
        with step(f"Scoring {spec.name} with its champion"):
            result = score_batch(state.settings(), spec, source_table=table_name)
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items()) or "no labels"
        console.print(f"{result.rows:,} rows -> {result.table} (version {result.model_version}, "
                      f"batch {result.score_batch_id[:8]}); {metrics}")
