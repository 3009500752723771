"""Drift simulation on a spec that is not the bakehouse: a synthetic table of meter readings (an id, a timestamp,
numeric and categorical features, a regression label and a binary one). Covariate drift is rejected by the
monitor's drift tests, concept drift breaches the champion's quality, integer columns stay integer, and the default
size is the fewest rows the spec's evidence rules judge. Each window is judged as the watcher judges it: the real
monitor computation against the training rows as baseline, read back and evaluated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.benchmarks.bench_drift_evidence import (
    WindowTables,  # the same stand-in the evidence benchmark judges with
)
from workloads.drift import (
    DriftError,
    ShiftOptions,
    concept_shift,
    covariate_shift,
    default_requests,
    rows_to_judge,
    shift_options,
)
from workloads.specs import (
    EXAMPLE_ID_COLUMN,
    MODEL_ID_COLUMN,
    REQUEST_ID_COLUMN,
    TIMESTAMP_COLUMN,
    parse_spec,
)
from workloads.watcher.evaluation import BREACH, BREACHED, TOO_FEW_ROWS, evaluate_window

FEATURES = [{"name": "temperature", "type": "double"}, {"name": "visits", "type": "bigint"},
            {"name": "colour", "type": "string"}, {"name": "region", "type": "string"}]
NUMERIC, CATEGORICAL = ("temperature", "visits"), ("colour", "region")
DRIFT_THRESHOLDS = {"js_distance": {"max": 0.2}, "population_stability_index": {"max": 0.2}}
WINDOW_START = pd.Timestamp("2026-11-20", tz="UTC")


def readings(n: int, seed: int) -> pd.DataFrame:
    """Meter readings: the energy used follows temperature, visits and colour; ``high_energy`` is energy >= 30."""
    rng = np.random.default_rng(seed)
    temperature = rng.normal(10.0, 3.0, n)
    visits = rng.poisson(4.0, n).astype("int64")
    colour = rng.choice(["red", "green", "blue", "amber"], n, p=[0.4, 0.3, 0.2, 0.1])
    region = rng.choice([f"region-{i:02d}" for i in range(12)], n)
    effect = pd.Series(colour).map({"red": 4.0, "green": 0.0, "blue": -3.0, "amber": 6.0}).to_numpy()
    energy = 2.0 * temperature + 1.5 * visits + effect + rng.normal(0.0, 1.0, n)
    return pd.DataFrame({
        "reading_id": np.arange(seed * 100_000, seed * 100_000 + n, dtype="int64"),
        "read_at": pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), unit="s"),
        "temperature": temperature, "visits": visits, "colour": colour, "region": region,
        "energy": energy, "high_energy": (energy >= 30).astype("int64"),
    })


def spec_of(problem_type: str, **extra):
    label = {"regression": {"name": "energy", "type": "double"},
             "classification": {"name": "high_energy", "type": "bigint"}}[problem_type]
    thresholds = {"regression": {"rmse": {"max": 2.0}, "r2": {"min": 0.8}},
                  "classification": {"accuracy_score": {"min": 0.8}, "f1_score": {"min": 0.7}}}[problem_type]
    prediction = {"name": "prediction", "type": "double" if problem_type == "regression" else "bigint"}
    return parse_spec({"name": f"meter_{problem_type}", "problem_type": problem_type, "trainer": "generic",
                       "source": {"table": "mlops_dev.meters.readings", "id": "reading_id", "timestamp": "read_at"},
                       "features": FEATURES, "label": label, "prediction": prediction,
                       "thresholds": thresholds, "drift_thresholds": DRIFT_THRESHOLDS, **extra}, "test")


def fit(spec, frame: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
                             ("num", StandardScaler(), list(NUMERIC))])
    estimator = LinearRegression() if spec.problem_type == "regression" else LogisticRegression(max_iter=1000)
    return Pipeline([("pre", pre), ("model", estimator)]).fit(frame[spec.feature_names], frame[spec.label.name])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Per problem type: the spec, its champion trained on 3,000 readings, the baseline, and unseen readings."""
    from workloads.settings import load_settings

    train, unseen = readings(3000, seed=1), readings(1500, seed=2)
    settings = load_settings(home=tmp_path_factory.mktemp("drift-any-spec"))
    models = {}
    for problem_type in ("regression", "classification"):
        spec = spec_of(problem_type)
        model = fit(spec, train)
        baseline = train[[*spec.feature_names, spec.label.name]].copy()
        baseline[spec.prediction.name] = model.predict(train[spec.feature_names])
        models[problem_type] = (spec, model, baseline)
    return {"settings": settings, "models": models, "unseen": unseen}


