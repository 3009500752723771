"""``mlops spec ...``: draft a spec from a table, check it before training, list what a source offers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from workloads.cli.common import console, state

SPEC_FILE = typer.Argument(..., help="The spec YAML file to check.")


def register(app: typer.Typer) -> None:
    from workloads.cli.common import group

    spec_app = group(app, "spec", "Model specs: draft one from a table, check it, list what a source offers.")

    @spec_app.command("check")
    def check(path: Path = SPEC_FILE) -> None:
        """Validate a spec (keys, types, thresholds, hyperparameters, columns against its source) without training."""
        from workloads.specs import check_spec_file
        from workloads.training import trainer_for

        spec, notes = check_spec_file(path, state.settings())
        trainer_for(spec)
        source = spec.source.table + (f" through builder {spec.builder!r}" if spec.builder else "")
        console.print(f"[green]ok[/] {path}: model {spec.name!r} ({spec.problem_type}), {len(spec.features)} "
                      f"features, label {spec.label.name!r}, {len(spec.thresholds)} quality and "
                      f"{len(spec.drift_thresholds)} drift thresholds; source {source} (id {spec.source.id!r}, "
                      f"timestamp {spec.source.timestamp!r})", soft_wrap=True)
        for note in notes:
            console.print(f"  - {note}", soft_wrap=True)

    @spec_app.command("columns")
    def columns(
        table: str | None = typer.Option(None, "--table", "-t", help="A table (catalog.schema.table): its columns."),
        model: str | None = typer.Option(None, "--model", "-m", help="A model: what its source (and builder) offers."),
    ) -> None:
        """The columns a table or a model's source offers a spec, with their types and roles."""
        from workloads.data.source import column_types, offered_columns
        from workloads.errors import MlopsError, TableNotFoundError
        from workloads.ports.tables import get_tables, split_name
        from workloads.specs import load_spec

        if (table is None) == (model is None):
            raise MlopsError("give --table catalog.schema.table or --model NAME")
        settings = state.settings()
        if table is not None:
            split_name(table)
            tables = get_tables(settings)
            if not tables.exists(table):
                raise TableNotFoundError(f"table {table} does not exist; import a file with `mlops data import FILE "
                                         f"--table {table}`")
            rows = [(c, t, "") for c, t in column_types(tables, table).items()]
            title = f"table {table}"
        else:
            spec = load_spec(model)
            rows = [(c.name, c.type, c.role) for c in offered_columns(settings, spec)]
            title = f"model {model}: source {spec.source.table}" + (f" + builder {spec.builder}" if spec.builder else "")
        out = Table("column", "type", "role", title=title)
        for row in rows:
            out.add_row(*row)
        console.print(out)
        console.print("features and label use these names and types; a label can also be derived with "
                      "label_expression (a pandas expression over these columns, e.g. 'quantity >= 10'); "
                      "the id and timestamp columns go under source:, never features")

    @spec_app.command("init")
    def init(
        table: str = typer.Option(..., "--table", "-t", help="The source table (catalog.schema.table)."),
        label: str = typer.Option(..., "--label", "-l", help="The column to predict."),
        problem_type: str | None = typer.Option(None, "--problem-type", help="regression or classification "
                                                                             "(default: guessed from the label)."),
        name: str | None = typer.Option(None, "--name", "-n", help="Model name (default: the table's name)."),
        id_column: str | None = typer.Option(None, "--id", help="Id column (default: guessed: unique values)."),
        timestamp: str | None = typer.Option(None, "--timestamp", help="Timestamp column (default: the first "
                                                                       "timestamp or date column)."),
        per_stack: bool = typer.Option(False, "--per-stack", help="Write the source as {catalog}.schema.table: each "
                                                                  "stack reads its own catalog's copy."),
        force: bool = typer.Option(False, "--force", help="Replace an existing spec file of that name."),
    ) -> None:
        """Draft a complete, commented spec from a table's columns into the spec directory (--specs / MLOPS_SPECS)."""
        from workloads.data.source import column_types
        from workloads.errors import TableNotFoundError
        from workloads.ports.tables import get_tables, split_name
        from workloads.specs import check_spec_file, spec_dir
        from workloads.specs.drafting import draft_spec, write_draft

        settings = state.settings()
        _catalog, schema, short = split_name(table)
        tables = get_tables(settings)
        if not tables.exists(table):
            raise TableNotFoundError(f"table {table} does not exist; import a file with `mlops data import FILE "
                                     f"--table {table}`")
        source = f"{{catalog}}.{schema}.{short}" if per_stack else table
        draft = draft_spec(tables.read(table), column_types(tables, table), table, label, problem_type=problem_type,
                           name=name, id_column=id_column, timestamp_column=timestamp, source_table=source)
        path = write_draft(draft, spec_dir(), force)
        check_spec_file(path, settings)
        for guess in draft.guesses:
            console.print(f"  guessed {guess}", soft_wrap=True)
        for column, why in draft.skipped.items():
            console.print(f"  not a feature: {column}: {why}", soft_wrap=True)
        console.print(f"[green]wrote[/] {path}: model {draft.name!r} ({draft.problem_type}), "
                      f"{len(draft.features)} features, label {label!r}; next: `mlops train --model {draft.name}`",
                      soft_wrap=True)
