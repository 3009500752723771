"""``mlops data import``: a CSV or Parquet file of one's own becomes a Delta table a spec can name as its source.

Where data enters: the file, read whole and typed before anything is written (a malformed file is one
:class:`ImportError_` naming the problem and writes nothing). What is changed: text columns whose every value
parses as a date or timestamp become timestamps (so the timestamp column is one); column names are checked
against what a Delta table accepts. Where it leaves: the table, through the tables port (a local Delta table in
the home, or ``saveAsTable`` on Databricks); an existing table is replaced only with ``mode="overwrite"``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workloads.data.builders import spec_type
from workloads.errors import MlopsError
from workloads.ports.tables import Tables, get_tables, split_name
from workloads.settings import Settings

MODES = ("error", "overwrite")
# Characters a Delta column name may not hold without column mapping (Spark's and delta-rs' check).
_BAD_NAME = re.compile(r"[ ,;{}()\n\t=]")


class DataImportError(MlopsError):
    """A file cannot become a table (unreadable, malformed, unsupported, or the table exists)."""


@dataclass
class ImportResult:
    table: str
    rows: int
    types: dict[str, str]  # column -> spec type, in file order
    parsed_dates: list[str]
    version: int


def read_file(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The file as a typed frame, and the text columns that were parsed as timestamps.

    Raises:
        DataImportError: missing, empty, malformed or of an unknown format (by extension).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataImportError(f"file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, on_bad_lines="error", engine="c", low_memory=False)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataImportError(f"file {path} is neither CSV (.csv) nor Parquet (.parquet)")
    except DataImportError:
        raise
    except pd.errors.EmptyDataError:
        raise DataImportError(f"file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataImportError(f"file {path} is malformed: {detail}") from None
    problems = _column_problems(frame)
    if problems:
        raise DataImportError(f"file {path} cannot become a table: {'; '.join(problems)}")
    if frame.empty:
        raise DataImportError(f"file {path} has a header but no rows")
    return _parse_dates(frame)


def _column_problems(frame: pd.DataFrame) -> list[str]:
    names = [str(c) for c in frame.columns]
    problems = []
    unnamed = [n for n in names if n.startswith("Unnamed: ")]
    if unnamed:
        problems.append(f"{len(unnamed)} column(s) without a header name (positions "
                        f"{', '.join(str(names.index(n) + 1) for n in unnamed)})")
    renamed = [n for n in names if re.search(r"\.\d+$", n) and n.rsplit(".", 1)[0] in names]
    if renamed:
        problems.append(f"repeated column names ({', '.join(n.rsplit('.', 1)[0] for n in renamed)})")
    bad = [n for n in names if _BAD_NAME.search(n) and n not in unnamed]
    if bad:
        problems.append(f"column names with spaces or any of ,;{{}}()= ({', '.join(repr(n) for n in bad)}): "
                        "rename them (e.g. with underscores)")
    lowered = [n.lower() for n in names]
    clash = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if clash:
        problems.append(f"column names that differ only in case ({', '.join(clash)}): Delta columns are "
                        "case-insensitive")
    return problems


def _parse_dates(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Text columns whose every non-null value parses as a date or timestamp become UTC timestamps."""
    parsed = []
    out = frame.copy()
    for column in frame.columns:
        series = frame[column]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        values = series.dropna().astype(str)
        if values.empty or not values.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}").all():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stamps = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        if stamps.notna().sum() == len(values):
            out[column] = stamps
            parsed.append(str(column))
    return out, parsed


def import_file(settings: Settings, path: str | Path, table: str, mode: str = "error",
                tables: Tables | None = None) -> ImportResult:
    """Write a CSV or Parquet file as the table ``table`` (three-level name).

    Args:
        settings: Where the table lives.
        path: The file.
        table: ``catalog.schema.table``.
        mode: ``error`` (refuse if the table exists) or ``overwrite`` (replace it).
        tables: The tables port.

    Raises:
        DataImportError: a bad mode, an existing table without ``overwrite``, or a bad file; nothing is written.
    """
    if mode not in MODES:
        raise DataImportError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    split_name(table)
    tables = tables or get_tables(settings)
    if mode == "error" and tables.exists(table):
        raise DataImportError(f"table {table} already exists; pass --mode overwrite to replace it")
    frame, parsed = read_file(path)
    frame.columns = [str(c) for c in frame.columns]
    tables.write(table, frame, mode="overwrite")
    types = {c: spec_type(t) for c, t in frame.dtypes.items()}
    return ImportResult(table, len(frame), types, parsed, tables.version(table))
