"""Local refresh: Databricks columns, incremental, crash-safe, granularities, read API."""

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.conftest import seed_tables
from workloads.monitoring import granularity as g
from workloads.monitoring.metrics import MetricsNotFoundError, latest_window_metrics, read_metric_tables
from workloads.monitoring.refresh import MonitorError, refresh_local
from workloads.monitoring.schema import DRIFT_SCHEMA, PROFILE_SCHEMA
from workloads.ports.tables import get_tables
from workloads.specs import load_spec


def test_metric_tables_have_databricks_columns_and_structs(refreshed):
    settings, spec, result = refreshed
    assert result.recomputed == {"1 day": 5}
    profile, drift = read_metric_tables(settings, spec)
    assert set(PROFILE_SCHEMA.names) <= set(profile.columns)
    assert set(DRIFT_SCHEMA.names) <= set(drift.columns)
    row = profile[(profile.column_name == "unitPrice") & (profile.model_version == "*")].iloc[0]
    assert set(row["window"]) == {"start", "end"}
    assert len(row["quantiles"]) == 21 and row["median"] == pytest.approx(row["quantiles"][10])
    assert set(drift["drift_type"]) == {"CONSECUTIVE", "BASELINE"}
    ks = drift[(drift.column_name == "unitPrice")].iloc[0]["ks_test"]
    assert set(ks) == {"statistic", "pvalue"} and 0 <= ks["pvalue"] <= 1
    items = profile[(profile.column_name == "product")].iloc[0]["frequent_items"]
    assert set(items[0]) == {"item", "count"} and items[0]["count"] >= items[-1]["count"]
    assert set(profile["model_version"]) == {"1", "2", "*"}
    table_rows = profile[(profile.column_name == ":table") & (profile.log_type == "INPUT")]
    assert table_rows["root_mean_squared_error"].notna().all()


def test_drift_shows_after_the_shift(refreshed):
    settings, spec, _ = refreshed
    _, drift = read_metric_tables(settings, spec)
    d = drift[(drift.drift_type == "BASELINE") & (drift.model_version == "*") & (drift.column_name == "unitPrice")]
    d = d.sort_values("window_start")
    psi = d["population_stability_index"].to_numpy()
    assert psi[-1] > 5 * psi[0]


def test_latest_window_metrics(refreshed):
    settings, spec, _ = refreshed
    m = latest_window_metrics(settings, spec)
    assert m.window_start == pd.Timestamp("2026-01-05", tz="UTC")
    assert m.window_end - m.window_start == pd.Timedelta(days=1)
    assert m.row_count == m.counts["*"] == m.counts["1"] + m.counts["2"]
    assert 0 < m.labelled_count < m.row_count
    assert m.metric("rmse") == m.metric("root_mean_squared_error") is not None
    assert m.missing_metrics(spec) == []
    assert "unitPrice" in m.drift and "population_stability_index" in m.drift["unitPrice"]
    assert "unitPrice" in m.drift_breaches(spec)


def test_unknown_granularity_and_missing_tables(settings):
    spec = load_spec("bakehouse_autolog")
    with pytest.raises(g.GranularityError):
        g.parse_granularity("3 fortnights")
    with pytest.raises(MonitorError, match="does not exist"):
        refresh_local(settings, spec)
    with pytest.raises(MetricsNotFoundError):
        latest_window_metrics(settings, spec)


def test_windows_align_like_databricks():
    ts = np.array([pd.Timestamp("2026-03-18 13:47:12", tz="UTC").value])
    assert g.to_timestamp(g.parse_granularity("5 minutes").floor(ts)[0]) == pd.Timestamp("2026-03-18 13:45", tz="UTC")
    assert g.to_timestamp(g.parse_granularity("1 hour").floor(ts)[0]) == pd.Timestamp("2026-03-18 13:00", tz="UTC")
    assert g.to_timestamp(g.parse_granularity("1 day").floor(ts)[0]) == pd.Timestamp("2026-03-18", tz="UTC")
    week = g.to_timestamp(g.parse_granularity("1 week").floor(ts)[0])
    assert week.day_name() == "Thursday" and week <= pd.Timestamp("2026-03-18", tz="UTC")
    month = g.parse_granularity("1 month")
    assert g.to_timestamp(month.floor(ts)[0]) == pd.Timestamp("2026-03-01", tz="UTC")
    assert g.to_timestamp(month.end(month.floor(ts))[0]) == pd.Timestamp("2026-04-01", tz="UTC")
    assert g.parse_granularity("30 MINUTES").text == "30 minutes"


