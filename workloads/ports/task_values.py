"""Task-values port: small JSON values passed from one step of a watcher run to the next.

- local (embedded default): a run-state file ``<home>/runs/<run_id>/task_values.json`` holding
  ``{task_key: {key: value}}``, rewritten atomically (temp file + ``os.replace``) under a file lock;
- databricks: one JSON file per task in the job run's state directory in the artifacts volume, and, from the
  evaluate notebook task, real task values (``dbutils.jobs.taskValues.set``) for the condition task to read
  (why: see ``DatabricksTaskValues``).

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


# Databricks documents task values as settable from Python notebooks only: "dbutils.jobs.taskValues.set() and
# dbutils.jobs.taskValues.get() ... can be used only in notebooks with Python selected as the language. However,
# you can reference task values using dynamic value references for all tasks that support parameters"
# (https://docs.databricks.com/jobs/task-values.html; values: valid JSON, at most 48 KiB). A python_wheel_task
# can neither set nor get them (databricks-sdk's dbutils outside a notebook is a stub whose set() does nothing).
# So on Databricks the steps pass values the way the local runtime does, through a run-state directory, here in
# the stack's artifacts volume (/Volumes/<catalog>/<schema>/<volume>/runs/<job run id>, the run id from the
# {{job.run_id}} dynamic value reference, passed by the job as --run-state); and the one value a condition task must
# read (retrain_needed) is also set as a real task value by the evaluate step, which runs as a notebook task
# and hands its notebook's dbutils to use_notebook_dbutils().
_NOTEBOOK_DBUTILS: Any = None


def use_notebook_dbutils(dbutils: Any) -> None:
    """Also publish task values through this notebook's ``dbutils.jobs.taskValues`` (notebook tasks only)."""
    global _NOTEBOOK_DBUTILS
    _NOTEBOOK_DBUTILS = dbutils


class DatabricksTaskValues:
    """Task values of a Databricks job run: one JSON file per task in the run's state directory.

    Each task writes only its own file ``<run_dir>/<task_key>.json`` (whole-file writes, which Unity Catalog
    volumes support; no rename or lock needed since no two tasks share a file) and reads the files of the
    tasks before it. In a notebook task whose dbutils was handed over (``use_notebook_dbutils``) every value is
    also set with ``dbutils.jobs.taskValues.set`` so condition tasks and ``{{tasks...}}`` references see it.
    """

    def __init__(self, run_dir: str | Path, task_key: str | None = None, dbutils: Any = None):
        self.run_dir = Path(run_dir)
        self.task_key = task_key
        self.dbutils = dbutils if dbutils is not None else _NOTEBOOK_DBUTILS
        self._own: dict[str, Any] | None = None

    def path(self, task_key: str) -> Path:
        return self.run_dir / f"{task_key}.json"

    def for_task(self, task_key: str) -> DatabricksTaskValues:
        return DatabricksTaskValues(self.run_dir, task_key, self.dbutils)

    def _read(self, task_key: str) -> dict[str, Any]:
        path = self.path(task_key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise TaskValueError(f"run-state file {path} is corrupt ({exc}); repair the job run from its first task")

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` for the current task of this job run (and as a real task value in a notebook task)."""
        _check_key(key)
        if not self.task_key:
            raise TaskValueError(f"cannot set task value {key!r}: no current task; pass task_key")
        _check_value(key, value)
        if self._own is None:
            self._own = self._read(self.task_key)  # a repaired (re-run) task starts from what it set before
        self._own[key] = value
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path(self.task_key).write_text(json.dumps(self._own, indent=1, sort_keys=True), encoding="utf-8")
        if self.dbutils is not None:
            self.dbutils.jobs.taskValues.set(key=key, value=value)

    def get(self, task_key: str, key: str, default: Any = None) -> Any:
        """The value ``task_key`` set for ``key`` in this job run, else ``default``."""
        _check_key(key)
        return self._read(task_key).get(key, default)


def databricks_run_dir(settings: Settings, volume: str, run_id: str) -> str:
    """``/Volumes/<catalog>/<schema>/<volume>/runs/<run_id>``: where a job run's steps pass values."""
    if not _SAFE_RUN_ID.match(run_id or ""):
        raise TaskValueError(f"run id {run_id!r} may only hold letters, digits, '_', '.', '-'")
    return f"/Volumes/{settings.catalog}/{settings.schema_name}/{volume}/runs/{run_id}"


def get_task_values(settings: Settings, run_id: str | None = None, task_key: str | None = None,
                    run_dir: str | Path | None = None, dbutils: Any = None) -> TaskValues:
    """The task-values port for the configured backend.

    Args:
        settings: Runtime settings; ``backend`` picks the implementation, ``home`` the local run state.
        run_id: Run id; default ``MLOPS_RUN_ID``, else (locally) ``manual``.
        task_key: Current task; default ``MLOPS_TASK_KEY``. Needed to ``set``.
        run_dir: Databricks: the run-state directory (the job passes the artifacts volume's
            ``runs/{{job.run_id}}``); required there.
        dbutils: A notebook's dbutils to also set real task values with (tests, or use_notebook_dbutils).

    Returns:
        A ``TaskValues`` implementation.

    Raises:
        TaskValueError: on Databricks without a run-state directory.
    """
    task = task_key or os.environ.get(TASK_KEY_ENV) or None
    if settings.backend == "databricks":
        if run_dir is None:
            raise TaskValueError("on Databricks the watch steps need --run-state DIR (the watcher job passes "
                                 "/Volumes/<catalog>/<schema>/<volume>/runs/{{job.run_id}})")
        return DatabricksTaskValues(run_dir, task, dbutils)
    run = run_id or os.environ.get(RUN_ID_ENV) or DEFAULT_RUN_ID
    return LocalTaskValues(settings.home, run, task)
