"""The payload log survives crashes: acknowledged requests land in the table exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.fakes import free_port
from workloads.ports.tables import LocalTables
from workloads.serving.payload_log import PayloadLogError, PayloadLogger, PayloadRecord
from workloads.traffic import request_body


def _record(i: int) -> PayloadRecord:
    return PayloadRecord(databricks_request_id=str(uuid.uuid4()), client_request_id=f"r{i}",
                         request_time=datetime.now(UTC), status_code=200, execution_duration_ms=1,
                         request="{}", response="{}", served_entity_id="m-1")


def test_replayed_segment_is_not_written_twice(tmp_path):
    """Crash after the Delta append but before the segment was deleted: the restart merges, not appends."""
    tables = LocalTables(tmp_path / "warehouse")
    table = "c.s.m_payload"
    wal = tmp_path / "wal"
    logger = PayloadLogger(tables, table, wal, flush_interval=60).open()
    for i in range(5):
        logger.log(_record(i))
    segment = next(wal.glob("segment-*.jsonl"))
    kept = tmp_path / "kept.jsonl"
    shutil.copy(segment, kept)
    assert logger.flush() == 5
    logger.log(_record(5))  # acknowledged, never flushed: the process "dies" now
    unflushed = next(wal.glob("segment-*.jsonl"))
    os.close(logger._fd)  # simulate the kill: no close(), no final flush
    os.close(logger._lock_fd)
    shutil.copy(kept, wal / "segment-000000000001.jsonl")  # the already-committed segment is back
    with open(unflushed, "ab") as fh:
        fh.write(b'{"databricks_request_id": "torn')  # a write cut mid-line was never acknowledged

    restarted = PayloadLogger(tables, table, wal, flush_interval=60).open()
    restarted.close()
    rows = tables.read(table)
    assert sorted(rows["client_request_id"]) == [f"r{i}" for i in range(6)]
    assert rows["databricks_request_id"].is_unique
    assert restarted.rows_recovered == 6
    assert not list(wal.glob("segment-*.jsonl"))


def test_second_logger_on_the_same_directory_is_refused(tmp_path):
    tables = LocalTables(tmp_path / "warehouse")
    first = PayloadLogger(tables, "c.s.m_payload", tmp_path / "wal").open()
    try:
        with pytest.raises(PayloadLogError, match="already logging"):
            PayloadLogger(tables, "c.s.m_payload", tmp_path / "wal").open()
    finally:
        first.close()


def _start(home, spec, flush_interval: float = 0.2) -> tuple[subprocess.Popen, int]:
    """``mlops serve`` on a free port of 127.0.0.1, ready; returns the process and its port. A port taken by someone
    else between its choice and the bind (``free_port`` cannot reserve it) is retried on another, at most 3 times."""
    env = {**os.environ, "MLOPS_HOME": str(home)}
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "workloads.cli", "serve", "--model", spec.name, "--port", str(port),
             "--flush-interval", str(flush_interval)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}/serving-endpoints/{spec.endpoint_name}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = process.stderr.read().decode()[-2000:]
                if "port in use" in error:
                    break
                raise AssertionError(f"server exited: {error}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return process, port
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            process.kill()
            raise AssertionError("server did not become ready")
    raise AssertionError("no free port could be bound in 3 tries")


def test_kill_9_during_a_burst_then_restart_keeps_every_acknowledged_request_once(
        serving_settings, spec, holdout):
    body = request_body(holdout[spec.feature_names].head(2), "dataframe_split", None)
    acknowledged: list[str] = []
    sent: list[str] = []
    lock = threading.Lock()

    def burst(worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(300):  # bounded; the kill ends it much earlier
                cid = f"k{worker}-{i}"
                with lock:
                    sent.append(cid)
                try:
                    response = client.post(url, json={**body, "client_request_id": cid})
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(cid)

    server, port = _start(serving_settings.home, spec)
    url = f"http://127.0.0.1:{port}/serving-endpoints/{spec.endpoint_name}/invocations"
    workers = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 120 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    for w in workers:
        w.join(timeout=30)
    assert len(acknowledged) >= 120

    restarted, _ = _start(serving_settings.home, spec)  # on any port: replays the write-ahead log before listening
    try:
        rows = LocalTables(serving_settings.warehouse).read(serving_settings.table(spec.payload_table))
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=30)
    counts = rows["client_request_id"].value_counts()
    missing = [cid for cid in acknowledged if cid not in counts.index]
    assert not missing, f"{len(missing)} acknowledged requests lost, e.g. {missing[:3]}"
    assert counts.max() == 1, counts[counts > 1].head()
    assert set(counts.index) <= set(sent)


def test_sigterm_flushes_every_acknowledged_request_before_exiting(serving_settings, spec, holdout):
    """``kill <pid>`` (a supervisor's stop) is a graceful stop like Ctrl-C: the table has every row at exit."""
    body = request_body(holdout[spec.feature_names].head(2), "dataframe_split", None)
    server, port = _start(serving_settings.home, spec, flush_interval=600)
    url = f"http://127.0.0.1:{port}/serving-endpoints/{spec.endpoint_name}/invocations"  # no timed flush before the signal
    try:
        with httpx.Client(timeout=10) as client:
            for i in range(20):
                assert client.post(url, json={**body, "client_request_id": f"t{i}"}).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, server.stderr.read().decode()[-2000:]
    rows = LocalTables(serving_settings.warehouse).read(serving_settings.table(spec.payload_table))
    assert sorted(rows["client_request_id"]) == sorted(f"t{i}" for i in range(20))


@pytest.mark.parametrize("fsync", [False, True])
def test_concurrent_logging_across_rotations_loses_and_duplicates_nothing(tmp_path, fsync):
    tables = LocalTables(tmp_path / "warehouse")
    logger = PayloadLogger(tables, "c.s.m_payload", tmp_path / "wal", flush_interval=0.01, fsync=fsync).open()

    def write(worker: int) -> None:
        for i in range(50):
            logger.log(_record(worker * 1000 + i))
            time.sleep(0.002)  # spread the writes over several flush intervals

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    rows = tables.read("c.s.m_payload")
    assert len(rows) == 300 and rows["databricks_request_id"].is_unique
    assert logger.flush_errors == 0
    assert tables.version("c.s.m_payload") >= 1  # flushed in more than one commit: rotations happened