@pytest.fixture
def small(settings):
    spec = load_spec("bakehouse_large_order").model_copy(update={"slices": ["product"]})
    seed_tables(settings, spec, rows=600, days=4, baseline_rows=300, seed=3)
    return settings, spec


def test_incremental_refresh_recomputes_only_changed_windows(small):
    settings, spec = small
    first = refresh_local(settings, spec, ["1 day", "1 hour"])
    assert first.recomputed == {"1 day": 4, "1 hour": 96}
    profile_before, drift_before = read_metric_tables(settings, spec)
    again = refresh_local(settings, spec, ["1 day", "1 hour"])
    assert again.recomputed == {"1 day": 0, "1 hour": 0} and again.profile_rows == 0
    tables = get_tables(settings)
    assert tables.version(settings.table(spec.profile_metrics_table)) == 0  # nothing rewritten
    from workloads.monitoring.synthetic import make_frames

    extra, _ = make_frames(spec, rows=20, days=1, seed=9, start=pd.Timestamp("2026-01-02 05:00", tz="UTC"))
    extra["timestamp"] = pd.Timestamp("2026-01-02 05:30", tz="UTC")
    tables.write(settings.table(spec.processed_table), extra)
    third = refresh_local(settings, spec, ["1 day", "1 hour"])
    # The changed day/hour and the next one (its CONSECUTIVE drift) only.
    assert third.recomputed == {"1 day": 2, "1 hour": 2}
    profile, drift = read_metric_tables(settings, spec)
    # Replaced, not duplicated: one row per grouping key.
    keys = ["granularity", "window_start", "model_version", "log_type", "slice_key", "slice_value", "column_name"]
    assert not profile[keys].astype(str).duplicated().any()
    assert not drift[[*keys[:3], "drift_type", *keys[4:]]].astype(str).duplicated().any()
    assert len(profile) >= len(profile_before) and len(drift) >= len(drift_before)
    day2 = profile[(profile.granularity == "1 day") & (profile.column_name == ":table") & (profile.model_version == "*")
                   & profile.slice_key.isna() & (profile.log_type == "INPUT")
                   & (profile.window_start == pd.Timestamp("2026-01-02", tz="UTC"))]
    before = profile_before[(profile_before.granularity == "1 day") & (profile_before.column_name == ":table")
                            & (profile_before.model_version == "*") & profile_before.slice_key.isna()
                            & (profile_before.log_type == "INPUT")
                            & (profile_before.window_start == pd.Timestamp("2026-01-02", tz="UTC"))]
    assert int(day2["count"].iloc[0]) == int(before["count"].iloc[0]) + 20
    assert set(profile["slice_key"].dropna()) == {"product"}
    assert profile["accuracy_score"].notna().any() and profile["f1_score"].notna().any()


def test_crash_mid_refresh_leaves_previous_state_and_is_redone(small, monkeypatch):
    settings, spec = small
    refresh_local(settings, spec)
    tables = get_tables(settings)
    drift_name = settings.table(spec.drift_metrics_table)
    drift_before = tables.read(drift_name)
    version_before = tables.version(drift_name)
    extra = tables.read(settings.table(spec.processed_table)).head(30).copy()
    extra["timestamp"] = pd.Timestamp("2026-01-04 12:00", tz="UTC")
    tables.write(settings.table(spec.processed_table), extra)

    from workloads.ports import tables as tables_module

    real_write = tables_module.LocalTables.write

    def crash_on_drift(self, name, df, mode="append"):
        if name == drift_name:
            raise RuntimeError("simulated crash")
        return real_write(self, name, df, mode)

    monkeypatch.setattr(tables_module.LocalTables, "write", crash_on_drift)
    with pytest.raises(RuntimeError, match="simulated crash"):
        refresh_local(settings, spec)
    monkeypatch.setattr(tables_module.LocalTables, "write", real_write)
    assert tables.version(drift_name) == version_before
    pd.testing.assert_frame_equal(tables.read(drift_name), drift_before)
    redo = refresh_local(settings, spec)
    assert redo.recomputed["1 day"] == 1  # the interrupted window is redone, not forgotten
    assert tables.version(drift_name) == version_before + 1


