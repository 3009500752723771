"""``mlops data ...``: the bakehouse sample data."""

from __future__ import annotations

import typer
from rich.table import Table

from workloads.cli.common import console, state, step


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Sample data: the bakehouse twin of samples.bakehouse.", no_args_is_help=True)

    @data.command("generate")
    def generate(
        seed: int = typer.Option(42, help="Random seed; same seed and reference date give the same data."),
        reference_date: str | None = typer.Option(None, help="End of the 30-day window (default today, UTC)."),
    ) -> None:
        """Write samples.bakehouse.* (3,333 transactions over the last 30 days) as local Delta tables."""
        from workloads.data.bakehouse import generate as make
        from workloads.data.features import write_bakehouse
        from workloads.errors import MlopsError

        settings = state.settings()
        if settings.backend != "local":
            raise MlopsError("data generate writes the local twin only; on Databricks read samples.bakehouse")
        with step("Generating bakehouse tables"):
            tables = make(seed=seed, reference_date=reference_date)
            versions = write_bakehouse(settings, tables)
        table = Table("table", "rows", "delta version")
        for name, df in tables.items():
            full = settings.source_table(name)
            table.add_row(full, f"{len(df):,}", str(versions[full]))
        console.print(table)

    app.add_typer(data, name="data")
