"""The Spark port's Databricks-only functions, held to the Databricks documentation.

No local engine runs these statements (pysail lacks them; open-source Spark without Delta too), so each sits behind one
narrow function of ``SparkTables``, and this file checks what that function sends and how it reads the answer against
the documented syntax and result shape, with a session that answers as the documentation says. Everything else of the
Spark port runs on real engines (tests/serving/test_two_runtimes.py on pysail, the Spark tests on Spark Connect).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workloads.errors import MlopsError
from workloads.ports.tables import SparkTables

NAME = "mlops_dev.bakehouse_ml.m_inference"


class Row(dict):
    """A result row as pyspark gives it: by key, by position, and ``asDict``."""

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)

    def asDict(self):
        return dict(self)


class DocumentedSession:
    """Answers each statement with the rows the Databricks documentation gives for it; records what was sent."""

    def __init__(self, answers):
        self.answers, self.sent = answers, []
        self.catalog = SimpleNamespace(tableExists=lambda name: True)

    def sql(self, text):
        self.sent.append(" ".join(text.split()))
        for prefix, rows in self.answers.items():
            if self.sent[-1].startswith(prefix):
                return SimpleNamespace(collect=lambda rows=rows: [Row(r) for r in rows])
        raise AssertionError(f"undocumented statement: {text}")


def test_version_is_the_newest_row_of_describe_history():
    # https://docs.databricks.com/aws/en/sql/language-manual/delta-describe-history: "DESCRIBE HISTORY table_name
    # [LIMIT n]", newest first; output columns start with version, timestamp, userId, userName, operation, ...
    session = DocumentedSession({"DESCRIBE HISTORY": [{"version": 7, "timestamp": "2030-01-01", "operation": "WRITE"}]})
    assert SparkTables(session).version(NAME) == 7
    assert session.sent == [f"DESCRIBE HISTORY {NAME} LIMIT 1"]


@pytest.mark.parametrize("statement, columns", [
    # https://docs.databricks.com/aws/en/sql/language-manual/delta-merge-into: MERGE returns num_affected_rows,
    # num_updated_rows, num_deleted_rows, num_inserted_rows
    ("MERGE INTO", ("num_affected_rows", "num_updated_rows", "num_deleted_rows", "num_inserted_rows")),
    # https://docs.databricks.com/aws/en/sql/language-manual/delta-delete-from: DELETE returns num_affected_rows
    ("DELETE FROM", ("num_affected_rows",)),
])
def test_statement_metrics_read_the_documented_counts_and_refuse_any_other_shape(statement, columns):
    documented = {c: 3 + i for i, c in enumerate(columns)}
    tables = SparkTables(DocumentedSession({statement: [documented]}))
    assert tables.statement_metrics(NAME, f"{statement} {NAME} ...", columns) == documented
    other_shape = SparkTables(DocumentedSession({statement: [{"count": 3}]}))  # e.g. pysail's one `count`
    with pytest.raises(MlopsError, match="not the Databricks metrics"):
        other_shape.statement_metrics(NAME, f"{statement} {NAME} ...", columns)


def test_the_port_reads_each_count_it_reports_from_the_documented_column():
    merge = {"num_affected_rows": 9, "num_updated_rows": 4, "num_deleted_rows": 2, "num_inserted_rows": 3}
    session = DocumentedSession({"MERGE INTO": [merge], "DELETE FROM": [{"num_affected_rows": 5}]})
    tables = SparkTables(session)
    tables._source = lambda df, view: view  # the MERGE source view (a Spark DataFrame elsewhere)
    assert tables.update_matched(NAME, None, ["example_id"], ["quantity"]) == 4
    assert tables.delete_keys(NAME, None, "example_id") == 2
    assert tables.insert_new(NAME, None, ["example_id"]) == 3
    assert tables.delete(NAME, "x = 1") == 5


def test_change_data_feed_is_read_from_show_tblproperties():
    # https://docs.databricks.com/aws/en/sql/language-manual/sql-ref-syntax-aux-show-tblproperties: rows (key, value)
    on = DocumentedSession({"SHOW TBLPROPERTIES": [{"key": "delta.enableChangeDataFeed", "value": "true"}]})
    off = DocumentedSession({"SHOW TBLPROPERTIES": [{"key": "delta.minReaderVersion", "value": "1"}]})
    assert SparkTables(on)._change_data_feed(NAME) and not SparkTables(off)._change_data_feed(NAME)
    assert on.sent == [f"SHOW TBLPROPERTIES {NAME}"]


def test_table_properties_are_set_with_alter_table():
    # https://learn.microsoft.com/azure/databricks/delta/table-properties: ALTER TABLE t SET TBLPROPERTIES ('k' = 'v')
    session = DocumentedSession({"ALTER TABLE": []})
    SparkTables(session).set_table_properties(NAME, {"delta.enableChangeDataFeed": "true", "delta.x": "a,b"})
    assert session.sent == [(f"ALTER TABLE {NAME} SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true', "
                             "'delta.x' = 'a,b')")]


def test_the_idempotent_append_carries_txn_app_id_and_txn_version():
    # https://docs.databricks.com/aws/en/structured-streaming/delta-lake#idempotent-table-writes-in-foreachbatch:
    # the DataFrameWriter options txnAppId (a string) and txnVersion (a monotonically increasing number)
    calls = []

    class Writer:
        def option(self, key, value):
            calls.append((key, value))
            return self

        def saveAsTable(self, name):
            calls.append(("saveAsTable", name))

    SparkTables(DocumentedSession({})).idempotent_append(Writer(), NAME, "mlops-unpack:c.s.p", 12)
    assert calls == [("txnAppId", "mlops-unpack:c.s.p"), ("txnVersion", 12), ("saveAsTable", NAME)]
