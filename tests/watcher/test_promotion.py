"""Promotion, rollback, audit rows, dev -> prod promotion, and no double promotion."""

import multiprocessing as mp

import pytest

from tests.conftest import make_trained_home
from workloads import registry
from workloads.alerts import read_outbox
from workloads.environments import CrossEnvironmentPromotionError, promote_across
from workloads.ports.task_values import LocalTaskValues
from workloads.promotion import PromotionError, promote, read_audit, rollback
from workloads.specs import Threshold, load_spec
from workloads.training import train_model
from workloads.watcher.steps import RETRAIN_TASK, step_retrain

BASE = load_spec("bakehouse_large_order")


@pytest.fixture(scope="module")
def home_settings(tmp_path_factory):
    """One home with data for the module; each test trains its own model (its own registered name)."""
    settings, _ = make_trained_home(tmp_path_factory.mktemp("promotion-home"), models=())
    return settings


@pytest.fixture
def spec(request):
    name = "lo_" + request.node.name.removeprefix("test_")[:40]
    return BASE.model_copy(update={"name": name})


@pytest.fixture
def trained(home_settings, spec):
    return home_settings, {spec.name: train_model(home_settings, spec)}


def test_promote_moves_aliases_and_writes_one_audit_row(trained, spec):
    settings, results = trained
    first = results[spec.name].version
    second = train_model(settings, spec).version  # becomes challenger
    assert registry.get_alias(settings, spec, "challenger").version == second
    record = promote(settings, spec, second, reason="test", expected_champion=first,
                     champion_metrics={"accuracy_score": 0.8}, challenger_metrics={"accuracy_score": 0.9})
    assert registry.get_alias(settings, spec, "champion").version == second
    assert registry.get_alias(settings, spec, "previous").version == first
    assert registry.get_alias(settings, spec, "challenger") is None
    audit = read_audit(settings, spec.name)
    assert len(audit) == 1
    row = audit.iloc[0]
    assert (row["action"], row["from_version"], row["to_version"], row["reason"]) == ("promote", str(first),
                                                                                     str(second), "test")
    assert '"accuracy_score": 0.9' in row["to_metrics"] and row["actor"] == record.actor
    # Rollback: champion <- previous, previous <- the rolled-back one, another audit row.
    back = rollback(settings, spec, reason="bad release")
    assert (back.from_version, back.to_version) == (second, first)
    assert registry.get_alias(settings, spec, "champion").version == first
    assert registry.get_alias(settings, spec, "previous").version == second
    audit = read_audit(settings, spec.name)
    assert audit["action"].tolist() == ["promote", "rollback"]
    # Rolling back again would silently undo the rollback: refused, naming the way out.
    with pytest.raises(PromotionError, match=rf"champion v{first} is already a rollback \(from v{second}\); a "
                                             r"second rollback would bring back the version just removed\. Pass "
                                             r"--to-version N"):
        rollback(settings, spec)
    assert registry.get_alias(settings, spec, "champion").version == first
    again = rollback(settings, spec, reason="it was fine after all", to_version=second)
    assert (again.from_version, again.to_version) == (first, second)
    assert read_audit(settings, spec.name)["action"].tolist() == ["promote", "rollback", "rollback"]


def test_promotion_is_refused_when_the_champion_moved_meanwhile(trained, spec):
    settings, results = trained
    second = train_model(settings, spec).version
    with pytest.raises(PromotionError, match="not v99 as when the decision was made"):
        promote(settings, spec, second, reason="stale", expected_champion=99)
    assert registry.get_alias(settings, spec, "champion").version == results[spec.name].version
    assert read_audit(settings, spec.name).empty


def test_rollback_without_previous_is_a_clear_error(trained, spec):
    settings, _ = trained
    with pytest.raises(PromotionError, match="has no 'previous' version to roll back to"):
        rollback(settings, spec)


def _promote_in_child(home, spec_json, version, expected, queue):
    from workloads.promotion import PromotionError, promote
    from workloads.settings import load_settings
    from workloads.specs import ModelSpec

    try:
        promote(load_settings(home=home), ModelSpec.model_validate_json(spec_json), version, reason="race",
                expected_champion=expected)
        queue.put("promoted")
    except PromotionError as exc:
        queue.put(f"refused: {exc}")


def test_two_concurrent_promotions_cannot_both_promote(trained, spec):
    settings, results = trained
    first = results[spec.name].version
    second = train_model(settings, spec, alias="challenger").version
    third = train_model(settings, spec, alias="challenger").version
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_promote_in_child, args=(str(settings.home), spec.model_dump_json(), v, first, queue)) for v in (second, third)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    outcomes = sorted(queue.get(timeout=5) for _ in procs)
    assert outcomes[0] == "promoted" and outcomes[1].startswith("refused:")
    assert len(read_audit(settings, spec.name)) == 1


