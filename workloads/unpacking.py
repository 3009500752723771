"""Unpacking: payload (inference) table rows -> the processed inference table, exactly once.

One payload row is one request; it becomes one processed row per scored example, with the features,
the prediction, an empty label (filled later by :mod:`workloads.labels`), the model version that
served it, the request time, ``request_id`` (the client's ``client_request_id``, else the
``databricks_request_id``) and ``example_id`` (``<request_id>:<row>``). Rows with a non-200 status,
a logging error or an unreadable body are counted and skipped.

Incremental and exactly once: a state table keeps the payload table's Delta version already
unpacked (the watermark). A run unpacks the rows added since then, MERGEs them insert-only on
``(request_id, example_id)``, and only then advances the watermark. A crash between the MERGE and the
watermark makes the next run redo that range, and the insert-only MERGE turns the redo into a no-op.

The row transform :func:`unpack_payload` is plain pandas; on Databricks it runs per partition through
Spark ``mapInPandas`` (:func:`unpack_spark`), so both runtimes share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, pairwise

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workloads.errors import MlopsError
from workloads.ports.tables import Tables, get_tables
from workloads.serving.champion import version_of_entity
from workloads.serving.payload_log import REQUEST_ID as PAYLOAD_REQUEST_ID
from workloads.serving.payloads import (
    PayloadError,
    bulk_feature_rows,
    bulk_predictions,
    bulk_supported,
    conform_columns,
    decode_body,
    gc_paused,
    invalid_values,
    parse_response,
    raw_columns,
)
from workloads.settings import Settings
from workloads.specs import (
    EXAMPLE_ID_COLUMN,
    MODEL_ID_COLUMN,
    REQUEST_ID_COLUMN,
    TIMESTAMP_COLUMN,
    Column,
    ModelSpec,
)

KEYS = [REQUEST_ID_COLUMN, EXAMPLE_ID_COLUMN]
SKIP_REASONS = ("status", "logging_error", "unparseable")
VersionOf = Callable[[str | None], str | None]


class UnpackError(MlopsError):
    """Unpacking cannot run (e.g. the payload table does not exist yet)."""


def state_table(spec: ModelSpec) -> str:
    """Name of the table holding the unpack watermark of a model's payload table."""
    return f"{spec.name}_unpack_state"


def example_id(request_id: str, row: int) -> str:
    """Id of the ``row``-th example of a request (what labels are joined on)."""
    return f"{request_id}:{row}"


_PANDAS_TYPES = {"bigint": "Int64", "int": "Int32", "double": "Float64", "float": "Float32",
                 "boolean": "boolean", "string": "object"}
_NUMERIC_KINDS = frozenset({"integer", "floating", "mixed-integer-float", "empty"})


def _nullable_numbers(values: pd.Series, col_type: str):
    """``values`` as a nullable Int64/Float64 array without a Python-object round trip, or ``None`` if that is unsafe.

    Gives exactly what the generic conversion in :func:`cast_columns` gives (same values, same nulls); anything else
    (other types, strings, booleans, fractional numbers for an integer column) is left to it.
    """
    if col_type not in ("bigint", "double"):
        return None
    array = values.to_numpy()
    if array.dtype == object:
        kind = pd.api.types.infer_dtype(array, skipna=True)
        if kind not in _NUMERIC_KINDS:
            return None
        missing = pd.isna(array)
        if col_type == "bigint" and kind == "integer" and not missing.any():
            try:
                return pd.array(array.astype(np.int64), dtype="Int64")
            except (OverflowError, TypeError, ValueError):
                return None
        try:
            array = np.where(missing, np.nan, array).astype(np.float64)
        except (TypeError, ValueError):
            return None
    if array.dtype.kind == "i" and col_type == "bigint":
        return pd.array(array.astype(np.int64), dtype="Int64")
    if array.dtype.kind not in "fi":
        return None
    floats = array.astype(np.float64)
    missing = np.isnan(floats)
    if col_type == "double":
        return pd.arrays.FloatingArray(np.where(missing, 0.0, floats), missing)
    whole = np.where(missing, 0.0, floats)
    if not ((whole == np.floor(whole)) & (np.abs(whole) < 2.0**63)).all():
        return None
    return pd.arrays.IntegerArray(whole.astype(np.int64), missing)


