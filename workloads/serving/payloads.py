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

import gc
import json
import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
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


# --- Bulk parsing (unpacking many logged bodies at once) ------------------------------------------------------------
# The per-request functions above are the reference: a body the bulk path cannot take whole (an unusual shape, a value
# of the wrong type, anything orjson rejects) is handed back to the caller to parse one by one with them, so the bulk
# path changes the speed, never the verdict.

BULK_FEATURE_TYPES = frozenset({"string", "bigint", "int", "double", "float", "boolean"})
_NUMERIC_KINDS = frozenset({"integer", "floating", "mixed-integer-float", "empty"})
_INT64_LIMIT = float(2**63)


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while millions of small JSON objects are created.

    Parsing allocates container objects only, none of them cyclic; the collector would otherwise rescan every live
    one over and over (most of the time of a bulk parse of 200k bodies).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class BulkRows:
    """Feature rows of many request bodies parsed in bulk.

    Attributes:
        requests: positions (into the bodies given) of the requests parsed here, ascending.
        counts: rows of each of those requests.
        values: one row per example, in request order, one column per spec feature in spec order (raw JSON values,
            not yet checked against the feature types: see :func:`invalid_values`).
        others: positions of the bodies to parse one by one with the reference functions (malformed, unusual shape).
    """

    requests: np.ndarray
    counts: np.ndarray
    values: np.ndarray
    others: list[int]


def bulk_supported(spec: ModelSpec) -> bool:
    """Whether :func:`bulk_feature_rows` can parse this spec's features (timestamps and dates go one by one)."""
    return all(c.type in BULK_FEATURE_TYPES for c in spec.features)


def _object_rows(rows: list, width: int) -> np.ndarray | None:
    """``rows`` (sequences of ``width`` values) as a 2-D object array, or ``None`` if values are themselves arrays."""
    try:
        values = np.array(rows, dtype=object)
    except ValueError:
        return None
    return values if values.shape == (len(rows), width) else None


def _positional_group(items: list[tuple[int, list]], width: int, order: list[int] | None, out: list, others: list):
    """Requests whose rows are arrays (``dataframe_split.data``, positional ``instances``/``inputs``)."""
    flat = list(chain.from_iterable(rows for _, rows in items))
    if set(map(type, flat)) == {list} and set(map(len, flat)) == {width} and 0 not in map(len, (r for _, r in items)):
        good = items  # the common case, checked at C speed
    else:
        good = []
        for pos, rows in items:
            if rows and all(type(r) is list and len(r) == width for r in rows):
                good.append((pos, rows))
            else:
                others.append(pos)
        flat = list(chain.from_iterable(rows for _, rows in good))
    if not good:
        return
    values = _object_rows(flat, width)
    if values is None:  # some value is itself an array: let the reference parser judge those requests
        others.extend(pos for pos, _ in good)
        return
    if order is not None and order != list(range(width)):
        values = values[:, order]
    out.append(([pos for pos, _ in good], [len(rows) for _, rows in good], values))


def _records_group(items: list[tuple[int, list]], names: list[str], out: list, others: list):
    """Requests whose rows are objects (``dataframe_records``, ``instances``/``inputs`` as records)."""
    wanted = set(names)
    complete: dict[tuple, bool] = {}
    good = []
    for pos, rows in items:
        ok = bool(rows)
        for row in rows:
            if type(row) is not dict:
                ok = False
                break
            shape = tuple(row)
            known = complete.get(shape)
            if known is None:
                known = complete[shape] = len(shape) == len(names) and set(shape) == wanted
            if not known:  # a row lacking or adding columns: the reference decides (it may still be valid)
                ok = False
                break
        if ok:
            good.append((pos, rows))
        else:
            others.append(pos)
    if not good:
        return
    getter = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    values = _object_rows(list(map(getter, chain.from_iterable(rows for _, rows in good))), len(names))
    if values is None:
        others.extend(pos for pos, _ in good)
        return
    out.append(([pos for pos, _ in good], [len(rows) for _, rows in good], values))


def _columns_group(items: list[tuple[int, dict]], names: list[str], out: list, others: list):
    """Requests whose ``inputs`` are columns (name -> array of values)."""
    wanted = set(names)
    good = []
    for pos, columns in items:
        lengths = {len(v) if type(v) is list else -1 for v in columns.values()}
        if len(columns) == len(names) and set(columns) == wanted and len(lengths) == 1 and min(lengths) > 0:
            good.append((pos, columns, lengths.pop()))
        else:
            others.append(pos)
    if not good:
        return
    total = sum(n for _, _, n in good)
    values = np.empty((total, len(names)), dtype=object)
    for j, name in enumerate(names):
        values[:, j] = np.fromiter(chain.from_iterable(columns[name] for _, columns, _ in good), dtype=object,
                                   count=total)
    out.append(([pos for pos, _, _ in good], [n for _, _, n in good], values))


