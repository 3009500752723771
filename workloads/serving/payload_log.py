"""The inference (payload) table writer: batched off the request path, yet durable and exactly once.

Each request is appended as one JSON line to a write-ahead segment file under
``<home>/serving/<endpoint>/wal/`` before the response is sent (one ``write`` syscall under a lock,
so a ``kill -9`` cannot lose an acknowledged request: the bytes are in the kernel). A flusher thread
rotates the segment every ``flush_interval`` seconds, appends its rows to
``<catalog>.<schema>.<prefix>_payload`` through the tables port in one Delta commit, then deletes
the segment. Segments left over by a crash are replayed at the next start with an insert-only MERGE
on ``databricks_request_id``, so a segment whose rows were committed just before the crash is not
written twice. ``fsync=True`` additionally survives power loss, at a latency cost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from workloads.errors import MlopsError
from workloads.ports.tables import Tables

log = logging.getLogger(__name__)

REQUEST_ID = "databricks_request_id"
# The AI Gateway inference table columns, in Databricks' order, with their Arrow types.
PAYLOAD_SCHEMA = pa.schema([
    ("databricks_request_id", pa.string()),
    ("client_request_id", pa.string()),
    ("request_date", pa.date32()),
    ("request_time", pa.timestamp("us", tz="UTC")),
    ("status_code", pa.int32()),
    ("sampling_fraction", pa.float64()),
    ("execution_duration_ms", pa.int64()),
    ("request", pa.string()),
    ("response", pa.string()),
    ("served_entity_id", pa.string()),
    ("logging_error_codes", pa.list_(pa.string())),
    ("requester", pa.string()),
])
PAYLOAD_COLUMNS = [f.name for f in PAYLOAD_SCHEMA]


class PayloadLogError(MlopsError):
    """The payload log cannot be opened (e.g. another server already logs this endpoint in this home)."""


@dataclass
class PayloadRecord:
    """One inference table row (one request, good or bad)."""

    databricks_request_id: str
    request_time: datetime
    status_code: int
    execution_duration_ms: int
    request: str | None
    response: str | None
    served_entity_id: str | None
    client_request_id: str | None = None
    sampling_fraction: float = 1.0
    logging_error_codes: list[str] = field(default_factory=list)
    requester: str | None = None

    def to_json(self) -> str:
        data = self.__dict__.copy()
        data["request_time"] = self.request_time.astimezone(UTC).isoformat()
        return json.dumps(data, separators=(",", ":"))


def payload_frame(rows: list[dict]) -> pd.DataFrame:
    """Decoded WAL rows as a pandas frame whose Arrow conversion matches :data:`PAYLOAD_SCHEMA`."""
    times = [datetime.fromisoformat(r["request_time"]).astimezone(UTC) for r in rows]
    columns = {
        "databricks_request_id": [r["databricks_request_id"] for r in rows],
        "client_request_id": [r.get("client_request_id") for r in rows],
        "request_date": [t.date() for t in times],
        "request_time": times,
        "status_code": [int(r["status_code"]) for r in rows],
        "sampling_fraction": [float(r.get("sampling_fraction", 1.0)) for r in rows],
        "execution_duration_ms": [int(r["execution_duration_ms"]) for r in rows],
        "request": [r.get("request") for r in rows],
        "response": [r.get("response") for r in rows],
        "served_entity_id": [r.get("served_entity_id") for r in rows],
        "logging_error_codes": [list(r.get("logging_error_codes") or []) for r in rows],
        "requester": [r.get("requester") for r in rows],
    }
    arrow = pa.table({name: pa.array(columns[name], type=PAYLOAD_SCHEMA.field(name).type)
                      for name in PAYLOAD_COLUMNS}, schema=PAYLOAD_SCHEMA)
    return arrow.to_pandas(types_mapper=_keep_arrow_type)


def _keep_arrow_type(arrow_type: pa.DataType):
    """Keep list columns as Arrow lists so an all-empty batch still writes ``array<string>``."""
    if pa.types.is_list(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def read_segment(path: Path) -> list[dict]:
    """Complete JSON lines of a segment; a torn last line (crash mid-write, never acknowledged) is dropped."""
    rows = []
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(line))
            except ValueError:
                log.warning("skipping unreadable line in %s", path)
    return rows


class PayloadLogger:
    """Durable, batched writer of one endpoint's payload table.

    Args:
        tables: the tables port the payload table is written through.
        table: three-level name of the payload table.
        wal_dir: directory of the write-ahead segments (one logger per directory at a time).
        flush_interval: seconds between segment flushes to the table.
        fsync: also ``fsync`` each write (survives power loss, not just a process kill).
    """

    def __init__(self, tables: Tables, table: str, wal_dir: Path, flush_interval: float = 1.0, fsync: bool = False):
        self.tables = tables
        self.table = table
        self.wal_dir = Path(wal_dir)
        self.flush_interval = flush_interval
        self.fsync = fsync
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._segment: Path | None = None
        self._segment_rows = 0
        self._seq = 0
        self._lock_fd: int | None = None
        self.rows_flushed = 0
        self.rows_recovered = 0
        self.flush_errors = 0

    # --- lifecycle ---
    def open(self) -> PayloadLogger:
        """Take the directory lock, replay leftover segments into the table, and start the flusher."""
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.wal_dir / "LOCK", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise PayloadLogError(f"another server is already logging to {self.wal_dir}; stop it first") from None
        leftovers = self._segments()
        self._seq = max((self._segment_seq(p) for p in leftovers), default=0)
        self.rows_recovered = self._replay(leftovers)
        self._close_fd(self._rotate())
        self._thread = threading.Thread(target=self._run, name="payload-flusher", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Flush everything logged so far, stop the flusher and release the directory."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._segment is not None and self._segment.exists() and self._segment.stat().st_size == 0:
                self._segment.unlink()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- request path ---
    def log(self, record: PayloadRecord) -> None:
        """Append one record durably (returns once a process kill can no longer lose it)."""
        data = (record.to_json() + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise PayloadLogError("payload logger is closed")
            os.write(self._fd, data)
            self._segment_rows += 1
            # fsync outside the lock on a duplicate descriptor: concurrent requests sync in parallel (the
            # kernel batches them) and a segment rotation may close the original meanwhile.
            sync_fd = os.dup(self._fd) if self.fsync else None
        if sync_fd is not None:
            try:
                os.fsync(sync_fd)
            finally:
                os.close(sync_fd)

    # --- flushing ---
    def flush(self) -> int:
        """Move every closed-or-current segment's rows into the table now; returns rows written."""
        with self._flush_lock:
            old_fd = None
            with self._lock:
                if self._segment_rows:
                    old_fd = self._rotate()
            if old_fd is not None:
                self._close_fd(old_fd)
            written = 0
            current = self._segment
            for path in self._segments():
                if path == current:
                    continue
                rows = read_segment(path)
                if rows:
                    self.tables.write(self.table, payload_frame(rows), mode="append")
                    written += len(rows)
                path.unlink()
            self.rows_flushed += written
            return written

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:
                self.flush_errors += 1
                log.exception("payload flush to %s failed; will retry", self.table)

    def _replay(self, segments: list[Path]) -> int:
        rows = [row for path in segments for row in read_segment(path)]
        if rows:
            frame = payload_frame(rows).drop_duplicates(REQUEST_ID)
            self.tables.merge(self.table, frame, keys=[REQUEST_ID], update=False)
        for path in segments:
            path.unlink()
        return len(rows)

    # --- segments ---
    def _segments(self) -> list[Path]:
        return sorted(self.wal_dir.glob("segment-*.jsonl"), key=self._segment_seq)

    @staticmethod
    def _segment_seq(path: Path) -> int:
        return int(path.stem.split("-")[1])

    def _rotate(self) -> int | None:
        """Start a new segment (caller holds ``_lock``); returns the previous segment's descriptor."""
        old = self._fd
        self._seq += 1
        self._segment = self.wal_dir / f"segment-{self._seq:012d}.jsonl"
        self._fd = os.open(self._segment, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        self._segment_rows = 0
        return old

    @staticmethod
    def _close_fd(fd: int | None) -> None:
        if fd is not None:
            os.fsync(fd)  # a segment handed to the flusher is also safe against power loss
            os.close(fd)
