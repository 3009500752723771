"""``mlops spec check FILE`` and ``mlops spec columns --dataset NAME``: write a spec without guessing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from workloads.cli.common import console, group

SPEC_FILE = typer.Argument(..., help="The spec YAML file to check.")
DATASET = typer.Option("bakehouse", "--dataset", "-d", help="Dataset (feature builder).")


def register(app: typer.Typer) -> None:
    spec_app = group(app, "spec", "Model specs: check one before training, list what a dataset offers.")

    @spec_app.command("check")
    def check(path: Path = SPEC_FILE) -> None:
        """Validate a spec (keys, types, thresholds, columns against its dataset) without training."""
        from workloads.specs import check_spec_file

        spec, notes = check_spec_file(path)
        console.print(f"[green]ok[/] {path}: model {spec.name!r} ({spec.problem_type}), {len(spec.features)} "
                      f"features, label {spec.label.name!r}, {len(spec.thresholds)} quality and "
                      f"{len(spec.drift_thresholds)} drift thresholds; dataset {spec.dataset!r}", soft_wrap=True)
        for note in notes:
            console.print(f"  - {note}", soft_wrap=True)

    @spec_app.command("columns")
    def columns(dataset: str = DATASET) -> None:
        """The columns a dataset's feature builder offers a spec, with their types."""
        from workloads.data.datasets import dataset_columns

        table = Table("column", "type", "role", title=f"dataset {dataset}")
        for column in dataset_columns(dataset):
            table.add_row(column.name, column.type, column.role)
        console.print(table)
        console.print("features and label use these names and types; a label can also be derived with "
                      "label_expression (a pandas expression over these columns, e.g. 'quantity >= 10'); "
                      "id columns are for lineage, not features")
