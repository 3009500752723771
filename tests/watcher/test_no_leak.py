"""A model is never scored on rows it trained on: the check in code refuses a planted overlap, by id and by content."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import make_trained_home
from workloads import registry
from workloads.data import roles
from workloads.data.source import read_examples
from workloads.specs import EXAMPLE_ID_COLUMN, load_spec
from workloads.training import train_model
from workloads.watcher import retraining

MODEL = "bakehouse_large_order"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings, results = make_trained_home(tmp_path_factory.mktemp("no-leak-home"), models=(MODEL,))
    return settings, results[MODEL]


def test_roles_never_share_an_example_and_traffic_sends_only_the_serving_pool(trained):
    from workloads.traffic import serving_pool

    settings, _ = trained
    spec = load_spec(MODEL)
    parts = roles.split(read_examples(settings, spec), spec)
    for a, b in ((parts.training, parts.holdout), (parts.training, parts.serving), (parts.holdout, parts.serving)):
        roles.check_disjoint(a, b, spec)  # no exception: disjoint by id
    pool = serving_pool(settings, spec)
    assert set(pool["transactionID"]) == set(parts.serving["transactionID"])


def test_training_refuses_a_holdout_holding_a_training_row(trained):
    settings, _ = trained
    spec = load_spec(MODEL)
    parts = roles.split(read_examples(settings, spec), spec)
    planted = pd.concat([parts.holdout, parts.training.head(3)], ignore_index=True)
    with pytest.raises(roles.LeakError, match=r"refusing to compare on the holdout: it shares 3 example id\(s\) "
                                              r"\(e\.g\. transactionID=\d+\)"):
        train_model(settings, spec, holdout=planted, register=False)


def test_an_id_less_traffic_row_is_the_same_example_as_a_row_with_the_same_content(trained):
    spec = load_spec(MODEL)
    settings, _ = trained
    parts = roles.split(read_examples(settings, spec), spec)
    traffic = parts.serving.head(5).drop(columns=["transactionID"])  # requests carry no source id
    with pytest.raises(roles.LeakError, match="5 example\\(s\\) with identical features and label"):
        roles.check_disjoint(pd.concat([parts.training, traffic], ignore_index=True), parts.serving, spec)


def test_the_gate_refuses_a_planted_overlap_and_keeps_the_champion(trained, monkeypatch):
    settings, _ = trained
    spec = load_spec(MODEL)
    champion = registry.require_alias(settings, spec, registry.CHAMPION)
    pool = roles.split(read_examples(settings, spec), spec).serving
    fresh = pool[[*spec.feature_names, spec.label.name]].assign(
        **{EXAMPLE_ID_COLUMN: [f"traffic-{i}:0" for i in range(len(pool))]})
    monkeypatch.setattr(retraining, "fresh_traffic", lambda *a, **k: fresh)
    # the planted fault: the gate's holdout is the fresh traffic the challenger trains on
    monkeypatch.setattr(retraining, "gate_holdout", lambda spec, fresh_holdout, source: (
        fresh[~roles.is_fresh_holdout(fresh, spec)].drop(columns=[EXAMPLE_ID_COLUMN]), "planted holdout"))

    outcome = retraining.retrain_and_validate(settings, spec, reason="test")

    assert not outcome.promoted and outcome.challenger_version is None
    assert "refusing to compare on the holdout" in outcome.reasons[0]
    assert "identical features and label" in outcome.reasons[0]
    assert registry.require_alias(settings, spec, registry.CHAMPION).version == champion.version
