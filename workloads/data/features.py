"""The bakehouse feature frame: transactions joined with customers and franchises.

Where data enters: the ``samples.bakehouse`` tables (local Delta twins or the real Databricks samples).
What leaves: one row per transaction with the spec features, the target ``quantity``, and the ids
``transactionID`` / ``dateTime`` kept for lineage and splitting. ``totalPrice`` is dropped: it would
leak the target (quantity x unitPrice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workloads.data import bakehouse
from workloads.errors import TableNotFoundError
from workloads.ports.tables import Tables, get_tables
from workloads.settings import Settings
from workloads.specs import ModelSpec

ID_COLUMNS = ("transactionID", "dateTime")
TARGET = "quantity"
HOLDOUT_PERCENT = 20


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


def read_bakehouse(settings: Settings, tables: Tables | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Read the four source tables and their Delta versions through the tables port."""
    port = tables or get_tables(settings)
    frames, versions = {}, {}
    for name in bakehouse.TABLES:
        full = settings.source_table(name)
        if not port.exists(full):
            hint = "run `mlops data generate` first" if settings.backend == "local" else "check samples.bakehouse access"
            raise TableNotFoundError(f"source table {full} does not exist; {hint}")
        frames[name] = port.read(full)
        versions[full] = port.version(full)
    return frames, versions


def load_feature_frame(settings: Settings, tables: Tables | None = None) -> pd.DataFrame:
    """The full feature frame (features, target and ids) from the source tables."""
    frames, versions = read_bakehouse(settings, tables)
    frame = build_features(frames)
    frame.attrs["data_versions"] = versions
    return frame


def label_frame(frame: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Add the spec's label column (derived by ``label_expression`` when the spec has one)."""
    out = frame.copy()
    if spec.label_expression:
        out[spec.label.name] = out.eval(spec.label_expression, engine="python")
    out.attrs.update(frame.attrs)
    return out


def is_holdout(transaction_ids: pd.Series) -> np.ndarray:
    """Deterministic ~20% holdout by a multiplicative hash of the transaction id."""
    ids = transaction_ids.to_numpy(dtype="uint64")
    return ((ids * np.uint64(2654435761)) % np.uint64(100)) < HOLDOUT_PERCENT


def split_holdout(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into (train, holdout); the same transaction always lands on the same side."""
    mask = is_holdout(frame["transactionID"])
    train, holdout = frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
    train.attrs.update(frame.attrs)
    holdout.attrs.update(frame.attrs)
    return train, holdout


def write_bakehouse(settings: Settings, tables: dict[str, pd.DataFrame], port: Tables | None = None) -> dict[str, int]:
    """Write the generated tables as ``samples.bakehouse.*`` (overwrite); returns their Delta versions."""
    port = port or get_tables(settings)
    versions = {}
    for name, df in tables.items():
        full = settings.source_table(name)
        port.write(full, df, mode="overwrite")
        versions[full] = port.version(full)
    return versions
