"""Threshold directions, missing metrics and too-few-rows: never read as healthy."""

import pytest

from workloads.errors import MlopsError
from workloads.specs import Threshold, load_spec
from workloads.watcher.evaluation import ObservedMetrics, evaluate_window, parse_overrides

SPEC = load_spec("bakehouse_autolog")  # rmse max 5.0, r2 min 0.5; js_distance max 0.28, psi max 0.25


def observed(rmse=3.0, r2=0.8, js=0.05, psi=0.05, rows=200, labelled=200):
    drift = {f: {"js_distance": js, "population_stability_index": psi} for f in SPEC.feature_names}
    quality = {}
    if rmse is not None:
        quality["root_mean_squared_error"] = rmse
    if r2 is not None:
        quality["r2_score"] = r2
    return ObservedMetrics(window_start="2026-11-26T00:00:00+00:00", window_end="2026-11-27T00:00:00+00:00",
                           granularity="1 day", rows=rows, labelled_rows=labelled, quality=quality, drift=drift)


def test_healthy_window_needs_no_retrain():
    ev = evaluate_window(SPEC, observed())
    assert ev.health == "healthy" and not ev.retrain_needed and ev.reasons == []
    assert {c.status for c in ev.checks} == {"ok"}


@pytest.mark.parametrize(("kwargs", "breached"), [
    ({"rmse": 5.01}, "rmse"),  # max: above is a breach
    ({"r2": 0.49}, "r2"),  # min: below is a breach
    ({"js": 0.29}, "js_distance"),  # drift max
    ({"psi": 0.3}, "population_stability_index"),
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


def test_too_few_labelled_rows_is_reported_not_healthy():
    ev = evaluate_window(SPEC, observed(rmse=9.0, labelled=SPEC.min_rows - 1))
    assert ev.health == "unknown"
    assert "rmse: too few labelled rows to judge" in ev.reasons
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
