"""Benchmark: how the watcher's steps scale with the history (issue 11).

One function per section, each printing its own table; all run in one process, side by side:

- ``bulk_unpack``: unpacking N requests of the demo's shape (``dataframe_split``, 5 examples each) with the bulk
  transform vs a plain stdlib ``json.loads`` loop over the same bodies (ratio; goal: below 1). The loop is also timed
  with the garbage collector paused, the way the bulk transform parses, to show what the parser alone costs.
- ``incremental_unpack``: ``mlops unpack`` of 500 new requests on a payload table of 200k and of 600k requests (the
  processed table holding their unpacked examples, the watermark at the last version), as 5 flushes of 100 requests;
  time per run at each size and the ratio (goal: within 1.5x, the cost follows the new rows, not the history).

Payload rows replicate the demo's requests (held-back bakehouse transactions, ``workloads.traffic.request_body``) with
unique ids and times, written straight to the Delta tables (no server, no demo run).

    uv run python tests/benchmarks/bench_scale.py [--quick] [--section NAME ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.table import Table

MODEL = "bakehouse_decorators"  # the demo's served model
ROWS_PER_REQUEST = 5           # the demo's request size
POOL = 500                     # distinct request bodies replicated into the history
START = datetime(2030, 1, 1, tzinfo=UTC)
console = Console(width=150)


def _spec_and_pool(seed: int = 0) -> tuple[object, list[str], list[str]]:
    """The demo model's spec, POOL distinct demo-shaped request bodies (without client id) and their responses."""
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features, split_holdout
    from workloads.specs import load_spec
    from workloads.traffic import request_body

    spec = load_spec(MODEL)
    _, holdout = split_holdout(build_features(generate(seed=42)))
    features = holdout[spec.feature_names].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    bodies, answers = [], []
    for _ in range(POOL):
        rows = features.iloc[rng.integers(0, len(features), ROWS_PER_REQUEST)].reset_index(drop=True)
        bodies.append(json.dumps(request_body(rows, "dataframe_split", None)))
        answers.append(json.dumps({"predictions": np.round(rng.normal(6, 2, ROWS_PER_REQUEST), 3).tolist()}))
    return spec, bodies, answers


def payload_table(spec, bodies: list[str], answers: list[str], first: int, n: int) -> pa.Table:
    """``n`` payload rows (requests ``first .. first+n-1``) in the AI Gateway inference table schema."""
    from workloads.serving.payload_log import PAYLOAD_SCHEMA

    ids = np.arange(first, first + n)
    client = [f"traffic-{i:016x}" for i in ids]
    times = pd.Timestamp(START) + pd.to_timedelta(ids * 2, unit="s")  # one request every 2 s
    pick = ids % len(bodies)
    columns = {
        "databricks_request_id": [f"db-{i:016x}" for i in ids],
        "client_request_id": client,
        "request_date": times.date,
        "request_time": times.astype("datetime64[us, UTC]"),
        "status_code": np.full(n, 200, dtype=np.int32),
        "sampling_fraction": np.ones(n),
        "execution_duration_ms": np.full(n, 3, dtype=np.int64),
        "request": [bodies[k][:-1] + f', "client_request_id": "{c}"}}' for k, c in zip(pick, client, strict=True)],
        "response": [answers[k] for k in pick],
        "served_entity_id": [f"{spec.name}_model-1"] * n,
        "logging_error_codes": [[]] * n,
        "requester": ["bench"] * n,
    }
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in PAYLOAD_SCHEMA}, schema=PAYLOAD_SCHEMA)


