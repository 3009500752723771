"""Where a running local endpoint is: ``mlops serve`` records its URL in the home, so ``traffic`` and
``drift simulate`` find it without ``--url``.

The record is ``<home>/serving/<model>.json`` (``url``, ``pid``, ``started_at``, and the ``catalog`` whose
champion it serves), written when the endpoint is ready and removed when it stops. A record whose process is gone
(a killed server) is stale: it is removed and not used. A record serving another catalog (dev's endpoint, asked
about prod) is not this environment's endpoint.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from workloads.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080"


def record_path(settings: Settings, model: str) -> Path:
    return settings.home / "serving" / f"{model}.json"


def record_running(settings: Settings, model: str, url: str) -> Path:
    """Record that this process serves ``model`` at ``url``."""
    path = record_path(settings, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "started_at": datetime.now(UTC).isoformat(),
                               "catalog": settings.catalog}))
    os.replace(tmp, path)
    return path


def clear_running(settings: Settings, model: str) -> None:
    """Remove the record, if it is this process's."""
    path = record_path(settings, model)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_url(settings: Settings, model: str) -> str | None:
    """The URL ``mlops serve`` recorded for ``model`` in this home, if that server is still running."""
    path = record_path(settings, model)
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(record.get("pid"), int) or not _alive(record["pid"]):
        path.unlink(missing_ok=True)  # stale: the server died without cleaning up
        return None
    if record.get("catalog", settings.catalog) != settings.catalog:
        return None  # it serves another environment's champion
    return record.get("url")


def endpoint_url(settings: Settings, model: str, given: str | None) -> tuple[str, str]:
    """``(url, where it came from)``: ``--url``, else the running ``mlops serve``, else the default port."""
    if given:
        return given, "--url"
    found = running_url(settings, model)
    if found:
        return found, f"the running `mlops serve` recorded in {record_path(settings, model)}"
    return DEFAULT_URL, "the default (no `mlops serve` recorded in this home; pass --url)"
