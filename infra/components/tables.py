"""The processed inference table and the baseline table of a model, with columns from its spec."""

from __future__ import annotations

import pulumi
import pulumi_databricks as databricks

from infra.config import StackConfig
from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, ModelSpec

# Column mapping by name, so that a column removed from a spec can be dropped: the provider applies a removed
# column as ALTER TABLE ... DROP COLUMN, which Delta refuses without it ("To drop columns ... enable column mapping",
# https://docs.databricks.com/delta/column-mapping.html; "Delta Lake ... supports dropping columns ... when column
# mapping is enabled", https://docs.databricks.com/delta/update-schema.html). Renaming a spec column is a drop plus an
# add: the old column's values are not carried over; the documented replace path is a new table name in the spec.
COLUMN_MAPPING = {"delta.columnMapping.mode": "name"}


def processed_columns(spec: ModelSpec) -> list[databricks.SqlTableColumnArgs]:
    """Features, prediction, label, model version, timestamp, request and example ids."""
    # The spec's column types are Spark SQL names; Unity Catalog DDL spells them upper-case.
    return [databricks.SqlTableColumnArgs(name=c.name, type=c.type.upper()) for c in spec.processed_columns()]


def baseline_columns(spec: ModelSpec) -> list[databricks.SqlTableColumnArgs]:
    """The processed columns without the per-request ids (training data has no requests)."""
    return [c for c in processed_columns(spec) if c.name not in (REQUEST_ID_COLUMN, EXAMPLE_ID_COLUMN)]


def _full_name(table: databricks.SqlTable) -> pulumi.Output[str]:
    return pulumi.Output.concat(table.catalog_name, ".", table.schema_name, ".", table.name)


class InferenceTables(pulumi.ComponentResource):
    """``<model>_inference`` (payloads unpacked, labels joined) and ``<model>_baseline`` (training data).

    Outputs: ``processed_table``, ``baseline_table`` (three-level names).
    """

    def __init__(self, name: str, spec: ModelSpec, config: StackConfig, schema: databricks.Schema,
                 warehouse_id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:model:InferenceTables", name, None, opts)
        # Databricks' own table properties (delta.lastCommitTimestamp, ...) land in the provider's output-only
        # effective_properties, which is never compared with the inputs: only `properties`, what we declare, is.
        protected = pulumi.ResourceOptions(parent=self, protect=config.is_protected)
        self.processed = databricks.SqlTable(
            f"{spec.name}-processed", catalog_name=schema.catalog_name, schema_name=schema.name, name=spec.processed_table,
            table_type="MANAGED", data_source_format="DELTA", warehouse_id=warehouse_id, owner=config.grants.owner,
            columns=processed_columns(spec),
            comment=f"{spec.name}: inference payloads unpacked, with ground-truth labels merged by request id.",
            # The change data feed (the monitor reads changes incrementally) and statistics on the columns the
            # workloads filter on, wherever they sit in the table: one home, ModelSpec.processed_table_properties.
            properties={**spec.processed_table_properties(), **COLUMN_MAPPING}, opts=protected)
        self.baseline = databricks.SqlTable(
            f"{spec.name}-baseline", catalog_name=schema.catalog_name, schema_name=schema.name, name=spec.baseline_table,
            table_type="MANAGED", data_source_format="DELTA", warehouse_id=warehouse_id, owner=config.grants.owner,
            columns=baseline_columns(spec),
            comment=f"{spec.name}: the champion's training data, the monitor's drift baseline.",
            properties=dict(COLUMN_MAPPING), opts=protected)
        self.processed_table = _full_name(self.processed)
        self.baseline_table = _full_name(self.baseline)
        self.register_outputs({"processed_table": self.processed_table, "baseline_table": self.baseline_table})
