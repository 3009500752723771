"""Benchmark: how the watcher's steps scale with the history (issue 11).

One function per section, each printing its own table; all run in one process, side by side:

- ``bulk_unpack``: unpacking N requests of the demo's shape (``dataframe_split``, 5 examples each) vs a plain stdlib
  ``json.loads`` loop over the same bodies: ``unpack()`` end to end (read the payload Delta table, transform, append
  to the processed table in one commit; goal: below 1) and the in-memory transform alone. The loop is also timed
  with the garbage collector paused, the way the bulk transform parses, to show what the parser alone costs.
- ``incremental_unpack``: ``mlops unpack`` of 500 new requests on a payload table of 200k and of 600k requests, all of
  the same day (the processed table holding their unpacked examples, the watermark at the last version), as 5
  flushes of 100 requests; the two sizes take turns for 9 runs each; median time per run at each size and the ratio
  (goal: within 1.2x, the cost follows the new rows, not the history, even within one day).
- ``watcher_cycle``: a history of 1 day and of 30 days (72k requests a day: 2.16M requests, 10.8M examples), built as
  the watcher builds it (unpack every 6 hours, refresh every day); then a cycle: 6 hours of new requests and their
  labels arrive, unpack, labels ingest, monitor refresh, observe and evaluate the latest window. Each cycle runs in
  a fresh process: its time, its peak RSS and its peak above the RSS it started the cycle with (imports and the
  process itself excluded), per history, and the 30-day / 1-day ratios (goal: within 1.5x in time and memory).

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
    from workloads.data import roles
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features
    from workloads.specs import load_spec
    from workloads.traffic import request_body

    spec = load_spec(MODEL)
    holdout = roles.split(build_features(generate(seed=42)), spec).holdout
    features = holdout[spec.feature_names].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    bodies, answers = [], []
    for _ in range(POOL):
        rows = features.iloc[rng.integers(0, len(features), ROWS_PER_REQUEST)].reset_index(drop=True)
        bodies.append(json.dumps(request_body(rows, "dataframe_split", None)))
        answers.append(json.dumps({"predictions": np.round(rng.normal(6, 2, ROWS_PER_REQUEST), 3).tolist()}))
    return spec, bodies, answers


def payload_table(spec, bodies: list[str], answers: list[str], first: int, n: int,
                  seconds_apart: float = 2.0) -> pa.Table:
    """``n`` payload rows (requests ``first .. first+n-1``, one every ``seconds_apart``) in the AI Gateway inference
    table schema."""
    from workloads.serving.payload_log import PAYLOAD_SCHEMA

    ids = np.arange(first, first + n)
    client = [f"traffic-{i:016x}" for i in ids]
    times = pd.Timestamp(START) + pd.to_timedelta(ids * seconds_apart, unit="s")
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
    bodies_pool, answers_pool = bodies, answers
    gc.collect()

    def json_loop():
        return [json.loads(b) for b in texts]

    def json_loop_gc_paused():
        with gc_paused():
            return [json.loads(b) for b in texts]

    timings: dict[str, list[float]] = {"json.loads loop": [], "json.loads loop, GC paused": [],
                                       "bulk transform (in memory)": [], "unpack() end to end": []}
    examples = 0
    arrow_payload = payload_table(spec, bodies_pool, answers_pool, 0, n)
    for _ in range(1 if not quick else 2):
        for name, run in (("json.loads loop", json_loop), ("json.loads loop, GC paused", json_loop_gc_paused),
                          ("bulk transform (in memory)", lambda: unpack_payload(payload, spec))):
            gc.collect()
            started = time.perf_counter()
            result = run()
            timings[name].append(time.perf_counter() - started)
            if name == "bulk transform (in memory)":
                examples = len(result.frame)
            del result
        timings["unpack() end to end"].append(_unpack_end_to_end(spec, arrow_payload, n, examples))
    best = {name: min(t) for name, t in timings.items()}
    loop = best["json.loads loop"]
    _table(f"bulk unpack: {n:,} requests of {ROWS_PER_REQUEST} examples ({examples:,} examples out)",
           ["what", "seconds", "examples/s", "ratio to json.loads loop"],
           [[name, f"{t:.2f}", f"{examples / t:,.0f}", f"{t / loop:.2f}x"] for name, t in best.items()])


def _unpack_end_to_end(spec, payload: pa.Table, n: int, examples: int) -> float:
    """Seconds of one ``unpack()`` of a payload table of ``n`` requests into an empty processed table (a fresh home:
    the payload table is written first, untimed)."""
    from workloads.ports.tables import LocalTables
    from workloads.settings import load_settings
    from workloads.unpacking import unpack

    home = Path(tempfile.mkdtemp(prefix="bench-unpack-"))
    try:
        settings = load_settings(home=home)
        LocalTables(settings.warehouse).write(settings.table(spec.payload_table), payload)
        gc.collect()
        started = time.perf_counter()
        result = unpack(settings, spec)
        seconds = time.perf_counter() - started
        assert result.payload_rows == n and result.examples_written == examples, result
        return seconds
    finally:
        shutil.rmtree(home, ignore_errors=True)


def incremental_unpack(quick: bool) -> None:
    """``unpack`` of 500 new requests on payload histories of two sizes (ratio: the bigger over the smaller)."""
    from workloads.ports.tables import LocalTables
    from workloads.settings import load_settings
    from workloads.unpacking import state_table, unpack, unpack_payload

    sizes = (20_000, 60_000) if quick else (200_000, 600_000)
    new_requests, flushes, repeats = 500, 5, 9
    apart = 0.1  # seconds between requests: 600k requests span 16.7 hours, so every history falls on one day
    spec, bodies, answers = _spec_and_pool()
    # the processed rows of the pool, replicated with the history's ids and times (as unpack would have written them)
    pool = unpack_payload(payload_table(spec, bodies, answers, 0, POOL).to_pandas(), spec).frame
    homes = {size: Path(tempfile.mkdtemp(prefix="bench-scale-")) for size in sizes}
    try:
        runs = {}
        for size, home in homes.items():
            settings = load_settings(home=home)
            tables = LocalTables(settings.warehouse)
            payload_name, processed_name = settings.table(spec.payload_table), settings.table(spec.processed_table)
            chunk = 50_000
            for first in range(0, size, chunk):
                tables.write(payload_name, payload_table(spec, bodies, answers, first, min(chunk, size - first),
                                                         seconds_apart=apart))
                tables.write(processed_name, _processed_history(pool, first, min(chunk, size - first), apart))
            unpack(settings, spec)  # nothing new: records the watermark at the last version
            assert tables.read(settings.table(state_table(spec)))["processed_version"].iloc[0] == \
                tables.version(payload_name)
            runs[size] = {"settings": settings, "tables": tables, "payload": payload_name, "next": size,
                          "seconds": []}
        # the sizes take turns, run after run, so a slower moment of the machine falls on both alike
        for turn in range(repeats):
            for size in (sizes if turn % 2 == 0 else sizes[::-1]):  # neither size always goes first
                run = runs[size]
                for _ in range(flushes):
                    run["tables"].write(run["payload"], payload_table(spec, bodies, answers, run["next"],
                                                                      new_requests // flushes, seconds_apart=apart))
                    run["next"] += new_requests // flushes
                gc.collect()
                started = time.perf_counter()
                result = unpack(run["settings"], spec)
                run["seconds"].append(time.perf_counter() - started)
                assert result.payload_rows == new_requests and result.examples_written == new_requests * 5, result
        results = [(size, statistics.median(runs[size]["seconds"]), min(runs[size]["seconds"])) for size in sizes]
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    small = results[0][1]
    _table(f"incremental unpack: {new_requests} new requests ({flushes} flushes) after the history, median of "
           f"{repeats} runs", ["payload rows in history", "processed rows", "median s", "best s", "ratio"],
           [[f"{size:,}", f"{size * ROWS_PER_REQUEST:,}", f"{median:.3f}", f"{best:.3f}", f"{median / small:.2f}x"]
            for size, median, best in results])


def _processed_history(pool: pd.DataFrame, first: int, n: int, seconds_apart: float = 2.0) -> pd.DataFrame:
    """Processed rows of requests ``first .. first+n-1``: the pool's examples with those requests' ids and times."""
    from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, TIMESTAMP_COLUMN

    ids = np.arange(first, first + n)
    rows = pool.iloc[np.concatenate([np.arange(k * 5, k * 5 + 5) for k in ids % POOL])].reset_index(drop=True)
    request_ids = np.repeat([f"traffic-{i:016x}" for i in ids], ROWS_PER_REQUEST)
    rows[REQUEST_ID_COLUMN] = request_ids
    rows[EXAMPLE_ID_COLUMN] = [f"{r}:{k % 5}" for k, r in enumerate(request_ids)]
    rows[TIMESTAMP_COLUMN] = np.repeat((pd.Timestamp(START) + pd.to_timedelta(ids * seconds_apart, unit="s"))
                                       .astype("datetime64[us, UTC]"), ROWS_PER_REQUEST)
    return rows


CYCLE_HOURS = 6                       # the watcher's cadence: each cycle handles the last 6 hours of requests
REQUESTS_PER_DAY = 72_000              # one request every 1.2 s: 2.16M requests (10.8M examples) in 30 days


def _labels_of(spec, pool: pd.DataFrame, first: int, n: int, per_day: int) -> pd.DataFrame:
    """The ground truth of requests ``first .. first+n-1`` (every example), as traffic records it (with the time each
    request was sent): the model's own answer to the replicated request, rounded, plus a little noise (healthy)."""
    from workloads.labels import REQUESTED_AT_COLUMN
    from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN

    ids = np.arange(first, first + n)
    request_ids = np.repeat([f"traffic-{i:016x}" for i in ids], ROWS_PER_REQUEST)
    rows = np.concatenate([np.arange(k * 5, k * 5 + 5) for k in ids % POOL])
    predicted = pd.to_numeric(pool[spec.prediction.name], errors="coerce").to_numpy()[rows]
    noise = np.random.default_rng(first).integers(-1, 2, len(rows))
    return pd.DataFrame({REQUEST_ID_COLUMN: request_ids,
                         EXAMPLE_ID_COLUMN: [f"{r}:{k % ROWS_PER_REQUEST}" for k, r in enumerate(request_ids)],
                         spec.label.name: np.maximum(np.round(predicted) + noise, 0).astype(np.int64),
                         REQUESTED_AT_COLUMN: np.repeat(pd.Timestamp(START) + pd.to_timedelta(ids * 86_400 / per_day,
                                                                                              unit="s"),
                                                        ROWS_PER_REQUEST)})