def _is_arrow_str(dtype) -> bool:
    """Is ``dtype`` pandas' Arrow-backed ``str`` with NaN for missing (pandas 3's default string dtype), the dtype
    :func:`_strings` gives? Not ``string[pyarrow]`` (``pd.NA`` for missing). Written without pandas 3's
    ``StringDtype(na_value=...)`` argument: the job runtime's pandas 2 lacks it (there the strings stay object)."""
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" and dtype.na_value is not pd.NA


def _strings(values: pd.Series) -> pd.Series:
    """A string column as pandas' Arrow-backed ``str`` dtype, the dtype a Delta table's strings read back as: one pass
    over the values (``None``/NaN become missing), and the frame's write to Delta takes the Arrow data as it is. Values
    that are not all strings keep the object column (``None`` for missing) they had."""
    if _is_arrow_str(values.dtype):
        return values
    try:
        strings = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return values.astype(object).where(values.notna(), None)
    return pd.Series(strings.to_pandas().array, index=values.index, name=values.name)


def _cast(values: pd.Series, col_type: str):
    """One column with the nullable dtype matching its Spark type."""
    if col_type == "timestamp":
        return pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
    if col_type == "date":
        return pd.to_datetime(values).dt.date
    if col_type == "string":
        return _strings(values)
    fast = _nullable_numbers(values, col_type)
    return fast if fast is not None else pd.array(values.astype(object).where(values.notna(), None).tolist(),
                                                  dtype=_PANDAS_TYPES[col_type])


def cast_columns(frame: pd.DataFrame, columns: list[Column]) -> pd.DataFrame:
    """The frame restricted to ``columns`` with nullable dtypes matching their Spark types."""
    out = {}
    for col in columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        out[col.name] = _cast(values, col.type)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def spark_schema(spec: ModelSpec) -> str:
    """DDL schema of the processed table (for ``mapInPandas``)."""
    return ", ".join(f"`{c.name}` {c.type}" for c in spec.processed_columns())


@dataclass
class UnpackBatch:
    """Processed rows from some payload rows, and how many payload rows were skipped and why."""

    frame: pd.DataFrame
    payload_rows: int
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (list, np.ndarray)) and bool(pd.isna(value)))


def _has_codes(codes) -> bool:
    return not _missing(codes) and len(codes) > 0


def _codes_present(codes: pd.Series) -> np.ndarray:
    """Per payload row: does ``logging_error_codes`` hold any code (Arrow list columns without a Python loop)."""
    if isinstance(codes.dtype, pd.ArrowDtype) and pa.types.is_list(codes.dtype.pyarrow_dtype):
        lengths = pc.fill_null(pc.list_value_length(pa.array(codes.array)), 0)
        return np.asarray(lengths.to_numpy()) > 0
    return np.fromiter((_has_codes(c) for c in codes), dtype=bool, count=len(codes))


def _raw_texts(texts: pd.Series) -> np.ndarray:
    """A string column's values as the parsers take them: UTF-8 ``bytes`` straight from Arrow when the column is
    Arrow-backed (no Python ``str`` decoding, which costs as much as the parse), else the values themselves."""
    if isinstance(texts.dtype, (pd.ArrowDtype, pd.StringDtype)) and getattr(texts.dtype, "storage", "pyarrow") \
            in ("pyarrow", "pyarrow_numpy"):
        try:
            arrow = pa.chunked_array(pa.array(texts.array))
            return np.asarray(arrow.cast(pa.large_binary()).to_numpy(zero_copy_only=False), dtype=object)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            pass
    return texts.to_numpy()


