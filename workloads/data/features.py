"""The bakehouse feature frame (the demo's feature builder): transactions joined with customers and franchises.

Where data enters: the ``samples.bakehouse`` tables (local Delta twins or the real Databricks samples); the
bakehouse specs name ``samples.bakehouse.sales_transactions`` as their source and this join as their builder
(:mod:`workloads.data.builders`). What leaves: one row per transaction with the spec features, the target
``quantity``, and the id ``transactionID`` and timestamp ``dateTime``. ``totalPrice`` is dropped: it would leak
the target (quantity x unitPrice).
"""

from __future__ import annotations

import pandas as pd

from workloads.ports.tables import Tables, get_tables
from workloads.settings import Settings

ID_COLUMNS = ("transactionID", "dateTime")
TARGET = "quantity"


def build_features(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Join transactions with customers and franchises and derive calendar features."""
    tx = tables["sales_transactions"]
    customers = tables["sales_customers"][["customerID", "gender", "state", "continent"]]
    franchises = tables["sales_franchises"].rename(columns={
        "name": "franchise_name", "city": "franchise_city", "size": "franchise_size", "country": "franchise_country",
    })[["franchiseID", "franchise_name", "franchise_city", "franchise_size", "franchise_country"]]
    frame = tx.merge(customers, on="customerID", how="left").merge(franchises, on="franchiseID", how="left")
    ts = pd.DatetimeIndex(frame["dateTime"])
    frame["hour"] = ts.hour.astype("int64")
    frame["day_of_week"] = ts.day_of_week.astype("int64")
    frame["month"] = ts.month.astype("int64")
    frame["day_of_month"] = ts.day.astype("int64")
    columns = [*ID_COLUMNS, "product", "paymentMethod", "gender", "state", "continent", "franchise_name",
               "franchise_city", "franchise_size", "franchise_country", "unitPrice", "hour", "day_of_week",
               "month", "day_of_month", TARGET]
    return frame[columns].sort_values("transactionID", kind="stable").reset_index(drop=True)


def write_bakehouse(settings: Settings, tables: dict[str, pd.DataFrame], port: Tables | None = None) -> dict[str, int]:
    """Write the generated tables as ``samples.bakehouse.*`` (overwrite); returns their Delta versions."""
    port = port or get_tables(settings)
    versions = {}
    for name, df in tables.items():
        full = settings.source_table(name)
        port.write(full, df, mode="overwrite")
        versions[full] = port.version(full)
    return versions