@pytest.mark.parametrize("gran", ["5 minutes", "1 week", "1 month"])
def test_other_granularities(settings, gran):
    spec = load_spec("bakehouse_autolog").model_copy(update={"slices": []})
    seed_tables(settings, spec, rows=300, days=2, baseline_rows=100)
    result = refresh_local(settings, spec, [gran])
    profile, _ = read_metric_tables(settings, spec)
    rows = profile[(profile.granularity == gran) & (profile.column_name == ":table") & (profile.log_type == "INPUT")
                   & (profile.model_version == "*")]
    assert len(rows) == result.recomputed[gran] and rows["count"].sum() == 300


def test_compiled_and_numpy_paths_write_the_same_metrics(monkeypatch):
    from workloads.monitoring import stats
    from workloads.monitoring.compute import compute_metrics, prepare
    from workloads.monitoring.synthetic import benchmark_spec, make_frames

    spec = benchmark_spec(numeric=3, categorical=1)
    frame, baseline = make_frames(spec, rows=3000, days=3, baseline_rows=800, drift_from_day=2, ids=False)
    data = prepare(frame, baseline, spec)
    compiled = compute_metrics(data, "1 day").drift.to_pandas()
    monkeypatch.setattr(stats, "USE_KERNEL", False)
    reference = compute_metrics(prepare(frame, baseline, spec), "1 day").drift.to_pandas()
    assert len(compiled) == len(reference) > 0
    for column in ("wasserstein_distance", "population_stability_index"):
        np.testing.assert_allclose(compiled[column].astype(float), reference[column].astype(float), rtol=1e-9,
                                   atol=1e-12)
    ks = [[(t or {}).get("statistic", np.nan) for t in frame["ks_test"]] for frame in (compiled, reference)]
    np.testing.assert_allclose(np.array(ks[0], dtype=float), np.array(ks[1], dtype=float), rtol=0, atol=1e-12)


def test_edge_cases_through_the_whole_refresh(settings):
    from workloads.monitoring.synthetic import benchmark_spec

    spec = benchmark_spec(numeric=3, categorical=1)
    frame, _ = seed_tables(settings, spec, rows=400, days=2, baseline_rows=200)
    odd = frame.head(1).copy()  # a window holding one row, with an unseen category, inf and a null
    odd["timestamp"] = pd.Timestamp("2026-01-04 10:00", tz="UTC")
    odd["c0"] = "never seen in the baseline"
    odd["x0"] = np.nan
    odd["x1"] = np.inf
    tables = get_tables(settings)
    tables.write(settings.table(spec.processed_table), odd)
    refresh_local(settings, spec)
    profile, drift = read_metric_tables(settings, spec)
    day = pd.Timestamp("2026-01-04", tz="UTC")
    p = profile[(profile.window_start == day) & (profile.model_version == "*") & (profile.log_type == "INPUT")]
    table = p[p.column_name == ":table"].iloc[0]
    assert table["count"] == 1 and pd.isna(table["r2_score"])  # r2 undefined on one row
    x0 = p[p.column_name == "x0"].iloc[0]
    assert (x0["count"], x0["num_nulls"], x0["percent_null"]) == (0, 1, 100.0)
    assert pd.isna(x0["avg"]) and x0["quantiles"] is None
    x1 = p[p.column_name == "x1"].iloc[0]
    # an infinity is no NaN (num_nan counts NaN, as on Databricks); locally it is counted with the nulls
    assert (x1["count"], x1["num_nulls"], x1["num_nan"], x1["percent_nan"]) == (0, 1, 0, 0.0)
    assert "x1" in table["non_null_columns"] and "x0" not in table["non_null_columns"]
    x2 = p[p.column_name == "x2"].iloc[0]
    assert x2["count"] == 1 and pd.isna(x2["stddev"]) and x2["min"] == x2["max"] == x2["median"]
    d = drift[(drift.window_start == day) & (drift.model_version == "*") & (drift.drift_type == "BASELINE")]
    assert d[d.column_name == "x0"]["ks_test"].iloc[0] is None  # nothing to compare: no statistic
    assert d[d.column_name == "x2"]["ks_test"].iloc[0]["statistic"] > 0
    category = d[d.column_name == "c0"].iloc[0]
    assert category["l_infinity_distance"] == pytest.approx(1.0) and category["tv_distance"] == pytest.approx(1.0)
    assert 0 <= category["chi_squared_test"]["pvalue"] < 0.05