def judge(world, problem_type: str, rows: pd.DataFrame, spec=None):
    """The watcher's evaluation of one day's window holding ``rows`` (scored by the champion)."""
    from workloads.monitoring.compute import compute_metrics, prepare
    from workloads.watcher.observation import observe_latest_window

    default_spec, model, baseline = world["models"][problem_type]
    spec = spec or default_spec
    window = rows[[*spec.feature_names, spec.label.name]].reset_index(drop=True).copy()
    window[spec.prediction.name] = model.predict(window[spec.feature_names])
    window[MODEL_ID_COLUMN] = "1"
    window[TIMESTAMP_COLUMN] = WINDOW_START + pd.to_timedelta(np.arange(len(window)) * 60, unit="s")
    window[REQUEST_ID_COLUMN] = [f"drift-test-{i}" for i in range(len(window))]
    window[EXAMPLE_ID_COLUMN] = window[REQUEST_ID_COLUMN]
    computed = compute_metrics(prepare(window, baseline, spec), "1 day")
    observed = observe_latest_window(world["settings"], spec, "1 day", tables=WindowTables(computed, window))
    assert observed.rows == len(rows)
    return evaluate_window(spec, observed)


def _statuses(evaluation, scope_filter) -> dict[tuple[str, str], str]:
    return {(c.metric, c.scope): c.status for c in evaluation.checks if scope_filter(c.scope)}


def test_the_monitor_sees_no_drift_in_unshifted_readings(world):
    """The control: the same rows and sizes as the drift tests below, unshifted, are neither a drift nor a quality
    breach (so the breaches below are the simulation's doing)."""
    spec = world["models"]["regression"][0]
    rows = world["unseen"].head(rows_to_judge(spec, world["unseen"]))
    for problem_type in ("regression", "classification"):
        evaluation = judge(world, problem_type, rows)
        assert not [c for c in evaluation.checks if c.status == BREACH], evaluation.reasons
        assert not [c for c in evaluation.checks if c.status == TOO_FEW_ROWS], evaluation.reasons


@pytest.mark.parametrize("problem_type", ["regression", "classification"])
def test_covariate_drift_of_any_spec_is_rejected_by_the_drift_tests_on_the_default_size(world, problem_type):
    spec = world["models"][problem_type][0]
    unseen = world["unseen"]
    rows = covariate_shift(unseen, spec, seed=3).head(rows_to_judge(spec, unseen))

    evaluation = judge(world, problem_type, rows)

    assert evaluation.health == BREACHED and evaluation.retrain_needed
    for feature in spec.feature_names:
        judged = [c for c in evaluation.checks if c.scope == feature]
        assert judged and all(c.status != TOO_FEW_ROWS for c in judged), (feature, evaluation.reasons)
        breaches = [c for c in judged if c.status == BREACH]
        assert breaches, (feature, [(c.metric, c.status, c.observed, c.pvalue) for c in judged])
        assert all(c.pvalue is not None and c.pvalue < c.alpha for c in breaches)


