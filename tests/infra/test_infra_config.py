"""Typed stack config: the shipped stacks parse, defaults are right, bad config names every bad key."""

from __future__ import annotations

import pytest
from infra_helpers import raw_config, typed_config

from infra.config import StackConfigError, parse_stack_config


def test_shipped_stacks_parse_into_typed_config():
    dev, prod = typed_config("dev"), typed_config("prod")
    assert (dev.environment, prod.environment) == ("dev", "prod")
    assert dev.catalog.name == "mlops_dev" and prod.catalog.name == "mlops_prod"
    assert dev.models == prod.models == ["bakehouse_autolog", "bakehouse_decorators", "bakehouse_large_order"]
    assert prod.run_as is not None and prod.is_protected and not dev.is_protected
    assert prod.watcher.threshold_overrides["bakehouse_autolog"]["rmse"].max == 4.5
    assert prod.registered_model("bakehouse_autolog") == "mlops_prod.bakehouse_ml.bakehouse_autolog_model"


def test_defaults_watcher_every_six_hours_in_detroit_and_protect_follows_environment():
    raw = raw_config("prod")
    for key in ("watcher", "protect", "monitor", "serving", "batch"):
        raw.pop(key, None)
    config = parse_stack_config("prod", raw)
    assert config.watcher.schedule == "0 0 0/6 * * ?"
    assert config.watcher.timezone == "America/Detroit"
    assert config.is_protected is True
    assert config.serving.workload_size == "Small" and config.monitor.granularities == ["1 day"]


def test_every_field_has_a_description():
    from infra import config as module

    models = [getattr(module, n) for n in dir(module) if n.endswith("Config") and n != "StackConfigError"]
    models.append(module.ThresholdOverride)
    missing = [f"{m.__name__}.{name}" for m in models for name, field in m.model_fields.items()
               if not field.description]
    assert missing == []


@pytest.mark.parametrize(("changes", "bad_keys"), [
    (  # three independent field errors at once
        {"serving": {"workloadSize": "Huge"}, "monitor": {"granularities": ["2 days"]}, "catalog": {"name": "Bad-Name"}},
        ["lakehouse-mlops:serving.workloadSize", "lakehouse-mlops:monitor.granularities[0]",
         "lakehouse-mlops:catalog.name"],
    ),
    (  # a typo'd key, a bad timezone, a bad cron
        {"watcher": {"schedul": "x", "timezone": "Mars/Olympus"}, "batch": {"schedule": "daily"}},
        ["lakehouse-mlops:watcher.schedul", "lakehouse-mlops:watcher.timezone", "lakehouse-mlops:batch.schedule"],
    ),
    (  # unknown model, bad email, missing grants
        {"models": ["bakehouse_autolog", "no_such_model"], "alerts": {"emails": ["not-an-email"]}, "grants": None},
        ["lakehouse-mlops:models", "lakehouse-mlops:alerts.emails", "lakehouse-mlops:grants"],
    ),
])
def test_bad_config_names_every_bad_key(changes, bad_keys):
    raw = {**raw_config("dev"), **changes}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(StackConfigError, match=r"invalid config for stack 'dev'") as caught:
        parse_stack_config("dev", raw)
    message = str(caught.value)
    for key in bad_keys:
        assert key in message
    assert len(caught.value.problems) == len(bad_keys)
    assert message.endswith("(fix Pulumi.dev.yaml or `pulumi config set --stack dev`)")


def test_prod_cross_checks_run_as_protect_and_overrides_are_all_reported():
    raw = raw_config("prod")
    raw.pop("runAs")
    raw["protect"] = False
    raw["grants"] = {"owner": "mlops-deployers", "readers": ["data-scientists"], "writers": ["data-scientists"]}
    raw["watcher"] = {"thresholdOverrides": {"bakehouse_autolog": {"rmse": {"min": 1.0}, "auc": {"min": 0.5}},
                                             "ghost_model": {"rmse": {"max": 1.0}}}}
    raw["monitor"] = {"granularities": ["1 hour"]}
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config("prod", raw)
    problems = " | ".join(caught.value.problems)
    assert "lakehouse-mlops:watcher.granularity: '1 day' is not one of monitor.granularities" in problems
    assert "lakehouse-mlops:runAs: required in prod" in problems
    assert "lakehouse-mlops:protect: prod resources must be protected" in problems
    assert "both readers and writers" in problems
    assert "thresholdOverrides.bakehouse_autolog.rmse: give exactly 'max'" in problems
    assert "thresholdOverrides.bakehouse_autolog.auc: the spec has no threshold 'auc'" in problems
    assert "thresholdOverrides.ghost_model: model 'ghost_model' is not deployed" in problems


def test_plaintext_webhook_is_refused():
    with pytest.raises(StackConfigError, match=r"alertWebhookUrl: must be a secret"):
        parse_stack_config("dev", raw_config("dev"), webhook_set=True, webhook_is_secret=False)


def test_bad_config_through_the_program_declares_nothing(run):
    from workloads.errors import MlopsError

    overrides = {"lakehouse-mlops:serving": {"workloadSize": "Tiny"},
                 "lakehouse-mlops:models": ["nope"],
                 "lakehouse-mlops:environment": "staging"}
    from infra.offline import prepare

    with pytest.raises(StackConfigError) as caught:
        run("dev", overrides=overrides)
    assert isinstance(caught.value, MlopsError)
    for key in ("serving.workloadSize", "lakehouse-mlops:models", "lakehouse-mlops:environment"):
        assert key in str(caught.value)
    # The harness that ran it recorded no resource at all.
    harness = prepare("dev", overrides=overrides, wheel="unused.whl")
    with pytest.raises(StackConfigError):
        harness.run_program()
    assert harness.resources == []


def test_string_where_an_object_is_expected_is_reported(run):
    with pytest.raises(StackConfigError, match=r"lakehouse-mlops:serving: must be an object"):
        run("dev", overrides={"lakehouse-mlops:serving": "Small"})


@pytest.mark.parametrize("consumers,message", [
    (["data-scientists", "data-scientists"], "consumers must not repeat"),
    (["", "apps"], "not empty strings"),
    ("apps", "valid list"),
])
def test_bad_endpoint_consumers_name_the_key(consumers, message):
    with pytest.raises(StackConfigError, match=rf"lakehouse-mlops:serving.consumers: .*{message}"):
        typed_config("dev", serving={"consumers": consumers})