@pytest.mark.parametrize("threaded,shuffled", [(False, False), (True, False), (True, True)],
                         ids=["one-thread", "threads", "threads-shuffled-rows"])
def test_one_pass_column_kernel_matches_numpy_path_on_ties_gaps_and_versioned_baselines(monkeypatch, threaded,
                                                                                      shuffled):
    """The one-pass column kernel (ranks as counters in value order) against the per-pair numpy reference:
    heavy ties across windows and baseline, a missing day (no CONSECUTIVE pair across the gap), NaN and inf,
    a window whose values are all null, and a baseline with rows of both versions (per-version targets).
    ``threaded``: the paths large inputs take (categories coded in the background, columns and summaries on
    threads, per-thread scratch arrays reused across columns); ``shuffled``: rows not in time order."""
    from workloads.monitoring import parallel, stats
    from workloads.monitoring.compute import compute_metrics, prepare
    from workloads.monitoring.synthetic import benchmark_spec, make_frames

    if threaded:
        monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 0)
        monkeypatch.setenv("MLOPS_MONITOR_THREADS", "2")

    spec = benchmark_spec(numeric=3, categorical=1)
    frame, baseline = make_frames(spec, rows=4000, days=5, baseline_rows=1500, drift_from_day=3, ids=False, seed=3)
    rng = np.random.default_rng(5)
    frame["x0"] = np.round(frame["x0"], 0)  # ties everywhere
    baseline["x0"] = np.round(baseline["x0"], 0)
    frame.loc[rng.random(len(frame)) < 0.05, "x1"] = np.nan
    frame.loc[rng.random(len(frame)) < 0.02, "x1"] = np.inf
    frame.loc[rng.random(len(frame)) < 0.02, "x2"] = -np.inf
    day = frame["timestamp"].dt.floor("D")
    frame = frame[day != day.unique()[2]].reset_index(drop=True)  # a gap
    day = frame["timestamp"].dt.floor("D")
    frame.loc[(day == day.unique()[-1]).to_numpy(), "x2"] = np.nan  # one window all null
    baseline["model_version"] = np.where(rng.random(len(baseline)) < 0.6, "1", "2")
    if shuffled:
        frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    compiled = compute_metrics(prepare(frame, baseline, spec), "1 day")
    monkeypatch.setattr(stats, "USE_KERNEL", False)
    reference = compute_metrics(prepare(frame, baseline, spec), "1 day")
    for got, want in ((compiled.drift.to_pandas(), reference.drift.to_pandas()),
                      (compiled.profile.to_pandas(), reference.profile.to_pandas())):
        assert len(got) == len(want) > 0
        assert list(got["column_name"]) == list(want["column_name"])
        for column in got.columns:
            a, b = got[column].tolist(), want[column].tolist()
            if column in ("ks_test", "chi_squared_test"):
                a = [(t or {}).get("statistic") for t in a]
                b = [(t or {}).get("statistic") for t in b]
            if got[column].dtype.kind == "f" or column in ("ks_test", "chi_squared_test"):
                np.testing.assert_allclose(np.array(a, dtype=float), np.array(b, dtype=float), rtol=1e-9,
                                           atol=1e-12, err_msg=column)
            elif column == "non_null_columns":
                assert [None if v is None else list(v) for v in a] == [None if v is None else list(v) for v in b]
            elif column not in ("quantiles", "frequent_items", "window", "window_cmp"):
                assert a == b, column
    ks = compiled.drift.to_pandas()["ks_test"]
    assert sum(t is not None for t in ks) > 0


