"""Threshold directions, missing metrics and too-few-rows: never read as healthy."""

import pytest

from workloads.errors import MlopsError
from workloads.specs import Threshold, load_spec
from workloads.watcher.evaluation import ObservedMetrics, evaluate_window, parse_overrides
from workloads.watcher.quality_evidence import family_confidence

SPEC = load_spec("bakehouse_autolog")  # rmse max 5.0, r2 min 0.5; js_distance max 0.28, psi max 0.25


def observed(rmse=3.0, r2=0.8, js=0.05, psi=0.05, rows=200, labelled=200, p=0.5, categories=4, intervals=None):
    # As the monitor writes them: categorical features get chi-squared and Jensen-Shannon, numeric ones KS and PSI.
    # The quality intervals (default: the point estimate itself, i.e. decisive evidence) as observation adds them.
    drift = {c.name: ({"js_distance": js, "chi_squared_test.pvalue": p} if c.is_categorical
                      else {"population_stability_index": psi, "ks_test.pvalue": p}) for c in SPEC.features}
    quality = {}
    if rmse is not None:
        quality["root_mean_squared_error"] = rmse
    if r2 is not None:
        quality["r2_score"] = r2
    return ObservedMetrics(window_start="2026-11-26T00:00:00+00:00", window_end="2026-11-27T00:00:00+00:00",
                           granularity="1 day", rows=rows, labelled_rows=labelled, quality=quality, drift=drift,
                           distinct_counts={c.name: categories for c in SPEC.features if c.is_categorical},
                           quality_intervals={k: [v, v] for k, v in quality.items()} if intervals is None
                           else intervals,
                           quality_confidence=family_confidence(SPEC.quality_evidence.alpha, len(SPEC.thresholds)),
                           quality_interval_rows=labelled)


def test_healthy_window_needs_no_retrain():
    ev = evaluate_window(SPEC, observed())
    assert ev.health == "healthy" and not ev.retrain_needed and ev.reasons == []
    assert {c.status for c in ev.checks} == {"ok"}


@pytest.mark.parametrize(("kwargs", "breached"), [
    ({"rmse": 5.01}, "rmse"),  # max: above is a breach
    ({"r2": 0.49}, "r2"),  # min: below is a breach
    ({"js": 0.29, "p": 1e-6}, "js_distance"),  # drift max, significant
    ({"psi": 0.3, "p": 1e-6}, "population_stability_index"),
])
def test_each_direction_breaches_on_the_right_side(kwargs, breached):
    ev = evaluate_window(SPEC, observed(**kwargs))
    assert ev.retrain_needed and ev.health == "breach"
    assert any(c.metric == breached and c.status == "breach" for c in ev.checks)
    assert any(r.split(" ")[0].endswith(breached) or breached in r for r in ev.reasons)


def test_values_on_the_healthy_side_of_each_direction_pass():
    # rmse exactly at max and r2 exactly at min are not breaches; lower rmse / higher r2 are better.
    ev = evaluate_window(SPEC, observed(rmse=5.0, r2=0.5, js=0.28, psi=0.25))
    assert not ev.retrain_needed and ev.health == "healthy"


def test_missing_quality_metric_is_reported_not_healthy():
    ev = evaluate_window(SPEC, observed(r2=None))
    assert ev.health == "unknown" and not ev.retrain_needed
    assert "r2: missing (not read as healthy)" in ev.reasons


def test_too_few_labelled_rows_is_not_enough_data_not_healthy():
    ev = evaluate_window(SPEC, observed(rmse=9.0, labelled=SPEC.min_rows - 1))
    assert ev.health == "not enough data" and not ev.retrain_needed
    assert "rmse: not enough data: too few labelled rows to judge" in ev.reasons
    assert not any(c.status == "breach" for c in ev.checks if c.scope == "quality")


def test_missing_drift_metrics_and_empty_window_are_reported():
    obs = observed()
    obs.drift = {}
    ev = evaluate_window(SPEC, obs)
    assert ev.health == "unknown"
    assert "[all features] js_distance: missing (not read as healthy)" in ev.reasons
    empty = evaluate_window(SPEC, ObservedMetrics(granularity="1 day"))
    assert empty.health == "unknown" and "no rows in the window: nothing to judge" in empty.reasons


def test_stack_overrides_replace_spec_thresholds():
    overrides = parse_overrides(["rmse=max:2.5", "js_distance=max:0.5"])
    ev = evaluate_window(SPEC, observed(rmse=3.0, js=0.3), overrides)
    assert ev.retrain_needed
    statuses = {(c.metric, c.status) for c in ev.checks}
    assert ("rmse", "breach") in statuses and ("js_distance", "breach") not in statuses


