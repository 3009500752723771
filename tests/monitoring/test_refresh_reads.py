"""The local refresh reads what it recomputes: windows found from the Delta log, rows read by a timestamp predicate.

Reference: a full refresh (``full=True``) of the same table; an incremental refresh after appends, label MERGEs and
deletes must leave metric tables equal to it, while reading only the changed windows and their predecessors.
"""

import pandas as pd
import pytest

from tests.monitoring.conftest import seed_tables
from workloads.monitoring.metrics import read_metric_tables
from workloads.monitoring.refresh import refresh_local
from workloads.monitoring.synthetic import make_frames
from workloads.ports import tables as tables_module
from workloads.ports.tables import RowFilter, get_tables
from workloads.settings import load_settings
from workloads.specs import EXAMPLE_ID_COLUMN, load_spec

DAY = pd.Timedelta(days=1)
KEYS = ["granularity", "window_start", "model_version", "log_type", "slice_key", "slice_value", "column_name"]


@pytest.fixture
def month(tmp_path):
    """A regression model with 12 days of traffic appended a day at a time (as the watcher's unpack does)."""
    settings = load_settings(home=tmp_path / "home")
    spec = load_spec("bakehouse_autolog").model_copy(update={"slices": []})
    seed_tables(settings, spec, rows=200, days=1, baseline_rows=400, seed=1)
    tables = get_tables(settings)
    processed = settings.table(spec.processed_table)
    tables.drop(processed)
    for day in range(12):
        frame, _ = make_frames(spec, rows=200, days=1, seed=10 + day, label_fraction=0.5,
                               start=pd.Timestamp("2026-01-01", tz="UTC") + day * DAY)
        frame[EXAMPLE_ID_COLUMN] = [f"d{day}-{i}" for i in range(len(frame))]
        tables.write(processed, frame)
    return settings, spec


@pytest.fixture
def reads(monkeypatch):
    """Every read of the processed table: (row filter, rows returned)."""
    seen = []
    real = tables_module.LocalTables.read

    def recording(self, name, columns=None, version=None, where=None):
        out = real(self, name, columns, version, where)
        if name.endswith("_inference"):
            seen.append((where, len(out)))
        return out

    monkeypatch.setattr(tables_module.LocalTables, "read", recording)
    return seen


