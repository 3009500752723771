"""Cross-process exclusive locks, so two watcher runs at once cannot both promote a model.

Locally (and on a Databricks driver, where ``max_concurrent_runs: 1`` is the main guard) the lock is an
OS file lock (``fcntl.flock``) on ``<home>/locks/<name>.lock``. The kernel releases it when the holder
exits, even on a crash, so a stale lock file never blocks anyone. Waiting is bounded: after ``timeout``
seconds a ``LockHeldError`` names the holder.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from workloads.errors import MlopsError
from workloads.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_POLL_SECONDS = 0.05


class LockHeldError(MlopsError):
    """Another process holds the lock and did not release it within the timeout."""

    def __init__(self, message: str, name: str, holder: str = ""):
        super().__init__(message)
        self.name = name
        self.holder = holder


def lock_path(settings: Settings, name: str) -> Path:
    """The lock file for a lock ``name`` (any characters; made safe for a file name)."""
    return settings.home / "locks" / f"{_UNSAFE.sub('_', name)}.lock"


@contextmanager
def exclusive_lock(settings: Settings, name: str, timeout: float = 30.0,
                   what: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock ``name`` for the duration of the ``with`` block.

    Args:
        settings: Runtime settings (``home`` holds the lock files).
        name: Lock name; processes using the same name exclude each other.
        timeout: Seconds to wait for the lock; ``0`` tries once.
        what: What the lock protects, for the error message (default: ``name``).

    Yields:
        The lock file's path.

    Raises:
        LockHeldError: The lock was still held by another process after ``timeout`` seconds.
    """
    path = lock_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(path)
                    held_by = f" by {holder}" if holder else ""
                    raise LockHeldError(
                        f"{what or name} is in progress elsewhere (lock held{held_by}, waited {timeout:g}s); "
                        f"wait for it to finish and retry (lock file {path})",
                        name=name,
                        holder=holder,
                    ) from None
                time.sleep(_POLL_SECONDS)
        _write_holder(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def promotion_lock(settings: Settings, model: str, timeout: float = 30.0,
                   env: str | None = None) -> Iterator[Path]:
    """Hold the lock for "promotion of ``model`` in ``env``" (default ``settings.env``).

    Raises:
        LockHeldError: Another run is promoting the same model in the same environment.
    """
    env = env or settings.env
    with exclusive_lock(settings, f"promotion-{env}-{model}", timeout,
                        what=f"promotion of model {model} in {env}") as path:
        yield path


def _write_holder(fd: int) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    text = f"pid {os.getpid()} on {socket.gethostname()} since {since}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
