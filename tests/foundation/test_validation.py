import numpy as np
import pytest

from workloads.data import bakehouse
from workloads.data.features import build_features, write_bakehouse
from workloads.data.validation import check_frame, validate_frame
from workloads.errors import DataValidationError
from workloads.specs import load_spec
from workloads.training import train_model


@pytest.fixture(scope="module")
def frame():
    return build_features(bakehouse.generate(seed=3, reference_date="2026-11-01"))


def test_clean_data_passes(frame):
    assert check_frame(frame, load_spec("bakehouse_autolog")) == []


def test_each_failed_check_is_named(frame):
    bad = frame.copy()
    bad = bad.drop(columns=["gender"])
    bad.loc[0:4, "quantity"] = -3
    bad.loc[5:6, "product"] = "Croissant"
    bad["hour"] = bad["hour"].astype(float)
    bad.loc[7, "hour"] = np.nan
    bad.loc[8, "unitPrice"] = 10_000
    with pytest.raises(DataValidationError, match="failed 5 check") as info:
        validate_frame(bad, load_spec("bakehouse_autolog"))
    failures = "\n".join(info.value.failures)
    assert "column 'gender' is missing" in failures
    assert "'quantity' has 5 values outside" in failures
    assert "'product' has unknown values ['Croissant']" in failures
    assert "'hour' has 1 null values" in failures
    assert "'unitPrice' has 1 values outside" in failures


def test_wrong_type_and_too_few_rows(frame):
    bad = frame.head(10).copy()
    bad["unitPrice"] = "three"
    failures = check_frame(bad, load_spec("bakehouse_autolog"))
    assert any(f.startswith("rows: 10 rows") for f in failures)
    assert any("'unitPrice' should be bigint" in f for f in failures)


def test_training_refuses_bad_data(settings):
    tables = bakehouse.generate(seed=1, reference_date="2026-11-01")
    tables["sales_transactions"].loc[0:9, "paymentMethod"] = "cash"
    write_bakehouse(settings, tables)
    with pytest.raises(DataValidationError, match="'paymentMethod' has unknown values \\['cash'\\]"):
        train_model(settings, load_spec("bakehouse_autolog"))
    # Nothing was registered from bad data.
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    assert client.search_registered_models() == []
