"""azure-pipelines.yml validates against the official Azure Pipelines schema vendored in check-jsonschema,
with only the documented allowances (see pipeline_rules), and typos are rejected."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pipeline_rules as rules
import pytest
import yaml


def test_schema_is_the_vendored_official_one():
    schema = rules.raw_schema()
    assert schema["$id"] == "https://github.com/Microsoft/azure-pipelines-vscode/blob/main/service-schema.json"
    assert schema["definitions"]["pipeline"], "not the pipeline schema"
    path = rules.schema_path()
    assert path.is_file() and path.parts[-4:-1] == ("check_jsonschema", "builtin_schemas", "vendor")


def test_pipeline_validates_with_the_allowances(doc):
    errors = rules.schema_errors(doc)
    assert not errors, "azure-pipelines.yml does not validate:\n" + rules.explain(errors)


@pytest.mark.parametrize("allowance", [a.name for a in rules.ALLOWANCES])
def test_each_allowance_is_needed_by_the_pipeline(doc, allowance):
    """Drop one allowance: the pipeline fails, and only where that quirk bites. When the upstream schema
    is fixed this test fails, telling us to drop the allowance."""
    rest = tuple(a for a in rules.ALLOWANCES if a.name != allowance)
    messages = rules.all_messages(rules.schema_errors(doc, rest))
    assert messages, f"allowance {allowance} is no longer needed: remove it"
    expected = {
        "yaml-booleans": "True is not of type 'string'",
        "string-typed-scalars": "is not of type 'string'",
        "input-aliases": "'artifact' was unexpected",
    }[allowance]
    assert any(expected in m for m in messages), messages[:20]


@pytest.mark.parametrize("case", ["boolean", "timeout", "checkout", "alias"])
def test_allowances_cover_a_documented_quirk_and_nothing_else(case):
    """Each quirk on a minimal pipeline: the raw schema rejects it, the allowed validation accepts it; the
    same pipeline with a wrong value is still rejected by the allowed validation."""
    step = {"boolean": {"script": "echo", "continueOnError": True},
            "timeout": {"script": "echo", "timeoutInMinutes": 5},
            "checkout": {"checkout": "self", "persistCredentials": True, "fetchDepth": 1},
            "alias": {"task": "DownloadPipelineArtifact@2", "inputs": {"artifact": "wheel", "path": "dist"}}}[case]
    wrong = {"boolean": {"script": "echo", "continueOnError": 3},
             "timeout": {"script": "echo", "timeoutInMinutes": [5]},
             "checkout": {"checkout": "self", "persistCredentials": {"x": 1}},
             "alias": {"task": "DownloadPipelineArtifact@2", "inputs": {"artefact": "wheel"}}}[case]
    pipeline = {"steps": [step]}
    assert rules.schema_errors(pipeline, allowances=()), f"the raw schema now accepts the {case} quirk"
    assert not rules.schema_errors(pipeline), rules.explain(rules.schema_errors(pipeline))
    assert rules.schema_errors({"steps": [wrong]}), f"the {case} allowance admits a wrong value"


def _messages(doc) -> str:
    return "\n".join(rules.all_messages(rules.schema_errors(doc)))


def test_typo_in_a_stage_key_is_rejected(doc):
    bad = copy.deepcopy(doc)
    stage = rules.stage_by_id(bad, "DeployProd")
    stage["dependson"] = stage.pop("dependsOn")
    assert "'dependson' was unexpected" in _messages(bad)


def test_typo_in_a_deployment_job_key_is_rejected(doc):
    bad = copy.deepcopy(doc)
    job = rules.stage_by_id(bad, "DeployProd")["jobs"][0]
    job["enviroment"] = job.pop("environment")
    messages = _messages(bad)
    assert "'enviroment' was unexpected" in messages


def test_typo_in_a_top_level_key_is_rejected(doc):
    bad = copy.deepcopy(doc)
    bad["triggers"] = bad.pop("trigger")
    assert "'triggers' was unexpected" in _messages(bad)


def test_unknown_task_is_rejected(doc):
    bad = copy.deepcopy(doc)
    steps = rules.job_steps(rules.stage_by_id(bad, "DeployDev")["jobs"][0])
    cli = next(s for s in steps if s.get("task") == "AzureCLI@2")
    cli["task"] = "AzureCLl@2"
    assert "'AzureCLl@2' does not match '^AzureCLI@2$'" in _messages(bad)
    assert rules.schema_errors(bad)


def test_typo_in_a_task_input_is_rejected(doc):
    bad = copy.deepcopy(doc)
    steps = rules.job_steps(rules.stage_by_id(bad, "DeployDev")["jobs"][0])
    cli = next(s for s in steps if s.get("task") == "AzureCLI@2")
    cli["inputs"]["inlineScrpt"] = cli["inputs"].pop("inlineScript")
    assert "'inlineScrpt' was unexpected" in _messages(bad)


def test_missing_required_task_input_is_rejected(doc):
    bad = copy.deepcopy(doc)
    steps = rules.job_steps(rules.stage_by_id(bad, "DeployDev")["jobs"][0])
    cli = next(s for s in steps if s.get("task") == "AzureCLI@2")
    del cli["inputs"]["azureSubscription"]
    assert "'azureSubscription' is a required property" in _messages(bad)


def test_check_jsonschema_cli_agrees(doc, tmp_path):
    """The check-jsonschema CLI (as its check-azure-pipelines hook runs it) on the same schema + allowances:
    accepts the pipeline, rejects a typo. Guards against our in-process validation drifting from the tool."""
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(rules.build_schema()))
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump(rules.prepare(doc)))
    bad_doc = copy.deepcopy(doc)
    bad_doc["stages"][0]["jobz"] = bad_doc["stages"][0].pop("jobs")
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(rules.prepare(bad_doc)))
    cmd = [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema),
           "--data-transform", "azure-pipelines", "--regex-variant", "nonunicode"]
    ok = subprocess.run([*cmd, str(good)], capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ko = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, timeout=120, check=False)
    assert ko.returncode == 1, ko.stdout + ko.stderr
    assert "jobz" in ko.stdout + ko.stderr
