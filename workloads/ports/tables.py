"""Tables port: Unity Catalog three-level names on both runtimes.

- local (embedded default): Delta tables under ``<home>/warehouse/<catalog>/<schema>/<table>`` (delta-rs);
- databricks: Spark ``spark.table`` / ``saveAsTable`` / ``MERGE INTO``.

Data enters and leaves as pandas DataFrames. Timestamps are stored as UTC ``timestamp`` columns.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa

from workloads.errors import MlopsError, TableNotFoundError
from workloads.settings import Settings

_PART = r"[A-Za-z_][A-Za-z0-9_\-]*"
_NAME = re.compile(rf"^({_PART})\.({_PART})\.({_PART})$")


def split_name(name: str) -> tuple[str, str, str]:
    """Split and check a three-level ``catalog.schema.table`` name."""
    match = _NAME.match(name or "")
    if not match:
        raise MlopsError(f"table name {name!r} is not a three-level Unity Catalog name (catalog.schema.table)")
    return match.group(1), match.group(2), match.group(3)


class Tables(Protocol):
    """What the workloads need from tables."""

    def exists(self, name: str) -> bool: ...
    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None) -> pd.DataFrame: ...
    def write(self, name: str, df: pd.DataFrame, mode: str = "append") -> None: ...
    def merge(self, name: str, df: pd.DataFrame, keys: Sequence[str], update: bool = True) -> dict: ...
    def delete(self, name: str, predicate: str) -> int: ...
    def version(self, name: str) -> int: ...
    def drop(self, name: str) -> None: ...


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """Arrow table with UTC microsecond timestamps (Delta's ``timestamp``) and plain strings.

    A ``pyarrow.Table`` passes through unchanged: callers that need an exact schema (structs, lists, columns
    that may be all null) build it themselves.
    """
    if isinstance(df, pa.Table):
        return df
    df = df.copy()
    for col in df.columns:
        series = df[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            if getattr(series.dt, "tz", None) is None:
                series = series.dt.tz_localize("UTC")
            df[col] = series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for field in table.schema:
        t = field.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
            t = pa.string()
        fields.append(pa.field(field.name, t))
    return table.cast(pa.schema(fields))


class LocalTables:
    """Delta tables on local disk, laid out by three-level name."""

    def __init__(self, warehouse: Path):
        self.warehouse = Path(warehouse)

    def path(self, name: str) -> Path:
        catalog, schema, table = split_name(name)
        return self.warehouse / catalog / schema / table

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir()

    def _table(self, name: str):
        from deltalake import DeltaTable

        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist (looked in {self.path(name)})")
        return DeltaTable(str(self.path(name)))

    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None) -> pd.DataFrame:
        table = self._table(name)
        if version is not None:
            table.load_as_version(version)
        arrow = table.to_pyarrow_table(columns=list(columns) if columns else None)
        return arrow.to_pandas()

    def write(self, name: str, df: pd.DataFrame, mode: str = "append") -> None:
        from deltalake import write_deltalake

        if mode not in ("append", "overwrite"):
            raise MlopsError(f"write mode must be 'append' or 'overwrite', got {mode!r}")
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        kwargs = {"schema_mode": "overwrite"} if mode == "overwrite" else {"schema_mode": "merge"}
        write_deltalake(str(path), _to_arrow(df), mode=mode, **kwargs)

    def merge(self, name: str, df: pd.DataFrame, keys: Sequence[str], update: bool = True) -> dict:
        """Upsert ``df`` by ``keys`` in one Delta commit: matched rows updated (if ``update``), others inserted."""
        if not self.exists(name):
            self.write(name, df, mode="append")
            return {"num_target_rows_inserted": len(df), "num_target_rows_updated": 0}
        if df.empty:
            return {"num_target_rows_inserted": 0, "num_target_rows_updated": 0}
        table = self._table(name)
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        builder = table.merge(_to_arrow(df), predicate=predicate, source_alias="s", target_alias="t")
        if update:
            builder = builder.when_matched_update_all()
        metrics = builder.when_not_matched_insert_all().execute()
        return {k: v for k, v in metrics.items() if k in ("num_target_rows_inserted", "num_target_rows_updated")}

    def delete(self, name: str, predicate: str) -> int:
        metrics = self._table(name).delete(predicate)
        return int(metrics.get("num_deleted_rows", 0))

    def version(self, name: str) -> int:
        return int(self._table(name).version())

    def drop(self, name: str) -> None:
        shutil.rmtree(self.path(name), ignore_errors=True)


class SparkTables:
    """Unity Catalog tables through a Spark session (Databricks runtime or local pyspark)."""

    def __init__(self, spark=None):
        if spark is None:
            from pyspark.sql import SparkSession

            spark = SparkSession.builder.getOrCreate()
        self.spark = spark

    def exists(self, name: str) -> bool:
        split_name(name)
        return bool(self.spark.catalog.tableExists(name))

    def _require(self, name: str) -> None:
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist in the metastore")

    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None) -> pd.DataFrame:
        self._require(name)
        if version is not None:
            sdf = self.spark.sql(f"SELECT * FROM {name} VERSION AS OF {int(version)}")
        else:
            sdf = self.spark.table(name)
        if columns:
            sdf = sdf.select(*columns)
        return sdf.toPandas()

    def _frame(self, df: pd.DataFrame):
        return self.spark.createDataFrame(_to_arrow(df).to_pandas())

    def write(self, name: str, df: pd.DataFrame, mode: str = "append") -> None:
        split_name(name)
        if mode not in ("append", "overwrite"):
            raise MlopsError(f"write mode must be 'append' or 'overwrite', got {mode!r}")
        writer = self._frame(df).write.mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        else:
            writer = writer.option("mergeSchema", "true")
        writer.saveAsTable(name)

    def merge(self, name: str, df: pd.DataFrame, keys: Sequence[str], update: bool = True) -> dict:
        if not self.exists(name):
            self.write(name, df)
            return {"num_target_rows_inserted": len(df), "num_target_rows_updated": 0}
        view = f"_mlops_merge_{split_name(name)[2]}"
        self._frame(df).createOrReplaceTempView(view)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        matched = "WHEN MATCHED THEN UPDATE SET * " if update else ""
        rows = self.spark.sql(
            f"MERGE INTO {name} AS t USING {view} AS s ON {on} {matched}WHEN NOT MATCHED THEN INSERT *"
        ).collect()
        metrics = rows[0].asDict() if rows else {}
        return {
            "num_target_rows_inserted": int(metrics.get("num_inserted_rows", 0)),
            "num_target_rows_updated": int(metrics.get("num_updated_rows", 0)),
        }

    def delete(self, name: str, predicate: str) -> int:
        self._require(name)
        rows = self.spark.sql(f"DELETE FROM {name} WHERE {predicate}").collect()
        return int(rows[0].asDict().get("num_affected_rows", 0)) if rows else 0

    def version(self, name: str) -> int:
        self._require(name)
        row = self.spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").collect()[0]
        return int(row["version"])

    def drop(self, name: str) -> None:
        split_name(name)
        self.spark.sql(f"DROP TABLE IF EXISTS {name}")


def get_tables(settings: Settings) -> Tables:
    """The tables port for the configured backend."""
    if settings.backend == "databricks":
        return SparkTables()
    return LocalTables(settings.warehouse)
