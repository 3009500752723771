"""Traffic: requests built from the serving pool of a model's source table, sent to a running endpoint.

The serving pool is the share of the source's examples that nothing trains or is gated on
(:mod:`workloads.data.roles`), so the labelled traffic a retrain learns from never repeats a holdout example.

Each request carries a ``client_request_id``; each of its rows is example ``<client_request_id>:<row>``.
The true label of every example sent is recorded in the model's pending-labels table, so
``mlops labels ingest`` can merge the ground truth once the payloads are unpacked; with each label goes the time
the requests were sent (``requested_at``), which bounds the processed rows the label MERGE reads. A ``transform`` hook
rewrites the sampled rows before they are sent (features and, for concept drift, the label source
columns), which is how drifted traffic is simulated.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd

from workloads.errors import MlopsError
from workloads.serving.payloads import FORMATS
from workloads.settings import Settings
from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, ModelSpec
from workloads.unpacking import example_id

Transform = Callable[[pd.DataFrame], pd.DataFrame]
SOURCE_ID_COLUMN = "source_id"  # pending labels: the id of the source example a request row was built from


class TrafficError(MlopsError):
    """Traffic cannot be sent (endpoint unreachable, no data)."""


@dataclass
class TrafficResult:
    """What a traffic run sent and how the endpoint answered."""

    requests: int
    ok: int
    failed: int
    examples: int
    labels_recorded: int
    seconds: float
    errors: list[str] = field(default_factory=list)
    client_request_ids: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows scored successfully (same as ``examples``)."""
        return self.examples


def serving_pool(settings: Settings, spec: ModelSpec) -> pd.DataFrame:
    """The serving pool of the spec's source (features, label, id and timestamp columns).

    Raises:
        TrafficError: the source has no example in the serving pool.
    """
    from workloads.data import roles
    from workloads.data.source import read_examples, source_table

    pool = roles.split(read_examples(settings, spec), spec).serving
    if pool.empty:
        raise TrafficError(f"the serving pool of {source_table(settings, spec)} is empty (it holds about "
                           f"{roles.SHARES[roles.SERVING]}% of the examples); the source needs more rows")
    return pool


def request_body(rows: pd.DataFrame, fmt: str, client_request_id: str | None) -> dict:
    """A JSON-ready request body in one of the four formats."""
    if fmt == "dataframe_split":
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    elif fmt in ("dataframe_records", "instances"):
        body = {fmt: json.loads(rows.to_json(orient="records"))}
    elif fmt == "inputs":
        split = json.loads(rows.to_json(orient="split", index=False))
        body = {"inputs": {c: [r[i] for r in split["data"]] for i, c in enumerate(split["columns"])}}
    else:
        raise TrafficError(f"unknown request format {fmt!r}; use one of {', '.join(FORMATS)}")
    if client_request_id is not None:
        body["client_request_id"] = client_request_id
    return body


def _labels(rows: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """The true label of each row: its label column when it has one (a concept drift rewrites it), else derived
    by the spec's ``label_expression``."""
    if spec.label.name in rows.columns or not spec.label_expression:
        return rows[spec.label.name]
    return pd.Series(rows.eval(spec.label_expression), index=rows.index)


def send_traffic(url: str, spec: ModelSpec, frame: pd.DataFrame, n: int, batch_size: int = 1,
                 transform: Transform | None = None, seed: int = 0, concurrency: int = 4,
                 fmt: str = "dataframe_split", settings: Settings | None = None, record_labels: bool = True,
                 timeout: float = 30.0, request_prefix: str = "traffic",
                 replace: bool = False) -> TrafficResult:
    """Send ``n`` requests of ``batch_size`` rows sampled from ``frame`` to the endpoint at ``url``.

    Args:
        url: the endpoint's base URL (``http://127.0.0.1:PORT``) or its full invocations URL.
        spec: the served model's spec (feature columns, label).
        frame: rows to sample (holdout features plus the label source columns).
        n: number of requests.
        batch_size: rows per request.
        transform: rewrites the sampled rows before sending (drift simulation).
        seed: sampling seed.
        concurrency: parallel client connections.
        fmt: request format.
        settings: where to record pending labels (``None``: do not record).
        record_labels: record the true labels of what was sent in the pending-labels table.
        timeout: per-request timeout, seconds.
        replace: sample rows with replacement; ``False`` (default) sends every row once before any repeats (a
            repeated row is not new evidence: the monitor's tests count rows as independent draws).
        request_prefix: start of every ``client_request_id`` (drift simulation tags its requests with it).
    """
    if n < 0 or batch_size < 1:
        raise TrafficError("n must be >= 0 and batch_size >= 1")
    if frame.empty:
        raise TrafficError("no rows to send")
    target = url if url.rstrip("/").endswith("/invocations") else (
        f"{url.rstrip('/')}/serving-endpoints/{spec.endpoint_name}/invocations")
    rng = np.random.default_rng(seed)
    batches = []
    # without replacement: every row of the frame once (in a random order) before any row repeats
    order = np.concatenate([rng.permutation(len(frame)) for _ in range(-(-n * batch_size // len(frame)))]) \
        if not replace and n else None
    for i in range(n):
        if order is not None:
            picked = order[i * batch_size:(i + 1) * batch_size]
        else:
            picked = rng.integers(0, len(frame), size=batch_size)
        rows = frame.iloc[picked].reset_index(drop=True)
        if transform is not None:
            rows = transform(rows.copy()).reset_index(drop=True)
        batches.append((f"{request_prefix}-{uuid.uuid4().hex[:16]}", rows))

    requested_at = datetime.now(UTC)  # before any request leaves: a lower bound of every request's endpoint time
    started = time.perf_counter()
    with httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=max(concurrency, 1))) as client:
        def send(item):
            cid, rows = item
            body = request_body(rows[spec.feature_names], fmt, cid)
            try:
                response = client.post(target, json=body)
            except httpx.HTTPError as exc:
                return cid, None, f"{type(exc).__name__}: {exc}"
            return cid, response.status_code, None if response.status_code == 200 else response.text[:200]

        with ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
            answers = list(pool.map(send, batches))
    seconds = time.perf_counter() - started

    if answers and all(status is None for _, status, _ in answers):
        raise TrafficError(f"endpoint {target} is unreachable ({answers[0][2]}); start it with mlops serve "
                           f"--model {spec.name}")
    ok_ids = {cid for cid, status, _ in answers if status == 200}
    errors = [err for _, status, err in answers if status != 200 and err]
    recorded = 0
    if record_labels and settings is not None and ok_ids:
        from workloads.labels import REQUESTED_AT_COLUMN
        from workloads.labels import record_labels as record

        pieces = []
        for cid, rows in batches:
            if cid not in ok_ids:
                continue
            piece = pd.DataFrame({
                EXAMPLE_ID_COLUMN: [example_id(cid, i) for i in range(len(rows))],
                REQUEST_ID_COLUMN: cid,
                spec.label.name: _labels(rows, spec).to_numpy(),
                REQUESTED_AT_COLUMN: requested_at,
            })
            if spec.source.id in rows.columns:  # which source example was sent (for people; roles use content)
                piece[SOURCE_ID_COLUMN] = rows[spec.source.id].astype(str).to_numpy()
            pieces.append(piece)
        recorded = record(settings, spec, pd.concat(pieces, ignore_index=True))
    return TrafficResult(
        requests=n, ok=len(ok_ids), failed=n - len(ok_ids), examples=len(ok_ids) * batch_size,
        labels_recorded=recorded, seconds=seconds, errors=errors[:5], client_request_ids=[c for c, _ in batches])
