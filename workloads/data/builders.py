"""Feature builders: optional code that derives a model's features from its source table.

A spec's ``source`` table usually *is* the feature frame: its columns are the features, the label and the id
and timestamp columns. A spec may instead name a ``builder`` here when its features need code (joins, derived
columns); the bakehouse demo's does: it joins the transactions with customers and franchises and derives
calendar features. A builder receives the source rows and the tables port and returns the feature frame, keeping
the source's id and timestamp columns; it never chooses which rows are read (the source does).

The columns a builder offers a spec are read off its own output on a small generated sample, so they cannot
drift from what training really gets (``mlops spec columns --model NAME``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import pandas as pd

from workloads.errors import SpecError
from workloads.ports.tables import Tables


@dataclass(frozen=True)
class OfferedColumn:
    """A column a spec can use: its name, its spec type and its role (feature, target, id or timestamp)."""

    name: str
    type: str  # the spec's column type (string, bigint, double, timestamp, ...)
    role: str  # feature, target (the data's natural label), id or timestamp (never features)


@dataclass(frozen=True)
class Builder:
    """A named feature builder.

    Attributes:
        build: ``(source rows, tables port, source table name) -> feature frame``; records the versions of any
            other table it reads in ``frame.attrs["data_versions"]``.
        sample_output: The builder's output on a small generated sample (for listing the columns it offers).
        targets: Columns of the output that are natural labels.
    """

    name: str
    build: Callable[[pd.DataFrame, Tables, str], pd.DataFrame]
    sample_output: Callable[[], pd.DataFrame]
    targets: tuple[str, ...] = field(default_factory=tuple)


def spec_type(dtype) -> str:
    """The spec column type of a pandas or pyarrow dtype: the one home of that mapping."""
    import pyarrow as pa

    if isinstance(dtype, pa.DataType):
        if pa.types.is_boolean(dtype):
            return "boolean"
        if pa.types.is_integer(dtype):
            return "bigint"
        if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
            return "double"
        if pa.types.is_timestamp(dtype):
            return "timestamp"
        if pa.types.is_date(dtype):
            return "date"
        return "string"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "string"


def _bakehouse_build(source: pd.DataFrame, tables: Tables, source_table: str) -> pd.DataFrame:
    """Transactions joined with their customers and franchises (read beside the source table), calendar derived."""
    from workloads.data.features import build_features
    from workloads.errors import TableNotFoundError

    catalog, schema, _ = source_table.split(".")
    frames, versions = {"sales_transactions": source}, {}
    for name in ("sales_customers", "sales_franchises"):
        full = f"{catalog}.{schema}.{name}"
        if not tables.exists(full):
            raise TableNotFoundError(f"table {full} (read by the bakehouse feature builder) does not exist; run "
                                     "`mlops data generate` first")
        frames[name] = tables.read(full)
        versions[full] = tables.version(full)
    frame = build_features(frames)
    frame.attrs["data_versions"] = versions
    return frame


def _bakehouse_sample_output() -> pd.DataFrame:
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features

    return build_features(generate(seed=0))


BUILDERS = {"bakehouse": Builder("bakehouse", _bakehouse_build, _bakehouse_sample_output, targets=("quantity",))}


def get_builder(name: str) -> Builder:
    """The builder called ``name``.

    Raises:
        SpecError: no such builder (naming the known ones).
    """
    if name not in BUILDERS:
        raise SpecError(f"unknown feature builder {name!r}; known builders: {', '.join(sorted(BUILDERS))} (or leave "
                        "'builder' out: the source table's columns are the features)")
    return BUILDERS[name]


@cache
def builder_columns(name: str, id_column: str, timestamp_column: str) -> tuple[OfferedColumn, ...]:
    """The columns builder ``name`` produces, with their types and roles."""
    builder = get_builder(name)
    frame = builder.sample_output()
    roles = {id_column: "id", timestamp_column: "timestamp"} | {t: "target" for t in builder.targets}
    return tuple(OfferedColumn(str(n), spec_type(dtype), roles.get(str(n), "feature"))
                 for n, dtype in frame.dtypes.items())
