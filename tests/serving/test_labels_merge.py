"""Late labels are one MERGE into the processed table: only the files holding changed examples are rewritten, the
rows read are bounded by the labels' request times, counts are right, and re-ingesting changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from workloads.labels import (
    REQUEST_TIME_SLACK,
    REQUESTED_AT_COLUMN,
    ingest_labels,
    pending_labels_table,
    record_labels,
)
from workloads.ports.tables import LocalTables
from workloads.specs import load_spec
from workloads.unpacking import cast_columns

SPEC = load_spec("bakehouse_autolog")
DAY0 = datetime(2030, 3, 1, tzinfo=UTC)


def processed_rows(day: int, requests: int = 3, rows: int = 2, label=None) -> pd.DataFrame:
    """``requests`` requests of ``rows`` examples each, served on ``DAY0 + day`` (request ids ``d<day>-r<i>``)."""
    records = []
    for r in range(requests):
        for i in range(rows):
            records.append({"product": "Golden Gate Ginger", "unitPrice": 3, "hour": 9, "prediction": 1.5,
                            "quantity": label, "model_version": "1",
                            "timestamp": DAY0 + timedelta(days=day, minutes=r),
                            "request_id": f"d{day}-r{r}", "example_id": f"d{day}-r{r}:{i}"})
    return cast_columns(pd.DataFrame(records), SPEC.processed_columns())


class CountingTables(LocalTables):
    """Local tables that remember which row filters the processed table was read and merged with."""

    def __init__(self, warehouse):
        super().__init__(warehouse)
        self.reads, self.updates = [], []

    def read(self, name, columns=None, version=None, where=None):
        self.reads.append((name, list(columns) if columns else None, where))
        return super().read(name, columns, version, where)

    def update_matched(self, name, df, keys, columns, since=None):
        self.updates.append((name, len(df), since))
        return super().update_matched(name, df, keys, columns, since)


@pytest.fixture
def world(settings):
    """A processed table written in three appends (one data file per day) and a tables port that counts reads."""
    tables = CountingTables(settings.warehouse)
    name = settings.table(SPEC.processed_table)
    for day in range(3):
        tables.write(name, processed_rows(day))
    return settings, tables, name


def data_files(tables: LocalTables, name: str) -> set[str]:
    return set(pa.table(tables._table(name).get_add_actions(flatten=True)).column("path").to_pylist())


def file_of(tables: LocalTables, name: str, example: str) -> str:
    """The data file holding ``example``."""
    table = tables._table(name)
    root = table.table_uri.removeprefix("file://").rstrip("/")
    for fragment in table.to_pyarrow_dataset().get_fragments():
        if example in fragment.to_table(columns=["example_id"]).column("example_id").to_pylist():
            return fragment.path.removeprefix(root).lstrip("/")
    raise AssertionError(f"{example} is in no data file")


def labels(examples: dict[str, int], requested_at: datetime | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"example_id": list(examples), "request_id": [e.split(":")[0] for e in examples],
                          "quantity": list(examples.values())})
    if requested_at is not None:
        frame[REQUESTED_AT_COLUMN] = requested_at
    return frame


def test_pending_labels_merge_rewrites_only_the_file_of_the_labelled_examples(world):
    settings, tables, name = world
    before = data_files(tables, name)
    day1, day2 = file_of(tables, name, "d1-r0:0"), file_of(tables, name, "d2-r0:0")
    record_labels(settings, SPEC, labels({"d2-r0:0": 4, "d2-r1:1": 6}, requested_at=DAY0 + timedelta(days=2)),
                  tables=tables)

    result = ingest_labels(settings, SPEC, tables=tables)
    lookups = [where for table, _, where in tables.reads if table == name]

    assert (result.received, result.matched, result.updated, result.unmatched) == (2, 2, 2, 0)
    after = data_files(tables, name)
    assert before - after == {day2}  # only the day-2 file was rewritten
    assert {f for f in before if f != day2} <= after and len(after - before) == 1
    processed = tables.read(name).set_index("example_id")["quantity"]
    assert processed["d2-r0:0"] == 4 and processed["d2-r1:1"] == 6
    assert processed.drop(["d2-r0:0", "d2-r1:1"]).isna().all()
    # the lookup and the MERGE were bounded by the labels' earliest request time, less the clock slack
    bound = pd.Timestamp(DAY0 + timedelta(days=2)) - REQUEST_TIME_SLACK
    assert len(lookups) == 1 and lookups[0].ranges == ((bound, None),)
    assert tables.updates == [(name, 2, ("timestamp", bound))]
    assert day1 in after
    assert tables.read(settings.table(pending_labels_table(SPEC))).empty  # matched labels left the pending table


def test_request_id_labels_count_every_example_and_reingest_commits_nothing(world, tmp_path):
    settings, tables, name = world
    csv = tmp_path / "labels.csv"
    # labels from a file carry no request time: no bound, the day-0 request still matches
    pd.DataFrame({"request_id": ["d0-r1", "d2-r2", "never-sent"], "label": [7, 8, 9]}).to_csv(csv, index=False)
    day1 = file_of(tables, name, "d1-r0:0")

    first = ingest_labels(settings, SPEC, source=str(csv), tables=tables)

    assert (first.received, first.matched, first.updated, first.unmatched) == (3, 4, 4, 1)
    assert day1 in data_files(tables, name)
    assert tables.updates[-1][2] is None
    version, files = tables.version(name), data_files(tables, name)
    again = ingest_labels(settings, SPEC, source=str(csv), tables=tables)
    assert (again.received, again.matched, again.updated, again.unmatched) == (3, 4, 0, 1)
    assert tables.version(name) == version and data_files(tables, name) == files  # nothing committed
    by_request = tables.read(name).groupby("request_id")["quantity"]
    assert by_request.min()["d0-r1"] == by_request.max()["d0-r1"] == 7
    assert by_request.max()["d2-r2"] == 8 and by_request.count()["d1-r0"] == 0


def test_an_unchanged_label_matches_without_rewriting_its_file(world, tmp_path):
    settings, tables, name = world
    path = tmp_path / "first.csv"
    pd.DataFrame({"example_id": ["d1-r0:0"], "quantity": [5]}).to_csv(path, index=False)
    ingest_labels(settings, SPEC, source=str(path), tables=tables)
    files, day2 = data_files(tables, name), file_of(tables, name, "d2-r0:1")
    path.write_text("example_id,quantity\nd1-r0:0,5\nd2-r0:1,3\n")

    result = ingest_labels(settings, SPEC, source=str(path), tables=tables)

    assert (result.matched, result.updated, result.unmatched) == (2, 1, 0)
    assert files - data_files(tables, name) == {day2}  # the day-1 file, whose label did not change, stays


def test_a_label_waits_for_its_unpack_then_matches(world):
    settings, tables, name = world
    sent = DAY0 + timedelta(days=3)
    record_labels(settings, SPEC, labels({"d3-r0:0": 2, "d3-r0:1": 3, "d2-r0:0": 1}, requested_at=sent),
                  tables=tables)
    pending = settings.table(pending_labels_table(SPEC))

    early = ingest_labels(settings, SPEC, tables=tables)

    # d2-r0:0 is older than its recorded request time allows: it is looked for only from the bound on
    assert (early.received, early.matched, early.updated, early.unmatched) == (3, 0, 0, 3)
    assert len(tables.read(pending)) == 3
    tables.write(name, processed_rows(3, requests=1))  # the unpack of day 3 arrives
    late = ingest_labels(settings, SPEC, tables=tables)
    assert (late.received, late.matched, late.updated, late.unmatched) == (3, 2, 2, 1)
    assert tables.read(pending)["example_id"].tolist() == ["d2-r0:0"]
    assert tables.read(name).set_index("example_id").loc[["d3-r0:0", "d3-r0:1"], "quantity"].tolist() == [2, 3]
    assert ingest_labels(settings, SPEC, tables=tables).updated == 0


def test_labels_recorded_before_request_times_were_kept_are_not_bounded(world):
    settings, tables, name = world
    record_labels(settings, SPEC, labels({"d2-r0:0": 4}, requested_at=DAY0 + timedelta(days=2)), tables=tables)
    record_labels(settings, SPEC, labels({"d0-r0:0": 9}), tables=tables)  # an older writer: no requested_at

    result = ingest_labels(settings, SPEC, tables=tables)

    assert (result.received, result.matched, result.updated, result.unmatched) == (2, 2, 2, 0)
    assert tables.updates[-1][2] is None
    assert tables.read(name).set_index("example_id").loc[["d0-r0:0", "d2-r0:0"], "quantity"].tolist() == [9, 4]


@pytest.mark.parametrize(("columns", "message"), [
    ({"example_id": ["d0-r0:0"], "price": [2]}, ("labels need a 'quantity' (or 'label') column; got ['example_id', "
                                                "'price']")),
    ({"id": ["d0-r0:0"], "label": [2]}, "labels need an 'example_id' or 'request_id' column to join on"),
])
def test_a_label_file_without_its_label_or_key_column_is_one_clear_error(world, tmp_path, columns, message):
    from workloads.labels import LabelError

    settings, tables, processed = world
    path = tmp_path / "labels.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    before = tables.version(processed)
    with pytest.raises(LabelError, match=re.escape(message)):
        ingest_labels(settings, SPEC, str(path), tables=tables)
    assert tables.version(processed) == before  # nothing written
