import numpy as np
import pandas as pd
import pytest

from workloads.data import bakehouse, roles
from workloads.data.features import build_features, write_bakehouse
from workloads.data.source import read_examples
from workloads.ports.tables import get_tables
from workloads.specs import load_spec

REF = "2026-11-01"


@pytest.fixture(scope="module")
def tables():
    return bakehouse.generate(seed=7, reference_date=REF)


def test_sizes_match_the_real_sample_set(tables):
    assert {k: len(v) for k, v in tables.items()} == {
        "sales_transactions": 3333, "sales_customers": 300, "sales_franchises": 48, "sales_suppliers": 27}


def test_columns_and_types_mirror_samples_bakehouse(tables):
    tx = tables["sales_transactions"]
    assert list(tx.columns) == ["transactionID", "customerID", "franchiseID", "dateTime", "product", "quantity",
                                "unitPrice", "totalPrice", "paymentMethod", "cardNumber"]
    for col in ("transactionID", "customerID", "franchiseID", "quantity", "unitPrice", "totalPrice", "cardNumber"):
        assert tx[col].dtype == np.int64, col
    assert isinstance(tx["dateTime"].dtype, pd.DatetimeTZDtype)
    assert list(tables["sales_customers"].columns) == [
        "customerID", "first_name", "last_name", "email_address", "phone_number", "address", "city", "state",
        "country", "continent", "postal_zip_code", "gender"]
    assert list(tables["sales_franchises"].columns) == [
        "franchiseID", "name", "city", "district", "zipcode", "country", "size", "longitude", "latitude", "supplierID"]
    assert list(tables["sales_suppliers"].columns) == [
        "supplierID", "name", "ingredient", "continent", "city", "district", "size", "longitude", "latitude",
        "approved"]


def test_values_follow_the_bakehouse_rules(tables):
    tx = tables["sales_transactions"]
    assert tx["product"].nunique() == 6
    assert set(tx["paymentMethod"]) == {"visa", "mastercard", "amex"}
    assert (tx["unitPrice"] == 3).all()
    assert (tx["totalPrice"] == tx["quantity"] * 3).all()
    assert (tx["quantity"] >= 1).all()
    ref = pd.Timestamp(REF, tz="UTC")
    assert tx["dateTime"].min() >= ref - pd.Timedelta(days=30)
    assert tx["dateTime"].max() < ref
    # Foreign keys resolve.
    assert set(tx["customerID"]) <= set(tables["sales_customers"]["customerID"])
    assert set(tx["franchiseID"]) <= set(tables["sales_franchises"]["franchiseID"])
    assert set(tables["sales_franchises"]["supplierID"]) <= set(tables["sales_suppliers"]["supplierID"])


def test_deterministic_for_a_seed_and_different_across_seeds(tables):
    again = bakehouse.generate(seed=7, reference_date=REF)
    for name in bakehouse.TABLES:
        pd.testing.assert_frame_equal(tables[name], again[name])
    other = bakehouse.generate(seed=8, reference_date=REF)
    assert not other["sales_transactions"]["quantity"].equals(tables["sales_transactions"]["quantity"])


def test_quantity_depends_on_the_features(tables):
    frame = build_features(tables)
    by_size = frame.groupby("franchise_size")["quantity"].mean()
    assert by_size["XL"] - by_size["S"] > 8
    rush = frame[frame["hour"].between(7, 9)]["quantity"].mean()
    afternoon = frame[frame["hour"].between(15, 17)]["quantity"].mean()
    assert rush - afternoon > 3


def test_features_exclude_the_leaking_total_price(tables):
    frame = build_features(tables)
    assert "totalPrice" not in frame.columns
    assert {"product", "paymentMethod", "gender", "state", "continent", "franchise_name", "franchise_city",
            "franchise_size", "franchise_country", "unitPrice", "hour", "day_of_week", "month",
            "day_of_month"} <= set(frame.columns)
    assert len(frame) == 3333 and frame["quantity"].notna().all()


def test_roles_are_stable_disjoint_and_near_their_shares(tables):
    spec = load_spec("bakehouse_autolog")
    frame = build_features(tables)
    parts = roles.split(frame, spec)
    ids = [set(p["transactionID"]) for p in (parts.training, parts.holdout, parts.serving)]
    assert sum(map(len, ids)) == len(frame)
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert 0.55 < len(parts.training) / len(frame) < 0.65
    assert 0.15 < len(parts.holdout) / len(frame) < 0.25 and 0.15 < len(parts.serving) / len(frame) < 0.25
    again = roles.split(frame.sample(frac=1, random_state=1), spec)
    assert set(again.holdout["transactionID"]) == ids[1] and set(again.serving["transactionID"]) == ids[2]
    # an id's role is a function of its text: the same id typed as text or as a number gets the same role
    as_text = frame.assign(transactionID=frame["transactionID"].astype(str))
    assert set(roles.split(as_text, spec).holdout["transactionID"]) == {str(i) for i in ids[1]}


def test_written_as_delta_tables_and_read_back_with_versions(settings, tables):
    versions = write_bakehouse(settings, tables)
    assert set(versions) == {f"samples.bakehouse.{t}" for t in bakehouse.TABLES}
    assert (settings.warehouse / "samples" / "bakehouse" / "sales_transactions" / "_delta_log").is_dir()
    frame = read_examples(settings, load_spec("bakehouse_autolog"))
    assert len(frame) == 3333
    assert frame.attrs["data_versions"] == {k: v for k, v in versions.items() if "suppliers" not in k}
    write_bakehouse(settings, tables)
    assert get_tables(settings).version("samples.bakehouse.sales_transactions") == versions[
        "samples.bakehouse.sales_transactions"] + 1
