"""``mlops demo``: the whole story on one machine, with progress and a summary."""

from __future__ import annotations

import time

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
        from workloads.demo import reset_home, run_story
        from workloads.errors import MlopsError

        settings = state.settings()
        if settings.backend != "local":
            raise MlopsError("mlops demo runs on the embedded default; drop --backend databricks")
        if reset:
            reset_home(settings)
        start = time.perf_counter()
        story = run_story(settings, progress=step, seed=seed)
        table = Table("chapter", "outcome", "where to look", title="lakehouse-mlops demo")
        for row in story.rows:
            table.add_row(*row)
        console.print(table)
        console.print(f"Done in {time.perf_counter() - start:.0f} s. Browse runs and models: "
                      f"[bold]mlops --home {settings.home} ui[/]")