def bulk_feature_rows(bodies: Sequence, spec: ModelSpec) -> BulkRows:
    """Parse many request bodies at once (orjson) into one 2-D array of feature values.

    Bodies of the common shapes are parsed here, grouped by format; every other body (not JSON to orjson, several or
    no input keys, ragged or partial rows, columns that are not exactly the features, no rows) is listed in
    ``others`` for the per-request reference path (:func:`decode_body`, :func:`raw_columns`, :func:`conform_columns`),
    which gives it the same verdict as the endpoint.
    """
    names = spec.feature_names
    formats, envelope = set(FORMATS), set(ENVELOPE_KEYS)
    split_groups: dict[tuple, list] = {}
    positional: list = []
    records: list = []
    columns: list = []
    others: list[int] = []
    last_columns, last_group = None, None  # bodies of one client repeat the same column list
    with gc_paused():
        for pos, raw in enumerate(bodies):
            try:
                body = orjson.loads(raw)
            except (orjson.JSONDecodeError, TypeError):
                others.append(pos)
                continue
            if type(body) is not dict:
                others.append(pos)
                continue
            fmt = None
            for key in body:
                if key in formats and fmt is None:
                    fmt = key
                elif key not in envelope:
                    fmt = None
                    break
            content = body.get(fmt) if fmt is not None else None
            if fmt == "dataframe_split":
                names_in = content.get("columns") if type(content) is dict else None
                if type(names_in) is list and type(content.get("data")) is list:
                    if names_in != last_columns:
                        try:
                            last_group = split_groups.setdefault(tuple(names_in), [])
                        except TypeError:  # unhashable column names
                            others.append(pos)
                            continue
                        last_columns = names_in
                    last_group.append((pos, content["data"]))
                    continue
            elif type(content) is list and content:
                (records if type(content[0]) is dict else positional).append((pos, content))
                continue
            elif fmt == "inputs" and type(content) is dict:
                columns.append((pos, content))
                continue
            others.append(pos)
        parsed: list = []
        for cols, items in split_groups.items():
            if len(set(cols)) == len(cols) == len(names) and set(cols) == set(names):
                _positional_group(items, len(names), [cols.index(n) for n in names], parsed, others)
            else:
                others.extend(pos for pos, _ in items)
        _positional_group(positional, len(names), None, parsed, others)
        _records_group(records, names, parsed, others)
        _columns_group(columns, names, parsed, others)
    if not parsed:
        return BulkRows(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64),
                        np.empty((0, len(names)), dtype=object), sorted(others))
    requests = np.concatenate([np.asarray(p, dtype=np.int64) for p, _, _ in parsed])
    counts = np.concatenate([np.asarray(c, dtype=np.int64) for _, c, _ in parsed])
    values = np.concatenate([v for _, _, v in parsed]) if len(parsed) > 1 else parsed[0][2]
    if len(parsed) > 1:  # back to request order, rows of a request kept together and in order
        by_request = np.argsort(requests, kind="stable")
        row_order = np.argsort(np.repeat(requests, counts), kind="stable")
        requests, counts, values = requests[by_request], counts[by_request], values[row_order]
    return BulkRows(requests, counts, values, sorted(others))


def invalid_values(values: np.ndarray, col_type: str) -> np.ndarray:
    """Which of a column's raw JSON values :func:`conform_columns` would reject for a feature of ``col_type``.

    Vectorised for the common case (a column whose values all have the expected kind); a column with any odd value
    is checked value by value with the reference rules.
    """
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if col_type in _INT_TYPES or col_type in _FLOAT_TYPES:
        if kind in ("integer", "empty") or (kind in _NUMERIC_KINDS and col_type in _FLOAT_TYPES):
            return np.zeros(len(values), dtype=bool)
        if kind in _NUMERIC_KINDS:  # floats for an integer column: whole numbers only
            floats = values.astype(np.float64)
            return ~(np.isnan(floats) | ((floats == np.floor(floats)) & (np.abs(floats) < _INT64_LIMIT)))
        return np.fromiter((not _valid_number(v, col_type) for v in values), dtype=bool, count=len(values))
    if col_type == "string":
        if kind in ("string", "empty"):
            return np.zeros(len(values), dtype=bool)
        return np.fromiter((not (isinstance(v, str) or _is_missing(v)) for v in values), dtype=bool, count=len(values))
    if col_type == "boolean":
        if kind in ("boolean", "empty"):
            return np.zeros(len(values), dtype=bool)
        return np.fromiter((not (isinstance(v, bool) or _is_missing(v)) for v in values), dtype=bool, count=len(values))
    raise PayloadError(f"bulk parsing does not handle {col_type} columns; parse them one request at a time")


def _valid_number(value: Any, col_type: str) -> bool:
    if _is_missing(value):
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if col_type in _INT_TYPES and isinstance(value, float):
        return value.is_integer() and abs(value) < _INT64_LIMIT
    return True


def bulk_predictions(responses: Sequence, counts: Sequence[int]) -> tuple[list, np.ndarray]:
    """The ``predictions`` of many logged responses (orjson), and which had exactly the expected number.

    Returns:
        The predictions of the responses that matched, concatenated in order, and a mask of those responses. A
        response that is not a JSON object with a ``predictions`` list of ``counts[i]`` values is left to
        :func:`parse_response` by the caller.
    """
    matched = np.zeros(len(responses), dtype=bool)
    values: list = []
    with gc_paused():
        for i, (raw, n) in enumerate(zip(responses, counts, strict=True)):
            try:
                body = orjson.loads(raw)
            except (orjson.JSONDecodeError, TypeError):
                continue
            predictions = body.get("predictions") if type(body) is dict else None
            if type(predictions) is list and len(predictions) == n:
                values.extend(predictions)
                matched[i] = True
    return values, matched
