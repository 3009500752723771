"""``mlops demo``: the whole story on one machine, with progress and a summary."""

from __future__ import annotations

import time
from collections import Counter

import typer
from rich.table import Table

from workloads.cli.common import console, state, step


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        reset: bool = typer.Option(False, "--reset", help="Start clean: remove the local home first."),
        seed: int = typer.Option(42, help="Data seed."),
    ) -> None:
        """Tell the lifecycle story end to end on the embedded default (no Databricks needed)."""
        from workloads.alerts import read_outbox
        from workloads.demo import reset_home, run_story
        from workloads.errors import MlopsError

        settings = state.settings()
        if settings.backend != "local":
            raise MlopsError("mlops demo runs on the embedded default; drop --backend databricks")
        if reset:
            reset_home(settings)
        elif (settings.home / "mlflow.db").exists():
            raise MlopsError(f"{settings.home} already holds an MLflow store (an earlier demo or training); "
                             "rerun with --reset to delete that home and start clean, or pick another --home")
        start = time.perf_counter()
        story = run_story(settings, progress=step, seed=seed)
        elapsed = time.perf_counter() - start

        table = Table("chapter", "outcome", "where to look", title="lakehouse-mlops demo", show_lines=True)
        for row in story.rows:
            table.add_row(*row)
        alerts = Counter(a.kind for a in read_outbox(settings.home) if a.kind != "test")
        table.add_row("alerts", ", ".join(f"{n} {kind}" for kind, n in sorted(alerts.items())) or "none",
                      str(settings.home / "alerts.jsonl"))
        console.print(table)
        console.print(f"Done in {elapsed:.0f} s. Browse experiments, runs and models: "
                      f"[bold]uv run mlops --home {settings.home} ui[/]")
