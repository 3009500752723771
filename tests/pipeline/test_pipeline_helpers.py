"""The other scripts the pipeline calls: stack facts (stack_info.py) and the PR preview comment
(pr_comment.py, against a fake Azure DevOps REST API on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.pipeline import pr_comment, stack_info
from tests.fakes import json_server

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ stack_info
def _write_stack(root: Path, stack: str, config: dict) -> None:
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_models_prefer_the_stack_output_over_the_config(tmp_path):
    _write_stack(tmp_path, "prod", {"lakehouse-mlops:models": ["a", "b"]})
    assert stack_info.deployed_models("prod", {}, tmp_path) == ["a", "b"]
    outputs = {"models": {"b": {"endpoint_name": None}, "c": {"endpoint_name": "c"}}}
    assert stack_info.deployed_models("prod", outputs, tmp_path) == ["b", "c"]


def test_models_of_the_real_stacks_match_their_config():
    for stack in ("dev", "prod"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert stack_info.deployed_models(stack) == config["lakehouse-mlops:models"]


def test_missing_models_key_is_one_clear_error(tmp_path):
    _write_stack(tmp_path, "prod", {"databricks:host": "https://x"})
    with pytest.raises(stack_info.StackInfoError, match="has no `lakehouse-mlops:models`"):
        stack_info.deployed_models("prod", None, tmp_path)
    with pytest.raises(stack_info.StackInfoError, match="no stack config Pulumi.qa.yaml"):
        stack_info.deployed_models("qa", None, tmp_path)


def test_env_for_promotion_names_both_catalogs(tmp_path):
    _write_stack(tmp_path, "dev", {"databricks:host": "https://dev", "lakehouse-mlops:catalog": {"name": "c_dev"},
                                   "lakehouse-mlops:schemas": {"models": "ml"}})
    _write_stack(tmp_path, "prod", {"databricks:host": "https://prod.azuredatabricks.net",
                                    "lakehouse-mlops:environment": "prod",
                                    "lakehouse-mlops:catalog": {"name": "c_prod", "create": True},
                                    "lakehouse-mlops:schemas": {"models": "ml", "monitoring": "mon"}})
    assert stack_info.stack_env("prod", "dev", tmp_path) == {
        "DATABRICKS_HOST": "https://prod.azuredatabricks.net", "MLOPS_BACKEND": "databricks", "MLOPS_ENV": "prod",
        "MLOPS_CATALOG_PROD": "c_prod", "MLOPS_SCHEMA": "ml", "MLOPS_CATALOG_DEV": "c_dev"}


def test_env_lines_feed_the_workloads_settings(monkeypatch):
    """`eval "$(stack_info.py env --stack prod --from-stack dev)"` gives settings that promote between the
    two stacks' catalogs: what the pipeline's promotion step relies on."""
    result = subprocess.run([sys.executable, str(ROOT / "infra/pipeline/stack_info.py"), "env", "--stack", "prod",
                             "--from-stack", "dev"], capture_output=True, text=True, timeout=60, check=True)
    script = result.stdout + "\nenv -0\n"
    shell = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60, check=True,
                           env={"PATH": os.environ["PATH"]})
    env = dict(item.split("=", 1) for item in shell.stdout.decode().split("\0") if "=" in item)
    from workloads.settings import load_settings

    for key in ("MLOPS_CATALOG", "MLOPS_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key in ("MLOPS_BACKEND", "MLOPS_ENV", "MLOPS_SCHEMA", "MLOPS_CATALOG_DEV", "MLOPS_CATALOG_PROD"):
        monkeypatch.setenv(key, env[key])
    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert env["DATABRICKS_HOST"] == prod["databricks:host"]
    settings = load_settings()
    assert (settings.backend, settings.env) == ("databricks", "prod")
    assert settings.catalog == prod["lakehouse-mlops:catalog"]["name"]
    assert settings.for_env("dev").catalog == dev["lakehouse-mlops:catalog"]["name"]
    assert settings.schema_name == prod["lakehouse-mlops:schemas"]["models"]


def test_models_cli_prints_one_per_line_and_fails_cleanly(tmp_path):
    outputs = tmp_path / "out.json"
    outputs.write_text(json.dumps({"models": {"m1": {}, "m2": {}}}))
    script = str(ROOT / "infra/pipeline/stack_info.py")
    ok = subprocess.run([sys.executable, script, "models", "--stack", "prod", "--outputs", str(outputs)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert (ok.returncode, ok.stdout) == (0, "m1\nm2\n")
    outputs.write_text("[1, 2]")
    ko = subprocess.run([sys.executable, script, "models", "--stack", "prod", "--outputs", str(outputs)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ko.returncode == 1 and ko.stderr.startswith("error: ") and "Traceback" not in ko.stderr


# ------------------------------------------------------------------------------ pr_comment
class FakeAzureDevOps:
    def __init__(self):
        self.threads: list[dict] = []
        self.requests: list[tuple[str, str, dict, dict | None, str]] = []

    def handle(self, method: str, path: str, query: dict, body: dict | None, headers) -> tuple[int, dict]:
        self.requests.append((method, path, query, body, headers.get("Authorization")))
        base = "/org/proj-id/_apis/git/repositories/repo-id/pullRequests/42/threads"
        if method == "GET" and path == base:
            return 200, {"value": self.threads, "count": len(self.threads)}
        if method == "POST" and path == base:
            thread = {"id": 100 + len(self.threads), "comments": [
                {"id": 1, "content": body["comments"][0]["content"]}]}
            self.threads.append(thread)
            return 200, thread
        if method == "PATCH" and path.startswith(base + "/"):
            thread_id, _, comment_id = path[len(base) + 1:].split("/")
            thread = next(t for t in self.threads if t["id"] == int(thread_id))
            comment = next(c for c in thread["comments"] if c["id"] == int(comment_id))
            comment["content"] = body["content"]
            return 200, comment
        return 404, {"message": "not found"}


@pytest.fixture
def devops():
    state = FakeAzureDevOps()
    with json_server(state.handle) as url:
        state.env = {"SYSTEM_COLLECTIONURI": f"{url}/org/",
                     "SYSTEM_TEAMPROJECTID": "proj-id", "BUILD_REPOSITORY_ID": "repo-id",
                     "SYSTEM_PULLREQUEST_PULLREQUESTID": "42", "SYSTEM_ACCESSTOKEN": "job-token"}
        yield state


PREVIEW = """Previewing update (dev):
 +  databricks:index:ModelServing bakehouse_autolog-endpoint create