def _sorted(frame):
    frame = frame.copy()
    frame["window_start"] = frame["window_start"].astype(str)
    keys = [k for k in [*KEYS, "drift_type"] if k in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


def _assert_same_as_full(settings, spec, tmp_path):
    """The incremental metric tables equal a full refresh of the same table (computed in another home)."""
    incremental = [_sorted(t) for t in read_metric_tables(settings, spec)]
    other = load_settings(home=tmp_path / "full-home")
    other.home.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copytree(settings.warehouse, other.warehouse, dirs_exist_ok=True)
    refresh_local(other, spec, full=True)
    full = [_sorted(t) for t in read_metric_tables(other, spec)]
    volatile = ["logging_table_commit_version", "monitor_version"]
    for mine, ref in zip(incremental, full, strict=True):
        pd.testing.assert_frame_equal(mine.drop(columns=volatile, errors="ignore"),
                                      ref.drop(columns=volatile, errors="ignore"), check_dtype=False)


def test_an_append_reads_only_its_window_and_the_one_before(month, reads, tmp_path):
    settings, spec = month
    first = refresh_local(settings, spec)
    assert first.recomputed == {"1 day": 12} and reads[-1] == (None, 2400)
    extra, _ = make_frames(spec, rows=50, days=1, seed=99, start=pd.Timestamp("2026-01-13", tz="UTC"))
    extra[EXAMPLE_ID_COLUMN] = [f"new-{i}" for i in range(len(extra))]
    get_tables(settings).write(settings.table(spec.processed_table), extra)
    again = refresh_local(settings, spec)
    assert again.recomputed == {"1 day": 1} and again.unchanged == {"1 day": 12}
    where, rows = reads[-1]
    assert isinstance(where, RowFilter) and rows == 200 + 50  # day 12 (the CONSECUTIVE reference) + the new day 13
    _assert_same_as_full(settings, spec, tmp_path)


def test_nothing_changed_reads_nothing(month, reads):
    settings, spec = month
    refresh_local(settings, spec)
    count = len(reads)
    again = refresh_local(settings, spec)
    assert again.recomputed == {"1 day": 0} and len(reads) == count


def test_a_label_merge_recomputes_the_windows_of_the_rewritten_files(month, reads, tmp_path):
    settings, spec = month
    refresh_local(settings, spec)
    tables = get_tables(settings)
    processed = settings.table(spec.processed_table)
    day4 = tables.read(processed, where=RowFilter(
        "timestamp", ((pd.Timestamp("2026-01-04", tz="UTC"), pd.Timestamp("2026-01-05", tz="UTC")),)))
    unlabelled = day4[day4[spec.label.name].isna()].head(30).copy()
    unlabelled[spec.label.name] = 5.0
    assert tables.merge(processed, unlabelled, keys=[EXAMPLE_ID_COLUMN])["num_target_rows_updated"] == 30
    again = refresh_local(settings, spec)
    assert again.recomputed == {"1 day": 2}  # day 4 and day 5 (whose CONSECUTIVE drift compares with day 4)
    assert reads[-1][1] == 600  # days 3, 4, 5
    _assert_same_as_full(settings, spec, tmp_path)


def test_a_deleted_window_is_removed_and_its_successor_recomputed(month, tmp_path):
    settings, spec = month
    refresh_local(settings, spec)
    tables = get_tables(settings)
    tables.delete(settings.table(spec.processed_table),
                  "timestamp >= '2026-01-06T00:00:00Z' AND timestamp < '2026-01-07T00:00:00Z'")
    again = refresh_local(settings, spec)
    assert again.recomputed == {"1 day": 1} and again.unchanged == {"1 day": 10}
    profile, _ = read_metric_tables(settings, spec)
    assert pd.Timestamp("2026-01-06", tz="UTC") not in set(profile["window_start"])
    _assert_same_as_full(settings, spec, tmp_path)


def test_a_log_that_cannot_say_recomputes_everything(month, monkeypatch, tmp_path):
    settings, spec = month
    refresh_local(settings, spec)
    extra, _ = make_frames(spec, rows=20, days=1, seed=5, start=pd.Timestamp("2026-01-03", tz="UTC"))
    get_tables(settings).write(settings.table(spec.processed_table), extra)
    monkeypatch.setattr(tables_module.LocalTables, "changed_spans", lambda *a, **k: None)
    again = refresh_local(settings, spec)
    assert again.recomputed == {"1 day": 12}
    _assert_same_as_full(settings, spec, tmp_path)


def test_changed_spans_come_from_the_files_added_and_removed(tmp_path):
    tables = tables_module.LocalTables(tmp_path)
    name = "c.s.t"
    for day in (1, 2):
        ts = pd.date_range(f"2026-01-0{day} 01:00", periods=10, freq="1h", tz="UTC")
        tables.write(name, pd.DataFrame({"timestamp": ts, "k": [f"{day}-{i}" for i in range(10)], "y": 0.0}))
    assert tables.changed_spans(name, "timestamp", 1) == []
    (lo, hi), = tables.changed_spans(name, "timestamp", 0)
    assert (pd.Timestamp(lo), pd.Timestamp(hi)) == (pd.Timestamp("2026-01-02 01:00", tz="UTC"),
                                                    pd.Timestamp("2026-01-02 10:00", tz="UTC"))
    tables.merge(name, pd.DataFrame({"timestamp": [pd.Timestamp("2026-01-01 03:00", tz="UTC")], "k": ["1-2"],
                                     "y": [1.0]}), keys=["k"])
    spans = tables.changed_spans(name, "timestamp", 1)  # day 1's file rewritten: removed and added, same span
    assert {(pd.Timestamp(a), pd.Timestamp(b)) for a, b in spans} == {
        (pd.Timestamp("2026-01-01 01:00", tz="UTC"), pd.Timestamp("2026-01-01 10:00", tz="UTC"))}
    assert tables.changed_spans(name, "no_such_column", 0) is None


def test_a_wide_processed_table_keeps_its_timestamp_statistics(tmp_path):
    """With more than 32 columns before it, the timestamp has statistics only through the processed table's
    ``delta.dataSkippingStatsColumns``; without them the log cannot say what changed."""
    spec = load_spec("bakehouse_autolog")
    wide = pd.DataFrame({**{f"f{i}": [1.0, 2.0] for i in range(40)},
                         "timestamp": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
                         spec.label.name: [None, 1.0], spec.prediction.name: [1.0, 2.0], "model_version": ["1", "1"],
                         "request_id": ["a", "b"], "example_id": ["a:0", "b:0"]})
    tables = tables_module.LocalTables(tmp_path)
    for name, properties in (("c.s.plain", None), ("c.s.processed", spec.processed_table_properties())):
        tables.insert_new(name, wide, keys=["request_id", "example_id"], properties=properties)
        later = wide.assign(request_id=["c", "d"], example_id=["c:0", "d:0"])
        tables.insert_new(name, later, keys=["request_id", "example_id"], properties=properties)
    assert tables.changed_spans("c.s.plain", "timestamp", 0) is None
    (lo, hi), = tables.changed_spans("c.s.processed", "timestamp", 0)
    assert (pd.Timestamp(lo), pd.Timestamp(hi)) == (pd.Timestamp("2026-01-01", tz="UTC"),
                                                    pd.Timestamp("2026-01-02", tz="UTC"))