def test_metric_tables_live_in_the_monitoring_schema(tmp_path, monkeypatch):
    """A stack with ``schemas.monitoring`` set: the jobs pass ``--monitoring-schema``, and the refresh, the
    readers and the CLI all use the metric tables there, not in the models' schema."""
    from typer.testing import CliRunner

    from workloads.cli import app
    from workloads.settings import load_settings

    monkeypatch.setenv("MLOPS_MONITORING_SCHEMA", "from_env")
    assert load_settings(home=tmp_path).metrics_table("t") == "mlops_dev.from_env.t"
    monkeypatch.delenv("MLOPS_MONITORING_SCHEMA")
    assert load_settings(home=tmp_path).metrics_table("t") == "mlops_dev.bakehouse_ml.t"
    settings = load_settings(home=tmp_path, monitoring_schema="bakehouse_monitoring")
    spec = load_spec("bakehouse_autolog").model_copy(update={"slices": []})
    seed_tables(settings, spec, rows=300, days=2, baseline_rows=100)
    refresh_local(settings, spec)
    tables = get_tables(settings)
    for name in (spec.profile_metrics_table, spec.drift_metrics_table):
        assert tables.exists(f"mlops_dev.bakehouse_monitoring.{name}")
        assert not tables.exists(settings.table(name))
    profile, _ = read_metric_tables(settings, spec)
    assert len(profile) > 0
    with pytest.raises(MetricsNotFoundError, match="bakehouse_ml"):
        read_metric_tables(load_settings(home=tmp_path), spec)  # the models' schema holds none
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--monitoring-schema", "bakehouse_monitoring"]
    done = runner.invoke(app, [*base, "drift", "analyze", "--model", spec.name, "--days", "7"])
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("gran", ["5 minutes", "1 hour", "1 day", "1 week", "1 month"])
def test_window_index_of_time_ordered_and_shuffled_rows(gran):
    """Time-ordered rows take the run-per-window path: the same windows and indexes as floor + unique."""
    from workloads.monitoring.groups import unique_inverse, window_index

    granularity = g.parse_granularity(gran)
    rng = np.random.default_rng(2)
    start = pd.Timestamp("2026-01-01", tz="UTC").value
    ts = np.sort(rng.integers(start, start + 70 * 86_400 * 10**9, 20_000))
    ts[3000:9000] = ts[3000]  # a long gap with no rows
    for rows in (ts, rng.permutation(ts), ts[:1]):
        starts, index = window_index(granularity, rows)
        want_starts, want_index = unique_inverse(granularity.floor(rows))
        assert np.array_equal(starts, want_starts) and np.array_equal(index, want_index)
        assert np.all(np.diff(starts) > 0) and np.array_equal(starts[index], granularity.floor(rows))


def test_metric_rows_refuse_fields_the_schema_lacks():
    from workloads.monitoring.schema import Rows

    rows = Rows(DRIFT_SCHEMA)
    assert rows.to_arrow().schema == DRIFT_SCHEMA and rows.to_arrow().num_rows == 0
    rows.add(column_name="x0", count_delta=1.0)
    with pytest.raises(ValueError, match="wasserstein_distanse"):
        rows.add(column_name="x0", wasserstein_distanse=0.1)
    table = rows.to_arrow()
    assert table.num_rows == 1 and table.column("count_delta").to_pylist() == [1.0]
    assert table.column("wasserstein_distance").to_pylist() == [None]
