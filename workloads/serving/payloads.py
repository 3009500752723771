"""Request payloads: the four Databricks/MLflow JSON input formats, to and from a feature frame.

Shared by the endpoint (validate what a client sent) and by unpacking (re-read what was logged), so
the local server, the Databricks inference table and the Spark transform all agree on one parser.

Formats (as Databricks Model Serving and the MLflow scoring server accept them):

- ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (``index`` ignored);
- ``dataframe_records``: ``[{"col": value, ...}, ...]``;
- ``instances``: rows, as objects or as arrays in the spec's feature order;
- ``inputs``: columns ``{"col": [values]}`` or rows like ``instances``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workloads.errors import MlopsError
from workloads.specs import ModelSpec

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# Body keys that are not model input, as the query API documents them (databricks-sdk ``serving_endpoints.query``,
# https://docs.databricks.com/api/workspace/servingendpoints/query): ``client_request_id`` (recorded in the inference
# table), ``usage_context`` (recorded in the usage tracking table), ``extra_params`` (read by foundation/external
# models only), and MLflow's inference ``params``. MLflow's scoring server ignores any other key beside the one input
# format; here an undocumented key is an error instead, so a misspelt one is not silently dropped.
ENVELOPE_KEYS = ("client_request_id", "usage_context", "extra_params", "params")
_INT_TYPES = ("bigint", "int")
_FLOAT_TYPES = ("double", "float")


class PayloadError(MlopsError):
    """A request body cannot be scored; ``error_code`` and ``status_code`` say how to answer it."""

    def __init__(self, message: str, error_code: str = "BAD_REQUEST", status_code: int = 400):
        super().__init__(message)
        self.error_code = error_code
        self.status_code = status_code


@dataclass(frozen=True)
class ParsedRequest:
    """A parsed request body: the input rows, which format carried them, and the client's request id."""

    frame: pd.DataFrame
    format: str
    client_request_id: str | None


def decode_body(raw: bytes | str) -> dict:
    """JSON object from a request body; empty or malformed bodies raise :class:`PayloadError`."""
    if raw is None or len(raw) == 0 or (isinstance(raw, (bytes, str)) and not raw.strip()):
        raise PayloadError("request body is empty; send a JSON object with one of " + ", ".join(FORMATS),
                           "MALFORMED_REQUEST")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"request body is not valid JSON: {exc}", "MALFORMED_REQUEST") from None
    except RecursionError:
        raise PayloadError("request body nests JSON too deeply to parse; send a flat object with one of "
                           + ", ".join(FORMATS), "MALFORMED_REQUEST") from None
    if not isinstance(body, dict):
        raise PayloadError(f"request body must be a JSON object with one of {', '.join(FORMATS)}, "
                           f"got a JSON {type(body).__name__}", "MALFORMED_REQUEST")
    return body


Columns = dict[str, list]


def _rows_columns(rows: Any, key: str, feature_names: list[str]) -> Columns:
    if not isinstance(rows, list):
        raise PayloadError(f"'{key}' must be a list of rows, got {type(rows).__name__}")
    if all(isinstance(r, dict) for r in rows):
        columns: list[str] = []
        for row in rows:
            for name in row:
                if name not in columns:
                    columns.append(name)
        return {c: [row.get(c) for row in rows] for c in columns}
    if all(isinstance(r, list) for r in rows):
        bad = [i for i, r in enumerate(rows) if len(r) != len(feature_names)]
        if bad:
            raise PayloadError(f"'{key}' row {bad[0]} has {len(rows[bad[0]])} values; positional rows need "
                               f"{len(feature_names)} values in feature order {feature_names}")
        return {c: [r[i] for r in rows] for i, c in enumerate(feature_names)}
    raise PayloadError(f"'{key}' rows must all be objects (column -> value) or all be arrays")


