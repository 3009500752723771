"""Late labels: ground truth merged into the processed inference table when it arrives.

Labels are keyed by ``example_id`` (``<request_id>:<row>``, one scored example) or by ``request_id``
(every example of a request). They come from:

- the model's pending-labels table ``<model>_pending_labels``, where :mod:`workloads.traffic` records
  the truth it knows for what it sent (default source; matched labels leave it, unmatched ones wait
  for a later unpack);
- a CSV file, a local Delta directory, or a three-level table name.

Ingesting is one MERGE into the processed table (see :func:`ingest_labels`): only the files holding examples
whose label changes are rewritten, and with the request times :mod:`workloads.traffic` records only the recent
rows are read. Merging is idempotent: re-ingesting the same labels changes nothing and commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from workloads.clock import as_utc
from workloads.errors import MlopsError
from workloads.ports.tables import RowFilter, SparkTables, Tables, get_tables, split_name
from workloads.settings import Settings
from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, TIMESTAMP_COLUMN, ModelSpec
from workloads.unpacking import cast_columns

LABEL_ALIAS = "label"
# When :mod:`workloads.traffic` sent the request (UTC, taken before sending): a lower bound of the ``timestamp`` the
# endpoint gives the request's examples, so a label batch only needs the processed rows from its earliest request on.
REQUESTED_AT_COLUMN = "requested_at"
RECORDED_AT_COLUMN = "recorded_at"
# How much earlier than the client's ``requested_at`` the endpoint's clock may stamp a request (clock skew between
# the client and the endpoint); the endpoint stamps after receiving, so only skew makes it earlier.
REQUEST_TIME_SLACK = timedelta(hours=1)


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
    """Append known labels (``example_id``, ``request_id``, the label column, extras such as ``requested_at``) to the
    pending table."""
    if labels.empty:
        return 0
    missing = [c for c in (EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, spec.label.name) if c not in labels.columns]
    if missing:
        raise LabelError(f"labels to record lack columns {missing}")
    frame = labels.copy()
    frame[RECORDED_AT_COLUMN] = datetime.now(UTC)
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


def _label_and_key(columns, spec: ModelSpec) -> tuple[str, str]:
    """Which column of a label source holds the label (the spec's name, else ``label``) and which the key it joins
    on (``example_id``, else ``request_id``); :class:`LabelError` naming what is missing."""
    columns = list(columns)
    label = spec.label.name if spec.label.name in columns else LABEL_ALIAS
    if label not in columns:
        raise LabelError(f"labels need a '{spec.label.name}' (or '{LABEL_ALIAS}') column; got {columns}")
    key = EXAMPLE_ID_COLUMN if EXAMPLE_ID_COLUMN in columns else REQUEST_ID_COLUMN
    if key not in columns:
        raise LabelError(f"labels need an '{EXAMPLE_ID_COLUMN}' or '{REQUEST_ID_COLUMN}' column to join on")
    return label, key


def _normalise(labels: pd.DataFrame, spec: ModelSpec) -> tuple[pd.DataFrame, str]:
    """One label per key: ``[key, <label column>]`` (typed as the processed table's label) plus ``requested_at``
    when the source has it; the last label of a key wins."""
    label, key = _label_and_key(labels.columns, spec)
    timed = [REQUESTED_AT_COLUMN] if REQUESTED_AT_COLUMN in labels.columns else []
    frame = labels[[key, label, *timed]].rename(columns={label: "_label"}).dropna(subset=[key, "_label"])
    frame[key] = frame[key].astype(str)
    if timed:  # a time that cannot be read is no time: the batch is then not bounded
        frame[REQUESTED_AT_COLUMN] = pd.to_datetime(frame[REQUESTED_AT_COLUMN], utc=True, errors="coerce")
    frame = frame.drop_duplicates(key, keep="last").reset_index(drop=True)
    frame[spec.label.name] = cast_columns(frame.rename(columns={"_label": spec.label.name}), [spec.label])[
        spec.label.name]
    return frame.drop(columns="_label"), key


def _request_time_bound(earliest, untimed: int) -> tuple[str, pd.Timestamp] | None:
    """The processed rows a label batch can match: ``timestamp >= earliest request time - REQUEST_TIME_SLACK``;
    ``None`` (no bound) when any label lacks its request time (labels from files, or recorded before it was)."""
    if untimed or earliest is None or pd.isna(earliest):
        return None
    return TIMESTAMP_COLUMN, as_utc(earliest) - REQUEST_TIME_SLACK


def ingest_labels(settings: Settings, spec: ModelSpec, source: str | None = None,
                  tables: Tables | None = None) -> LabelResult:
    """Merge labels into the processed table by example or request id.

    One MERGE with a conditional update sets the label of the matched examples whose label is missing or
    different: only the data files holding those examples are rewritten, and re-ingesting the same labels
    commits nothing. When every label carries its request time (``requested_at``, recorded by
    :mod:`workloads.traffic`), the MERGE and the lookup of matched examples read only processed rows from
    ``REQUEST_TIME_SLACK`` before the earliest request on (older files are skipped by their statistics). On
    Databricks the labels stay a Spark DataFrame (the MERGE's source) and only counts reach the driver.

    Args:
        settings: which catalog/schema and backend.
        spec: the model whose processed table gets labels.
        source: CSV path, Delta directory or table name; default the model's pending-labels table.
        tables: tables port (default: the configured backend's).
    """
    tables = tables or get_tables(settings)
    pending = settings.table(pending_labels_table(spec))
    from_pending = source is None
    if from_pending and not tables.exists(pending):
        return LabelResult(0, 0, 0, 0)
    processed_name = settings.table(spec.processed_table)
    if isinstance(tables, SparkTables):
        return _ingest_in_spark(tables, spec, source, pending, processed_name)
    labels, key = _normalise(tables.read(pending) if from_pending else read_label_source(source, tables), spec)
    if labels.empty or not tables.exists(processed_name):
        return LabelResult(len(labels), 0, 0, len(labels))
    timed = REQUESTED_AT_COLUMN in labels.columns
    since = _request_time_bound(labels[REQUESTED_AT_COLUMN].min() if timed else None,
                                int(labels[REQUESTED_AT_COLUMN].isna().sum()) if timed else 1)
    where = RowFilter.since(*since) if since else None
    label = spec.label.name
    current = tables.read(processed_name, columns=[key, label], where=where)
    hits = current[current[key].isin(labels[key])]
    new = hits[key].map(labels.set_index(key)[label])
    changed = int((hits[label].isna() | hits[label].ne(new).fillna(True)).sum())
    matched_keys = labels[key][labels[key].isin(hits[key])]
    updated = tables.update_matched(processed_name, labels[labels[key].isin(matched_keys)][[key, label]],
                                    keys=[key], columns=[label], since=since) if changed else 0
    if from_pending and len(matched_keys):
        _forget(tables, pending, key, matched_keys.to_frame())
    return LabelResult(len(labels), len(hits), updated, len(labels) - len(matched_keys))


def _spark_label_source(source: str, tables: SparkTables):
    """A label source as a Spark DataFrame: a table stays in Spark; a CSV file or Delta directory is loaded."""
    path = Path(source).expanduser()
    if not source.lower().endswith(".csv") and not (path / "_delta_log").is_dir():
        try:
            split_name(source)
        except MlopsError:
            pass  # read_label_source says what is wrong
        else:
            if not tables.exists(source):
                raise LabelError(f"label table {source} does not exist")
            return tables.frame(source)
    return tables.spark.createDataFrame(read_label_source(source, tables))


def _ingest_in_spark(tables: SparkTables, spec: ModelSpec, source: str | None, pending: str,
                     processed_name: str) -> LabelResult:
    """:func:`ingest_labels` on Spark: labels, lookup and MERGE source stay DataFrames; only single rows reach the
    driver (the pending table's version, the label counts, the match counts, the two MERGEs' metrics)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # the pending labels as of one version: a label recorded meanwhile is neither merged nor deleted by this run
    raw = tables.frame(pending, version=tables.version(pending)) if source is None else _spark_label_source(source,
                                                                                                             tables)
    label, key = _label_and_key(raw.columns, spec)
    timed = REQUESTED_AT_COLUMN in raw.columns
    labels = raw.select(F.col(key).cast("string").alias(key),
                        F.col(label).cast(spec.label.type).alias(spec.label.name),
                        *([F.col(REQUESTED_AT_COLUMN).cast("timestamp")] if timed else []),
                        *([F.col(RECORDED_AT_COLUMN)] if RECORDED_AT_COLUMN in raw.columns else [])
                        ).dropna(subset=[key, spec.label.name])
    if RECORDED_AT_COLUMN in labels.columns:  # the last recorded label of a key wins
        latest = Window.partitionBy(key).orderBy(F.col(RECORDED_AT_COLUMN).desc())
        labels = labels.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1").drop("_rank")
    else:
        labels = labels.dropDuplicates([key])
    stats = labels.agg(F.count(F.lit(1)).alias("received"),
                       *([F.unix_micros(F.min(REQUESTED_AT_COLUMN)).alias("earliest_us"),
                          F.sum(F.col(REQUESTED_AT_COLUMN).isNull().cast("int")).alias("untimed")] if timed else [])
                       ).collect()[0].asDict()
    received = int(stats["received"])
    if received == 0 or not tables.exists(processed_name):
        return LabelResult(received, 0, 0, received)
    earliest = stats.get("earliest_us")
    since = _request_time_bound(pd.Timestamp(earliest, unit="us", tz="UTC") if earliest is not None else None,
                                int(stats.get("untimed") or 0) if timed else 1)
    where = RowFilter.since(*since) if since else None
    target = tables.frame(processed_name, [key, spec.label.name], where=where)
    new = F.col("_new")
    current = F.col(spec.label.name)
    counts = (target.join(labels.select(key, F.col(spec.label.name).alias("_new")), key, "inner")
              .agg(F.count(F.lit(1)).alias("matched"), F.countDistinct(key).alias("matched_keys"),
                   F.sum((current.isNull() | (current != new)).cast("int")).alias("changed"))
              ).collect()[0].asDict()
    matched, matched_keys, changed = (int(counts[c] or 0) for c in ("matched", "matched_keys", "changed"))
    updated = tables.update_matched(processed_name, labels.select(key, spec.label.name), keys=[key],
                                    columns=[spec.label.name], since=since) if changed else 0
    if source is None and matched_keys:
        # a new read of the matched keys: the MERGE has committed a new version of the processed table since
        _forget(tables, pending, key, labels.join(tables.frame(processed_name, [key], where=where), key,
                                                  "left_semi").select(key))
    return LabelResult(received, matched, updated, received - matched_keys)


def _forget(tables: Tables, name: str, key: str, matched) -> None:
    """Remove the labels whose ``key`` matched (pandas or Spark rows of ``key``) from the pending table."""
    tables.delete_keys(name, matched, key)
