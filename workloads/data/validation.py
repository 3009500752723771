"""Checks training data before a model is fit: schema, nulls, ranges and category sets.

Training refuses bad data with one :class:`DataValidationError` whose ``failures`` name every failed check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workloads.data import bakehouse
from workloads.errors import DataValidationError
from workloads.specs import ModelSpec

_NUMERIC = {"bigint", "int", "double", "float"}


@dataclass
class Expectations:
    """What valid data looks like beyond the spec's schema."""

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, set[str]] = field(default_factory=dict)
    min_rows: int = 100


BAKEHOUSE = Expectations(
    ranges={"quantity": (1, 1000), "unitPrice": (1, 100), "hour": (0, 23), "day_of_week": (0, 6),
            "month": (1, 12), "day_of_month": (1, 31)},
    categories={"product": set(bakehouse.PRODUCTS), "paymentMethod": set(bakehouse.PAYMENT_METHODS),
                "franchise_size": set(bakehouse.FRANCHISE_SIZES)},
)

EXPECTATIONS = {"bakehouse": BAKEHOUSE}


def _offered(frame: pd.DataFrame, spec: ModelSpec, missing: str) -> str:
    """`` (the source offers: ...)``: where a spec author finds the right column name."""
    from workloads.data.builders import spec_type

    offered = ", ".join(f"{c} ({spec_type(t)})" for c, t in frame.dtypes.items()
                        if c not in (spec.source.id, spec.source.timestamp))
    hint = " or derive it with label_expression" if missing == spec.label.name else ""
    return f" (the source offers: {offered}{hint}; `mlops spec columns --model {spec.name}`)"


def check_frame(frame: pd.DataFrame, spec: ModelSpec, expectations: Expectations | None = None) -> list[str]:
    """Every failed check as one human-readable line (empty when the data is valid)."""
    exp = expectations if expectations is not None else EXPECTATIONS.get(spec.builder or "", Expectations())
    failures: list[str] = []
    if len(frame) < exp.min_rows:
        failures.append(f"rows: {len(frame)} rows, need at least {exp.min_rows}")
    columns = [*spec.features, spec.label]
    missing = [c.name for c in columns if c.name not in frame.columns]
    if missing:  # one line for all of them, with what the source offers once
        names = ", ".join(repr(m) for m in missing)
        failures.append(f"schema: column{'s' if len(missing) > 1 else ''} {names} "
                        f"{'are' if len(missing) > 1 else 'is'} missing{_offered(frame, spec, missing[0])}")
    for col in columns:
        if col.name not in frame.columns:
            continue
        series = frame[col.name]
        if col.type in _NUMERIC:
            if not pd.api.types.is_numeric_dtype(series):
                failures.append(f"schema: column {col.name!r} should be {col.type}, is {series.dtype}")
                continue
            values = series.to_numpy(dtype=float, na_value=np.nan)
            if np.isinf(values).any():
                failures.append(f"range: column {col.name!r} has {int(np.isinf(values).sum())} infinite values")
        nulls = int(series.isna().sum())
        if nulls:
            failures.append(f"nulls: column {col.name!r} has {nulls} null values")
        if col.name in exp.ranges and pd.api.types.is_numeric_dtype(series):
            lo, hi = exp.ranges[col.name]
            bad = int(((series < lo) | (series > hi)).sum())
            if bad:
                failures.append(f"range: column {col.name!r} has {bad} values outside [{lo}, {hi}]")
        if col.name in exp.categories:
            unknown = sorted(set(series.dropna().astype(str)) - exp.categories[col.name])
            if unknown:
                failures.append(f"categories: column {col.name!r} has unknown values {unknown[:5]}")
    return failures


def validate_frame(frame: pd.DataFrame, spec: ModelSpec, expectations: Expectations | None = None) -> None:
    """Raise :class:`DataValidationError` naming every failed check, or return when the data is valid."""
    failures = check_frame(frame, spec, expectations)
    if failures:
        raise DataValidationError(
            f"training data for {spec.name} failed {len(failures)} check(s): " + "; ".join(failures), failures)
