"""Incremental unpack: each run reads exactly the payload rows inserted since the watermark, and writes them once.

The payload table is written directly (appends like the endpoint's flushes, insert-only MERGEs like its crash
replay), so no server is needed; the processed table is checked against the set of examples that must be in it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import workloads.ports.tables as port
from workloads.ports.tables import LocalTables
from workloads.serving.payload_log import REQUEST_ID, payload_frame
from workloads.traffic import request_body
from workloads.unpacking import RETRY_WINDOW, state_table, unpack, unpack_app_id

START = datetime(2030, 6, 1, tzinfo=UTC)


class CrashAfterAppend(LocalTables):
    """Local tables that die once, right after the processed-table append committed and before the state table says
    so."""

    def __init__(self, warehouse, state_name):
        super().__init__(warehouse)
        self.state_name, self.armed, self.appended = state_name, True, False

    def append_once(self, name, df, app_id, version, properties=None):
        written = super().append_once(name, df, app_id, version, properties)
        self.appended = True
        return written

    def merge(self, name, df, keys, update=True):
        if self.armed and self.appended and name == self.state_name:
            self.armed = False
            raise RuntimeError("simulated crash after the append, before the state")
        return super().merge(name, df, keys, update)


@pytest.fixture
def payload(settings, spec, holdout):
    """Writes payload rows: ``payload(ids, merge=False, client=None, minutes=None, rows=2)``; returns their frame."""
    tables = LocalTables(settings.warehouse)
    name = settings.table(spec.payload_table)

    def write(ids, merge=False, client=None, minutes=None, rows=2):
        records = []
        for i in ids:
            frame = holdout[spec.feature_names].iloc[i % 50:i % 50 + rows]
            cid = client or f"req-{i}"
            records.append({
                "databricks_request_id": f"db-{i}", "client_request_id": cid,
                "request_time": (START + timedelta(minutes=i if minutes is None else minutes)).isoformat(),
                "status_code": 200, "execution_duration_ms": 2,
                "request": json.dumps(request_body(frame, "dataframe_split", cid)),
                "response": json.dumps({"predictions": [float(i)] * rows}),
                "served_entity_id": f"{spec.name}_model-1", "logging_error_codes": []})
        frame = payload_frame(records)
        if merge:
            tables.merge(name, frame, keys=[REQUEST_ID], update=False)
        else:
            tables.write(name, frame)
        return frame

    return write


def _processed(settings, spec) -> pd.DataFrame:
    return LocalTables(settings.warehouse).read(settings.table(spec.processed_table))


def _examples(ids, rows=2) -> list[str]:
    return sorted(f"req-{i}:{k}" for i in ids for k in range(rows))


def test_each_run_reads_exactly_the_rows_added_since_the_watermark(settings, spec, payload, monkeypatch):
    payload(range(10))
    first = unpack(settings, spec)
    assert (first.payload_rows, first.examples_written, first.from_version, first.to_version) == (10, 20, None, 0)

    payload(range(10, 13))                                 # an append (one flush)
    payload(range(12, 16), merge=True)                     # a replayed segment: req-12 is already in the table
    payload(range(16, 18))
    files_read = []
    real = port._read_files
    monkeypatch.setattr(port, "_read_files", lambda t, paths, cols: files_read.append(len(paths)) or real(t, paths, cols))
    second = unpack(settings, spec)
    assert (second.payload_rows, second.examples_written, second.from_version, second.to_version) == (8, 16, 0, 3)
    assert files_read == [3]  # the three files added since version 0, not the first one
    processed = _processed(settings, spec)
    assert sorted(processed["example_id"]) == _examples(range(18))

    again = unpack(settings, spec)                         # a retry after success reads nothing
    assert (again.payload_rows, again.examples_written) == (0, 0)
    assert len(_processed(settings, spec)) == 36


def test_labels_and_compaction_between_runs_do_not_make_old_rows_new(settings, spec, payload):
    payload(range(6))
    unpack(settings, spec)
    tables = LocalTables(settings.warehouse)
    payload_name = settings.table(spec.payload_table)
    rewritten = tables.read(payload_name).head(2).assign(requester="someone")
    tables.merge(payload_name, rewritten, keys=[REQUEST_ID], update=True)  # an upsert rewrites old payload rows
    tables._table(payload_name).optimize.compact()
    payload(range(6, 8))
    result = unpack(settings, spec)
    assert (result.payload_rows, result.examples_written) == (2, 4)
    assert sorted(_processed(settings, spec)["example_id"]) == _examples(range(8))


def test_a_retried_request_keeps_its_first_answer_across_runs(settings, spec, payload):
    payload([1], client="retry-me")
    unpack(settings, spec)
    payload([2], client="retry-me", minutes=30)            # the client retried the same id half an hour later
    result = unpack(settings, spec)
    assert (result.payload_rows, result.examples_written) == (1, 0)
    processed = _processed(settings, spec)
    assert processed["prediction"].tolist() == [1.0, 1.0]
    assert RETRY_WINDOW >= timedelta(hours=1)


def test_a_crash_between_the_append_and_the_state_is_still_exactly_once(settings, spec, payload):
    payload(range(5))
    unpack(settings, spec)
    payload(range(5, 9))
    flaky = CrashAfterAppend(settings.warehouse, settings.table(state_table(spec)))
    with pytest.raises(RuntimeError, match="simulated crash"):
        unpack(settings, spec, tables=flaky)
    assert sorted(_processed(settings, spec)["example_id"]) == _examples(range(9))  # appended, state still 0
    processed_name = settings.table(spec.processed_table)
    assert flaky.transaction_version(processed_name, unpack_app_id(settings.table(spec.payload_table))) == 1

    payload(range(9, 11))
    rerun = unpack(settings, spec, tables=flaky)  # redoes (0, 1] (skipped: committed), then (1, 2]
    assert (rerun.from_version, rerun.to_version, rerun.payload_rows, rerun.examples_written) == (0, 2, 6, 4)
    processed = _processed(settings, spec)
    assert sorted(processed["example_id"]) == _examples(range(11)) and processed["example_id"].is_unique
    assert unpack(settings, spec).payload_rows == 0


# The unpack process, with a watcher thread that kills it (SIGKILL, no cleanup) the moment a new data file of the
# processed table exists while the Delta log has no new commit yet: between the write and its commit.
CHILD = """
import os, signal, sys, threading, time
from workloads.settings import load_settings
from workloads.specs import load_spec
from workloads.unpacking import unpack
table_dir, log_dir = sys.argv[3], os.path.join(sys.argv[3], "_delta_log")
files, commits = set(os.listdir(table_dir)), set(os.listdir(log_dir))

