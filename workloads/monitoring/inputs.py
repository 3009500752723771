"""Where data enters the monitor: the processed inference table and the baseline as numpy arrays, prepared once.

Numeric columns become float64 (NaN = null), categorical ones codes over one dictionary shared with the baseline
(:mod:`workloads.monitoring.categories`), model versions codes, timestamps epoch nanoseconds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workloads.monitoring.categories import as_text, factorize
from workloads.monitoring.granularity import to_ns
from workloads.monitoring.parallel import parallel_rows
from workloads.specs import MODEL_ID_COLUMN, TIMESTAMP_COLUMN, Column, ModelSpec


def monitored_columns(spec: ModelSpec) -> list[tuple[Column, bool]]:
    """(column, is_categorical) for every column the monitor profiles: features, prediction, label.

    For classification the prediction and label are class labels, so they are categorical.
    """
    classification = spec.problem_type == "classification"
    out = [(c, c.is_categorical) for c in spec.features]
    out.append((spec.prediction, classification or spec.prediction.is_categorical))
    out.append((spec.label, classification or spec.label.is_categorical))
    return out


class _Deferred:
    """A value computed on a thread of its own, awaited on first use (exceptions surface there)."""

    def __init__(self, compute, background: bool):
        self._value = None
        self._future = None
        if background:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-monitor-prepare")
            self._future = pool.submit(compute)
            pool.shutdown(wait=False)
        else:
            self._value = compute()

    def get(self):
        if self._future is not None:
            self._value, self._future = self._future.result(), None
        return self._value


class _Part(_Deferred):
    """Item ``index`` of a deferred tuple."""

    def __init__(self, whole: _Deferred, index: int):
        self._whole, self._index = whole, index

    def get(self):
        return self._whole.get()[self._index]


@dataclass
class Rowset:
    """Monitored columns of some rows as numpy arrays: numeric as float64 (NaN = null), categorical as codes."""

    numeric: dict[str, np.ndarray]
    _codes: dict[str, np.ndarray] | _Deferred
    version: np.ndarray  # int codes into MonitorData.versions
    ts_ns: np.ndarray | None
    n: int

    @property
    def codes(self) -> dict[str, np.ndarray]:
        """Categorical columns as codes into ``MonitorData.categories`` (-1 = null); may wait for :func:`prepare`'s
        background factorization."""
        if isinstance(self._codes, _Deferred):
            self._codes = self._codes.get()
        return self._codes

    def subset(self, mask: np.ndarray) -> Rowset:
        return Rowset({k: v[mask] for k, v in self.numeric.items()}, {k: v[mask] for k, v in self.codes.items()},
                      self.version[mask], None if self.ts_ns is None else self.ts_ns[mask], int(mask.sum()))


@dataclass
class MonitorData:
    """Input and baseline rows prepared once: shared category and model-version dictionaries."""

    spec: ModelSpec
    inputs: Rowset
    baseline: Rowset | None
    _categories: dict[str, np.ndarray] | _Deferred = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)
    category_lengths: dict[str, np.ndarray] = field(default_factory=dict)  # string column -> length per category
    category_ranks: dict[str, np.ndarray] = field(default_factory=dict)  # column -> rank of each category's text

    @property
    def categories(self) -> dict[str, np.ndarray]:
        if isinstance(self._categories, _Deferred):
            self._categories = self._categories.get()
        return self._categories


def _numeric(series: pd.Series) -> np.ndarray:
    if series.dtype == np.float64:  # already numpy doubles (NaN = null): no copy (the monitor only reads it)
        return series.to_numpy()
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def prepare(frame: pd.DataFrame, baseline: pd.DataFrame | None, spec: ModelSpec) -> MonitorData:
    """Turn the processed table and baseline frames into :class:`MonitorData`.

    For large inputs the categorical columns are factorized on a thread of their own: the numeric columns,
    model versions and timestamps are ready on return, and the numeric pass runs while the category
    dictionaries are built (:attr:`Rowset.codes` waits for them).
    """
    columns = monitored_columns(spec)
    n_in = len(frame)
    base = baseline if baseline is not None and len(baseline) else None

    def column_of(source: pd.DataFrame, name: str) -> pd.Series:
        return source[name] if name in source else pd.Series([None] * len(source), dtype="object")

    numeric_in, numeric_b = {}, {}
    for col, categorical in columns:
        if not categorical:
            numeric_in[col.name] = _numeric(column_of(frame, col.name))
            if base is not None:
                numeric_b[col.name] = _numeric(column_of(base, col.name))

    def factorize_categorical():
        codes_in, codes_b, categories = {}, {}, {}
        for col, categorical in columns:
            if categorical:
                series_b = None if base is None else column_of(base, col.name)
                codes_in[col.name], in_base, categories[col.name] = factorize(column_of(frame, col.name), series_b)
                if series_b is not None:
                    codes_b[col.name] = in_base
        return codes_in, codes_b, categories

    factorized = _Deferred(factorize_categorical, background=parallel_rows(n_in))
    versions_in = as_text(frame[MODEL_ID_COLUMN]) if MODEL_ID_COLUMN in frame else pd.Series(
        [None] * n_in, dtype="string")
    versions_b = None
    if base is not None:
        versions_b = as_text(base[MODEL_ID_COLUMN]) if MODEL_ID_COLUMN in base else pd.Series(
            [None] * len(base), dtype="string")
    vcodes_in, vcodes_b, vuniques = factorize(versions_in, versions_b, fill="unknown")
    ts = to_ns(frame[TIMESTAMP_COLUMN]) if n_in else np.zeros(0, dtype=np.int64)
    inputs = Rowset(numeric_in, _Part(factorized, 0), vcodes_in, ts, n_in)
    base_rows = None
    if base is not None:
        base_rows = Rowset(numeric_b, _Part(factorized, 1), vcodes_b, None, len(base))
    return MonitorData(spec, inputs, base_rows, _Part(factorized, 2), [str(v) for v in vuniques])
