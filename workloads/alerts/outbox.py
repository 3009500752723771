"""Local outbox: every alert appended as one JSON line to ``<home>/alerts.jsonl``.

Always on for the local backend, so the demo and ``mlops alerts list`` can count and show alerts.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from workloads.alerts.alert import Alert

OUTBOX_FILE = "alerts.jsonl"
log = logging.getLogger("workloads.alerts")


def outbox_path(home: Path) -> Path:
    return Path(home) / OUTBOX_FILE


class OutboxDestination:
    """Appends the alert payload as a JSON line."""

    kind = "outbox"

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def target(self) -> str:
        return str(self.path)

    def deliver(self, alert: Alert) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(alert.payload(), sort_keys=True) + "\n").encode("utf-8")
        # One O_APPEND write per alert, so lines from concurrent processes never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return "appended"


def read_outbox(home: Path, n: int | None = None, model: str | None = None,
                kind: str | None = None) -> list[Alert]:
    """Alerts from the outbox, oldest first; the last ``n`` after filtering by ``model`` / ``kind``.

    Unreadable lines (e.g. a torn write after a crash) are skipped with a warning.
    """
    path = outbox_path(home)
    if not path.exists():
        return []
    alerts: list[Alert] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                alert = Alert.from_payload(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                log.warning("skipping unreadable line %d of %s: %s", number, path, str(exc).splitlines()[0])
                continue
            if (model is None or alert.model == model) and (kind is None or alert.kind == kind):
                alerts.append(alert)
    return alerts if n is None else alerts[-n:] if n > 0 else []
