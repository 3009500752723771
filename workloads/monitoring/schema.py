"""Arrow schemas of ``<table>_profile_metrics`` and ``<table>_drift_metrics``, with the Databricks column names.

Both tables keep ``window`` (and ``window_cmp``) as a struct ``{start, end}`` of UTC timestamps, ``ks_test`` /
``chi_squared_test`` as structs ``{statistic, pvalue}``, ``quantiles`` as an array (levels in
:data:`workloads.monitoring.stats.QUANTILE_LEVELS`) and ``frequent_items`` as an array of ``{item, count}``.
Classification ``precision`` / ``recall`` / ``f1_score`` are structs ``{macro, weighted}``.

Nulls: NaN is null (pandas cannot tell them apart); ``num_nulls`` counts nulls plus infinite values,
``num_nan`` the infinite values alone; both are excluded from every other statistic. ``count`` is the number of
present (non-null, finite) values; ``percent_null`` and ``percent_distinct`` are percentages (0-100). ``slice_key`` / ``slice_value`` are null on unsliced rows.
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

REGRESSION_METRICS = ("mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
                      "mean_absolute_percentage_error")
CLASSIFICATION_AVERAGED = ("precision", "recall", "f1_score")

GROUPING = [
    pa.field("window", WINDOW),
    pa.field("granularity", pa.string()),
    pa.field(MODEL_ID_COLUMN, pa.string()),
]

PROFILE_SCHEMA = pa.schema([
    *GROUPING,
    pa.field("log_type", pa.string()),
    pa.field("slice_key", pa.string()),
    pa.field("slice_value", pa.string()),
    pa.field("column_name", pa.string()),
    pa.field("data_type", pa.string()),
    pa.field("count", pa.int64()),
    pa.field("num_nulls", pa.int64()),
    pa.field("num_nan", pa.int64()),
    pa.field("avg", pa.float64()),
    pa.field("stddev", pa.float64()),
    pa.field("min", pa.float64()),
    pa.field("max", pa.float64()),
    pa.field("quantiles", pa.list_(pa.float64())),
    pa.field("median", pa.float64()),
    pa.field("distinct_count", pa.int64()),
    pa.field("percent_null", pa.float64()),
    pa.field("percent_distinct", pa.float64()),
    pa.field("frequent_items", ITEMS),
    *[pa.field(name, pa.float64()) for name in REGRESSION_METRICS],
    pa.field("accuracy_score", pa.float64()),
    *[pa.field(name, AVERAGES) for name in CLASSIFICATION_AVERAGED],
])

DRIFT_SCHEMA = pa.schema([
    *GROUPING,
    pa.field("window_cmp", WINDOW),
    pa.field("drift_type", pa.string()),
    pa.field("slice_key", pa.string()),
    pa.field("slice_value", pa.string()),
    pa.field("column_name", pa.string()),
    pa.field("data_type", pa.string()),
    pa.field("count_delta", pa.float64()),
    pa.field("avg_delta", pa.float64()),
    pa.field("percent_null_delta", pa.float64()),
    pa.field("ks_test", TEST),
    pa.field("wasserstein_distance", pa.float64()),
    pa.field("population_stability_index", pa.float64()),
    pa.field("chi_squared_test", TEST),
    pa.field("tv_distance", pa.float64()),
    pa.field("l_infinity_distance", pa.float64()),
    pa.field("js_distance", pa.float64()),
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