Policies:
    ✅ lakehouse-mlops@v0.0.1 (local: infra/policy)
Resources:
    + 1 to create
    40 unchanged
"""


def test_comment_is_posted_once_then_updated(devops, tmp_path, monkeypatch):
    dev = tmp_path / "preview-dev.txt"
    dev.write_text(PREVIEW)
    for key, value in devops.env.items():
        monkeypatch.setenv(key, value)
    argv = ["--title", "Pulumi preview", "--section", f"dev={dev}", "--section", f"prod={tmp_path / 'none.txt'}"]

    assert pr_comment.main(argv) == 0
    (thread,) = devops.threads
    content = thread["comments"][0]["content"]
    assert content.startswith(pr_comment.MARKER)
    assert "**dev**: + 1 to create, 40 unchanged" in content
    assert "bakehouse_autolog-endpoint create" in content
    assert "**prod**: no preview output" in content
    method, _, query, body, auth = devops.requests[-1]
    assert (method, query["api-version"], auth) == ("POST", [pr_comment.API_VERSION], "Bearer job-token")
    assert body["status"] == 1 and body["comments"][0]["commentType"] == 1

    dev.write_text(PREVIEW.replace("+ 1 to create", "~ 1 to update"))
    assert pr_comment.main(argv) == 0
    assert len(devops.threads) == 1, "a second run added a thread instead of updating the first"
    assert "~ 1 to update" in devops.threads[0]["comments"][0]["content"]
    assert devops.requests[-1][0] == "PATCH"


def test_outside_a_pull_request_it_only_prints(tmp_path, capsys, monkeypatch):
    for key in ("SYSTEM_PULLREQUEST_PULLREQUESTID", "SYSTEM_ACCESSTOKEN"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "p.txt").write_text(PREVIEW)
    assert pr_comment.main(["--section", f"dev={tmp_path / 'p.txt'}"]) == 0
    out = capsys.readouterr().out
    assert "40 unchanged" in out and "printed only" in out


def test_rejected_post_fails_the_step(devops, tmp_path, monkeypatch):
    for key, value in devops.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SYSTEM_PULLREQUEST_PULLREQUESTID", "7")  # the fake knows only PR 42: 404
    assert pr_comment.main(["--section", f"dev={tmp_path / 'missing.txt'}"]) == 1


def test_long_output_is_truncated_from_the_top(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("x" * (pr_comment.MAX_SECTION_CHARS * 2) + "\nResources:\n    3 unchanged\n")
    body = pr_comment.comment_body("t", [("dev", path), ("prod", path)])
    assert len(body) < 150_000
    assert "truncated" in body and "**dev**: 3 unchanged" in body


def test_summary_reports_the_first_error():
    text = "Previewing update (prod):\nerror: preview failed: stack is locked\nerror: another\n"
    assert pr_comment.summarize(text) == ["error: preview failed: stack is locked"]


CATALOG = {"lakehouse-mlops:catalog": {"name": "c"}}


def test_promotion_between_stacks_with_different_model_schemas_is_refused(tmp_path):
    """The workloads address both environments' models with one MLOPS_SCHEMA: a source stack keeping its models in
    another schema would be looked for in the wrong place, so the env export refuses it by name."""
    _write_stack(tmp_path, "dev", {"databricks:host": "https://dev", **CATALOG, "lakehouse-mlops:schemas": {"models": "ml_dev"}})
    _write_stack(tmp_path, "prod", {"databricks:host": "https://prod", **CATALOG, "lakehouse-mlops:schemas": {"models": "ml"}})
    with pytest.raises(stack_info.StackInfoError, match="Pulumi.dev.yaml keeps its models in schema 'ml_dev' but "
                                                         "Pulumi.prod.yaml in 'ml'"):
        stack_info.stack_env("prod", "dev", tmp_path)
    _write_stack(tmp_path, "dev", {"databricks:host": "https://dev", **CATALOG})  # unset: the infra program's default
    _write_stack(tmp_path, "prod", {"databricks:host": "https://prod", **CATALOG,
                                    "lakehouse-mlops:schemas": {"models": "bakehouse_ml"}})
    assert stack_info.stack_env("prod", "dev", tmp_path)["MLOPS_SCHEMA"] == "bakehouse_ml"