def watch():
    while True:
        if any(".parquet" in name for name in set(os.listdir(table_dir)) - files):
            if any(n.endswith(".json") and n[:-5].isdigit() for n in set(os.listdir(log_dir)) - commits):
                os._exit(3)  # too late: committed already
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.0002)

threading.Thread(target=watch, daemon=True).start()
unpack(load_settings(home=sys.argv[1]), load_spec(sys.argv[2]))
sys.exit(4)  # finished without being killed
"""


def test_a_kill_9_between_the_write_and_its_commit_is_still_exactly_once(settings, spec, payload):
    """An unpack process killed after writing its data files and before the Delta commit that would list them and
    record the watermark: the files are orphans no version lists, and the next run writes the range once."""
    import signal
    import subprocess
    import sys

    payload(range(5))
    unpack(settings, spec)                                   # creates the processed table (version 0)
    processed_name = settings.table(spec.processed_table)
    table_dir = LocalTables(settings.warehouse).path(processed_name)
    for first in range(5, 2005, 500):                         # 2,000 new requests in four flushes
        payload(range(first, first + 500))
    files = {p.name for p in table_dir.iterdir()}
    child = subprocess.run([sys.executable, "-c", CHILD, str(settings.home), spec.name, str(table_dir)],
                           timeout=300, check=False)
    assert child.returncode == -signal.SIGKILL, child.returncode  # 3: killed too late, 4: not killed
    orphans = [p.name for p in table_dir.iterdir() if p.name not in files and ".parquet" in p.name]
    tables = LocalTables(settings.warehouse)
    assert orphans and tables.version(processed_name) == 0 and len(_processed(settings, spec)) == 10
    assert tables.transaction_version(processed_name, unpack_app_id(settings.table(spec.payload_table))) == 0

    rerun = unpack(settings, spec)
    assert (rerun.from_version, rerun.payload_rows, rerun.examples_written) == (0, 2000, 4000)
    processed = _processed(settings, spec)
    assert sorted(processed["example_id"]) == _examples(range(2005)) and processed["example_id"].is_unique
    assert unpack(settings, spec).examples_written == 0
