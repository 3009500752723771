"""Monitor granularities (Databricks strings such as ``"5 minutes"``, ``"1 day"``, ``"1 month"``) and windows.

Windows are half-open ``[start, end)`` in UTC. Minute, hour, day and week windows are aligned like Spark's
``window()`` function, which the Databricks monitor uses: to multiples of the duration since the Unix epoch
(so ``1 week`` windows start on Thursdays 00:00 UTC). Month and year windows are calendar months and years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workloads.errors import MlopsError

DEFAULT_GRANULARITY = "1 day"
_FIXED_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)
NS = 1_000_000_000


class GranularityError(MlopsError):
    """A granularity string is not one the monitor supports."""


@dataclass(frozen=True)
class Granularity:
    count: int
    unit: str

    @property
    def text(self) -> str:
        """Canonical Databricks spelling, e.g. ``"1 day"``, ``"30 minutes"``."""
        return f"{self.count} {self.unit}" + ("s" if self.count != 1 else "")

    @property
    def fixed_ns(self) -> int | None:
        seconds = _FIXED_SECONDS.get(self.unit)
        return None if seconds is None else seconds * self.count * NS

    def _months(self) -> int:
        return self.count * (12 if self.unit == "year" else 1)

    def floor(self, ts_ns: np.ndarray) -> np.ndarray:
        """Start (epoch ns) of the window holding each timestamp (epoch ns, UTC)."""
        ts_ns = np.asarray(ts_ns, dtype=np.int64)
        size = self.fixed_ns
        if size is not None:
            return ts_ns - np.mod(ts_ns, size)
        months = ts_ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        start = months - np.mod(months, self._months())
        return start.astype("datetime64[M]").astype("datetime64[ns]").astype(np.int64)

    def shift(self, start_ns: np.ndarray, windows: int = 1) -> np.ndarray:
        """Start of the window ``windows`` after (negative: before) each window start."""
        start_ns = np.asarray(start_ns, dtype=np.int64)
        size = self.fixed_ns
        if size is not None:
            return start_ns + windows * size
        months = start_ns.astype("datetime64[ns]").astype("datetime64[M]")
        return (months + windows * self._months()).astype("datetime64[ns]").astype(np.int64)

    def end(self, start_ns: np.ndarray) -> np.ndarray:
        return self.shift(start_ns, 1)


def parse_granularity(text: str) -> Granularity:
    """Parse ``"<n> <unit>"`` with unit minute/hour/day/week/month/year (plural optional)."""
    match = _PATTERN.match(text or "")
    if not match or int(match.group(1)) < 1:
        raise GranularityError(
            f"granularity {text!r} is not supported; use e.g. '5 minutes', '1 hour', '1 day', '1 week', '1 month'")
    return Granularity(int(match.group(1)), match.group(2).lower())


def to_ns(series: pd.Series) -> np.ndarray:
    """Epoch nanoseconds (UTC) of a timestamp column; naive timestamps are taken as UTC."""
    s = pd.to_datetime(series, utc=True).dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[ns]").view(np.int64)


def to_timestamp(ns) -> pd.Timestamp:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC")
