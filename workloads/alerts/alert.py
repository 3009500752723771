"""The alert itself and the outcome of delivering it to one destination."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal
from uuid import uuid4

from pydantic import BaseModel, Field, field_validator

AlertKind = Literal["breach", "validation_failed", "promotion", "rollback", "failure", "test"]

KIND_TITLES: dict[str, str] = {
    "breach": "threshold breach",
    "validation_failed": "challenger failed validation",
    "promotion": "new champion",
    "rollback": "rolled back",
    "failure": "watcher failure",
    "test": "test alert",
}


def _jsonable(value: Any) -> Any:
    """Fallback for ``json.dumps``: numpy scalars/arrays, dates, paths, sets; anything else as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    """NaN/inf are not JSON: make them null so every receiver can parse the payload."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class Alert(BaseModel):
    """Something a person should know about a model: what happened, where, and the numbers behind it."""

    kind: AlertKind = Field(description="What happened.")
    model: str = Field(description="Model spec name.")
    env: str = Field(description="Environment (dev or prod).")
    summary: str = Field(description="One line saying what happened and why.")
    details: dict[str, Any] = Field(default_factory=dict, description="Metrics, versions, reasons, links.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC), description="When it happened (UTC).")
    id: str = Field(default_factory=lambda: uuid4().hex, description="Unique id, for de-duplication.")

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind]

    def subject(self) -> str:
        """One-line subject, e.g. ``[mlops dev] threshold breach: bakehouse_autolog - rmse 3.2 > 2.5``."""
        return f"[mlops {self.env}] {self.title}: {self.model} - {self.summary}"

    def payload(self) -> dict[str, Any]:
        """The alert as plain JSON data (never fails on odd detail values)."""
        data = self.model_dump()
        data["time"] = self.time.isoformat()
        return _finite(json.loads(json.dumps(data, default=_jsonable)))

    def text(self) -> str:
        """A plain-text body for people: the summary, then one detail per line."""
        lines = [
            f"{self.title.capitalize()} for model {self.model} in {self.env}",
            "",
            self.summary,
            "",
            f"time: {self.time.isoformat(timespec='seconds')}",
            f"alert id: {self.id}",
        ]
        details = self.payload()["details"]
        if details:
            lines += ["", "details:"]
            for key, value in details.items():
                shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                lines.append(f"  {key}: {shown}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Alert:
        """Rebuild an alert from ``payload()`` (e.g. a line of the outbox)."""
        return cls.model_validate(data)


@dataclass(frozen=True)
class DeliveryResult:
    """How delivering one alert to one destination went."""

    destination: str
    target: str
    ok: bool
    detail: str
    elapsed_ms: float = 0.0
