"""On Databricks the stack declares the processed and baseline tables from the spec; a job appends to them and never
changes their schema (no ``mergeSchema``). Run on real Delta tables (pysail's Spark Connect server)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.engines import sail_tables
from workloads.errors import SchemaDriftError

NAME = "mlops_dev.declared.m_inference"


@pytest.fixture
def declared(sail):
    """A table as the stack declares it (two columns), holding one row."""
    sail.sql("CREATE SCHEMA IF NOT EXISTS mlops_dev.declared")
    sail.sql(f"DROP TABLE IF EXISTS {NAME}")
    sail.sql(f"CREATE TABLE {NAME} (request_id STRING, quantity DOUBLE) USING delta")
    sail.sql(f"INSERT INTO {NAME} VALUES ('r0', 1.0)")
    return sail_tables(sail)


def _rows(sail) -> list[tuple]:
    return sorted((r["request_id"], r["quantity"]) for r in sail.table(NAME).collect())


def test_an_append_with_a_column_the_declaration_lacks_is_refused_and_writes_nothing(declared, sail):
    drifted = pd.DataFrame({"request_id": ["r1"], "quantity": [2.0], "extra": ["x"]})
    with pytest.raises(SchemaDriftError, match=r"has no column\(s\) \['extra'\].*pulumi up"):
        declared.write(NAME, drifted, declared=True)
    with pytest.raises(SchemaDriftError, match="extra"):
        declared.append_once(NAME, drifted, "unpack-app", 1)
    assert sail.table(NAME).columns == ["request_id", "quantity"]
    assert _rows(sail) == [("r0", 1.0)]


def test_an_append_within_the_declaration_lands(declared, sail):
    declared.write(NAME, pd.DataFrame({"request_id": ["r1"], "quantity": [2.0]}), declared=True)
    assert declared.append_once(NAME, pd.DataFrame({"request_id": ["r2"], "quantity": [3.0]}), "unpack-app", 1) == 1
    assert sail.table(NAME).columns == ["request_id", "quantity"]
    assert _rows(sail) == [("r0", 1.0), ("r1", 2.0), ("r2", 3.0)]


def test_a_declared_table_is_never_overwritten(declared, sail):
    with pytest.raises(Exception, match="declared by the stack"):
        declared.write(NAME, pd.DataFrame({"request_id": ["r1"], "quantity": [2.0]}), mode="overwrite", declared=True)
    assert _rows(sail) == [("r0", 1.0)]


def test_the_projects_own_tables_still_gain_columns(declared, sail):
    """State, labels and result tables are the project's, not the stack's: an append adds new columns."""
    declared.write(NAME, pd.DataFrame({"request_id": ["r1"], "quantity": [2.0], "extra": ["x"]}))
    assert sail.table(NAME).columns == ["request_id", "quantity", "extra"]
