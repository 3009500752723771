"""Tables port: Unity Catalog three-level names on both runtimes.

- local (embedded default): Delta tables under ``<home>/warehouse/<catalog>/<schema>/<table>`` (delta-rs);
- databricks: Spark ``spark.table`` / ``saveAsTable`` / ``MERGE INTO``.

Data enters and leaves as pandas DataFrames. Timestamps are stored as UTC ``timestamp`` columns.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from workloads.clock import as_utc
from workloads.errors import MlopsError, SchemaDriftError, TableNotFoundError
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
        return [(None if lo is None else as_utc(lo), None if hi is None else as_utc(hi)) for lo, hi in self.ranges]

    def sql(self) -> str:
        """The filter as a Spark SQL boolean expression (``TRUE`` when it selects every row)."""
        literal = _spark_timestamp
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
    return f" AND t.`{column}` >= {literal(as_utc(value))}"


class Tables(Protocol):
    """What the workloads need from tables."""

    def exists(self, name: str) -> bool: ...
    def columns(self, name: str) -> list[str]: ...
    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None,
             where: RowFilter | None = None) -> pd.DataFrame: ...
    def write(self, name: str, df: pd.DataFrame, mode: str = "append", declared: bool = False) -> None: ...
    def merge(self, name: str, df: pd.DataFrame, keys: Sequence[str], update: bool = True) -> dict: ...
    def delete(self, name: str, predicate: str) -> int: ...
    def version(self, name: str) -> int: ...
    def drop(self, name: str) -> None: ...
    def update_matched(self, name: str, df, keys: Sequence[str], columns: Sequence[str],
                       since: tuple[str, Any] | None = None) -> int: ...
    def delete_keys(self, name: str, df, key: str) -> int: ...
    def max_value(self, name: str, column: str, where: RowFilter | None = None) -> Any: ...
    def read_changes(self, name: str, key: str, after_version: int | None = None,
                     columns: Sequence[str] | None = None, up_to_version: int | None = None) -> TableChanges: ...
    def append_once(self, name: str, df, app_id: str, version: int,
                    properties: Mapping[str, str] | None = None) -> int: ...
    def new_keys(self, name: str, df, key: str, since: tuple[str, Any] | None = None): ...
    def insert_new(self, name: str, df, keys: Sequence[str], since: tuple[str, Any] | None = None,
                   properties: Mapping[str, str] | None = None) -> int: ...
    def changed_spans(self, name: str, column: str, after_version: int) -> list[tuple[Any, Any]] | None: ...


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


def _log_identity(path: Path) -> tuple[int, int, int]:
    """Which table lives at ``path``: the inode of its log directory and the inode and change time of its first
    commit (while the log keeps it). A table dropped and created again (by this process or another) has a new first
    commit, so an open table of the old one is not reused."""
    log = path / "_delta_log"
    try:
        first = (log / f"{0:020d}.json").stat()
        return (log.stat().st_ino, first.st_ino, first.st_ctime_ns)
    except FileNotFoundError:  # the first commit cleaned up (log retention): the directory alone
        return (log.stat().st_ino, 0, 0)


class LocalTables:
    """Delta tables on local disk, laid out by three-level name."""

    def __init__(self, warehouse: Path):
        self.warehouse = Path(warehouse)
        # Open tables, brought up to date on each use: a load replays the whole transaction log since the last
        # checkpoint (its cost grows with the table's history), an incremental update reads only the new commits.
        # One per thread (a server's request threads never share a table object while another updates it).
        self._open: dict[tuple[int, Path], tuple[Any, tuple[int, int, int]]] = {}

    def path(self, name: str) -> Path:
        catalog, schema, table = split_name(name)
        return self.warehouse / catalog / schema / table

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir()

    def columns(self, name: str) -> list[str]:
        """The table's column names, from its transaction log (no data file is read)."""
        return [field.name for field in self._table(name).schema().fields]

    def _existing_path(self, name: str) -> Path:
        """The table's directory; a clear error when no table is there."""
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist (looked in {self.path(name)})")
        return self.path(name)

    def _table(self, name: str):
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        path = self._existing_path(name)
        key, identity = (threading.get_ident(), path), _log_identity(path)
        cached = self._open.get(key)
        if cached is not None and cached[1] == identity:
            try:
                cached[0].update_incremental()
                return cached[0]
            except DeltaError:  # e.g. the commits after it were cleaned up: loaded afresh below
                del self._open[key]
        table = DeltaTable(str(path))
        self._open[key] = (table, identity)
        return table

    def read(self, name: str, columns: Sequence[str] | None = None, version: int | None = None,
             where: RowFilter | None = None) -> pd.DataFrame:
        """The table (at ``version``), only ``columns``, only the rows ``where`` selects (files pruned by their
        statistics first, then rows filtered exactly)."""
        if version is not None:
            from deltalake import DeltaTable

            # a table of its own, not the open one (which stays at the current version)
            table = DeltaTable(str(self._existing_path(name)), version=int(version))
        else:
            table = self._table(name)
        if where is None:
            return table.to_pyarrow_table(columns=list(columns) if columns else None).to_pandas()
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=where.file_pruning())
        return dataset.to_table(columns=list(columns) if columns else None,
                                filter=where.arrow(dataset.schema)).to_pandas()

    def write(self, name: str, df: pd.DataFrame, mode: str = "append", declared: bool = False) -> None:
        """Append (or overwrite) ``df``; an append adds the columns the table lacks. ``declared``: the table is one the
        stack declares on Databricks (processed, baseline); locally there is no deploy step, so the first write
        declares it and a later one adds the spec's new columns (the local twin of ``pulumi up``)."""
        from deltalake import write_deltalake

        if mode not in ("append", "overwrite"):
            raise MlopsError(f"write mode must be 'append' or 'overwrite', got {mode!r}")
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        kwargs = {"schema_mode": "overwrite"} if mode == "overwrite" else {"schema_mode": "merge"}
        write_deltalake(str(path), _to_arrow(df), mode=mode, **kwargs)

    def _create(self, name: str, df: pd.DataFrame, properties: Mapping[str, str] | None) -> None:
        """Create the table from its first rows, with Delta table ``properties`` (delta-rs' ``configuration``)."""
        from deltalake import write_deltalake

        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        write_deltalake(str(path), _to_arrow(df), mode="append", configuration=dict(properties or {}))

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
        path = self.path(name)
        for key in [k for k in list(self._open) if k[1] == path]:
            self._open.pop(key, None)
        shutil.rmtree(path, ignore_errors=True)

    def update_matched(self, name: str, df: pd.DataFrame, keys: Sequence[str], columns: Sequence[str],
                       since: tuple[str, Any] | None = None) -> int:
        """Set ``columns`` of the rows matching ``df`` on ``keys`` to ``df``'s values, where they differ or are null.

        One MERGE with a conditional update (``WHEN MATCHED AND <differs> THEN UPDATE``): only the data files holding
        a changed row are rewritten, and no version is committed when nothing changes. ``since`` bounds the target
        rows as in :meth:`insert_new` (files ending before it are skipped). ``df``'s keys must be unique; rows of
        ``df`` matching nothing are ignored (nothing is inserted). Returns the number of rows updated.
        """
        if df.empty:
            return 0
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        predicate += _since_clause(since, _delta_rs_timestamp)
        metrics = (self._table(name).merge(_to_arrow(df), predicate=predicate, source_alias="s", target_alias="t")
                   .when_matched_update(updates={c: f"s.`{c}`" for c in columns}, predicate=_differs(columns, "!="))
                   .execute())
        return int(metrics.get("num_target_rows_updated", 0))

    def delete_keys(self, name: str, df: pd.DataFrame, key: str) -> int:
        """Delete the rows whose ``key`` is among ``df[key]``, in one commit (a MERGE ``WHEN MATCHED THEN DELETE``);
        returns how many rows were deleted."""
        keys = df[[key]].drop_duplicates()
        if keys.empty:
            return 0
        metrics = (self._table(name).merge(_to_arrow(keys), predicate=f"t.`{key}` = s.`{key}`", source_alias="s",
                                           target_alias="t").when_matched_delete().execute())
        return int(metrics.get("num_target_rows_deleted", 0))

    def max_value(self, name: str, column: str, where: RowFilter | None = None) -> Any:
        """The largest ``column`` among the rows ``where`` selects (``None`` when no row is selected).

        Reads the data files newest first by their ``column`` statistics in the transaction log, and stops at the
        first file whose statistics cannot beat the value found: the cost follows the newest files, not the table.
        """
        import pyarrow.compute as pc

        table = self._table(name)
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=where.file_pruning() if where else None)
        expression = where.arrow(dataset.schema) if where else None
        actions = pa.table(table.get_add_actions(flatten=True))
        stat = f"max.{column}"
        root = table.table_uri.removeprefix("file://").rstrip("/")
        file_max = {}
        if stat in actions.column_names:
            file_max = dict(zip(actions.column("path").to_pylist(), actions.column(stat).to_pylist(), strict=True))
        fragments = [(file_max.get(f.path.removeprefix(root).lstrip("/")), f) for f in dataset.get_fragments()]
        # files without statistics first (they must be read), then by their largest value, newest first
        unknown = [f for m, f in fragments if m is None]
        known = sorted(((m, f) for m, f in fragments if m is not None), key=lambda item: item[0], reverse=True)
        best = None
        for bound, fragment in [(None, f) for f in unknown] + known:
            if best is not None and bound is not None and _beyond(best, bound):
                break
            values = fragment.to_table(columns=[column], filter=expression).column(column)
            top = pc.max(values).as_py() if len(values) else None
            if top is not None and (best is None or top > best):
                best = top
        return best

    def read_changes(self, name: str, key: str, after_version: int | None = None,
                     columns: Sequence[str] | None = None, up_to_version: int | None = None) -> TableChanges:
        """The rows inserted into a table after ``after_version``, up to ``up_to_version`` (default: its current
        version).

        Reads only the data files added since ``after_version`` (the difference of the two versions' file lists in the
        transaction log), so the cost follows the new data, not the table. Rows that a later commit merely rewrote (an
        update, a compaction, a MERGE rewriting a file) are not new: rows whose ``key`` was in a file removed since
        ``after_version`` are dropped. ``after_version`` ``None`` reads the whole table. Works with or without the
        change data feed (the local payload writer does not enable it).
        """
        from deltalake import DeltaTable

        current = self._table(name)
        if up_to_version is not None:
            current.load_as_version(int(up_to_version))
        version = int(current.version())
        wanted = list(dict.fromkeys([*columns, key])) if columns else None
        if after_version is None:
            rows = current.to_pyarrow_table(columns=wanted)
        elif after_version >= version:
            rows = current.to_pyarrow_dataset().schema.empty_table()
            rows = rows.select(wanted) if wanted else rows
        else:
            changed = _commit_changes(self.path(name), after_version, version)
            before = None
            if changed is None:  # a commit of the range left the log (log retention): compare the two snapshots
                before = DeltaTable(str(self.path(name)), version=after_version)
                now_files, before_files = _data_files(current), _data_files(before)
                changed = (now_files - before_files, before_files - now_files)
            added, gone = changed
            rows = _read_files(current, added, wanted)
            if gone and rows.num_rows:
                import pyarrow.compute as pc

                if before is None:
                    before = DeltaTable(str(self.path(name)), version=after_version)
                rewritten = _read_files(before, gone, [key]).column(key).combine_chunks()
                rows = rows.filter(pc.invert(pc.is_in(rows.column(key), value_set=rewritten)))
        frame = rows.to_pandas()
        return TableChanges(frame[list(columns)] if columns else frame, after_version, version)

    def transaction_version(self, name: str, app_id: str) -> int | None:
        """The latest version the application ``app_id`` committed to the table (Delta's ``txn`` action), or ``None``."""
        if not self.exists(name):
            return None
        version = self._table(name).transaction_version(app_id)
        return None if version is None else int(version)

    def append_once(self, name: str, df, app_id: str, version: int,
                    properties: Mapping[str, str] | None = None) -> int:
        """Append ``df`` and record the application transaction ``(app_id, version)`` in the same Delta commit, unless
        the table already records ``version`` (or a later one) for ``app_id``: then nothing is written (an idempotent
        write, https://docs.delta.io/latest/delta-batch.html#idempotent-writes). A crash before the commit leaves no
        rows and no transaction; after it, both. Returns the rows appended (0 when skipped).

        ``df`` may be empty: the commit then records only the transaction. ``properties``: the Delta table properties
        of the table if this call creates it.
        """
        from deltalake import CommitProperties, Transaction, write_deltalake

        done = self.transaction_version(name, app_id)
        if done is not None and done >= int(version):
            return 0
        creating = not self.exists(name)
        # the open table (brought up to date) when there is one: the write then replays no log of its own
        target = None if creating else self._table(name)
        commit = CommitProperties(app_transactions=[Transaction(app_id, int(version))])
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        write_deltalake(str(path) if target is None else target, _to_arrow(df), mode="append",
                        schema_mode=None if creating else "merge",
                        configuration=dict(properties or {}) if creating else None, commit_properties=commit)
        return len(df)

    def new_keys(self, name: str, df: pd.DataFrame, key: str, since: tuple[str, Any] | None = None) -> pd.DataFrame:
        """The rows of ``df`` whose ``key`` the table does not hold (among its rows with ``column >= value`` when
        ``since=(column, value)``: older files are skipped by their statistics). Only ``key`` is read, only from files
        whose ``key`` statistics overlap the new keys' range, and only rows whose ``key`` is one of ``df``'s: the lookup
        is bounded by the new keys, not by the table's rows."""
        import pyarrow.compute as pc

        if df.empty or not self.exists(name):
            return df
        wanted = pa.array(pd.unique(df[key].astype(object)).tolist(), type=pa.string())
        where = RowFilter.since(*since) if since is not None else RowFilter()
        table = self._table(name)
        # files whose `key` statistics miss the new keys' range are skipped too (ids that grow with time, as many
        # clients' do, then cost the files of the new rows only; a file without `key` statistics is read)
        lowest, highest = pc.min(wanted).as_py(), pc.max(wanted).as_py()
        key_range = [(key, ">=", lowest), (key, "<=", highest)]
        pruning = [group + key_range for group in (where.file_pruning() or [[]])]
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=pruning)
        expression = where.arrow(dataset.schema) & pc.field(key).isin(wanted)
        held = dataset.to_table(columns=[key], filter=expression).column(key)
        if not len(held):
            return df
        return df[~df[key].isin(set(held.to_pylist()))].reset_index(drop=True)

    def insert_new(self, name: str, df: pd.DataFrame, keys: Sequence[str], since: tuple[str, Any] | None = None,
                   properties: Mapping[str, str] | None = None) -> int:
        """Insert the rows of ``df`` whose ``keys`` the table does not hold yet (an insert-only MERGE); returns how many.

        ``since=(column, value)`` looks for existing keys only among rows with ``column >= value``: the MERGE then
        skips every file whose statistics end before ``value`` (the caller guarantees older rows cannot share keys).
        ``properties``: the Delta table properties of the table if this call creates it.
        """
        if not self.exists(name):
            self._create(name, df, properties)
            return len(df)
        if df.empty:
            return 0
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        predicate += _since_clause(since, _delta_rs_timestamp)
        metrics = (self._table(name).merge(_to_arrow(df), predicate=predicate, source_alias="s", target_alias="t")
                   .when_not_matched_insert_all().execute())
        return int(metrics.get("num_target_rows_inserted", 0))

    def changed_spans(self, name: str, column: str, after_version: int) -> list[tuple[Any, Any]] | None:
        """``(min, max)`` of ``column`` over every data file added or removed since ``after_version``: the span of
        values any row changed since then can have (an append, a MERGE rewriting a file, a delete). Read from the
        transaction log's per-file statistics, no data file is opened. ``[]``: nothing changed. ``None``: unknown
        (a changed file without statistics on ``column``, e.g. past the table's first 32 columns, or
        ``after_version`` no longer readable): the caller must assume everything changed.
        """
        from deltalake import DeltaTable

        current = self._table(name)
        if after_version >= int(current.version()):
            return []
        try:
            before = DeltaTable(str(self.path(name)), version=after_version)
        except Exception:  # noqa: BLE001 - a vacuumed or missing version: unknown, not an error
            return None
        now, then = _file_stats(current, column), _file_stats(before, column)
        if now is None or then is None:
            return None
        changed = [now[p] for p in now.keys() - then.keys()] + [then[p] for p in then.keys() - now.keys()]
        if any(lo is None or hi is None for lo, hi in changed):
            return None
        return changed


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

    def columns(self, name: str) -> list[str]:
        """The table's column names, from its schema (no Spark job runs)."""
        self._require(name)
        return list(self.spark.table(name).columns)

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
        """``df`` shipped to Spark as an Arrow table: its column types exactly (an all-null column keeps its type; a
        pandas round trip would make it untyped, which Delta rejects)."""
        return self.spark.createDataFrame(_to_arrow(df))

    def write(self, name: str, df: pd.DataFrame, mode: str = "append", declared: bool = False) -> None:
        """Append (or overwrite) ``df``. An append to a ``declared`` table (one the stack declares from the spec: the
        processed and baseline tables) never changes its schema: no ``mergeSchema``, and a column the table lacks is
        a :class:`~workloads.errors.SchemaDriftError` before anything is written. Other tables (the project's own
        state, labels and result tables) gain new columns (``mergeSchema``)."""
        split_name(name)
        if mode not in ("append", "overwrite"):
            raise MlopsError(f"write mode must be 'append' or 'overwrite', got {mode!r}")
        if declared and mode == "overwrite":
            raise MlopsError(f"{name} is declared by the stack: a job appends to it, never overwrites it")
        sdf = self._frame(df)
        writer = sdf.write.mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        elif declared and self.exists(name):
            self._require_declared_columns(name, sdf.columns)
        else:
            writer = writer.option("mergeSchema", "true")
        writer.saveAsTable(name)

    def _require_declared_columns(self, name: str, columns: Sequence[str]) -> None:
        """Refuse an append whose columns the declared table lacks (Delta would refuse it too, mid-job, with a schema
        mismatch; ``mergeSchema`` would make the table drift from what the stack declares)."""
        have = set(self.columns(name))
        extra = [c for c in columns if c not in have]
        if extra:
            raise SchemaDriftError(
                f"table {name} has no column(s) {extra}: its columns are declared by the stack from the spec, and a "
                f"job never changes them; deploy the stack with the spec that adds them (pulumi up) before this step "
                f"writes them")

    def merge(self, name: str, df: pd.DataFrame, keys: Sequence[str], update: bool = True) -> dict:
        if not self.exists(name):
            self.write(name, df)
            return {"num_target_rows_inserted": len(df), "num_target_rows_updated": 0}
        view = self._source(df, f"_mlops_merge_{split_name(name)[2]}")
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        matched = "WHEN MATCHED THEN UPDATE SET * " if update else ""
        metrics = self.statement_metrics(
            name, f"MERGE INTO {name} AS t USING {view} AS s ON {on} {matched}WHEN NOT MATCHED THEN INSERT *",
            ("num_inserted_rows", "num_updated_rows"))
        return {
            "num_target_rows_inserted": metrics["num_inserted_rows"],
            "num_target_rows_updated": metrics["num_updated_rows"],
        }

    def delete(self, name: str, predicate: str) -> int:
        self._require(name)
        return self.statement_metrics(name, f"DELETE FROM {name} WHERE {predicate}",
                                      ("num_affected_rows",))["num_affected_rows"]

    def version(self, name: str) -> int:
        """The table's current Delta version: the newest row of ``DESCRIBE HISTORY``
        (https://docs.databricks.com/aws/en/sql/language-manual/delta-describe-history, column ``version``).

        Databricks-only statement (not in open-source Spark's SQL nor pysail's): one of the narrow functions the
        tests hold to the documentation (tests/ports/test_spark_contracts.py)."""
        self._require(name)
        row = self.spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").collect()[0]
        return int(row["version"])

    def statement_metrics(self, name: str, statement: str, columns: Sequence[str]) -> dict[str, int]:
        """Run a ``MERGE INTO``/``DELETE`` on ``name`` and return the counts of its one result row.

        Databricks answers these statements with one row of counts (``num_affected_rows``, ``num_updated_rows``,
        ``num_deleted_rows``, ``num_inserted_rows``: https://docs.databricks.com/aws/en/sql/language-manual/delta-merge-into,
        .../delta-delete-from). An engine answering in another shape (e.g. one ``count`` column) fails loudly
        here instead of being read as 0. Databricks-specific result shape: a narrow function of the port held to the
        documentation (tests/ports/test_spark_contracts.py).

        Raises:
            MlopsError: the result row lacks one of ``columns``.
        """
        rows = self.spark.sql(statement).collect()
        found = rows[0].asDict() if rows else {}
        missing = [c for c in columns if c not in found]
        if missing:
            raise MlopsError(f"{statement.split(' ', 2)[0]} on {name} returned {sorted(found) or 'no row'}, not the "
                             f"Databricks metrics {missing}; cannot tell how many rows it changed")
        return {c: int(found[c] or 0) for c in columns}

    def drop(self, name: str) -> None:
        split_name(name)
        self.spark.sql(f"DROP TABLE IF EXISTS {name}")

    def _spark_frame(self, df):
        """``df`` as a Spark DataFrame: a Spark DataFrame stays as it is (in Spark), a pandas one is shipped."""
        return df if hasattr(df, "createOrReplaceTempView") else self._frame(df)

    def _source(self, df, view: str):
        """Register ``df`` (pandas, or a Spark DataFrame kept in Spark) as the temporary view ``view``."""
        self._spark_frame(df).createOrReplaceTempView(view)
        return view

    def update_matched_sql(self, name: str, view: str, keys: Sequence[str], columns: Sequence[str],
                           since: tuple[str, Any] | None = None) -> str:
        """The ``MERGE INTO`` statement :meth:`update_matched` runs with ``view`` as its source."""
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys) + _since_clause(since, _spark_timestamp)
        assignments = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
        return (f"MERGE INTO {name} AS t USING {view} AS s ON {on} "
                f"WHEN MATCHED AND ({_differs(columns, '<>')}) THEN UPDATE SET {assignments}")

    def update_matched(self, name: str, df, keys: Sequence[str], columns: Sequence[str],
                       since: tuple[str, Any] | None = None) -> int:
        """See :meth:`LocalTables.update_matched`; ``df`` is pandas or a Spark DataFrame kept in Spark (the MERGE's
        source, never collected). Only the MERGE's metrics row reaches the driver. A conditional ``WHEN MATCHED AND``
        clause updates only the rows that differ (https://docs.databricks.com/aws/en/sql/language-manual/delta-merge-into)."""
        self._require(name)
        view = self._source(df, f"_mlops_update_{split_name(name)[2]}")
        return self.statement_metrics(name, self.update_matched_sql(name, view, keys, columns, since),
                                      ("num_updated_rows",))["num_updated_rows"]

    def delete_keys(self, name: str, df, key: str) -> int:
        """See :meth:`LocalTables.delete_keys`; ``df`` is pandas or a Spark DataFrame kept in Spark."""
        self._require(name)
        view = self._source(df, f"_mlops_delete_{split_name(name)[2]}")
        return self.statement_metrics(name, f"MERGE INTO {name} AS t USING (SELECT DISTINCT `{key}` FROM {view}) AS s "
                                      f"ON t.`{key}` = s.`{key}` WHEN MATCHED THEN DELETE",
                                      ("num_deleted_rows",))["num_deleted_rows"]

    def max_value(self, name: str, column: str, where: RowFilter | None = None) -> Any:
        """See :meth:`LocalTables.max_value`: one aggregate computed in Spark, one row to the driver."""
        from pyspark.sql import functions as F

        return self.frame(name, [column], where=where).agg(F.max(column).alias("top")).collect()[0]["top"]

    def _change_data_feed(self, name: str) -> bool:
        """Whether the table records its change data feed (``delta.enableChangeDataFeed``; ``SHOW TBLPROPERTIES``:
        https://docs.databricks.com/aws/en/sql/language-manual/sql-ref-syntax-aux-show-tblproperties). A narrow
        function held to the documentation (tests/ports/test_spark_contracts.py): pysail has neither the statement
        nor the change data feed."""
        properties = {row[0]: row[1] for row in self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
        return str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"

    def read_changes(self, name: str, key: str, after_version: int | None = None,
                     columns: Sequence[str] | None = None, up_to_version: int | None = None) -> TableChanges:
        """The rows inserted after ``after_version``, up to ``up_to_version`` (default: the current version), as a
        Spark DataFrame (not collected).

        With the change data feed on the table, only the ``insert`` change rows of the versions in between are read
        (``readChangeFeed`` with ``startingVersion``/``endingVersion``:
        https://docs.databricks.com/aws/en/delta/delta-change-data-feed). Databricks documents AI Gateway inference
        tables as Unity Catalog Delta tables without saying that the feed is on
        (https://docs.databricks.com/aws/en/ai-gateway/inference-tables), so without it the rows of the current
        version whose ``key`` the older version lacks are read: a left anti join that runs in Spark and whose cost
        follows the table, not the new rows (enable the feed on the table to make it incremental).
        """
        self._require(name)
        version = self.version(name) if up_to_version is None else int(up_to_version)
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

    def append_once(self, name: str, df, app_id: str, version: int,
                    properties: Mapping[str, str] | None = None) -> int:
        """See :meth:`LocalTables.append_once`; ``df`` is pandas or a Spark DataFrame kept in Spark. Delta's idempotent
        writes do the skipping: the append carries ``txnAppId``/``txnVersion`` and Delta ignores it when the table
        already holds that version for that application
        (https://docs.databricks.com/aws/en/structured-streaming/delta-lake#idempotent-table-writes-in-foreachbatch,
        https://docs.delta.io/latest/delta-batch.html#idempotent-writes). Returns the rows appended: the table's row
        count difference, one aggregate row each way (0 when Delta skipped the write)."""
        split_name(name)
        sdf = self._spark_frame(df)
        existed = self.exists(name)
        before = int(self.spark.table(name).count()) if existed else 0
        writer = sdf.write.mode("append")
        if existed:  # the processed table, declared by the stack: its schema is never changed by a job
            self._require_declared_columns(name, sdf.columns)
        self.idempotent_append(writer, name, app_id, version)
        if not existed and properties:
            self.set_table_properties(name, properties)
        return int(self.spark.table(name).count()) - before

    def set_table_properties(self, name: str, properties: Mapping[str, str]) -> None:
        """``ALTER TABLE ... SET TBLPROPERTIES`` (https://learn.microsoft.com/azure/databricks/delta/table-properties).
        A narrow function held to the documentation (tests/ports/test_spark_contracts.py): pysail cannot enable the
        change data feed on an existing table ("Table features must be specified")."""
        listed = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
        self.spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({listed})")

    def idempotent_append(self, writer, name: str, app_id: str, version: int) -> None:
        """``writer.saveAsTable(name)`` as a Delta idempotent write: with ``txnAppId``/``txnVersion`` Delta records the
        application transaction in the append's commit and skips an append whose version it already holds
        (https://docs.databricks.com/aws/en/structured-streaming/delta-lake#idempotent-table-writes-in-foreachbatch).
        A narrow function held to the documentation (tests/ports/test_spark_contracts.py): pysail 0.7.2 accepts the
        options but records no transaction."""
        writer.option("txnAppId", app_id).option("txnVersion", int(version)).saveAsTable(name)

    def new_keys(self, name: str, df, key: str, since: tuple[str, Any] | None = None):
        """See :meth:`LocalTables.new_keys`: a left anti join in Spark against the table's ``key`` column (restricted
        to ``since``); ``df`` stays a Spark DataFrame."""
        sdf = self._spark_frame(df)
        if not self.exists(name):
            return sdf
        held = self.frame(name, [key], where=RowFilter.since(*since) if since is not None else None)
        return sdf.join(held.join(sdf.select(key).distinct(), on=key, how="left_semi"), on=key, how="left_anti")

    def insert_new(self, name: str, df, keys: Sequence[str], since: tuple[str, Any] | None = None,
                   properties: Mapping[str, str] | None = None) -> int:
        """Insert the rows of ``df`` (pandas, or a Spark DataFrame kept in Spark) whose ``keys`` are new; see
        :meth:`LocalTables.insert_new`. Only the MERGE's one metrics row reaches the driver."""
        if not self.exists(name):
            self._spark_frame(df).write.saveAsTable(name)
            if properties:
                self.set_table_properties(name, properties)
            return int(self.spark.table(name).count())
        view = self._source(df, f"_mlops_insert_{split_name(name)[2]}")
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        on += _since_clause(since, _spark_timestamp)
        return self.statement_metrics(name, f"MERGE INTO {name} AS t USING {view} AS s ON {on} WHEN NOT MATCHED THEN "
                                      "INSERT *", ("num_inserted_rows",))["num_inserted_rows"]

    def changed_spans(self, name: str, column: str, after_version: int) -> list[tuple[Any, Any]] | None:
        """See :meth:`LocalTables.changed_spans`: from the change data feed, one aggregate row per commit reaches
        the driver (``table_changes``: https://docs.databricks.com/aws/en/delta/delta-change-data-feed); ``None``
        without the feed."""
        self._require(name)
        version = self.version(name)
        if after_version >= version:
            return []
        if not self._change_data_feed(name):
            return None
        rows = self.spark.sql(
            f"SELECT _commit_version, min(`{column}`) AS lo, max(`{column}`) AS hi "
            f"FROM table_changes('{name}', {int(after_version) + 1}, {version}) GROUP BY _commit_version").collect()
        spans = [(row["lo"], row["hi"]) for row in rows]
        return None if any(lo is None or hi is None for lo, hi in spans) else spans


def _file_stats(table, column: str) -> dict[str, tuple[Any, Any]] | None:
    """Data file path -> (min, max) of ``column`` from one version's add actions; ``None`` if no statistics."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if not actions.num_rows:
        return {}
    if f"min.{column}" not in actions.column_names:
        return None
    return dict(zip(actions.column("path").to_pylist(),
                    zip(actions.column(f"min.{column}").to_pylist(), actions.column(f"max.{column}").to_pylist()),
                    strict=True))


def _differs(columns: Sequence[str], not_equal: str) -> str:
    """SQL condition: the target row ``t`` has a null or a different value than the source ``s`` in any column."""
    return " OR ".join(f"t.`{c}` IS NULL OR t.`{c}` {not_equal} s.`{c}`" for c in columns)


def _beyond(value: Any, file_max: Any) -> bool:
    """Whether ``value`` is past what a file whose ``max`` statistic is ``file_max`` can hold (Delta writers may
    truncate timestamp statistics to milliseconds, so a timestamp statistic is taken as up to 1 ms short)."""
    import datetime as dt

    if isinstance(file_max, dt.datetime):
        return value >= file_max + dt.timedelta(milliseconds=1)
    return value >= file_max


def _spark_timestamp(ts: pd.Timestamp) -> str:
    """A UTC Spark SQL timestamp literal."""
    return f"TIMESTAMP '{ts.tz_convert('UTC').strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"


def _delta_rs_timestamp(ts: pd.Timestamp) -> str:
    """A UTC timestamp literal for a delta-rs MERGE predicate (an ISO-8601 string)."""
    return f"'{ts.tz_convert('UTC').isoformat()}'"


def _data_files(table) -> set[str]:
    """Paths (relative to the table) of the data files of one version of a Delta table."""
    actions = pa.table(table.get_add_actions(flatten=True))
    return set(actions.column("path").to_pylist()) if actions.num_rows else set()


def _commit_changes(path: Path, after: int, up_to: int) -> tuple[set[str], set[str]] | None:
    """The data files the commits ``after+1 .. up_to`` of the table at ``path`` left added (present at ``up_to``, absent
    at ``after``) and removed (present at ``after``, absent at ``up_to``), read from those commits' own log entries
    (the ``add`` and ``remove`` actions of the Delta protocol, https://github.com/delta-io/delta/blob/master/PROTOCOL.md),
    so the cost follows the new commits, not the table's files or history; ``None`` when a commit of the range is no
    longer in the log."""
    import orjson

    added, removed = set(), set()
    for version in range(after + 1, up_to + 1):
        try:
            lines = (path / "_delta_log" / f"{version:020d}.json").read_bytes().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            if not line.strip():
                continue
            action = orjson.loads(line)
            if "add" in action:
                added.add(action["add"]["path"])
            elif "remove" in action:
                removed.add(action["remove"]["path"])
    return added - removed, removed - added


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