def test_force_and_new_data_trigger_retrain_on_a_healthy_window():
    assert evaluate_window(SPEC, observed(), force=True).reasons[0] == "manual trigger (--force)"
    ev = evaluate_window(SPEC, observed(), new_training_data=True)
    assert ev.retrain_needed and ev.health == "healthy"


@pytest.mark.parametrize("bad", ["rmse", "rmse=4", "rmse=avg:4", "rmse=max:four"])
def test_bad_overrides_are_one_clear_error(bad):
    with pytest.raises(MlopsError, match="should look like METRIC=max:VALUE"):
        parse_overrides([bad])


def test_threshold_must_have_exactly_one_direction():
    with pytest.raises(ValueError, match="exactly one of 'max' or 'min'"):
        Threshold(max=1.0, min=0.0)


# --- drift as evidence: rows, rows per category, significance ------------------------------------------

def test_a_distance_over_its_threshold_without_significance_is_not_a_breach():
    ev = evaluate_window(SPEC, observed(js=0.5, p=0.2))
    assert ev.health == "healthy" and not ev.retrain_needed
    statuses = {c.status for c in ev.checks if c.metric == "js_distance"}
    assert statuses == {"not_significant"}
    assert any("[product] js_distance 0.5 > max 0.28 but not significant (p=0.2 >=" in r for r in ev.reasons)


def test_a_small_window_is_not_enough_data_for_drift_and_never_a_breach():
    """The README flow: 50 requests and a distance of 0.5 over 48 franchises, even with a tiny p-value."""
    small = SPEC.drift_evidence.min_rows - 1
    ev = evaluate_window(SPEC, observed(js=0.5, psi=0.9, p=1e-9, rows=small, labelled=small))
    assert ev.health == "not enough data" and not ev.retrain_needed
    assert not any(c.status == "breach" for c in ev.checks)
    assert f"drift: not enough data: {small} rows in the window, drift needs {SPEC.drift_evidence.min_rows}" \
        in ev.reasons
    assert sum("drift: not enough data" in r for r in ev.reasons) == 1  # one line, not one per feature


def test_a_categorical_feature_needs_enough_rows_per_category():
    rows = 250  # over the window minimum, but 250 rows over 60 categories is about 4 per category
    ev = evaluate_window(SPEC, observed(js=0.6, p=1e-9, rows=rows, labelled=rows, categories=60))
    franchise = next(c for c in ev.checks if c.scope == "franchise_name" and c.metric == "js_distance")
    assert franchise.status == "too_few_rows" and "250 rows over 60 categories" in franchise.note
    # The window was judged (quality, numeric drift): healthy, with the unjudged feature in the reasons.
    assert ev.health == "healthy" and not ev.retrain_needed
    assert any(r.startswith("[franchise_name] js_distance: not enough data: 250 rows over 60 categories")
               for r in ev.reasons)
    # Numeric features are not held to the per-category rule: their drift is still judged.
    psi = next(c for c in ev.checks if c.scope == "unitPrice" and c.metric == "population_stability_index")
    assert psi.status == "ok"


def test_significance_is_corrected_for_the_number_of_features_tested():
    tested = len(SPEC.feature_names)
    alpha = SPEC.drift_evidence.alpha
    assert evaluate_window(SPEC, observed(js=0.5, p=alpha / 2)).health == "healthy"  # under alpha, over alpha/n
    ev = evaluate_window(SPEC, observed(js=0.5, p=alpha / tested / 2))
    assert ev.health == "breach" and ev.retrain_needed
    breach = next(c for c in ev.checks if c.status == "breach")
    assert breach.alpha == pytest.approx(alpha / tested) and breach.pvalue == pytest.approx(alpha / tested / 2)


def test_a_distance_breach_without_a_test_p_value_is_unknown_not_healthy():
    obs = observed(js=0.5)
    for values in obs.drift.values():
        values.pop("chi_squared_test.pvalue", None)
    ev = evaluate_window(SPEC, obs)
    assert ev.health == "unknown" and not ev.retrain_needed
    assert "[product] js_distance: p-value missing (not read as healthy)" in ev.reasons


def test_drift_evidence_is_set_per_spec():
    lenient = SPEC.model_copy(update={"drift_evidence": SPEC.drift_evidence.model_copy(
        update={"min_rows": 10, "min_expected_per_category": 1, "alpha": 0.5})})
    ev = evaluate_window(lenient, observed(js=0.5, p=0.01, rows=20, labelled=20, categories=10))
    assert ev.health == "breach" and ev.retrain_needed
    assert any(c.status == "breach" for c in ev.checks if c.metric == "js_distance")
    assert {c.status for c in ev.checks if c.scope == "quality"} == {"too_few_rows"}  # still the spec's 30
    assert evaluate_window(SPEC, observed(js=0.5, p=0.01, rows=20, labelled=20, categories=10)).health == \
        "not enough data"


# --- quality as evidence: a breach only when the whole confidence interval is beyond the threshold -----------