def test_covariate_shift_moves_numeric_features_by_k_standard_deviations_and_keeps_the_rest(world):
    spec = world["models"]["regression"][0]
    unseen = world["unseen"]
    shifted = covariate_shift(unseen, spec, seed=3, options=ShiftOptions(shift=1.5))

    assert list(shifted.columns) == list(unseen.columns)
    pd.testing.assert_series_equal(shifted.dtypes, unseen.dtypes)  # visits is still int64
    assert shifted["visits"].dtype == np.dtype("int64")
    np.testing.assert_allclose(shifted["temperature"] - unseen["temperature"], 1.5 * unseen["temperature"].std())
    assert set(shifted["visits"] - unseen["visits"]) == {round(1.5 * unseen["visits"].std())}
    for column in ("reading_id", "read_at", "energy", "high_energy"):
        pd.testing.assert_series_equal(shifted[column], unseen[column])
    # Categories: 80% of the rows go to the rarest quarter (colour: amber, of 4; region: the 3 rarest of 12).
    colour = shifted["colour"].value_counts(normalize=True)
    assert colour["amber"] > 0.8 and set(shifted["colour"]) <= set(unseen["colour"])
    rarest = unseen["region"].value_counts().index[-3:]
    assert shifted["region"].isin(rarest).mean() > 0.8
    # Seeded: the same seed gives the same frame, another seed other draws.
    pd.testing.assert_frame_equal(covariate_shift(unseen, spec, seed=3, options=ShiftOptions(shift=1.5)), shifted)
    assert not covariate_shift(unseen, spec, seed=4)["region"].equals(covariate_shift(unseen, spec, seed=3)["region"])
    # --feature: only the named features move.
    only = covariate_shift(unseen, spec, seed=3, options=shift_options("covariate", spec, features=["visits"]))
    assert (only["visits"] != unseen["visits"]).all()
    pd.testing.assert_frame_equal(only.drop(columns="visits"), unseen.drop(columns="visits"))


def test_concept_drift_of_a_regression_spec_breaches_rmse_and_r2_not_drift(world):
    spec = world["models"]["regression"][0]
    unseen = world["unseen"]
    rows = concept_shift(unseen, spec, seed=3).head(rows_to_judge(spec, unseen))
    assert np.allclose(rows["energy"] - unseen["energy"].head(len(rows)), 2 * unseen["energy"].std())

    evaluation = judge(world, "regression", rows)

    quality = _statuses(evaluation, lambda scope: scope == "quality")
    assert quality == {("rmse", "quality"): BREACH, ("r2", "quality"): BREACH}, evaluation.reasons
    assert all(s != BREACH for s in _statuses(evaluation, lambda scope: scope != "quality").values())


def test_concept_drift_of_a_classification_spec_breaks_the_champions_accuracy_and_f1(world):
    from sklearn.metrics import accuracy_score, f1_score

    spec, model, _ = world["models"]["classification"]
    unseen = world["unseen"]
    drifted = concept_shift(unseen, spec, seed=3)
    assert drifted["high_energy"].dtype == np.dtype("int64") and set(drifted["high_energy"]) == {0, 1}
    assert (drifted["high_energy"] != unseen["high_energy"]).sum() == round(0.75 * len(unseen))
    predictions = model.predict(unseen[spec.feature_names])
    assert accuracy_score(unseen["high_energy"], predictions) > 0.9  # the champion before the drift
    assert accuracy_score(drifted["high_energy"], predictions) < 0.35  # far below its threshold, min 0.8
    assert f1_score(drifted["high_energy"], predictions) < 0.35  # min 0.7


def test_concept_drift_of_a_classification_spec_breaches_accuracy_and_f1_in_the_monitor(world):
    spec = world["models"]["classification"][0]
    rows = concept_shift(world["unseen"], spec, seed=3).head(300)

    evaluation = judge(world, "classification", rows)

    quality = _statuses(evaluation, lambda scope: scope == "quality")
    assert quality == {("accuracy_score", "quality"): BREACH, ("f1_score", "quality"): BREACH}, evaluation.reasons


