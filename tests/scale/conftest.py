"""Fixtures for the scale tests: what reaches the Spark driver, recorded."""

from __future__ import annotations

import re


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