CLASSIFIER = load_spec("bakehouse_large_order").model_copy(update={"thresholds": {
    "accuracy_score": Threshold(min=0.7), "f1_score": Threshold(min=0.9)}})


def classified(f1: float, interval: list[float] | None, labelled: int = 301) -> ObservedMetrics:
    return ObservedMetrics(window_start="2026-11-26T00:00:00+00:00", window_end="2026-11-27T00:00:00+00:00",
                           granularity="1 day", rows=labelled, labelled_rows=labelled,
                           quality={"accuracy_score": 0.95, "f1_score": f1},
                           drift={f: {"js_distance": 0.01, "chi_squared_test.pvalue": 0.9,
                                      "population_stability_index": 0.01, "ks_test.pvalue": 0.9}
                                  for f in CLASSIFIER.feature_names},
                           quality_intervals={"accuracy_score": [0.92, 0.97],
                                              **({"f1_score": interval} if interval is not None else {})},
                           quality_confidence=0.99, quality_interval_rows=labelled)


def test_a_quality_point_estimate_beyond_its_threshold_within_noise_is_not_significant():
    """The issue's case: f1 0.896 against min 0.9 on 301 rows called for a retrain."""
    ev = evaluate_window(CLASSIFIER, classified(0.896, [0.861, 0.929]))
    assert ev.health == "healthy" and not ev.retrain_needed
    f1 = next(c for c in ev.checks if c.metric == "f1_score")
    assert f1.status == "not_significant" and f1.interval == [0.861, 0.929] and f1.confidence == 0.99
    assert ("f1_score 0.896 < min 0.9 but not significant (99% interval 0.861 to 0.929 reaches the threshold): "
            "sampling noise, not a quality drop") in ev.reasons


def test_a_quality_breach_needs_the_whole_interval_beyond_the_threshold():
    ev = evaluate_window(CLASSIFIER, classified(0.62, [0.57, 0.68]))
    assert ev.health == "breach" and ev.retrain_needed
    assert "f1_score 0.62 < min 0.9 (99% interval 0.57 to 0.68)" in ev.reasons
    # the end nearest the threshold decides: an upper end exactly at a min threshold is not beyond it
    edge = evaluate_window(CLASSIFIER, classified(0.85, [0.80, 0.9]))
    assert {c.status for c in edge.checks if c.metric == "f1_score"} == {"not_significant"}


@pytest.mark.parametrize(("interval", "status"), [([4.9, 6.1], "not_significant"), ([5.05, 6.0], "breach")])
def test_a_max_threshold_is_judged_on_the_interval_s_lower_end(interval, status):
    ev = evaluate_window(SPEC, observed(rmse=5.5, intervals={"root_mean_squared_error": interval,
                                                             "r2_score": [0.8, 0.8]}))
    assert {c.status for c in ev.checks if c.metric == "rmse"} == {status}
    assert ev.retrain_needed is (status == "breach")


def test_a_quality_breach_without_an_interval_is_unknown_never_healthy_nor_a_breach():
    ev = evaluate_window(CLASSIFIER, classified(0.62, None))
    assert ev.health == "unknown" and not ev.retrain_needed
    assert "f1_score 0.62 < min 0.9 but its confidence interval is missing (not read as healthy)" in ev.reasons
    # within its threshold, a metric needs no interval
    assert evaluate_window(CLASSIFIER, classified(0.93, None)).health == "healthy"


def test_an_interval_at_a_lower_confidence_than_the_thresholds_need_is_not_evidence():
    # the observation was made for the spec's 2 thresholds (99%); an override adds a third (99.33% needed)
    overrides = parse_overrides(["mae=max:1.0"])
    obs = observed(rmse=6.0, intervals={"root_mean_squared_error": [5.5, 6.5], "r2_score": [0.8, 0.8]})
    obs.quality["mean_absolute_error"] = 0.5
    ev = evaluate_window(SPEC, obs, overrides)
    rmse = next(c for c in ev.checks if c.metric == "rmse")
    assert rmse.status == "missing" and "99% confidence, 99.33% needed" in rmse.note
    assert ev.health == "unknown" and not ev.retrain_needed


def test_quality_evidence_alpha_is_set_per_spec():
    # alpha 0.2 over 2 thresholds asks for 80% intervals: a 99% interval is more than enough
    lenient = SPEC.model_copy(update={"quality_evidence": SPEC.quality_evidence.model_copy(update={"alpha": 0.2})})
    ev = evaluate_window(lenient, observed(rmse=5.5, intervals={"root_mean_squared_error": [5.1, 5.9],
                                                                "r2_score": [0.8, 0.8]}))
    assert ev.health == "breach"
    assert family_confidence(0.2, 2) == pytest.approx(0.8)
    assert family_confidence(SPEC.quality_evidence.alpha, len(SPEC.thresholds)) == pytest.approx(0.99)
