"""Both locally written metric tables against the documented schema of the tables Databricks writes
(workloads/monitoring/databricks_metric_tables.json): column names, Spark/Delta types as stored in the Delta log,
and the null conventions per row kind, on a real refresh of generated data (two granularities, a slice, nulls,
zeros); then the new columns' values against direct computations on the same rows."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.conftest import seed_tables
from workloads.monitoring.compute import monitored_columns
from workloads.monitoring.metrics import read_metric_tables
from workloads.monitoring.refresh import refresh_local
from workloads.ports.tables import get_tables
from workloads.settings import load_settings
from workloads.specs import MODEL_ID_COLUMN, load_spec

DOCUMENTED = json.loads((Path(__file__).resolve().parents[2] / "workloads" / "monitoring"
                         / "databricks_metric_tables.json").read_text())
GRANULARITIES = ["1 day", "1 hour"]


def spark_type(t) -> str:
    """The Spark SQL name of a type of the Delta log's schema (JSON: ``long``, ``{"type": "struct", ...}``)."""
    if isinstance(t, dict):
        if t["type"] == "struct":
            return "struct<" + ",".join(f"{f['name']}:{spark_type(f['type'])}" for f in t["fields"]) + ">"
        if t["type"] == "array":
            return f"array<{spark_type(t['elementType'])}>"
        raise AssertionError(f"unexpected Delta type {t}")
    return {"long": "bigint", "integer": "int", "timestamp_ntz": "timestamp_ntz"}.get(t, t)


def is_null(value) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def documented(table: str) -> tuple[dict[str, str], dict]:
    doc = DOCUMENTED[table]
    rename = {"model_id": MODEL_ID_COLUMN}
    columns = {rename.get(k, k): v for k, v in doc["columns"].items()}
    rows = {kind: {key: [rename.get(c, c) for c in cols] for key, cols in rule.items()}
            for kind, rule in doc["rows"].items()}
    return columns, rows


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory):
    settings = load_settings(home=tmp_path_factory.mktemp("schema-home"))
    spec = load_spec("bakehouse_autolog").model_copy(update={"slices": ["product"]})
    frame, _ = seed_tables(settings, spec, rows=1200, days=3, baseline_rows=500, drift_from_day=2, seed=4,
                           label_fraction=0.7)
    tables = get_tables(settings)
    processed = settings.table(spec.processed_table)
    # zeros, nulls and a string column with a null, appended as a commit of their own
    extra = frame.sample(60, random_state=1).copy()
    extra["hour"] = 0
    extra.loc[extra.index[:20], "unitPrice"] = None
    extra.loc[extra.index[:10], "state"] = None
    tables.write(processed, extra)
    version = tables.version(processed)
    result = refresh_local(settings, spec, GRANULARITIES)
    data = pd.concat([frame, extra], ignore_index=True)
    return settings, spec, tables, version, result, data


@pytest.mark.parametrize("table", ["profile_metrics", "drift_metrics"])
def test_columns_and_types_are_the_documented_ones(refreshed, table):
    from deltalake import DeltaTable

    settings, spec, tables, *_ = refreshed
    name = settings.metrics_table(getattr(spec, f"{table}_table"))
    stored = json.loads(DeltaTable(str(tables.path(name))).schema().to_json())["fields"]
    columns, _ = documented(table)
    assert {f["name"]: spark_type(f["type"]) for f in stored} == columns


def _row_kind(spec, column: str) -> str:
    if column == ":table":
        return ":table"
    kinds = {c.name: ("string column" if categorical and c.type == "string" else
                      "numeric column" if not categorical else "other column")
             for c, categorical in monitored_columns(spec)}
    return kinds[column]


@pytest.mark.parametrize("table,split", [("profile_metrics", "log_type"), ("drift_metrics", "drift_type")])
def test_null_conventions_per_row_kind(refreshed, table, split):
    settings, spec, *_ = refreshed
    profile, drift = read_metric_tables(settings, spec)
    frame = profile if table == "profile_metrics" else drift
    _, rules = documented(table)
    seen: dict[tuple[str, str], int] = {}
    for row in frame.to_dict("records"):
        kind, group = _row_kind(spec, row["column_name"]), row[split]
        seen[(group, kind)] = seen.get((group, kind), 0) + 1
        for rule in (rules["all"], rules[group], rules.get(kind, {})):
            for column in rule.get("null", []):
                assert is_null(row[column]), (group, kind, column, row[column])
            for column in rule.get("not_null", []):
                assert not is_null(row[column]), (group, kind, column)
    # every documented row kind was written, for both log / drift types
    groups = {"profile_metrics": ("INPUT", "BASELINE"), "drift_metrics": ("CONSECUTIVE", "BASELINE")}[table]
    for group in groups:
        for kind in (":table", "numeric column", "string column"):
            assert seen.get((group, kind), 0) > 0, (group, kind)