def _build_history(home: Path, days: int, per_day: int) -> int:
    """A model's tables after ``days`` of traffic, built as the watcher builds them: every 6 hours the new requests
    are unpacked, every day the monitor is refreshed. Returns the next request number."""
    from workloads.monitoring.refresh import refresh_local
    from workloads.ports.tables import LocalTables
    from workloads.settings import load_settings
    from workloads.unpacking import unpack

    spec, bodies, answers = _spec_and_pool()
    settings = load_settings(home=home)
    tables = LocalTables(settings.warehouse)
    baseline = _processed_history(unpack_pool(spec, bodies, answers), 0, POOL)
    tables.write(settings.table(spec.baseline_table), baseline.drop(columns=["request_id", "example_id"]))
    per_cycle = per_day * CYCLE_HOURS // 24
    first = 0
    for day in range(days):
        for _ in range(24 // CYCLE_HOURS):
            tables.write(settings.table(spec.payload_table),
                         payload_table(spec, bodies, answers, first, per_cycle, 86_400 / per_day))
            unpack(settings, spec)
            first += per_cycle
        refresh_local(settings, spec)
        if day % 5 == 4:
            console.print(f"[dim]  history: day {day + 1}/{days}, {first:,} requests[/dim]")
    return first


def unpack_pool(spec, bodies, answers) -> pd.DataFrame:
    from workloads.unpacking import unpack_payload

    return unpack_payload(payload_table(spec, bodies, answers, 0, POOL).to_pandas(), spec).frame


def _rss(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident since start or the last reset) of this process, bytes."""
    import re

    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def _reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``, see proc(5))."""
    Path("/proc/self/clear_refs").write_text("5")


def _cycle_in_child(home: str, first: int, per_day: int, out) -> None:
    """:func:`_cycle`, its result or its error put on ``out`` (a dead child must not leave the parent waiting)."""
    try:
        out.put(_cycle(home, first, per_day))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        import traceback

        out.put({"error": "".join(traceback.format_exception(exc))})


def _cycle(home: str, first: int, per_day: int) -> dict:
    """One watcher cycle (run in a fresh process, so its peak memory is its own): 6 hours of new requests and their
    labels arrive; unpack them, ingest the labels, refresh the monitor, observe and evaluate the latest window."""
    from workloads.labels import ingest_labels, record_labels
    from workloads.monitoring.refresh import refresh_local
    from workloads.ports.tables import LocalTables
    from workloads.settings import load_settings
    from workloads.unpacking import unpack
    from workloads.watcher.evaluation import evaluate_window
    from workloads.watcher.observation import observe_latest_window

    spec, bodies, answers = _spec_and_pool()
    settings = load_settings(home=Path(home))
    tables = LocalTables(settings.warehouse)
    per_cycle = per_day * CYCLE_HOURS // 24
    tables.write(settings.table(spec.payload_table), payload_table(spec, bodies, answers, first, per_cycle,
                                                                  86_400 / per_day))
    pool = unpack_pool(spec, bodies, answers)
    record_labels(settings, spec, _labels_of(spec, pool, first, per_cycle, per_day), tables=tables)
    gc.collect()
    rss_before = _rss("VmRSS")
    _reset_peak_rss()  # the peak measured from here on is the cycle's, not the setup's
    started = time.perf_counter()
    steps, peaks = {}, {}
    for name, step in (("unpack", lambda: unpack(settings, spec)),
                       ("labels", lambda: ingest_labels(settings, spec)),
                       ("refresh", lambda: refresh_local(settings, spec)),
                       ("evaluate", lambda: evaluate_window(spec, observe_latest_window(settings, spec)))):
        t = time.perf_counter()
        result = step()
        steps[name] = time.perf_counter() - t
        peaks[name] = _rss("VmHWM") - rss_before
    seconds = time.perf_counter() - started
    peak = _rss("VmHWM")
    return {"seconds": seconds, "steps": steps, "peaks": peaks, "peak": peak, "above": max(peak - rss_before, 0),
            "health": result.health}


def watcher_cycle(quick: bool) -> None:
    """A watcher cycle on a 1-day history and on a 30-day history (goal: the 30-day cycle within 1.5x)."""
    import multiprocessing as mp

    days_long, per_day = (3, 12_000) if quick else (30, REQUESTS_PER_DAY)
    repeats = 2 if quick else 3
    context = mp.get_context("spawn")
    rows = []
    for days in (1, days_long):
        home = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
        try:
            started = time.perf_counter()
            first = history = _build_history(home, days, per_day)
            built = time.perf_counter() - started
            runs = []
            for _ in range(repeats):
                queue = context.Queue()
                child = context.Process(target=_cycle_in_child, args=(str(home), first, per_day, queue))
                child.start()
                run = queue.get(timeout=3600)
                child.join()
                if "error" in run:
                    raise RuntimeError(f"the watcher cycle failed:\n{run['error']}")
                runs.append(run)
                first += per_day * CYCLE_HOURS // 24
            rows.append((days, history, built, runs))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    base = rows[0][3]
    base_s = statistics.median(r["seconds"] for r in base)
    base_mem = statistics.median(r["above"] for r in base)
    base_peak = statistics.median(r["peak"] for r in base)
    table_rows, step_rows = [], []
    for days, first, built, runs in rows:
        med = statistics.median(r["seconds"] for r in runs)
        above = statistics.median(r["above"] for r in runs)
        peak = statistics.median(r["peak"] for r in runs)
        table_rows.append([f"{days} day(s)", f"{first:,}", f"{first * ROWS_PER_REQUEST:,}", f"{built:.0f}",
                           f"{med:.2f}", f"{med / base_s:.2f}x", f"{above / 2**20:,.0f}", f"{above / base_mem:.2f}x",
                           f"{peak / 2**20:,.0f}", f"{peak / base_peak:.2f}x", runs[-1]["health"]])
        for step in runs[0]["steps"]:
            step_rows.append([f"{days} day(s)", step, f"{statistics.median(r['steps'][step] for r in runs):.2f}",
                              f"{statistics.median(r['peaks'][step] for r in runs) / 2**20:,.0f}"])
    _table(f"watcher cycle: {per_day * CYCLE_HOURS // 24:,} new requests ({CYCLE_HOURS} h) + their labels, "
           f"median of {repeats} cycles, each in a fresh process",
           ["history", "requests", "examples", "build s", "cycle s", "time ratio", "peak MB above start",
            "mem ratio", "peak RSS MB", "RSS ratio", "verdict"], table_rows)
    _table("watcher cycle, per step (peak: the cycle's peak RSS above its start, up to the end of the step)",
           ["history", "step", "seconds", "peak MB above start"], step_rows)


SECTIONS = {"bulk_unpack": bulk_unpack, "incremental_unpack": incremental_unpack, "watcher_cycle": watcher_cycle}


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