def test_concept_shift_of_a_derived_label_computes_it_then_perturbs_it_into_the_label_column(world):
    spec = spec_of("classification", label_expression="(energy >= 30).astype('int64')",
                   label={"name": "big_bill", "type": "bigint"})
    unseen = world["unseen"].drop(columns="high_energy")

    drifted = concept_shift(unseen, spec, seed=5, options=ShiftOptions(flip_share=0.5))

    assert list(drifted.columns) == [*unseen.columns, "big_bill"]
    truth = (unseen["energy"] >= 30).astype("int64")
    assert drifted["big_bill"].dtype == np.dtype("int64")
    assert (drifted["big_bill"] != truth).sum() == round(0.5 * len(unseen))  # exactly the share, each one flipped
    pd.testing.assert_frame_equal(drifted[unseen.columns], unseen)
    # A multi-class label: every changed row gets another class.
    three = parse_spec({**spec.model_dump(), "label_expression": "(energy // 15).astype('int64')"}, "test")
    classes = unseen.eval(three.label_expression)
    moved = concept_shift(unseen, three, seed=5, options=ShiftOptions(flip_share=1.0))["big_bill"]
    assert (moved != classes).all() and set(moved) == set(classes)


def test_default_size_is_the_fewest_rows_every_evidence_rule_judges(world):
    unseen = world["unseen"]
    # 12 regions x 10 per category = 120 rows: more than min_rows (30) and drift_evidence.min_rows (100).
    spec = spec_of("regression", drift_evidence={"min_expected_per_category": 10})
    assert rows_to_judge(spec, unseen) == 120
    assert default_requests(spec, unseen, batch_size=5) == 24 and default_requests(spec, unseen, batch_size=7) == 18
    assert rows_to_judge(spec_of("regression", min_rows=250), unseen) == 250
    assert rows_to_judge(spec_of("regression"), unseen) == 100

    # On undrifted readings (all 12 regions in the window) 120 rows are judged and 119 are not: the default is the
    # fewest. A covariate shift concentrates the regions (fewer seen, more rows each), so it is judged too.
    assert unseen["region"].head(119).nunique() == 12
    judged = judge(world, "regression", unseen.head(120), spec)
    assert not [c for c in judged.checks if c.status == TOO_FEW_ROWS], judged.reasons
    one_short = judge(world, "regression", unseen.head(119), spec)
    assert {c.scope for c in one_short.checks if c.status == TOO_FEW_ROWS} == {"region"}  # 119 / 12 < 10
    shifted = judge(world, "regression", covariate_shift(unseen, spec, seed=3).head(120), spec)
    assert not [c for c in shifted.checks if c.status == TOO_FEW_ROWS] and shifted.health == BREACHED


def test_bad_drift_options_are_one_clear_error(world):
    spec = world["models"]["regression"][0]
    unseen = world["unseen"]
    with pytest.raises(DriftError, match=r"'humidity' not features of meter_regression; its features: temperature"):
        covariate_shift(unseen, spec, options=ShiftOptions(features=("humidity",)))
    with pytest.raises(DriftError, match=r"flip_share must be in \(0, 1\], got 1.5; category_mass must be"):
        ShiftOptions(flip_share=1.5, category_mass=0)
    with pytest.raises(DriftError, match=r"flip_share \(--flip-share\) do not apply to concept drift of a regression "
                                         r"model \(meter_regression\); it reads scale \(--scale\), shift \(--shift\)"):
        shift_options("concept", spec, flip_share=0.3)
    with pytest.raises(DriftError, match=r"features \(--feature\) do not apply to concept drift"):
        shift_options("concept", spec, features=["visits"])
    with pytest.raises(DriftError, match="drift kind must be one of covariate, concept, got 'gradual'"):
        shift_options("gradual", spec)
    with pytest.raises(DriftError, match=r"the frame to drift has no column 'region'"):
        covariate_shift(unseen.drop(columns="region"), spec)
    with pytest.raises(DriftError, match="does not vary in the frame"):
        concept_shift(unseen.assign(energy=1.0), spec)
    classification = world["models"]["classification"][0]
    with pytest.raises(DriftError, match="has 1 class in the frame"):
        concept_shift(unseen.assign(high_energy=1), classification)
    assert shift_options("covariate", spec, shift=None, features=[]) == ShiftOptions()
