"""Task-values port: small JSON values passed from one step of a watcher run to the next.

- local (embedded default): a run-state file ``<home>/runs/<run_id>/task_values.json`` holding
  ``{task_key: {key: value}}``, rewritten atomically (temp file + ``os.replace``) under a file lock;
- databricks: ``dbutils.jobs.taskValues`` (``set(key=, value=)`` / ``get(taskKey=, key=, default=, debugValue=)``).

The run and the current task come from explicit arguments, else ``MLOPS_RUN_ID`` / ``MLOPS_TASK_KEY``.
Locally a run id defaults to ``manual`` so steps run by hand one after another still see each other's
values. Values must be JSON and at most 48 KiB once serialized, the Databricks limit, enforced on both
runtimes so code that works locally also works in a job.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from workloads.errors import MlopsError
from workloads.settings import Settings

RUN_ID_ENV = "MLOPS_RUN_ID"
TASK_KEY_ENV = "MLOPS_TASK_KEY"
DEFAULT_RUN_ID = "manual"
MAX_VALUE_BYTES = 48 * 1024
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


class TaskValueError(MlopsError):
    """A task value cannot be set or read (bad key or value, no task key, not in a job run)."""


class TaskValues(Protocol):
    """What the steps need to pass values between tasks of one run."""

    def set(self, key: str, value: Any) -> None: ...
    def get(self, task_key: str, key: str, default: Any = None) -> Any: ...


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise TaskValueError(f"task value key must be a non-empty string, got {key!r}")


def _check_value(key: str, value: Any) -> str:
    """The value's JSON text; rejects what Databricks would reject."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskValueError(f"task value {key!r} is not valid JSON ({exc}); pass plain str/number/bool/list/dict")
    if len(text.encode("utf-8")) > MAX_VALUE_BYTES:
        raise TaskValueError(
            f"task value {key!r} is {len(text.encode('utf-8'))} bytes as JSON, over the 48 KiB limit; "
            "store large data in a table and pass its name"
        )
    return text


class LocalTaskValues:
    """Task values in a run-state JSON file under ``<home>/runs/<run_id>/``."""

    def __init__(self, home: Path, run_id: str, task_key: str | None = None):
        if not _SAFE_RUN_ID.match(run_id or ""):
            raise TaskValueError(f"run id {run_id!r} may only hold letters, digits, '_', '.', '-'")
        self.home = Path(home)
        self.run_id = run_id
        self.task_key = task_key

    @property
    def path(self) -> Path:
        return self.home / "runs" / self.run_id / "task_values.json"

    def for_task(self, task_key: str) -> LocalTaskValues:
        """The same run seen from another task (for running a whole graph in one process)."""
        return LocalTaskValues(self.home, self.run_id, task_key)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise TaskValueError(f"run-state file {self.path} is corrupt ({exc}); delete it to start the run over")

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` for the current task of this run."""
        _check_key(key)
        if not self.task_key:
            raise TaskValueError(f"cannot set task value {key!r}: no current task; pass task_key or set {TASK_KEY_ENV}")
        _check_value(key, value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Concurrent tasks of one run may set values at once: serialise read-modify-write.
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self._read()
                state.setdefault(self.task_key, {})[key] = value
                fd, tmp = tempfile.mkstemp(prefix=".task_values.", dir=self.path.parent)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as handle:
                        json.dump(state, handle, indent=1, sort_keys=True)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(tmp, self.path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def get(self, task_key: str, key: str, default: Any = None) -> Any:
        """The value ``task_key`` set for ``key`` in this run, else ``default``."""
        _check_key(key)
        return self._read().get(task_key, {}).get(key, default)

    def all(self) -> dict[str, dict[str, Any]]:
        """Every task's values in this run."""
        return self._read()


class DatabricksTaskValues:
    """Task values through ``dbutils.jobs.taskValues`` inside a Databricks job run."""

    def __init__(self, dbutils: Any = None):
        if dbutils is None:
            try:
                from databricks.sdk.runtime import dbutils as runtime_dbutils
            except Exception as exc:  # noqa: BLE001 - any failure means no dbutils here
                raise TaskValueError(f"dbutils is not available ({exc}); task values need a Databricks job run")
            dbutils = runtime_dbutils
        self.dbutils = dbutils

    @property
    def _api(self):
        return self.dbutils.jobs.taskValues

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` on the current task run."""
        _check_key(key)
        _check_value(key, value)
        self._api.set(key=key, value=value)

    def get(self, task_key: str, key: str, default: Any = None) -> Any:
        """The value ``task_key`` set for ``key`` in this job run, else ``default``."""
        _check_key(key)
        if default is None:
            # dbutils refuses default=None: ask without one and read "not found" as None.
            try:
                return self._api.get(taskKey=task_key, key=key)
            except ValueError:
                return None
            except TypeError as exc:
                raise TaskValueError(f"cannot read task value {task_key}.{key} outside a job run ({exc})")
        return self._api.get(taskKey=task_key, key=key, default=default, debugValue=default)


def get_task_values(settings: Settings, run_id: str | None = None, task_key: str | None = None,
                    dbutils: Any = None) -> TaskValues:
    """The task-values port for the configured backend.

    Args:
        settings: Runtime settings; ``backend`` picks the implementation, ``home`` the local run state.
        run_id: Local run id; default ``MLOPS_RUN_ID``, else ``manual``. Ignored on Databricks (the job run).
        task_key: Current task; default ``MLOPS_TASK_KEY``. Needed locally to ``set``.
        dbutils: Databricks utilities to use instead of ``databricks.sdk.runtime.dbutils`` (tests).

    Returns:
        A ``TaskValues`` implementation.
    """
    if settings.backend == "databricks":
        return DatabricksTaskValues(dbutils)
    run = run_id or os.environ.get(RUN_ID_ENV) or DEFAULT_RUN_ID
    task = task_key or os.environ.get(TASK_KEY_ENV) or None
    return LocalTaskValues(settings.home, run, task)
