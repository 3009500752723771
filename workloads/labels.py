"""Late labels: ground truth merged into the processed inference table when it arrives.

Labels are keyed by ``example_id`` (``<request_id>:<row>``, one scored example) or by ``request_id``
(every example of a request). They come from:

- the model's pending-labels table ``<model>_pending_labels``, where :mod:`workloads.traffic` records
  the truth it knows for what it sent (default source; matched labels leave it, unmatched ones wait
  for a later unpack);
- a CSV file, a local Delta directory, or a three-level table name.

Merging is idempotent: re-ingesting the same labels changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from workloads.errors import MlopsError
from workloads.ports.tables import Tables, get_tables, split_name
from workloads.settings import Settings
from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, ModelSpec
from workloads.unpacking import KEYS, cast_columns

LABEL_ALIAS = "label"
_DELETE_CHUNK = 500


class LabelError(MlopsError):
    """Labels cannot be read or matched (bad source, missing key or label column)."""


def pending_labels_table(spec: ModelSpec) -> str:
    """Name of the table where known-but-not-yet-merged labels wait."""
    return f"{spec.name}_pending_labels"


@dataclass
class LabelResult:
    """What an ingest did: labels read, examples labelled (changed), labels not matched yet."""

    received: int
    matched: int
    updated: int
    unmatched: int


def record_labels(settings: Settings, spec: ModelSpec, labels: pd.DataFrame, tables: Tables | None = None) -> int:
    """Append known labels (``example_id``, ``request_id``, the label column, extras) to the pending table."""
    if labels.empty:
        return 0
    missing = [c for c in (EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, spec.label.name) if c not in labels.columns]
    if missing:
        raise LabelError(f"labels to record lack columns {missing}")
    frame = labels.copy()
    frame["recorded_at"] = datetime.now(UTC)
    (tables or get_tables(settings)).write(settings.table(pending_labels_table(spec)), frame, mode="append")
    return len(frame)


def read_label_source(source: str, tables: Tables) -> pd.DataFrame:
    """Labels from a CSV file, a local Delta directory, or a ``catalog.schema.table`` name."""
    path = Path(source).expanduser()
    if source.lower().endswith(".csv"):
        if not path.is_file():
            raise LabelError(f"label file {source} does not exist")
        return pd.read_csv(path, dtype={EXAMPLE_ID_COLUMN: str, REQUEST_ID_COLUMN: str})
    if (path / "_delta_log").is_dir():
        from deltalake import DeltaTable

        return DeltaTable(str(path)).to_pandas()
    try:
        split_name(source)
    except MlopsError:
        raise LabelError(f"label source {source!r} is not a CSV file, a Delta directory or a catalog.schema.table "
                         "name") from None
    if not tables.exists(source):
        raise LabelError(f"label table {source} does not exist")
    return tables.read(source)


def _normalise(labels: pd.DataFrame, spec: ModelSpec) -> tuple[pd.DataFrame, str]:
    label = spec.label.name if spec.label.name in labels.columns else LABEL_ALIAS
    if label not in labels.columns:
        raise LabelError(f"labels need a '{spec.label.name}' (or '{LABEL_ALIAS}') column; got {list(labels.columns)}")
    key = EXAMPLE_ID_COLUMN if EXAMPLE_ID_COLUMN in labels.columns else REQUEST_ID_COLUMN
    if key not in labels.columns:
        raise LabelError(f"labels need an '{EXAMPLE_ID_COLUMN}' or '{REQUEST_ID_COLUMN}' column to join on")
    frame = labels[[key, label]].rename(columns={label: "_label"}).dropna(subset=[key, "_label"])
    frame[key] = frame[key].astype(str)
    return frame.drop_duplicates(key, keep="last"), key


def ingest_labels(settings: Settings, spec: ModelSpec, source: str | None = None,
                  tables: Tables | None = None) -> LabelResult:
    """Merge labels into the processed table by example or request id.

    Args:
        settings: which catalog/schema and backend.
        spec: the model whose processed table gets labels.
        source: CSV path, Delta directory or table name; default the model's pending-labels table.
        tables: tables port (default: the configured backend's).
    """
    tables = tables or get_tables(settings)
    pending = settings.table(pending_labels_table(spec))
    from_pending = source is None
    if from_pending:
        if not tables.exists(pending):
            return LabelResult(0, 0, 0, 0)
        raw = tables.read(pending)
    else:
        raw = read_label_source(source, tables)
    labels, key = _normalise(raw, spec)
    processed_name = settings.table(spec.processed_table)
    if labels.empty or not tables.exists(processed_name):
        return LabelResult(len(labels), 0, 0, len(labels))
    processed = tables.read(processed_name)
    joined = processed.merge(labels, left_on=key, right_on=key, how="inner")
    matched_keys = set(joined[key])
    label_col = spec.label.name
    typed = cast_columns(joined.assign(**{label_col: joined["_label"]}), spec.processed_columns())
    current = cast_columns(joined, [spec.label])[label_col]
    changed = typed[current.isna().to_numpy() | (current != typed[label_col]).fillna(True).to_numpy()]
    updated = 0
    if not changed.empty:
        metrics = tables.merge(processed_name, changed, keys=KEYS, update=True)
        updated = int(metrics.get("num_target_rows_updated", 0))
    if from_pending and matched_keys:
        _forget(tables, pending, key, sorted(matched_keys))
    return LabelResult(len(labels), len(joined), updated, len(labels) - len(labels[labels[key].isin(matched_keys)]))


def _forget(tables: Tables, name: str, key: str, values: list[str]) -> None:
    for start in range(0, len(values), _DELETE_CHUNK):
        chunk = values[start:start + _DELETE_CHUNK]
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in chunk)
        tables.delete(name, f"{key} IN ({quoted})")
