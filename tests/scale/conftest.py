"""Fixtures for the scale tests (``driver_rows``, which records what reaches the Spark driver, is in tests/conftest.py)."""

from __future__ import annotations

from tests.fakes import LocalSparkStandIn

VersionedLocalSpark = LocalSparkStandIn  # DESCRIBE HISTORY says `version`; VERSION AS OF n reads the table as it is
