"""Policy rules without the CLI: each rule alone, the pack's policies on hand-built args, and the real program's
resources per stack (compliant as shipped, violations when broken)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from infra.policy import rules
from infra.policy.pack import policies

SERVING = rules.MODEL_SERVING
GOOD_ENDPOINT = {
    "name": "bakehouse-autolog",
    "config": {"servedEntities": [{"name": "e", "entityName": "mlops_dev.bakehouse_ml.bakehouse_autolog_model",
                                   "entityVersion": "3"}]},
    "aiGateway": {"inferenceTableConfig": {"enabled": True, "catalogName": "mlops_dev", "schemaName": "bakehouse_ml",
                                           "tableNamePrefix": "bakehouse_autolog"}},
}


def violations(evaluation) -> list[str]:
    found = []
    for r in evaluation.resources:
        stack = rules.stack_of(r.urn)
        found += rules.check_inference_table(r.type, r.inputs)
        found += rules.check_unity_catalog_entities(r.type, r.inputs)
        found += rules.check_prod_protected(r.type, stack, r.protect)
        found += rules.check_prod_run_as(r.type, stack, r.inputs)
    return found


def test_inference_table_rule():
    assert rules.check_inference_table(SERVING, GOOD_ENDPOINT) == []
    disabled = copy.deepcopy(GOOD_ENDPOINT)
    disabled["aiGateway"]["inferenceTableConfig"]["enabled"] = False
    assert rules.check_inference_table(SERVING, disabled) == [
        "serving endpoint must enable aiGateway.inferenceTableConfig (the inference table)"]
    legacy = {**GOOD_ENDPOINT, "aiGateway": {}, "config": {**GOOD_ENDPOINT["config"],
                                                          "autoCaptureConfig": {"enabled": True}}}
    assert len(rules.check_inference_table(SERVING, legacy)) == 2
    assert rules.check_inference_table("databricks:index/job:Job", {}) == []


def test_served_entities_must_be_unity_catalog_models():
    assert rules.check_unity_catalog_entities(SERVING, GOOD_ENDPOINT) == []
    workspace_model = copy.deepcopy(GOOD_ENDPOINT)
    workspace_model["config"]["servedEntities"][0]["entityName"] = "bakehouse_autolog"
    assert "is not a Unity Catalog model" in rules.check_unity_catalog_entities(SERVING, workspace_model)[0]
    external = copy.deepcopy(GOOD_ENDPOINT)
    external["config"]["servedEntities"][0]["externalModel"] = {"provider": "openai"}
    assert rules.check_unity_catalog_entities(SERVING, external)
    legacy = {"config": {"servedModels": [{"modelName": "m", "modelVersion": "1"}]}}
    assert "servedModels" in rules.check_unity_catalog_entities(SERVING, legacy)[0]


def test_prod_protection_and_run_as_rules():
    catalog = "databricks:index/catalog:Catalog"
    assert rules.check_prod_protected(catalog, "prod", False) == ["Catalog must be protected in prod stack 'prod'"]
    assert rules.check_prod_protected(catalog, "prod", True) == []
    assert rules.check_prod_protected(catalog, "dev", False) == []
    assert rules.check_prod_protected(rules.JOB, "prod", False) == []
    assert rules.check_prod_run_as(rules.JOB, "org/prod", {"name": "j"})
    assert rules.check_prod_run_as(rules.JOB, "prod", {"name": "j", "runAs": {"userName": "me@x.com"}})
    assert rules.check_prod_run_as(rules.JOB, "prod", {"runAs": {"servicePrincipalName": "abc"}}) == []
    assert rules.check_prod_run_as(rules.JOB, "dev", {"name": "j"}) == []


def test_plaintext_secrets_in_stack_config():
    config = {
        "databricks:host": "https://adb-1.azuredatabricks.net",
        "databricks:token": "dapi0123456789abcdef0123",
        "databricks:clientSecret": {"secure": "v1:abc"},
        "lakehouse-mlops:alertWebhookUrl": "https://example.com/hook",
        "lakehouse-mlops:alerts": {"emails": ["a@b.co"], "slack": "https://hooks.slack.com/services/T/B/x"},
        "lakehouse-mlops:models": ["bakehouse_autolog"],
    }
    assert rules.plaintext_secrets(config) == [
        "databricks:token", "lakehouse-mlops:alertWebhookUrl", "lakehouse-mlops:alerts.slack"]
    assert "plaintext secret" in rules.check_stack_config(config, "dev")[0]


def test_shipped_stack_files_hold_no_plaintext_secret():
    root = Path(__file__).resolve().parents[2]
    for path in root.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        assert rules.plaintext_secrets(config) == [], path.name


def test_shipped_stacks_comply_with_every_rule(dev, prod, first_deploy):
    for evaluation in (dev, prod, first_deploy):
        assert violations(evaluation) == []


def test_an_unprotected_prod_breaks_the_rules(run):
    evaluation = run("prod", champions={}, overrides={"lakehouse-mlops:protect": None})
    assert violations(evaluation) == []  # protect defaults to true in prod
    # Forge what an unprotected prod would declare: the rule catches each resource.
    for resource in evaluation.resources:
        resource.protect = False
    found = violations(evaluation)
    assert len(found) == 1 + 1 + 1 + 3 * 2 + 3


def _options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _validate(policy_name: str, resource_type: str, props: dict, urn_stack: str = "prod", protect: bool = False):
    (policy,) = [p for p in policies() if p.name == policy_name]
    reported: list[str] = []
    urn = f"urn:pulumi:{urn_stack}::lakehouse-mlops::{resource_type}::r"
    args = ResourceValidationArgs(resource_type, props, urn, "r", _options(protect), None)
    policy.validate(args, lambda message, urn=None: reported.append(message))
    return reported


def test_pack_policies_report_through_the_policy_sdk():
    assert _validate("serving-inference-table-enabled", SERVING, {"aiGateway": {}})
    assert _validate("serving-inference-table-enabled", SERVING, GOOD_ENDPOINT) == []
    assert _validate("served-entities-are-uc-models", SERVING,
                     {"config": {"servedEntities": [{"entityName": "x", "entityVersion": "1"}]}})
    assert _validate("prod-resources-protected", "databricks:index/schema:Schema", {})
    assert _validate("prod-resources-protected", "databricks:index/schema:Schema", {}, protect=True) == []
    assert _validate("prod-resources-protected", "databricks:index/schema:Schema", {}, urn_stack="dev") == []
    assert _validate("prod-jobs-run-as-service-principal", rules.JOB, {"name": "j"})
    assert _validate("prod-jobs-run-as-service-principal", rules.JOB,
                     {"runAs": {"servicePrincipalName": "sp"}}) == []


def test_stack_policy_checks_the_repository_stack_files():
    (policy,) = [p for p in policies() if p.name == "no-plaintext-secrets-in-stack-config"]
    reported: list[str] = []
    policy.validate(StackValidationArgs([]), lambda message, urn=None: reported.append(message))
    assert reported == []


def test_policy_pack_entry_point_starts_an_analyzer():
    """Started as the policy runtime starts it (from the pack directory), it serves and prints its port."""
    import subprocess
    import sys

    pack = Path(__file__).resolve().parents[2] / "infra" / "policy"
    process = subprocess.Popen([sys.executable, "__main__.py"], cwd=pack, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert port.isdigit() and 0 < int(port) < 65536, process.stderr.read()


@pytest.mark.parametrize("name", ["PulumiPolicy.yaml", "__main__.py"])
def test_policy_pack_entry_point_is_in_infra_policy(name):
    pack = Path(__file__).resolve().parents[2] / "infra" / "policy"
    assert (pack / name).is_file()
    if name == "PulumiPolicy.yaml":
        runtime = yaml.safe_load((pack / name).read_text())["runtime"]
        assert runtime["name"] == "python"
    else:
        source = (pack / name).read_text()
        compile(source, name, "exec")
        assert "PolicyPack(" in source and "policies()" in source
