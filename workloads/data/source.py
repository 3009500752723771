"""A model's source table: where its examples enter every step.

The spec names the table and its id and timestamp columns (``source``); this module is the one place that
reads it. :func:`read_examples` returns the feature frame: the source's rows (through the spec's feature
builder when it names one), with the label derived when the spec has a ``label_expression``, and the Delta
versions of every table read in ``attrs["data_versions"]`` (lineage on the MLflow run and the model version).
Which rows a step uses is then decided by their role (:mod:`workloads.data.roles`).

Per stack: ``{catalog}.schema.table`` in a spec resolves to the stack's own catalog (``mlops_dev`` /
``mlops_prod``), the Unity Catalog way to isolate environments (one catalog per environment, the same schema
and table names in each: "catalogs are the primary unit of data isolation", https://docs.databricks.com/aws/en/catalogs/); a fully named table (``samples.bakehouse.sales_transactions``) is read as is by
every stack.
"""

from __future__ import annotations

import pandas as pd

from workloads.data.builders import OfferedColumn, builder_columns, get_builder, spec_type
from workloads.errors import SpecError, TableNotFoundError
from workloads.ports.tables import LocalTables, Tables, get_tables
from workloads.settings import Settings
from workloads.specs import ModelSpec


def source_table(settings: Settings, spec: ModelSpec) -> str:
    """The three-level name of the spec's source table in ``settings``' stack."""
    return spec.source.table_in(settings.catalog)


def _missing_hint(settings: Settings, table: str) -> str:
    if table.startswith(f"{settings.samples_catalog}.{settings.samples_schema}."):
        return "run `mlops data generate` first" if settings.backend == "local" else "check samples.bakehouse access"
    return (f"import it with `mlops data import FILE --table {table}`" if settings.backend == "local"
            else "create it, or grant the job's identity SELECT on it")


def read_examples(settings: Settings, spec: ModelSpec, tables: Tables | None = None) -> pd.DataFrame:
    """Every example of the spec's source: the feature frame with ids, timestamps and the label.

    Raises:
        TableNotFoundError: the source table (or a table its builder reads) does not exist.
        SpecError: the source lacks the id or timestamp column, or ids repeat.
    """
    tables = tables or get_tables(settings)
    name = source_table(settings, spec)
    if not tables.exists(name):
        raise TableNotFoundError(f"source table {name} of model {spec.name} does not exist; "
                                 f"{_missing_hint(settings, name)}")
    raw = tables.read(name)
    versions = {name: tables.version(name)}
    for role in ("id", "timestamp"):
        column = getattr(spec.source, role)
        if column not in raw.columns:
            raise SpecError(f"model {spec.name}: source {role} column {column!r} is not a column of {name} "
                            f"(columns: {', '.join(map(str, raw.columns))})")
    repeated = raw[spec.source.id].duplicated()
    if repeated.any():
        example = raw.loc[repeated, spec.source.id].iloc[0]
        raise SpecError(f"model {spec.name}: source id column {spec.source.id!r} of {name} is not unique "
                        f"({int(repeated.sum())} repeated ids, e.g. {example!r}); name a column that identifies "
                        "one example")
    if spec.builder:
        frame = get_builder(spec.builder).build(raw, tables, name)
        versions.update(frame.attrs.get("data_versions", {}))
    else:
        frame = raw
    frame = with_label(frame, spec)
    frame.attrs["data_versions"] = versions
    return frame


def with_label(frame: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """``frame`` with the spec's label column (derived by ``label_expression`` when the spec has one and the
    frame does not carry the label yet)."""
    out = frame.copy()
    if spec.label_expression and spec.label.name not in out.columns:
        out[spec.label.name] = out.eval(spec.label_expression, engine="python")
    out.attrs.update(frame.attrs)
    return out


def column_types(tables: Tables, name: str) -> dict[str, str]:
    """``{column: spec type}`` of a table, read from its schema (no rows read)."""
    if isinstance(tables, LocalTables):
        import pyarrow as pa
        from deltalake import DeltaTable

        schema = pa.schema(DeltaTable(str(tables.path(name))).schema().to_arrow())  # arro3 -> pyarrow
        return {f.name: spec_type(f.type) for f in schema}
    frame = tables.frame(name)  # type: ignore[attr-defined]  # SparkTables: the schema only, no job runs
    return {f.name: _spark_type(f.dataType.simpleString()) for f in frame.schema.fields}


def _spark_type(simple: str) -> str:
    if simple in ("tinyint", "smallint", "int", "bigint"):
        return "bigint"
    if simple in ("float", "double") or simple.startswith("decimal"):
        return "double"
    if simple.startswith("timestamp"):
        return "timestamp"
    if simple in ("boolean", "date"):
        return simple
    return "string"


def offered_columns(settings: Settings, spec: ModelSpec, tables: Tables | None = None) -> tuple[OfferedColumn, ...]:
    """What a spec can use: the builder's output columns, else the source table's (read from its schema).

    Raises:
        TableNotFoundError: no builder and the source table does not exist.
    """
    if spec.builder:
        return builder_columns(spec.builder, spec.source.id, spec.source.timestamp)
    tables = tables or get_tables(settings)
    name = source_table(settings, spec)
    if not tables.exists(name):
        raise TableNotFoundError(f"source table {name} does not exist; {_missing_hint(settings, name)}")
    roles = {spec.source.id: "id", spec.source.timestamp: "timestamp"}
    return tuple(OfferedColumn(c, t, roles.get(c, "feature")) for c, t in column_types(tables, name).items())


def describe_offered(columns) -> str:
    """``name (type), ...`` of the columns a spec can use as features or label, for error messages."""
    return ", ".join(f"{c.name} ({c.type})" for c in columns if c.role not in ("id", "timestamp"))


def check_columns(spec: ModelSpec, settings: Settings | None = None) -> list[str]:
    """Check the spec's features, label, id and timestamp against what its source offers.

    Returns:
        Notes (e.g. the source does not exist yet, so the columns were not checked).

    Raises:
        SpecError: every column problem, in one message naming what the source offers.
    """
    from workloads.settings import load_settings

    settings = settings or load_settings()
    try:
        offered = {c.name: c for c in offered_columns(settings, spec)}
    except TableNotFoundError as exc:
        return [f"columns not checked: {exc}"]
    where = f"builder {spec.builder!r}" if spec.builder else f"source {source_table(settings, spec)}"
    problems = []
    for column in spec.features:
        if column.name not in offered:
            problems.append(f"feature {column.name!r} is not a column of {where}")
        elif offered[column.name].type != column.type and not _compatible(offered[column.name].type, column.type):
            problems.append(f"feature {column.name!r} is {offered[column.name].type} in {where}, the spec says "
                            f"{column.type}")
    if not spec.label_expression and spec.label.name not in offered:
        problems.append(f"label {spec.label.name!r} is not a column of {where}; name one or derive it with "
                        "label_expression")
    for role in ("id", "timestamp"):
        column = getattr(spec.source, role)
        if column not in offered:
            problems.append(f"source {role} {column!r} is not a column of {where}")
    if problems:
        raise SpecError(f"model spec {spec.name} does not fit its source: {'; '.join(problems)} ({where} offers: "
                        f"{describe_offered(offered.values())})")
    return []


def _compatible(offered: str, declared: str) -> bool:
    """Types a spec may declare for a column of another type (an integer read as double, and so on)."""
    numeric = {"bigint", "int", "double", "float"}
    return (offered in numeric and declared in numeric) or (offered == "boolean" and declared in ("bigint", "int"))