def _request_one(raw_request, raw_response, spec: ModelSpec) -> tuple[dict[str, np.ndarray], list] | None:
    """The reference per-request parse: feature columns and predictions, or ``None`` if unusable."""
    try:
        columns = conform_columns(raw_columns(decode_body(raw_request), spec.feature_names)[0], spec)
    except PayloadError:
        return None
    predictions = parse_response(raw_response)
    if predictions is None or len(predictions) != len(next(iter(columns.values()))):
        return None
    return columns, predictions


def unpack_payload(payload: pd.DataFrame, spec: ModelSpec, version_of: VersionOf = version_of_entity) -> UnpackBatch:
    """Turn payload rows into processed rows (pure pandas; the shared transform of both runtimes).

    Bodies are parsed in bulk (orjson, one 2-D array of feature values per request format, types checked per column);
    a body the bulk path cannot take whole goes through the per-request reference parser, so every row gets the same
    verdict and the same values as when requests are parsed one at a time.
    """
    with gc_paused():  # millions of short-lived JSON containers; none of them cyclic
        return _unpack_payload(payload, spec, version_of)


def _status_not_ok(status: pd.Series) -> np.ndarray:
    """Per payload row: no status, or not 200 (``int(status) != 200``, vectorised for numeric columns)."""
    if pd.api.types.is_numeric_dtype(status.dtype) and not pd.api.types.is_bool_dtype(status.dtype):
        numbers = status.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.isnan(numbers) | (np.trunc(numbers) != 200)
    return np.fromiter((_missing(s) or int(s) != 200 for s in status), dtype=bool, count=len(status))