def test_baseline_profile_rows_once_per_refresh_not_per_granularity(refreshed):
    settings, spec, _, version, _, _ = refreshed
    profile, _ = read_metric_tables(settings, spec)
    base = profile[profile.log_type == "BASELINE"]
    keys = [MODEL_ID_COLUMN, "slice_key", "slice_value", "column_name"]
    assert not base[keys].astype(str).duplicated().any()
    assert base["window_start"].isna().all() and base["granularity"].isna().all()
    assert set(profile.loc[profile.log_type == "INPUT", "granularity"]) == set(GRANULARITIES)
    # the processed table's version the refresh read, on every profile row
    assert set(profile["logging_table_commit_version"]) == {version}
    assert set(profile["monitor_version"]) == {0}


def test_new_columns_hold_the_statistics_of_the_rows(refreshed):
    settings, spec, _, _, _, data = refreshed
    profile, drift = read_metric_tables(settings, spec)
    data = data.assign(day=data["timestamp"].dt.floor("D"))
    day = data["day"].max()
    rows = data[data["day"] == day]
    p = profile[(profile.granularity == "1 day") & (profile.window_start == day) & (profile.log_type == "INPUT")
                & profile.slice_key.isna() & (profile[MODEL_ID_COLUMN] == "*")].set_index("column_name")
    hour = rows["hour"].astype("float64")
    assert p.loc["hour", "num_zeros"] == int((hour == 0).sum()) > 0
    assert p.loc["hour", "percent_zeros"] == pytest.approx(100 * (hour == 0).sum() / len(rows))
    assert p.loc["unitPrice", "num_nan"] == 0 and p.loc["unitPrice", "percent_nan"] == 0.0
    state = rows["state"].dropna().str.len()
    assert (p.loc["state", "min_length"], p.loc["state", "max_length"]) == (state.min(), state.max())
    assert p.loc["state", "avg_length"] == pytest.approx(state.mean())
    assert p.loc["state", "num_nulls"] == rows["state"].isna().sum() > 0
    assert list(p.loc[":table", "non_null_columns"]) == [c.name for c, _ in monitored_columns(spec)]
    assert p.loc[":table", "count"] == len(rows)

    d = drift[(drift.granularity == "1 day") & (drift.window_start == day) & (drift.drift_type == "CONSECUTIVE")
              & drift.slice_key.isna() & (drift[MODEL_ID_COLUMN] == "*")].set_index("column_name")
    prev = data[data["day"] == day - pd.Timedelta(days=1)]
    assert d.loc[":table", "count_delta"] == len(rows) - len(prev)
    assert d["count_delta"].dtype == np.int64
    assert d.loc["unitPrice", "count_delta"] == rows["unitPrice"].notna().sum() - prev["unitPrice"].notna().sum()
    assert d.loc[":table", "non_null_columns_delta"] == {"added": 0, "missing": 0}

    def pct_distinct(s):
        s = s.dropna()
        return 100 * s.nunique() / len(s)

    for column in ("unitPrice", "state"):
        assert d.loc[column, "percent_distinct_delta"] == pytest.approx(
            pct_distinct(rows[column]) - pct_distinct(prev[column]))
    zeros = (prev["hour"].astype("float64") == 0).sum() / len(prev)
    assert d.loc["hour", "percent_zeros_delta"] == pytest.approx(100 * ((hour == 0).sum() / len(rows) - zeros))


def test_monitor_version_counts_spec_changes(refreshed):
    settings, spec, *_ = refreshed
    changed = spec.model_copy(update={"description": "changed, so the monitor configuration is a new version"})
    refresh_local(settings, changed, GRANULARITIES)
    refresh_local(settings, changed, GRANULARITIES, full=True)  # the same spec: the same version
    profile, drift = read_metric_tables(settings, changed)
    assert set(profile["monitor_version"]) == set(drift["monitor_version"]) == {1}