def _table(title: str, columns: list[str], rows: list[list]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right" if c != columns[0] else "left")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    console.print(table)


# --- sections -----------------------------------------------------------------------------------------------------

def bulk_unpack(quick: bool) -> None:
    """Bulk unpack of N requests vs a plain ``json.loads`` loop over the same request bodies."""
    from workloads.serving.payloads import gc_paused
    from workloads.unpacking import unpack_payload

    n = 20_000 if quick else 200_000
    spec, bodies, answers = _spec_and_pool()
    payload = payload_table(spec, bodies, answers, 0, n).to_pandas()
    texts = payload["request"].tolist()
    del bodies
    gc.collect()

    def json_loop():
        return [json.loads(b) for b in texts]

    def json_loop_gc_paused():
        with gc_paused():
            return [json.loads(b) for b in texts]

    timings: dict[str, list[float]] = {"json.loads loop": [], "json.loads loop, GC paused": [], "bulk unpack": []}
    examples = 0
    for _ in range(1 if not quick else 2):
        for name, run in (("json.loads loop", json_loop), ("json.loads loop, GC paused", json_loop_gc_paused),
                          ("bulk unpack", lambda: unpack_payload(payload, spec))):
            gc.collect()
            started = time.perf_counter()
            result = run()
            timings[name].append(time.perf_counter() - started)
            if name == "bulk unpack":
                examples = len(result.frame)
            del result
    best = {name: min(t) for name, t in timings.items()}
    loop = best["json.loads loop"]
    _table(f"bulk unpack: {n:,} requests of {ROWS_PER_REQUEST} examples ({examples:,} examples out)",
           ["what", "seconds", "examples/s", "ratio to json.loads loop"],
           [[name, f"{t:.2f}", f"{examples / t:,.0f}", f"{t / loop:.2f}x"] for name, t in best.items()])


def incremental_unpack(quick: bool) -> None:
    """``unpack`` of 500 new requests on payload histories of two sizes (ratio: the bigger over the smaller)."""
    from workloads.ports.tables import LocalTables
    from workloads.settings import load_settings
    from workloads.unpacking import state_table, unpack, unpack_payload

    sizes = (20_000, 60_000) if quick else (200_000, 600_000)
    new_requests, flushes, repeats = 500, 5, 3
    spec, bodies, answers = _spec_and_pool()
    # the processed rows of the pool, replicated with the history's ids and times (as unpack would have written them)
    pool = unpack_payload(payload_table(spec, bodies, answers, 0, POOL).to_pandas(), spec).frame
    results = []
    for size in sizes:
        home = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        try:
            settings = load_settings(home=home)
            tables = LocalTables(settings.warehouse)
            payload_name, processed_name = settings.table(spec.payload_table), settings.table(spec.processed_table)
            chunk = 50_000
            for first in range(0, size, chunk):
                tables.write(payload_name, payload_table(spec, bodies, answers, first, min(chunk, size - first)))
                tables.write(processed_name, _processed_history(pool, first, min(chunk, size - first)))
            unpack(settings, spec)  # nothing new: records the watermark at the last version
            assert tables.read(settings.table(state_table(spec)))["processed_version"].iloc[0] == \
                tables.version(payload_name)
            seconds = []
            first = size
            for _ in range(repeats):
                for _ in range(flushes):
                    tables.write(payload_name, payload_table(spec, bodies, answers, first, new_requests // flushes))
                    first += new_requests // flushes
                gc.collect()
                started = time.perf_counter()
                result = unpack(settings, spec)
                seconds.append(time.perf_counter() - started)
                assert result.payload_rows == new_requests and result.examples_written == new_requests * 5, result
            results.append((size, statistics.median(seconds), min(seconds)))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    small = results[0][1]
    _table(f"incremental unpack: {new_requests} new requests ({flushes} flushes) after the history, median of "
           f"{repeats} runs", ["payload rows in history", "processed rows", "median s", "best s", "ratio"],
           [[f"{size:,}", f"{size * ROWS_PER_REQUEST:,}", f"{median:.3f}", f"{best:.3f}", f"{median / small:.2f}x"]
            for size, median, best in results])


def _processed_history(pool: pd.DataFrame, first: int, n: int) -> pd.DataFrame:
    """Processed rows of requests ``first .. first+n-1``: the pool's examples with those requests' ids and times."""
    from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, TIMESTAMP_COLUMN

    ids = np.arange(first, first + n)
    rows = pool.iloc[np.concatenate([np.arange(k * 5, k * 5 + 5) for k in ids % POOL])].reset_index(drop=True)
    request_ids = np.repeat([f"traffic-{i:016x}" for i in ids], ROWS_PER_REQUEST)
    rows[REQUEST_ID_COLUMN] = request_ids
    rows[EXAMPLE_ID_COLUMN] = [f"{r}:{k % 5}" for k, r in enumerate(request_ids)]
    rows[TIMESTAMP_COLUMN] = np.repeat((pd.Timestamp(START) + pd.to_timedelta(ids * 2, unit="s"))
                                       .astype("datetime64[us, UTC]"), ROWS_PER_REQUEST)
    return rows


# A later section ("watcher cycle on a 1-day vs a 30-day history") is added here as its own function and listed below.
SECTIONS = {"bulk_unpack": bulk_unpack, "incremental_unpack": incremental_unpack}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--section", action="append", choices=list(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)
    for name in args.section or list(SECTIONS):
        started = time.perf_counter()
        SECTIONS[name](args.quick)
        console.print(f"[dim]{name}: {time.perf_counter() - started:.0f} s[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