def _unpack_payload(payload: pd.DataFrame, spec: ModelSpec, version_of: VersionOf) -> UnpackBatch:
    batch = UnpackBatch(frame=pd.DataFrame(), payload_rows=len(payload))
    if "request_time" in payload.columns and len(payload) > 1:
        payload = payload.sort_values("request_time", kind="stable")
    payload = payload.reset_index(drop=True)
    status_bad = _status_not_ok(payload["status_code"])
    log_bad = ~status_bad & (_codes_present(payload["logging_error_codes"]) | payload["request"].isna().to_numpy()
                             | payload["response"].isna().to_numpy())
    batch.skipped["status"] = int(status_bad.sum())
    batch.skipped["logging_error"] = int(log_bad.sum())
    usable = np.flatnonzero(~status_bad & ~log_bad)
    requests = _raw_texts(payload["request"])[usable]
    responses = _raw_texts(payload["response"])[usable]

    # Bulk path: positions (into ``usable``) of the requests it takes, their row counts, values and predictions.
    one_by_one: list[int] = list(range(len(usable)))
    fast = np.empty(0, dtype=np.int64)
    counts = np.empty(0, dtype=np.int64)
    values = np.empty((0, len(spec.features)), dtype=object)
    predictions = np.empty(0, dtype=object)
    if bulk_supported(spec) and len(usable):
        rows = bulk_feature_rows(requests, spec)
        row_request = np.repeat(np.arange(len(rows.requests)), rows.counts)
        bad_request = np.zeros(len(rows.requests), dtype=bool)
        for j, col in enumerate(spec.features):
            bad_rows = invalid_values(rows.values[:, j], col.type)
            if bad_rows.any():
                bad_request[np.unique(row_request[bad_rows])] = True
        answers, matched = bulk_predictions(responses[rows.requests], rows.counts)
        keep = matched & ~bad_request
        if not keep.all():  # drop the rows of requests handed to the reference path, and their predictions
            answers = list(chain.from_iterable(
                answers_of for answers_of, kept in zip(_split(answers, rows.counts[matched]), keep[matched],
                                                       strict=True) if kept))
            values = rows.values[np.repeat(keep, rows.counts)]
        else:
            values = rows.values
        fast, counts = rows.requests[keep], rows.counts[keep]
        predictions = np.fromiter(answers, dtype=object, count=len(answers))
        one_by_one = sorted(set(rows.others) | set(rows.requests[~keep].tolist()))

    slow_done: list[tuple[int, dict[str, np.ndarray], list]] = []
    for i in one_by_one:
        parsed = _request_one(requests[i], responses[i], spec)
        if parsed is None:
            batch.skipped["unparseable"] += 1
        else:
            slow_done.append((i, *parsed))
    if slow_done:  # merge both paths back into payload order
        slow_values = np.empty((sum(len(p) for _, _, p in slow_done), len(spec.features)), dtype=object)
        for j, col in enumerate(spec.features):
            slow_values[:, j] = np.fromiter(chain.from_iterable(c[col.name] for _, c, _ in slow_done), dtype=object,
                                            count=len(slow_values))
        slow_positions = np.array([i for i, _, _ in slow_done], dtype=np.int64)
        slow_counts = np.array([len(p) for _, _, p in slow_done], dtype=np.int64)
        by_request = np.argsort(np.concatenate([fast, slow_positions]), kind="stable")
        row_order = np.argsort(np.repeat(np.concatenate([fast, slow_positions]),
                                         np.concatenate([counts, slow_counts])), kind="stable")
        values = np.concatenate([values, slow_values])[row_order]
        slow_predictions = list(chain.from_iterable(p for _, _, p in slow_done))
        predictions = np.concatenate([predictions, np.fromiter(slow_predictions, dtype=object,
                                                               count=len(slow_predictions))])[row_order]
        fast = np.concatenate([fast, slow_positions])[by_request]
        counts = np.concatenate([counts, slow_counts])[by_request]

    rows_of = usable[fast]  # payload row of each unpacked request
    client_ids = payload["client_request_id"].to_numpy()[rows_of]
    request_ids = np.where(pd.isna(client_ids), payload[PAYLOAD_REQUEST_ID].to_numpy()[rows_of], client_ids)
    cache: dict = {}
    versions = np.array([cache[e] if e in cache else cache.setdefault(e, version_of(e))
                         for e in payload["served_entity_id"].to_numpy()[rows_of]], dtype=object)
    example_ids = [example_id(r, i) for r, n in zip(request_ids, counts, strict=True) for i in range(n)]
    # Object columns stay object (no string-dtype inference and back); _cast gives every column its type.
    columns = {
        **{col.name: pd.Series(values[:, j], dtype=object) for j, col in enumerate(spec.features)},
        spec.prediction.name: pd.Series(predictions, dtype=object),
        MODEL_ID_COLUMN: pd.Series(np.repeat(versions, counts), dtype=object),
        TIMESTAMP_COLUMN: payload["request_time"].take(np.repeat(rows_of, counts)).reset_index(drop=True),
        REQUEST_ID_COLUMN: pd.Series(np.repeat(request_ids, counts), dtype=object),
        EXAMPLE_ID_COLUMN: pd.Series(example_ids, dtype=object),
    }
    if example_ids:
        columns[TIMESTAMP_COLUMN] = pd.to_datetime(columns[TIMESTAMP_COLUMN], utc=True)
    # A client retrying with the same client_request_id is one request: keep its first logged answer.
    if len(set(request_ids.tolist())) < len(request_ids):
        first = ~pd.DataFrame({k: columns[k] for k in KEYS}).duplicated(keep="first").to_numpy()
        columns = {name: series[first].reset_index(drop=True) for name, series in columns.items()}
    rows = len(columns[EXAMPLE_ID_COLUMN])
    batch.frame = pd.DataFrame({col.name: _cast(columns.get(col.name, pd.Series([None] * rows, dtype=object)),
                                                col.type) for col in spec.processed_columns()})
    return batch


def _split(values: list, counts: np.ndarray) -> list[list]:
    """``values`` cut into consecutive pieces of ``counts`` items."""
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [values[a:b] for a, b in pairwise(bounds)]


SKIPPED_REASON = "_unpack_skipped"  # in the tagged Spark output: which count a statistics row carries
SKIPPED_COUNT = "_unpack_skipped_rows"


