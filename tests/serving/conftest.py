"""Serving fixtures: one small champion (two versions) trained once per session, copied into each test's home.

The registry (sqlite) is copied per test so aliases can move freely; artifacts stay in the session
directory (read-only), which the copied registry points at.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

MODEL = "bakehouse_autolog"
# a fixed end of the generated 30 days: the fixtures' data must not change with the calendar day
REFERENCE_DATE = "2026-11-01"


def _pipeline(spec, alpha: float):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c.name for c in spec.features if c.is_categorical]
    numeric = [c.name for c in spec.features if not c.is_categorical]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                             ("num", "passthrough", numeric)])
    return Pipeline([("pre", pre), ("model", Ridge(alpha=alpha))])


def _log_version(settings, spec, frame: pd.DataFrame, alpha: float, shift: float) -> int:
    import mlflow
    from mlflow.models import infer_signature

    from workloads import registry
    from workloads.ports.tracking import configure_tracking, ensure_experiment

    configure_tracking(settings)
    ensure_experiment(settings, "serving-tests")
    x = frame[spec.feature_names]
    y = frame["quantity"].astype("float64") + shift
    model = _pipeline(spec, alpha).fit(x, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                        pip_requirements=["scikit-learn"],
                                        signature=infer_signature(x.head(20), model.predict(x.head(20))))
    return registry.register(settings, spec, info.model_uri)


@pytest.fixture(scope="session")
def feature_frame() -> pd.DataFrame:
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features

    return build_features(generate(seed=42, reference_date=REFERENCE_DATE))


@pytest.fixture(scope="session")
def model_home(tmp_path_factory, feature_frame):
    """A home holding the model's source (the bakehouse tables) and versions 1 and 2 of the model; version 1 is
    champion. Version 2 predicts +1000."""
    from workloads import registry
    from workloads.data import roles
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse
    from workloads.settings import load_settings
    from workloads.specs import load_spec

    home = tmp_path_factory.mktemp("serving-model-home")
    settings = load_settings(home=home)
    write_bakehouse(settings, generate(seed=42, reference_date=REFERENCE_DATE))  # the tables feature_frame is built from
    spec = load_spec(MODEL)
    train = roles.split(feature_frame, spec).training
    v1 = _log_version(settings, spec, train, alpha=1.0, shift=0.0)
    _log_version(settings, spec, train, alpha=1.0, shift=1000.0)  # version 2, for swap tests
    registry.set_alias(settings, spec, registry.CHAMPION, v1)
    return home


@pytest.fixture
def serving_settings(model_home, home):
    """This test's own home with a copy of the session registry (champion = version 1) and of the source tables."""
    from workloads.settings import load_settings

    shutil.copy2(model_home / "mlflow.db", home / "mlflow.db")
    shutil.copytree(model_home / "warehouse" / "samples", home / "warehouse" / "samples")
    return load_settings(home=home)


@pytest.fixture(scope="session")
def spec():
    from workloads.specs import load_spec

    return load_spec(MODEL)


@pytest.fixture(scope="session")
def holdout(feature_frame) -> pd.DataFrame:
    from workloads.data import roles
    from workloads.specs import load_spec

    return roles.split(feature_frame, load_spec(MODEL)).holdout


@pytest.fixture
def server(serving_settings, spec):
    from workloads.serving.server import start_server

    handle = start_server(serving_settings, spec, poll_interval=0.2, flush_interval=0.2)
    yield handle
    handle.stop()
