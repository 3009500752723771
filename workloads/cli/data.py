"""``mlops data ...``: bring a CSV or Parquet file in as a table, or generate the bakehouse sample data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from workloads.cli.common import console, state, step

DATA_FILE = typer.Argument(..., help="A CSV (.csv) or Parquet (.parquet) file.")


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Data: import a file of your own as a table, or generate the bakehouse sample.",
                       no_args_is_help=True)

    @data.command("import")
    def import_(
        path: Path = DATA_FILE,
        table: str = typer.Option(..., "--table", "-t", help="The table to write: catalog.schema.table."),
        mode: str = typer.Option("error", "--mode", help="error (refuse if the table exists) or overwrite."),
    ) -> None:
        """Write a file as a Delta table (typed: text columns holding dates become timestamps); prints the types."""
        from workloads.data.importing import import_file

        with step(f"Importing {path} into {table}"):
            result = import_file(state.settings(), path, table, mode)
        out = Table("column", "type", title=f"{result.table}: {result.rows:,} rows, Delta version {result.version}")
        for column, kind in result.types.items():
            out.add_row(column, kind + (" (parsed from text)" if column in result.parsed_dates else ""))
        console.print(out)
        console.print(f"next: `mlops spec init --table {result.table} --label <column>`", soft_wrap=True)

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