def test_challenger_not_better_keeps_the_champion_and_alerts(trained, spec):
    settings, results = trained
    first = results[spec.name].version
    tv = LocalTaskValues(settings.home, "run-1").for_task(RETRAIN_TASK)
    outcome = step_retrain(settings, spec, tv)
    # Same data and seed: the challenger ties the champion, which is not beating it.
    assert not outcome.promoted
    assert any("does not beat the champion on accuracy_score" in r for r in outcome.reasons)
    assert registry.get_alias(settings, spec, "champion").version == first
    assert registry.get_alias(settings, spec, "challenger").version == outcome.challenger_version
    assert read_audit(settings, spec.name).empty
    alerts = read_outbox(settings.home, kind="validation_failed", model=spec.name)
    assert len(alerts) == 1 and "kept" in alerts[0].summary
    assert tv.get(RETRAIN_TASK, "promoted") == "false"


def test_challenger_failing_absolute_thresholds_is_not_promoted(trained, spec):
    settings, _ = trained
    tv = LocalTaskValues(settings.home, "run-2").for_task(RETRAIN_TASK)
    outcome = step_retrain(settings, spec, tv, overrides={"accuracy_score": Threshold(min=0.999)})
    assert not outcome.promoted
    assert any(r.startswith("fails threshold accuracy_score") for r in outcome.reasons)


def test_promote_dev_to_prod_copies_validates_and_aliases(trained, spec):
    settings, results = trained
    dev_version = results[spec.name].version
    result = promote_across(settings, spec, "dev", "prod")
    prod = settings.for_env("prod")
    champion = registry.get_alias(prod, spec, "champion")
    assert champion.version == result.target_version
    assert champion.name == f"mlops_prod.bakehouse_ml.{spec.name}_model"
    assert champion.tags["source_model"] == settings.registered_model(spec.name)
    assert champion.tags["source_version"] == str(dev_version)
    assert champion.source == f"models:/{settings.registered_model(spec.name)}/{dev_version}"
    audit = read_audit(prod, spec.name)
    assert audit["action"].tolist() == ["copy_promote"]
    # The dev side is untouched, and promoting the same champion again is refused.
    assert registry.get_alias(settings, spec, "champion").version == dev_version
    with pytest.raises(CrossEnvironmentPromotionError, match="already is"):
        promote_across(settings, spec, "dev", "prod")


def test_promote_refuses_without_a_dev_champion(home_settings, spec):
    settings = home_settings
    with pytest.raises(CrossEnvironmentPromotionError, match="has no champion to promote; train one in dev first"):
        promote_across(settings, spec, "dev", "prod")


def test_promote_refuses_a_copy_that_fails_the_prod_gate(trained, spec):
    settings, _ = trained
    strict = spec.model_copy(update={"thresholds": {"accuracy_score": Threshold(min=0.999)}})
    with pytest.raises(CrossEnvironmentPromotionError,
                       match="failed the prod gate on the holdout share of samples.bakehouse.sales_transactions .*: accuracy_score"):
        promote_across(settings, strict, "dev", "prod")
    prod = settings.for_env("prod")
    assert registry.get_alias(prod, spec, "champion") is None
    versions = registry.list_versions(prod, spec)
    assert len(versions) == 1 and versions[0].tags["passed_thresholds"] == "false"


def test_the_cli_refuses_surprising_lifecycle_commands_in_one_line(tmp_path):
    import subprocess
    import sys

    def mlops(*args):
        proc = subprocess.run([sys.executable, "-m", "workloads.cli", "--home", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=120, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = mlops("promote", "-m", "bakehouse_autolog", "--from", "prod", "--to", "dev")
    assert code == 1 and "promoting prod -> dev goes against the environment order (dev -> prod) and would " \
        "replace dev's champion; pass --force" in out
    code, out = mlops("promote", "-m", "bakehouse_autolog", "--to", "staging")
    assert code == 1 and "error: --to 'staging' is not an environment; environments: dev, prod" in out
    assert "ValidationError" not in out and "Traceback" not in out
    code, out = mlops("train", "-m", "bakehouse_autolog", "--all")
    assert code == 1 and "give --model bakehouse_autolog or --all, not both" in out
    code, out = mlops("--env", "staging", "unpack", "-m", "bakehouse_autolog")
    assert code == 1 and out.count("\n") <= 2 and "env must be 'dev' or 'prod'" in out
    code, out = mlops("--version")
    assert code == 0 and out.startswith("mlops (lakehouse-mlops) ")
