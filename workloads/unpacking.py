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
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from workloads.errors import MlopsError
from workloads.ports.tables import Tables, get_tables
from workloads.serving.champion import version_of_entity
from workloads.serving.payload_log import REQUEST_ID as PAYLOAD_REQUEST_ID
from workloads.serving.payloads import PayloadError, conform_columns, decode_body, parse_response, raw_columns
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
def cast_columns(frame: pd.DataFrame, columns: list[Column]) -> pd.DataFrame:
    """The frame restricted to ``columns`` with nullable dtypes matching their Spark types."""
    out = {}
    for col in columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if col.type == "timestamp":
            out[col.name] = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
        elif col.type == "date":
            out[col.name] = pd.to_datetime(values).dt.date
        elif col.type == "string":
            out[col.name] = values.astype(object).where(values.notna(), None)
        else:
            out[col.name] = pd.array(values.astype(object).where(values.notna(), None).tolist(),
                                     dtype=_PANDAS_TYPES[col.type])
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


def unpack_payload(payload: pd.DataFrame, spec: ModelSpec, version_of: VersionOf = version_of_entity) -> UnpackBatch:
    """Turn payload rows into processed rows (pure pandas; the shared transform of both runtimes)."""
    batch = UnpackBatch(frame=pd.DataFrame(), payload_rows=len(payload))
    features: dict[str, list[np.ndarray]] = {name: [] for name in spec.feature_names}
    extra: dict[str, list] = {spec.prediction.name: [], MODEL_ID_COLUMN: [], TIMESTAMP_COLUMN: [],
                              REQUEST_ID_COLUMN: [], EXAMPLE_ID_COLUMN: []}
    if "request_time" in payload.columns and len(payload) > 1:
        payload = payload.sort_values("request_time", kind="stable")
    for row in payload.itertuples(index=False):
        if _missing(row.status_code) or int(row.status_code) != 200:
            batch.skipped["status"] += 1
            continue
        if _has_codes(row.logging_error_codes) or _missing(row.request) or _missing(row.response):
            batch.skipped["logging_error"] += 1
            continue
        try:
            columns = conform_columns(raw_columns(decode_body(row.request), spec.feature_names)[0], spec)
        except PayloadError:
            batch.skipped["unparseable"] += 1
            continue
        n = len(next(iter(columns.values())))
        predictions = parse_response(row.response)
        if predictions is None or len(predictions) != n:
            batch.skipped["unparseable"] += 1
            continue
        request_id = getattr(row, PAYLOAD_REQUEST_ID) if _missing(row.client_request_id) else row.client_request_id
        for name, values in columns.items():
            features[name].append(values)
        extra[spec.prediction.name].extend(predictions)
        extra[MODEL_ID_COLUMN].extend([version_of(row.served_entity_id)] * n)
        extra[TIMESTAMP_COLUMN].extend([row.request_time] * n)
        extra[REQUEST_ID_COLUMN].extend([request_id] * n)
        extra[EXAMPLE_ID_COLUMN].extend(example_id(request_id, i) for i in range(n))
    combined = pd.DataFrame({
        **{name: np.concatenate(parts) if parts else [] for name, parts in features.items()},
        **extra,
    })
    if not combined.empty:
        combined[TIMESTAMP_COLUMN] = pd.to_datetime(combined[TIMESTAMP_COLUMN], utc=True)
    # A client retrying with the same client_request_id is one request: keep its first logged answer.
    combined = combined.drop_duplicates(KEYS, keep="first")
    batch.frame = cast_columns(combined, spec.processed_columns())
    return batch


def unpack_spark(payload_sdf, spec: ModelSpec):
    """The same transform on a Spark DataFrame of payload rows (runs per partition with ``mapInPandas``)."""

    def transform(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield unpack_payload(batch, spec).frame

    return payload_sdf.mapInPandas(transform, schema=spark_schema(spec))


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


def _watermark(tables: Tables, name: str, source: str) -> int | None:
    if not tables.exists(name):
        return None
    state = tables.read(name)
    state = state[state["source_table"] == source]
    return None if state.empty else int(state["processed_version"].iloc[0])


def unpack(settings: Settings, spec: ModelSpec, tables: Tables | None = None,
           version_of: VersionOf | None = None) -> UnpackResult:
    """Unpack the payload rows added since the last run into the processed table (exactly once).

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
    processed_name = settings.table(spec.processed_table)
    state_name = settings.table(state_table(spec))
    if not tables.exists(payload_name):
        raise UnpackError(f"payload table {payload_name} does not exist yet; serve the model and send traffic "
                          f"first (mlops serve --model {spec.name}; mlops traffic --model {spec.name})")
    current = tables.version(payload_name)
    last = _watermark(tables, state_name, payload_name)
    if last is not None and last >= current:
        return UnpackResult(0, 0, dict.fromkeys(SKIP_REASONS, 0), last, current)
    payload = tables.read(payload_name, version=current)
    if last is not None:
        seen = tables.read(payload_name, columns=[PAYLOAD_REQUEST_ID], version=last)[PAYLOAD_REQUEST_ID]
        payload = payload[~payload[PAYLOAD_REQUEST_ID].isin(set(seen))]
    # Databricks' served-entity ids resolve through the system table; the local endpoint's ids (and any id the
    # table lacks) through our served-entity naming.
    version_of = version_of or served_entity_resolver(tables)
    batch = unpack_payload(payload, spec, version_of)
    written = 0
    if not batch.frame.empty:
        metrics = tables.merge(processed_name, batch.frame, keys=KEYS, update=False)
        written = int(metrics.get("num_target_rows_inserted", 0))
    tables.merge(state_name, pd.DataFrame({
        "source_table": [payload_name],
        "processed_version": [current],
        "payload_rows": [batch.payload_rows],
        "examples_written": [written],
        "updated_at": [datetime.now(UTC)],
    }), keys=["source_table"], update=True)
    return UnpackResult(batch.payload_rows, written, batch.skipped, last, current)
