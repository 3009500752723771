"""The datasets a spec's ``dataset`` can name, and the columns each one offers a spec (with their types).

A spec's features, label and ``label_expression`` can only use columns its dataset's feature builder
produces; this is where a spec author (``mlops spec columns --dataset NAME``) and the validation errors find
them. The column list is read off the builder's own output on a small generated sample, so it cannot drift
from what training really gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pandas as pd

from workloads.errors import SpecError


@dataclass(frozen=True)
class DatasetColumn:
    name: str
    type: str  # the spec's column type (string, bigint, double, timestamp, ...)
    role: str  # feature, target (the dataset's natural label) or id (lineage only, never a feature)


def _spec_type(dtype) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "string"


def _bakehouse() -> list[DatasetColumn]:
    from workloads.data.bakehouse import generate
    from workloads.data.features import ID_COLUMNS, TARGET, build_features

    frame = build_features(generate(seed=0))
    roles = {name: "id" for name in ID_COLUMNS} | {TARGET: "target"}
    return [DatasetColumn(str(name), _spec_type(dtype), roles.get(str(name), "feature"))
            for name, dtype in frame.dtypes.items()]


BUILDERS = {"bakehouse": _bakehouse}


@cache
def dataset_columns(dataset: str) -> tuple[DatasetColumn, ...]:
    """The columns ``dataset``'s feature builder produces.

    Raises:
        SpecError: no such dataset (naming the known ones).
    """
    if dataset not in BUILDERS:
        raise SpecError(f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(BUILDERS))}")
    return tuple(BUILDERS[dataset]())


def describe_columns(dataset: str) -> str:
    """``name (type), ...`` of what ``dataset`` offers as features and label, for error messages."""
    return ", ".join(f"{c.name} ({c.type})" for c in dataset_columns(dataset) if c.role != "id")
