"""Time for the endpoint and the demo: UTC now, optionally shifted to simulate days passing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value):
    """``value`` (anything ``pd.Timestamp`` reads: a datetime, an ISO string, a timestamp) as a UTC ``pd.Timestamp``:
    a naive time is taken as UTC, an aware one converted."""
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class ShiftableClock:
    """A clock that runs with real time plus an offset the demo can advance (simulates days passing).

    Example: ``clock = ShiftableClock(); start_server(..., clock=clock); clock.advance(timedelta(days=1))``.
    """

    def __init__(self, offset: timedelta | None = None):
        self.offset = offset or timedelta(0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def __call__(self) -> datetime:
        return utc_now() + self.offset
