"""Tables port: Unity Catalog three-level names on both runtimes.

- local (embedded default): Delta tables under ``<home>/warehouse/<catalog>/<schema>/<table>`` (delta-rs);
- databricks: Spark ``spark.table`` / ``saveAsTable`` / ``MERGE INTO``.

Data enters and leaves as pandas DataFrames. Timestamps are stored as UTC ``timestamp`` columns.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


@dataclass(frozen=True)
class TableChanges:
    """The rows a table gained between two versions (see ``read_changes``).

    Attributes:
        rows: the inserted rows: a pandas DataFrame locally; on Spark a DataFrame that stays in Spark (never collected).
        after_version: the version the rows were inserted after (exclusive); ``None``: the whole table.
        version: the version read up to (inclusive); the next read starts after it.
    """

    rows: Any
    after_version: int | None
    version: int


@dataclass(frozen=True)
class RowFilter:
    """Which rows a read returns: rows of ``column`` in any of ``ranges`` (each ``[start, end)``, either end open
    as ``None``), and with every column of ``not_null`` set. Both backends push it down: delta-rs skips the files
    whose min/max statistics rule the ranges out, Spark gets it as a ``WHERE`` clause (Delta data skipping:
    https://docs.databricks.com/aws/en/delta/data-skipping), so a read's cost follows the rows selected when the
    table's files are laid out along ``column`` (as appends of a time series are).

    ``column=None`` applies no range; ``column`` with no ``ranges`` selects nothing.
    """

    column: str | None = None
    ranges: tuple[tuple[Any, Any], ...] = ()
    not_null: tuple[str, ...] = ()

    @classmethod
    def since(cls, column: str, start: Any, not_null: Sequence[str] = ()) -> RowFilter:
        """Rows with ``column >= start`` (all rows when ``start`` is ``None``)."""
        return cls(column, ((start, None),), tuple(not_null))

    def _bounds(self) -> list[tuple[pd.Timestamp | None, pd.Timestamp | None]]:
        def ts(value):
            if value is None:
                return None
            value = pd.Timestamp(value)
            return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")

        return [(ts(lo), ts(hi)) for lo, hi in self.ranges]

    def sql(self) -> str:
        """The filter as a Spark SQL boolean expression (``TRUE`` when it selects every row)."""
        literal = lambda t: f"TIMESTAMP '{t.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"
        parts = [f"`{c}` IS NOT NULL" for c in self.not_null]
        if self.column is not None:
            ranges = []
            for lo, hi in self._bounds():
                bounds = ([f"`{self.column}` >= {literal(lo)}"] if lo is not None else []) + (
                    [f"`{self.column}` < {literal(hi)}"] if hi is not None else [])
                ranges.append("(" + " AND ".join(bounds) + ")" if bounds else "TRUE")
            parts.append("(" + " OR ".join(ranges) + ")" if ranges else "FALSE")
        return " AND ".join(parts) if parts else "TRUE"

    def file_pruning(self) -> list[list[tuple]] | None:
        """delta-rs tuple filters in disjunctive normal form selecting the files that may hold matching rows."""
        if self.column is None:
            return None
        groups = []
        for lo, hi in self._bounds():
            group = ([(self.column, ">=", lo.to_pydatetime())] if lo is not None else []) + (
                [(self.column, "<", hi.to_pydatetime())] if hi is not None else [])
            if not group:
                return None
            groups.append(group)
        return groups

    def arrow(self, schema: pa.Schema):
        """The exact row filter as a pyarrow compute expression over a table of ``schema``."""
        import pyarrow.compute as pc

        expression = pc.scalar(True)
        for c in self.not_null:
            expression = expression & pc.field(c).is_valid()
        if self.column is not None:
            unit_type = schema.field(self.column).type
            selected = pc.scalar(False)
            for lo, hi in self._bounds():
                term = pc.scalar(True)
                if lo is not None:
                    term = term & (pc.field(self.column) >= pa.scalar(lo.to_pydatetime(), type=unit_type))
                if hi is not None:
                    term = term & (pc.field(self.column) < pa.scalar(hi.to_pydatetime(), type=unit_type))
                selected = selected | term
            expression = expression & selected
        return expression


def _since_clause(since: tuple[str, Any] | None, literal) -> str:
    """`` AND t.`col` >= <literal>`` restricting a MERGE's target rows, or nothing."""
    if since is None:
        return ""
    column, value = since
    return f" AND t.`{column}` >= {literal(pd.Timestamp(value))}"


class Tables(Protocol):
    """What the workloads need from tables."""

    def exists(self, name: str) -> bool: ...
    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None,
             where: RowFilter | None = None) -> pd.DataFrame: ...
    def write(self, name: str, df: pd.DataFrame, mode: str = "append") -> None: ...
    def merge(self, name: str, df: pd.DataFrame, keys: Sequence[str], update: bool = True) -> dict: ...
    def delete(self, name: str, predicate: str) -> int: ...
    def version(self, name: str) -> int: ...
    def drop(self, name: str) -> None: ...
    def read_changes(self, name: str, key: str, after_version: int | None = None,
                     columns: Sequence[str] | None = None) -> TableChanges: ...
    def insert_new(self, name: str, df, keys: Sequence[str], since: tuple[str, Any] | None = None) -> int: ...


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

    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None,
             where: RowFilter | None = None) -> pd.DataFrame:
        """The table (at ``version``), only ``columns``, only the rows ``where`` selects (files pruned by their
        statistics first, then rows filtered exactly)."""
        table = self._table(name)
        if version is not None:
            table.load_as_version(version)
        if where is None:
            return table.to_pyarrow_table(columns=list(columns) if columns else None).to_pandas()
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=where.file_pruning())
        return dataset.to_table(columns=list(columns) if columns else None,
                                filter=where.arrow(dataset.schema)).to_pandas()

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

    def read_changes(self, name: str, key: str, after_version: int | None = None,
                     columns: Sequence[str] | None = None) -> TableChanges:
        """The rows inserted into a table after ``after_version``, up to its current version.

        Reads only the data files added since ``after_version`` (the difference of the two versions' file lists in the
        transaction log), so the cost follows the new data, not the table. Rows that a later commit merely rewrote (an
        update, a compaction, a MERGE rewriting a file) are not new: rows whose ``key`` was in a file removed since
        ``after_version`` are dropped. ``after_version`` ``None`` reads the whole table. Works with or without the
        change data feed (the local payload writer does not enable it).
        """
        from deltalake import DeltaTable

        current = self._table(name)
        version = int(current.version())
        wanted = list(dict.fromkeys([*columns, key])) if columns else None
        if after_version is None:
            rows = current.to_pyarrow_table(columns=wanted)
        elif after_version >= version:
            rows = current.to_pyarrow_dataset().schema.empty_table()
            rows = rows.select(wanted) if wanted else rows
        else:
            before = DeltaTable(str(self.path(name)), version=after_version)
            now_files, before_files = _data_files(current), _data_files(before)
            rows = _read_files(current, now_files - before_files, wanted)
            gone = before_files - now_files
            if gone and rows.num_rows:
                import pyarrow.compute as pc

                rewritten = _read_files(before, gone, [key]).column(key).combine_chunks()
                rows = rows.filter(pc.invert(pc.is_in(rows.column(key), value_set=rewritten)))
        frame = rows.to_pandas()
        return TableChanges(frame[list(columns)] if columns else frame, after_version, version)

    def insert_new(self, name: str, df: pd.DataFrame, keys: Sequence[str], since: tuple[str, Any] | None = None) -> int:
        """Insert the rows of ``df`` whose ``keys`` the table does not hold yet (an insert-only MERGE); returns how many.

        ``since=(column, value)`` looks for existing keys only among rows with ``column >= value``: the MERGE then
        skips every file whose statistics end before ``value`` (the caller guarantees older rows cannot share keys).
        """
        if not self.exists(name):
            self.write(name, df, mode="append")
            return len(df)
        if df.empty:
            return 0
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        predicate += _since_clause(since, lambda ts: f"'{ts.tz_convert('UTC').isoformat()}'")
        metrics = (self._table(name).merge(_to_arrow(df), predicate=predicate, source_alias="s", target_alias="t")
                   .when_not_matched_insert_all().execute())
        return int(metrics.get("num_target_rows_inserted", 0))


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

    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None,
             where: RowFilter | None = None) -> pd.DataFrame:
        """The rows ``where`` selects, collected on the driver: for bounded reads only (a window, a watermark,
        a capped sample); :meth:`frame` keeps a traffic-sized read in Spark."""
        return self.frame(name, columns, version, where).toPandas()

    def frame(self, name: str, columns: Sequence[str] | None = None, version: int | None = None,
              where: RowFilter | None = None):
        """The same read as :meth:`read` as a Spark DataFrame (nothing collected)."""
        self._require(name)
        if version is not None:
            sdf = self.spark.sql(f"SELECT * FROM {name} VERSION AS OF {int(version)}")
        else:
            sdf = self.spark.table(name)
        if where is not None:
            sdf = sdf.where(where.sql())
        if columns:
            sdf = sdf.select(*columns)
        return sdf

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

    def _change_data_feed(self, name: str) -> bool:
        """Whether the table records its change data feed (``delta.enableChangeDataFeed``)."""
        properties = {row[0]: row[1] for row in self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
        return str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"

    def read_changes(self, name: str, key: str, after_version: int | None = None,
                     columns: Sequence[str] | None = None) -> TableChanges:
        """The rows inserted after ``after_version``, up to the current version, as a Spark DataFrame (not collected).

        With the change data feed on the table, only the ``insert`` change rows of the versions in between are read
        (``readChangeFeed`` with ``startingVersion``/``endingVersion``:
        https://docs.databricks.com/aws/en/delta/delta-change-data-feed). Databricks documents AI Gateway inference
        tables as Unity Catalog Delta tables without saying that the feed is on
        (https://docs.databricks.com/aws/en/ai-gateway/inference-tables), so without it the rows of the current
        version whose ``key`` the older version lacks are read: a left anti join that runs in Spark and whose cost
        follows the table, not the new rows (enable the feed on the table to make it incremental).
        """
        self._require(name)
        version = self.version(name)
        if after_version is None:
            rows = self.spark.sql(f"SELECT * FROM {name} VERSION AS OF {version}")
        elif after_version >= version:
            rows = self.spark.table(name).limit(0)
        elif self._change_data_feed(name):
            rows = (self.spark.read.format("delta").option("readChangeFeed", "true")
                    .option("startingVersion", after_version + 1).option("endingVersion", version).table(name)
                    .where("_change_type = 'insert'").drop("_change_type", "_commit_version", "_commit_timestamp"))
        else:
            known = self.spark.sql(f"SELECT `{key}` FROM {name} VERSION AS OF {int(after_version)}")
            rows = self.spark.sql(f"SELECT * FROM {name} VERSION AS OF {version}").join(known, on=key, how="left_anti")
        return TableChanges(rows.select(*columns) if columns else rows, after_version, version)

    def insert_new(self, name: str, df, keys: Sequence[str], since: tuple[str, Any] | None = None) -> int:
        """Insert the rows of ``df`` (pandas, or a Spark DataFrame kept in Spark) whose ``keys`` are new; see
        :meth:`LocalTables.insert_new`. Only the MERGE's one metrics row reaches the driver."""
        source = df if hasattr(df, "createOrReplaceTempView") else self._frame(df)
        if not self.exists(name):
            source.write.saveAsTable(name)
            return int(self.spark.table(name).count())
        view = f"_mlops_insert_{split_name(name)[2]}"
        source.createOrReplaceTempView(view)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        on += _since_clause(since, lambda ts: f"TIMESTAMP '{ts.tz_convert('UTC').strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'")
        rows = self.spark.sql(f"MERGE INTO {name} AS t USING {view} AS s ON {on} WHEN NOT MATCHED THEN INSERT *").collect()
        return int(rows[0].asDict().get("num_inserted_rows", 0)) if rows else 0


def _data_files(table) -> set[str]:
    """Paths (relative to the table) of the data files of one version of a Delta table."""
    actions = pa.table(table.get_add_actions(flatten=True))
    return set(actions.column("path").to_pylist()) if actions.num_rows else set()


def _read_files(table, paths: set[str], columns: list[str] | None) -> pa.Table:
    """The rows of some data files of a Delta table version, in that version's schema (partition values included)."""
    dataset = table.to_pyarrow_dataset()
    root = table.table_uri.removeprefix("file://").rstrip("/")
    fragments = [f for f in dataset.get_fragments() if f.path.removeprefix(root).lstrip("/") in paths]
    if len(fragments) != len(paths):
        raise MlopsError(f"{len(paths) - len(fragments)} data file(s) of {table.table_uri} are missing from its "
                         "version's file list; cannot read the rows added between versions")
    import pyarrow.dataset as ds

    subset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    return subset.to_table(columns=columns)


def get_tables(settings: Settings) -> Tables:
    """The tables port for the configured backend."""
    if settings.backend == "databricks":
        return SparkTables()
    return LocalTables(settings.warehouse)
