"""Fixtures for the scale tests: what reaches the Spark driver, recorded."""

from __future__ import annotations

import re

import pytest


class VersionedLocalSpark:
    """A local Spark session answering the Delta statements local pyspark lacks: ``DESCRIBE HISTORY`` says
    ``version`` and ``VERSION AS OF n`` reads the table as it is. Every statement is kept in ``sql_seen``."""

    def __init__(self, real, version: int = 0):
        self.real, self.version, self.sql_seen = real, version, []

    def __getattr__(self, item):
        return getattr(self.real, item)

    def sql(self, text: str):
        text = " ".join(text.split())
        self.sql_seen.append(text)
        if text.startswith("DESCRIBE HISTORY"):
            return self.real.createDataFrame([(self.version,)], "version long")
        return self.real.sql(re.sub(r" VERSION AS OF \d+", "", text))


@pytest.fixture
def driver_rows(monkeypatch):
    """``(call, rows)`` for every ``DataFrame.collect``/``toPandas`` while ``driver_rows.on`` is true: the rows each
    brought to the driver (a ``toPandas`` that collects internally counts once)."""
    from pyspark.sql.classic.dataframe import DataFrame

    class Recorder(list):
        on = False

    seen = Recorder()
    real_collect, real_to_pandas = DataFrame.collect, DataFrame.toPandas

    def collect(self):
        rows = real_collect(self)
        if seen.on:
            seen.append(("collect", len(rows)))
        return rows

    def to_pandas(self):
        was, seen.on = seen.on, False
        try:
            frame = real_to_pandas(self)
        finally:
            seen.on = was
        if seen.on:
            seen.append(("toPandas", len(frame)))
        return frame

    monkeypatch.setattr(DataFrame, "collect", collect)
    monkeypatch.setattr(DataFrame, "toPandas", to_pandas)
    return seen
