"""The whole ``mlops demo`` story in a temporary home, and the summary facts issue 5 asks it to show.

Its own module, so no endpoint of another home (a module fixture elsewhere) is still running in this
process while the story trains: MLflow's fluent tracking URI is process-wide.
"""

import importlib.util

import numpy as np

from workloads import registry
from workloads.alerts import read_outbox
from workloads.specs import load_spec

MODEL = "bakehouse_decorators"


def test_demo_story_summary_facts(tmp_path, monkeypatch):
    from workloads.demo import CHAPTERS, run_story
    from workloads.settings import load_settings

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "demo-home"))
    report_available = importlib.util.find_spec("workloads.monitoring.report") is not None
    settings = load_settings(home=tmp_path / "demo-home")
    chapters = [c for c in CHAPTERS if c[1].__name__ != "report" or report_available]
    story = run_story(settings, chapters=chapters)
    facts = story.facts
    healthy = facts["watch.healthy"]
    assert healthy.evaluation.health == "healthy" and not healthy.evaluation.retrain_needed
    assert healthy.retrain is None
    drifted = facts["watch.drifted"]
    assert drifted.evaluation.health == "breach"
    assert {c.metric for c in drifted.evaluation.checks if c.status == "breach"} >= {"rmse"}
    retrain = drifted.retrain
    assert retrain is not None and retrain.promoted
    # Better than the drifted champion on the same data (both scored on one holdout in the retrain).
    assert retrain.challenger_metrics["rmse"] < retrain.champion_metrics["rmse"]
    assert retrain.challenger_metrics["r2"] > retrain.champion_metrics["r2"]
    dev_champion = registry.get_alias(settings, load_spec(MODEL), "champion")
    assert dev_champion.version == retrain.challenger_version
    assert any(chapter == "endpoint swap" and f"now serving v{retrain.challenger_version}" in outcome
               for chapter, outcome, _ in story.rows)
    prod = facts["prod"]
    prod_champion = registry.get_alias(settings.for_env("prod"), load_spec(MODEL), "champion")
    assert prod_champion.version == prod.target_version
    assert prod_champion.source == f"models:/{settings.registered_model(MODEL)}/{dev_champion.version}"
    assert prod.source_version == dev_champion.version
    if report_available:
        assert facts["report"].is_file()
    kinds = [a.kind for a in read_outbox(settings.home, model=MODEL)]
    assert "breach" in kinds and "promotion" in kinds and "failure" not in kinds
    assert np.isfinite(list(story.timings.values())).all()