def _tagged_transform(spec: ModelSpec, version_of: VersionOf):
    """``mapInPandas`` function: processed rows, then one statistics row per count (payload rows, skip reasons)."""
    columns = [c.name for c in spec.processed_columns()]

    def transform(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for payload in batches:
            batch = unpack_payload(payload, spec, version_of)
            counts = {"payload_rows": batch.payload_rows, **batch.skipped}
            stats = pd.DataFrame({SKIPPED_REASON: list(counts), SKIPPED_COUNT: list(counts.values())})
            yield pd.concat([batch.frame.assign(**{SKIPPED_REASON: None, SKIPPED_COUNT: None}),
                             stats.reindex(columns=[*columns, SKIPPED_REASON, SKIPPED_COUNT])], ignore_index=True)

    return transform


def _unpack_spark_tagged(payload_sdf, spec: ModelSpec, version_of: VersionOf):
    schema = f"{spark_schema(spec)}, `{SKIPPED_REASON}` string, `{SKIPPED_COUNT}` bigint"
    return payload_sdf.mapInPandas(_tagged_transform(spec, version_of), schema=schema)


def _processed_rows(tagged, spec: ModelSpec):
    """The processed rows of a tagged output, one per key: a retried request keeps its first logged answer."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rows = tagged.where(F.col(SKIPPED_REASON).isNull()).drop(SKIPPED_REASON, SKIPPED_COUNT)
    first = Window.partitionBy(*KEYS).orderBy(F.col(TIMESTAMP_COLUMN).asc())
    return (rows.withColumn("_unpack_rank", F.row_number().over(first)).where(F.col("_unpack_rank") == 1)
            .drop("_unpack_rank").select(*[c.name for c in spec.processed_columns()]))


def unpack_spark(payload_sdf, spec: ModelSpec, version_of: VersionOf = version_of_entity):
    """The same transform on a Spark DataFrame of payload rows (runs per partition with ``mapInPandas``).

    Rows stay in Spark: nothing is collected on the driver. Duplicate keys across partitions (a client retrying a
    ``client_request_id``) keep the earliest answer, as :func:`unpack_payload` does within one batch.
    """
    return _processed_rows(_unpack_spark_tagged(payload_sdf, spec, version_of), spec)


SERVED_ENTITIES_TABLE = "system.serving.served_entities"


def served_entity_resolver(tables: Tables, name: str = SERVED_ENTITIES_TABLE) -> VersionOf:
    """Map Databricks' opaque ``served_entity_id`` to the model version via the served-entities system table.

    Falls back to reading the version from our served entity naming (``<model>_model-<version>``), which is
    what the local endpoint logs.
    """
    versions: dict[str, str] = {}
    if tables.exists(name):
        entities = tables.read(name, columns=["served_entity_id", "entity_version"]).dropna()
        versions = dict(zip(entities["served_entity_id"].astype(str), entities["entity_version"].astype(str),
                            strict=True))

    def version_of(served_entity_id: str | None) -> str | None:
        if served_entity_id is not None and str(served_entity_id) in versions:
            return versions[str(served_entity_id)]
        return version_of_entity(served_entity_id)

    return version_of


@dataclass
class UnpackResult:
    """What one unpack run did."""

    payload_rows: int
    examples_written: int
    skipped: dict[str, int]
    from_version: int | None
    to_version: int | None


def unpack_app_id(payload_name: str) -> str:
    """The Delta application id under which unpack commits to the processed table the payload versions it unpacked
    (its ``txn`` action: the watermark, in the same commit as the rows)."""
    return f"mlops-unpack:{payload_name}"


@dataclass(frozen=True)
class UnpackState:
    """Unpack's progress on one payload table (a row of the state table).

    Attributes:
        processed: the payload version whose rows are all in the processed table (``None``: none yet).
        pending: the payload version a run set out to unpack up to and may not have finished; the next run finishes
            exactly that range first (its append is idempotent, so a range already committed is not written twice).
    """

    processed: int | None
    pending: int | None


def _state(tables: Tables, name: str, source: str) -> UnpackState:
    if not tables.exists(name):
        return UnpackState(None, None)
    state = tables.read(name)
    state = state[state["source_table"] == source]
    if state.empty:
        return UnpackState(None, None)
    row = state.iloc[0]

    def version(column):
        return None if column not in state.columns or pd.isna(row[column]) else int(row[column])

    return UnpackState(version("processed_version"), version("pending_version"))


def _save_state(tables: Tables, name: str, source: str, state: UnpackState, payload_rows: int = 0,
                written: int = 0) -> None:
    tables.merge(name, pd.DataFrame({
        "source_table": [source],
        "processed_version": pd.array([state.processed], dtype="Int64"),
        "pending_version": pd.array([state.pending], dtype="Int64"),
        "payload_rows": [payload_rows],
        "examples_written": [written],
        "updated_at": [datetime.now(UTC)],
    }), keys=["source_table"], update=True)


# What unpacking reads of a payload row (the AI Gateway inference table has more columns).
PAYLOAD_READ_COLUMNS = [PAYLOAD_REQUEST_ID, "client_request_id", "request_time", "status_code", "request", "response",
                        "served_entity_id", "logging_error_codes"]
# A client retrying a client_request_id within this long of its first logged answer is the same request (its examples
# are not inserted twice); the processed-table MERGE looks up existing keys only this far back from the new rows, so
# its cost follows the new rows, not the table.
RETRY_WINDOW = timedelta(days=1)


def unpack(settings: Settings, spec: ModelSpec, tables: Tables | None = None,
           version_of: VersionOf | None = None) -> UnpackResult:
    """Unpack the payload rows added since the last run into the processed table (exactly once).

    Reads only the payload rows inserted after the watermark (:meth:`~workloads.ports.tables.LocalTables.read_changes`:
    the data files added since that version locally; the change data feed or a version anti join in Spark on
    Databricks, where the rows never leave Spark and the transform runs per partition) and appends their examples.

    Exactly once through Delta's idempotent commits: the append of a payload range ``(processed, pending]`` carries the
    application transaction ``(unpack_app_id(payload), pending)`` in the same commit as its rows
    (:meth:`~workloads.ports.tables.LocalTables.append_once`), and a table that already holds that transaction skips
    the append. A run first records ``pending`` in the state table, appends, then moves ``processed`` to it; a run that
    finds ``pending`` ahead of ``processed`` (a crash anywhere in between, a kill between the data files and their
    commit included) redoes exactly that range, which commits once. No old processed row is read to deduplicate. A
    client retrying a ``client_request_id`` is one request: of a retry's rows only those whose request id the processed
    table lacks are appended (the lookup is bounded by the new rows' ids, within :data:`RETRY_WINDOW`).

    Args:
        settings: which catalog/schema and backend.
        spec: the model whose payload table is unpacked.
        tables: tables port (default: the configured backend's).
        version_of: maps a payload row's ``served_entity_id`` to a model version (default: the
            Databricks served-entities system table where it exists, else our entity naming).

    Raises:
        UnpackError: the payload table does not exist (nothing was ever served and logged).
    """
    tables = tables or get_tables(settings)
    payload_name = settings.table(spec.payload_table)
    state_name = settings.table(state_table(spec))
    if not tables.exists(payload_name):
        raise UnpackError(f"payload table {payload_name} does not exist yet; serve the model and send traffic "
                          f"first (mlops serve --model {spec.name}; mlops traffic --model {spec.name})")
    state = _state(tables, state_name, payload_name)
    first = state.processed
    # Databricks' served-entity ids resolve through the system table; the local endpoint's ids (and any id the
    # table lacks) through our served-entity naming.
    resolve = version_of
    totals = UnpackResult(0, 0, dict.fromkeys(SKIP_REASONS, 0), first, first)
    ranges = []
    if state.pending is not None and (state.processed is None or state.pending > state.processed):
        ranges.append(state.pending)  # an interrupted run's range, exactly as it was
    current = tables.version(payload_name)
    if current > max([v for v in (state.processed, *ranges) if v is not None], default=-1):
        ranges.append(current)
    for up_to in ranges:
        if up_to != state.pending:
            _save_state(tables, state_name, payload_name, UnpackState(state.processed, up_to))
        resolve = resolve or served_entity_resolver(tables)
        payload_rows, skipped, written = _unpack_range(settings, spec, tables, state.processed, up_to, resolve)
        state = UnpackState(up_to, None)
        _save_state(tables, state_name, payload_name, state, payload_rows, written)
        totals.payload_rows += payload_rows
        totals.examples_written += written
        totals.skipped = {k: totals.skipped[k] + skipped.get(k, 0) for k in SKIP_REASONS}
        totals.to_version = up_to
    return totals


def _unpack_range(settings: Settings, spec: ModelSpec, tables: Tables, after: int | None, up_to: int,
                  version_of: VersionOf) -> tuple[int, dict[str, int], int]:
    """Unpack the payload rows inserted in versions ``(after, up_to]`` and append their new examples in one commit
    carrying the application transaction ``up_to``; returns (payload rows, skipped per reason, examples written)."""
    payload_name = settings.table(spec.payload_table)
    processed_name = settings.table(spec.processed_table)
    app_id = unpack_app_id(payload_name)
    changes = tables.read_changes(payload_name, key=PAYLOAD_REQUEST_ID, after_version=after,
                                  columns=PAYLOAD_READ_COLUMNS, up_to_version=up_to)
    if not isinstance(changes.rows, pd.DataFrame):
        return _unpack_in_spark(tables, changes.rows, spec, processed_name, version_of, app_id, up_to)
    batch = unpack_payload(changes.rows, spec, version_of)
    frame = batch.frame
    if not frame.empty:
        frame = tables.new_keys(processed_name, frame, REQUEST_ID_COLUMN,
                                since=_retry_bound(frame[TIMESTAMP_COLUMN].min()))
    written = tables.append_once(processed_name, frame, app_id, up_to, properties=spec.processed_table_properties())
    return batch.payload_rows, batch.skipped, written


def _retry_bound(earliest) -> tuple[str, pd.Timestamp] | None:
    """The processed-table MERGE's lookup bound: existing keys can only be this recent (see :data:`RETRY_WINDOW`)."""
    return None if earliest is None or pd.isna(earliest) else (TIMESTAMP_COLUMN, pd.Timestamp(earliest) - RETRY_WINDOW)


def _unpack_in_spark(tables: Tables, payload_sdf, spec: ModelSpec, processed_name: str, version_of: VersionOf,
                     app_id: str, up_to: int) -> tuple[int, dict[str, int], int]:
    """Unpack a Spark DataFrame of new payload rows into the processed table without collecting them.

    The driver receives only bounded results: the statistics rows (one per count), the earliest request time, and
    the row counts of the idempotent append.
    """
    from pyspark.sql import functions as F

    tagged = _unpack_spark_tagged(payload_sdf, spec, version_of)
    stats = (tagged.where(F.col(SKIPPED_REASON).isNotNull()).groupBy(SKIPPED_REASON)
             .agg(F.sum(SKIPPED_COUNT).alias("rows")).collect())
    counts = {row[SKIPPED_REASON]: int(row["rows"]) for row in stats}
    skipped = {reason: counts.get(reason, 0) for reason in SKIP_REASONS}
    # epoch microseconds: independent of the session time zone that collected timestamps would be naive in
    earliest = payload_sdf.agg(F.unix_micros(F.min("request_time")).alias("us")).collect()[0]["us"]
    rows = _processed_rows(tagged, spec)
    if earliest is not None:
        rows = tables.new_keys(processed_name, rows, REQUEST_ID_COLUMN,
                               since=_retry_bound(pd.Timestamp(int(earliest), unit="us", tz="UTC")))
    written = tables.append_once(processed_name, rows, app_id, up_to, properties=spec.processed_table_properties())
    return counts.get("payload_rows", 0), skipped, written
