"""The report's serving panel (requests, error rate, latency p50/p99 per window) against numpy on the payload rows:
the Spark path is compared with this local path row for row in tests/scale/test_spark_driver_bounds.py, so both rest
on the same independent reference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workloads.monitoring.report import _payload_stats
from workloads.ports.tables import LocalTables
from workloads.settings import load_settings
from workloads.specs import load_spec


def _payload(rng, start: pd.Timestamp, n: int) -> pd.DataFrame:
    times = start + pd.to_timedelta(np.sort(rng.integers(0, 2 * 86_400_000_000, n)), unit="us")
    return pd.DataFrame({
        "databricks_request_id": [f"r{i}" for i in range(n)], "client_request_id": [f"c{i}" for i in range(n)],
        "request_date": times.date, "request_time": times,
        "status_code": rng.choice(np.array([200, 200, 200, 200, 400, 500], dtype="int32"), n),
        "sampling_fraction": 1.0, "execution_duration_ms": rng.lognormal(4.0, 1.0, n).astype("int64") + 1,
        "request": "{}", "response": "{}", "served_entity_id": "e-1", "logging_error_codes": [[] for _ in range(n)],
        "requester": "me"})


def test_requests_error_rate_and_latency_percentiles_are_numpys_per_window(tmp_path):
    spec = load_spec("bakehouse_autolog")
    settings = load_settings(home=tmp_path)
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2030-07-01", tz="UTC")
    payload = _payload(rng, start, 5_000)
    # one request exactly on the second window's start: it belongs to that window, not the first
    payload.loc[0, "request_time"] = start + pd.Timedelta(hours=12)
    payload = payload.sort_values("request_time", ignore_index=True)
    tables = LocalTables(settings.warehouse)
    tables.write(settings.table(spec.payload_table), payload)
    # half-day windows: one before the traffic (empty), four with it, one after (empty)
    starts = pd.date_range(start - pd.Timedelta(hours=12), periods=6, freq="12h")
    spans = pd.DataFrame({"window_start": starts, "window_end": starts + pd.Timedelta(hours=12)})

    stats = _payload_stats(settings, spec, spans, tables)

    assert stats["window_start"].tolist() == starts.tolist()
    times = payload["request_time"]
    for i, (lo, hi) in enumerate(zip(spans["window_start"], spans["window_end"], strict=True)):
        inside = payload[(times >= lo) & (times < hi)]
        row = stats.iloc[i]
        if inside.empty:
            assert np.isnan(row["requests"]) and np.isnan(row["p50_ms"]) and np.isnan(row["error_rate"])
            continue
        durations = inside["execution_duration_ms"].to_numpy(dtype=float)
        assert row["requests"] == len(inside)
        assert row["error_rate"] == np.count_nonzero(inside["status_code"].to_numpy() != 200) / len(inside)
        assert row["p50_ms"] == np.percentile(durations, 50)
        assert row["p99_ms"] == np.percentile(durations, 99)
    assert np.isnan(stats["requests"].iloc[0]) and np.isnan(stats["requests"].iloc[-1])
    assert stats["requests"].sum() == len(payload)
    assert stats.loc[1, "requests"] == ((times >= starts[1]) & (times < starts[2])).sum()
    # the rows are not degenerate: errors happened and the tail is far from the median
    busy = stats.dropna(subset=["requests"])
    assert (busy["error_rate"] > 0).all() and (busy["p99_ms"] > 3 * busy["p50_ms"]).all()