def _split_columns(split: Any) -> Columns:
    if not isinstance(split, dict) or "columns" not in split or "data" not in split:
        raise PayloadError("'dataframe_split' must be an object with 'columns' and 'data'")
    columns, data = split["columns"], split["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError("'dataframe_split.columns' must be a list of column names")
    if len(set(columns)) != len(columns):
        raise PayloadError(f"'dataframe_split.columns' has duplicate names: {columns}")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise PayloadError("'dataframe_split.data' must be a list of rows (arrays)")
    bad = [i for i, r in enumerate(data) if len(r) != len(columns)]
    if bad:
        raise PayloadError(f"'dataframe_split.data' row {bad[0]} has {len(data[bad[0]])} values "
                           f"for {len(columns)} columns")
    return {c: [r[i] for r in data] for i, c in enumerate(columns)}


def _inputs_columns(inputs: Any, feature_names: list[str]) -> Columns:
    if isinstance(inputs, dict):
        lengths = {k: (len(v) if isinstance(v, list) else None) for k, v in inputs.items()}
        if any(n is None for n in lengths.values()):
            scalar = [k for k, n in lengths.items() if n is None]
            raise PayloadError(f"'inputs' columns must be arrays; not arrays: {scalar}")
        if len(set(lengths.values())) > 1:
            raise PayloadError(f"'inputs' columns have different lengths: {lengths}")
        return {k: list(v) for k, v in inputs.items()}
    return _rows_columns(inputs, "inputs", feature_names)


def raw_columns(body: dict, feature_names: list[str]) -> tuple[Columns, str]:
    """The input columns (name -> values) of a decoded body, unvalidated, and the format that carried them."""
    present = [k for k in FORMATS if k in body]
    unknown = [k for k in body if k not in FORMATS and k not in ENVELOPE_KEYS]
    if not present:
        raise PayloadError(f"request has none of the input keys {', '.join(FORMATS)}"
                           + (f" (got {sorted(unknown)})" if unknown else ""))
    if len(present) > 1:
        raise PayloadError(f"request must use exactly one input format, got {present}")
    if unknown:
        raise PayloadError(f"request has unknown top-level keys {sorted(unknown)}")
    fmt = present[0]
    if fmt == "dataframe_split":
        return _split_columns(body[fmt]), fmt
    if fmt == "inputs":
        return _inputs_columns(body[fmt], feature_names), fmt
    return _rows_columns(body[fmt], fmt, feature_names), fmt


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _coerce_column(name: str, col_type: str, items: list) -> np.ndarray:
    """Check every value of a column against its spec type; nulls are allowed (the monitor counts them)."""
    if col_type in _INT_TYPES or col_type in _FLOAT_TYPES:
        has_null = False
        for i, v in enumerate(items):
            if _is_missing(v):
                has_null = True
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PayloadError(f"column '{name}' expects {col_type}, got {v!r} ({type(v).__name__}) in row {i}")
            if col_type in _INT_TYPES and isinstance(v, float) and not v.is_integer():
                raise PayloadError(f"column '{name}' expects {col_type}, got non-integer {v!r} in row {i}")
        if col_type in _INT_TYPES and not has_null:
            return np.array(items, dtype="int64")
        return np.array([np.nan if v is None else v for v in items], dtype="float64")
    if col_type == "string":
        for i, v in enumerate(items):
            if not isinstance(v, str) and not _is_missing(v):
                raise PayloadError(f"column '{name}' expects string, got {v!r} ({type(v).__name__}) in row {i}")
        out = np.empty(len(items), dtype=object)
        out[:] = [None if _is_missing(v) else v for v in items]
        return out
    if col_type == "boolean":
        for i, v in enumerate(items):
            if not _is_missing(v) and not isinstance(v, bool):
                raise PayloadError(f"column '{name}' expects boolean, got {v!r} in row {i}")
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out
    return pd.to_datetime(pd.Series(items), utc=True, errors="coerce").to_numpy()


def conform_columns(data: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The spec's feature columns, in order, as arrays of the spec's types.

    Raises:
        PayloadError: no rows, missing or unexpected columns, or a value of the wrong type.
    """
    names_in = list(data)
    rows = len(next(iter(data.values()))) if data else 0
    if rows == 0:
        raise PayloadError("request has no rows to score")
    names = spec.feature_names
    missing = [c for c in names if c not in names_in]
    extra = [c for c in names_in if c not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        raise PayloadError("input does not match the model's features: " + "; ".join(parts))
    return {c.name: _coerce_column(c.name, c.type, data[c.name]) for c in spec.features}


def conform(data: Columns, spec: ModelSpec) -> pd.DataFrame:
    """A frame with exactly the spec's feature columns, in order, with the spec's types (see :func:`conform_columns`)."""
    return pd.DataFrame(conform_columns(data, spec), columns=spec.feature_names)


def parse_request(raw: bytes | str | dict, spec: ModelSpec) -> ParsedRequest:
    """Decode, parse and validate a request body against the spec's features."""
    body = raw if isinstance(raw, dict) else decode_body(raw)
    columns, fmt = raw_columns(body, spec.feature_names)
    client_request_id = body.get("client_request_id")
    if client_request_id is not None and not isinstance(client_request_id, str):
        raise PayloadError("'client_request_id' must be a string")
    return ParsedRequest(conform(columns, spec), fmt, client_request_id)


def predictions_list(predictions: Any) -> list:
    """Predictions as JSON-ready Python values (one per input row)."""
    if isinstance(predictions, pd.DataFrame):
        predictions = predictions.iloc[:, 0] if predictions.shape[1] == 1 else predictions.to_dict("records")
    if isinstance(predictions, (pd.Series, np.ndarray)):
        predictions = np.asarray(predictions).tolist()
    return list(predictions)


def parse_response(raw: str | bytes | None) -> list | None:
    """The ``predictions`` of a logged response body, or ``None`` when it has none."""
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        return body["predictions"]
    return None
