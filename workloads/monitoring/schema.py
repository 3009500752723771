"""Arrow schemas of ``<table>_profile_metrics`` and ``<table>_drift_metrics``: the columns, types and null
conventions of the tables Databricks writes, as recorded with their sources in ``databricks_metric_tables.json``
(next to this module; ``tests/monitoring/test_metric_table_schema.py`` holds both locally written tables to it).

Both tables keep ``window`` (and ``window_cmp``) as a struct ``{start, end}`` of UTC timestamps, ``ks_test`` /
``chi_squared_test`` as structs ``{statistic, pvalue}``, ``quantiles`` as an array (levels in
:data:`workloads.monitoring.stats.QUANTILE_LEVELS`), ``frequent_items`` as an array of ``{item, count}`` and
``non_null_columns_delta`` as ``{added, missing}``. Classification ``precision`` / ``recall`` / ``f1_score`` are
structs ``{macro, weighted}``.

Rows: ``:table`` rows carry the table-level values only (``count`` = rows, ``non_null_columns``, model quality);
their ``data_type`` and ``num_nulls`` are null. BASELINE profile rows have a null ``window`` and ``granularity``
(the baseline is one sample, not a window). Numeric columns carry the numeric statistics (``num_zeros``,
``percent_zeros``, ``num_nan``, ``percent_nan``), string columns the lengths (``min_length`` / ``max_length`` /
``avg_length``) and ``frequent_items``; a statistic that does not apply to a row is null.

Nulls: a local table cannot hold a NaN apart from a null (pandas reads both as NaN, and writes NaN as null), so
NaN is null and ``num_nan`` is 0; infinite values are counted in ``num_nulls`` and excluded from every other
statistic (Spark would count them as values; no drift statistic is defined on them). ``count`` is the number of
present (non-null, finite) values; ``percent_*`` are percentages (0-100) of the column's rows, except
``percent_distinct`` (of its present values). ``slice_key`` / ``slice_value`` are null on unsliced rows.
"""

from __future__ import annotations

import pyarrow as pa

from workloads.specs import MODEL_ID_COLUMN

TABLE_COLUMN = ":table"
INPUT, BASELINE = "INPUT", "BASELINE"
CONSECUTIVE = "CONSECUTIVE"
ALL_MODELS = "*"

TS = pa.timestamp("us", tz="UTC")
WINDOW = pa.struct([("start", TS), ("end", TS)])
TEST = pa.struct([("statistic", pa.float64()), ("pvalue", pa.float64())])
AVERAGES = pa.struct([("macro", pa.float64()), ("weighted", pa.float64())])
ITEMS = pa.list_(pa.struct([("item", pa.string()), ("count", pa.int64())]))
COLUMNS_DELTA = pa.struct([("added", pa.int32()), ("missing", pa.int32())])

REGRESSION_METRICS = ("mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
                      "mean_absolute_percentage_error")
CLASSIFICATION_AVERAGED = ("precision", "recall", "f1_score")

# Column order as in the tables Databricks writes (see databricks_metric_tables.json); the model id column,
# whose position the sources do not show, follows ``granularity``.
PROFILE_SCHEMA = pa.schema([
    pa.field("window", WINDOW),
    pa.field("log_type", pa.string()),
    pa.field("logging_table_commit_version", pa.int32()),
    pa.field("monitor_version", pa.int64()),
    pa.field("granularity", pa.string()),
    pa.field(MODEL_ID_COLUMN, pa.string()),
    pa.field("slice_key", pa.string()),
    pa.field("slice_value", pa.string()),
    pa.field("column_name", pa.string()),
    pa.field("count", pa.int64()),
    pa.field("data_type", pa.string()),
    pa.field("num_nulls", pa.int64()),
    pa.field("avg", pa.float64()),
    pa.field("quantiles", pa.list_(pa.float64())),
    pa.field("min", pa.float64()),
    pa.field("max", pa.float64()),
    pa.field("stddev", pa.float64()),
    pa.field("num_zeros", pa.int64()),
    pa.field("num_nan", pa.int64()),
    pa.field("min_length", pa.float64()),
    pa.field("max_length", pa.float64()),
    pa.field("avg_length", pa.float64()),
    pa.field("non_null_columns", pa.list_(pa.string())),
    pa.field("frequent_items", ITEMS),
    pa.field("median", pa.float64()),
    pa.field("distinct_count", pa.int64()),
    pa.field("percent_nan", pa.float64()),
    pa.field("percent_null", pa.float64()),
    pa.field("percent_zeros", pa.float64()),
    pa.field("percent_distinct", pa.float64()),
    *[pa.field(name, pa.float64()) for name in REGRESSION_METRICS],
    pa.field("accuracy_score", pa.float64()),
    *[pa.field(name, AVERAGES) for name in CLASSIFICATION_AVERAGED],
])

DRIFT_SCHEMA = pa.schema([
    pa.field("window", WINDOW),
    pa.field("granularity", pa.string()),
    pa.field(MODEL_ID_COLUMN, pa.string()),
    pa.field("monitor_version", pa.int64()),
    pa.field("slice_key", pa.string()),
    pa.field("slice_value", pa.string()),
    pa.field("column_name", pa.string()),
    pa.field("data_type", pa.string()),
    pa.field("window_cmp", WINDOW),
    pa.field("drift_type", pa.string()),
    pa.field("count_delta", pa.int64()),
    pa.field("avg_delta", pa.float64()),
    pa.field("percent_null_delta", pa.float64()),
    pa.field("percent_zeros_delta", pa.float64()),
    pa.field("percent_distinct_delta", pa.float64()),
    pa.field("non_null_columns_delta", COLUMNS_DELTA),
    pa.field("js_distance", pa.float64()),
    pa.field("ks_test", TEST),
    pa.field("wasserstein_distance", pa.float64()),
    pa.field("population_stability_index", pa.float64()),
    pa.field("chi_squared_test", TEST),
    pa.field("tv_distance", pa.float64()),
    pa.field("l_infinity_distance", pa.float64()),
])


class Rows:
    """Accumulator of metric rows for one schema (missing fields are null), turned into columns once at the end."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self._template = dict.fromkeys(schema.names)
        self.rows: list[dict] = []

    @property
    def n(self) -> int:
        return len(self.rows)

    def add(self, **values) -> None:
        row = self._template.copy()  # every row holds every field, in schema order
        row.update(values)
        if len(row) != len(self._template):
            unknown = sorted(set(values) - set(self._template))
            raise ValueError(f"metric row has fields the schema lacks: {unknown}")
        self.rows.append(row)

    def extend(self, other: Rows) -> None:
        self.rows.extend(other.rows)

    def to_arrow(self) -> pa.Table:
        if not self.rows:
            return self.schema.empty_table()
        columns = zip(*(row.values() for row in self.rows), strict=True)
        return pa.Table.from_arrays([pa.array(list(values), type=f.type) for f, values in zip(self.schema, columns,
                                                                                               strict=True)],
                                    schema=self.schema)
