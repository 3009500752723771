"""infra/pipeline/smoke.py against a fake Databricks REST API on 127.0.0.1: the real databricks-sdk client
serialises the requests, the fake answers like the workspace would."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from infra.pipeline import champion, smoke, stack_info
from tests.fakes import fake_databricks_auth, json_server
from workloads.specs import load_spec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["bakehouse_autolog", "bakehouse_decorators", "bakehouse_large_order"]


class FakeWorkspace:
    """State behind the fake REST API, and a log of every request it got."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.endpoint_states: dict[str, list[dict]] = {}  # name -> successive `state` objects
        self.invocation: dict[str, tuple[int, dict]] = {}  # name -> (status, body)
        self.run_results: dict[int, str] = {}  # job id -> result_state
        self.runs: dict[int, int] = {}  # run id -> job id
        self.aliases: dict[str, list[dict]] = {}  # registered model -> aliases
        self.denied: set[str] = set()  # registered models the caller may not read

    def handle(self, method: str, path: str, query: dict, body: dict | None, headers) -> tuple[int, dict]:
        self.requests.append((method, path, body))
        parts = path.strip("/").split("/")
        if method == "GET" and path.startswith("/api/2.1/unity-catalog/models/"):
            name = parts[-1]
            if name in self.denied:
                return 403, {"error_code": "PERMISSION_DENIED", "message": f"User does not have USE CATALOG on {name}"}
            if name not in self.aliases:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Model {name} does not exist."}
            if query.get("include_aliases") != ["true"]:
                return 200, {"full_name": name}
            return 200, {"full_name": name, "aliases": self.aliases[name]}
        if method == "GET" and path.startswith("/api/2.0/serving-endpoints/"):
            name = parts[-1]
            if name not in self.endpoint_states:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Endpoint {name} not found"}
            states = self.endpoint_states[name]
            state = states.pop(0) if len(states) > 1 else states[0]
            return 200, {"name": name, "state": state}
        if method == "POST" and path.startswith("/serving-endpoints/") and path.endswith("/invocations"):
            return self.invocation.get(parts[1], (404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                                         "message": "no such endpoint"}))
        if method == "POST" and path.endswith("/jobs/run-now"):
            job_id = int(body["job_id"])
            if job_id not in self.run_results:
                return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Job {job_id} does not exist."}
            run_id = 1000 + job_id
            self.runs[run_id] = job_id
            return 200, {"run_id": run_id, "number_in_job": run_id}
        if method == "GET" and path.endswith("/jobs/runs/get"):
            run_id = int(query["run_id"][0])
            result = self.run_results[self.runs[run_id]]
            state = {"life_cycle_state": "TERMINATED", "result_state": result,
                     "state_message": "" if result == "SUCCESS" else "Task evaluate failed: boom"}
            return 200, {"run_id": run_id, "job_id": self.runs[run_id], "state": state,
                         "run_page_url": f"https://example/#job/{self.runs[run_id]}/run/{run_id}"}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"fake has no {method} {path}"}

    def calls(self, method: str, suffix: str) -> list[dict | None]:
        return [body for m, p, body in self.requests if m == method and p.endswith(suffix)]


@pytest.fixture
def fake(monkeypatch):
    workspace = FakeWorkspace()
    with json_server(workspace.handle) as url:
        workspace.url = url
        fake_databricks_auth(monkeypatch, url)
        yield workspace


def outputs(endpoints: dict[str, str | None], jobs: dict[str, int]) -> dict:
    return {"catalog": "mlops_dev", "models": {
        model: {"registered_model": f"mlops_dev.bakehouse_ml.{model}_model", "endpoint_name": endpoints.get(model),
                "watcher_job_id": jobs.get(model), "training_job_id": 1, "batch_job_id": 2}
        for model in endpoints}}


def client(fake) -> WorkspaceClient:
    return WorkspaceClient(host=fake.url, token="dapi-fake", auth_type="pat")


READY = {"ready": "READY", "config_update": "NOT_UPDATING"}


def test_healthy_stack_passes_and_the_sdk_sent_real_requests(fake):
    fake.endpoint_states["bakehouse-autolog"] = [READY]
    fake.invocation["bakehouse-autolog"] = (200, {"predictions": [3.25]})
    fake.run_results.update({101: "SUCCESS", 102: "SUCCESS"})
    out = outputs({"bakehouse_autolog": "bakehouse-autolog", "bakehouse_decorators": None},
                  {"bakehouse_autolog": 101, "bakehouse_decorators": 102})

    report = smoke.smoke("dev", out, client(fake), poll_s=0.01)

    assert not report.failed, report.lines
    assert [(status, model) for status, model, _ in report.lines] == [
        ("ok", "bakehouse_autolog"), ("skip", "bakehouse_decorators"),  # endpoints
        ("ok", "bakehouse_autolog"), ("ok", "bakehouse_decorators")]  # watcher runs
    # The endpoint got one dataframe_records row with every feature of the spec, typed by the spec.
    (body,) = fake.calls("POST", "/serving-endpoints/bakehouse-autolog/invocations")
    (row,) = body["dataframe_records"]
    spec = load_spec("bakehouse_autolog")
    assert list(row) == spec.feature_names
    assert row["unitPrice"] == 1 and row["product"] == "smoke-test"
    # Each watcher job was started once, by id; the deferred endpoint was never touched.
    assert sorted(b["job_id"] for b in fake.calls("POST", "/jobs/run-now")) == [101, 102]
    assert not [p for _, p, _ in fake.requests if "bakehouse-decorators" in p]


def test_failed_watcher_run_fails_the_smoke_with_its_message(fake):
    fake.endpoint_states["bakehouse-large-order"] = [READY]
    fake.invocation["bakehouse-large-order"] = (200, {"predictions": [1]})
    fake.run_results[7] = "FAILED"
    out = outputs({"bakehouse_large_order": "bakehouse-large-order"}, {"bakehouse_large_order": 7})

    report = smoke.smoke("dev", out, client(fake), poll_s=0.01)

    assert report.failed
    (fail,) = [m for s, _, m in report.lines if s == "FAIL"]
    assert "ended FAILED" in fail and "Task evaluate failed: boom" in fail and "run/1007" in fail


def test_failed_watcher_run_of_a_model_without_champion_only_warns(fake):
    fake.run_results[7] = "FAILED"
    out = outputs({"bakehouse_large_order": None}, {"bakehouse_large_order": 7})

    report = smoke.smoke("dev", out, client(fake), poll_s=0.01)

    assert not report.failed
    assert [(s, "ended FAILED" in m and "no champion yet" in m) for s, _, m in report.lines] == [
        ("skip", False), ("warn", True)]


def test_endpoint_that_never_gets_ready_fails_after_the_timeout(fake):
    fake.endpoint_states["bakehouse-autolog"] = [{"ready": "NOT_READY", "config_update": "IN_PROGRESS"}]
    fake.run_results[1] = "SUCCESS"
    out = outputs({"bakehouse_autolog": "bakehouse-autolog"}, {"bakehouse_autolog": 1})

    report = smoke.smoke("dev", out, client(fake), ready_timeout_s=0.2, poll_s=0.02)

    assert report.failed
    (fail,) = [m for s, _, m in report.lines if s == "FAIL"]
    assert "not ready by the smoke test's deadline" in fail and "IN_PROGRESS" in fail
    assert not fake.calls("POST", "/invocations"), "queried an endpoint that was not ready"
    assert len(fake.calls("GET", "/serving-endpoints/bakehouse-autolog")) >= 2, "did not poll"


def test_endpoints_and_watcher_runs_share_one_deadline_each(fake, monkeypatch):
    """Endpoints become ready, and watcher runs go on, in parallel: the smoke test's worst case is one ready timeout
    plus one run timeout (what the pipeline's step timeout is sized for), not one per model. Time is virtual here."""
    clock = {"now": 0.0}
    monkeypatch.setattr(smoke.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(smoke.time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s))
    never = {"ready": "NOT_READY", "config_update": "IN_PROGRESS"}
    endpoints = {m: m.replace("_", "-") for m in MODELS}
    for name in endpoints.values():
        fake.endpoint_states[name] = [never]
    fake.run_results.update({1: "SUCCESS", 2: "SUCCESS", 3: "SUCCESS"})
    out = outputs(endpoints, dict(zip(MODELS, (1, 2, 3), strict=True)))

    report = smoke.smoke("dev", out, client(fake), ready_timeout_s=600, poll_s=15)

    assert [s for s, _, m in report.lines if "deadline" in m] == ["FAIL"] * 3
    assert clock["now"] == 600  # one shared ready deadline: three endpoints did not take 3 x 600 s
    polls = [len(fake.calls("GET", f"/serving-endpoints/{name}")) for name in endpoints.values()]
    assert polls == [41, 1, 1]  # the first is polled until the deadline, the others once, already past it


def test_endpoint_becoming_ready_is_waited_for(fake):
    fake.endpoint_states["bakehouse-autolog"] = [{"ready": "NOT_READY", "config_update": "IN_PROGRESS"},
                                                 {"ready": "READY", "config_update": "IN_PROGRESS"}, READY]
    fake.invocation["bakehouse-autolog"] = (200, {"predictions": [1.0]})
    out = outputs({"bakehouse_autolog": "bakehouse-autolog"}, {})

    report = smoke.smoke("dev", out, client(fake), watcher=False, ready_timeout_s=5, poll_s=0.01)

    assert [s for s, _, _ in report.lines] == ["ok"]
    # three polls until ready, then the query's own look at the endpoint (route-optimized or not)
    assert len(fake.calls("GET", "/serving-endpoints/bakehouse-autolog")) == 4


@pytest.mark.parametrize("status,payload,expected", [
    (400, {"error_code": "BAD_REQUEST", "message": "Incompatible input types for column product"}, "warn"),
    (500, {"error_code": "INTERNAL_ERROR", "message": "model server crashed"}, "FAIL"),
    (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "endpoint gone"}, "FAIL"),
    (200, {"predictions": []}, "FAIL"),
])
def test_endpoint_answers_are_judged(fake, status, payload, expected):
    fake.endpoint_states["bakehouse-autolog"] = [READY]
    fake.invocation["bakehouse-autolog"] = (status, payload)
    out = outputs({"bakehouse_autolog": "bakehouse-autolog"}, {})

    report = smoke.smoke("dev", out, client(fake), watcher=False, poll_s=0.01)

    (line,) = report.lines
    assert line[0] == expected, line
    if status != 200:
        assert payload["message"] in line[2]


def test_missing_job_id_and_unknown_job_fail(fake):
    out = outputs({"bakehouse_autolog": None, "bakehouse_large_order": None}, {"bakehouse_large_order": 99})

    report = smoke.smoke("dev", out, client(fake), poll_s=0.01)

    fails = {model: message for status, model, message in report.lines if status == "FAIL"}
    assert "no watcher job id" in fails["bakehouse_autolog"]
    assert "did not start" in fails["bakehouse_large_order"] and "Job 99 does not exist" in fails["bakehouse_large_order"]


def test_cli_reads_the_outputs_file_and_exits_nonzero_on_failure(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_BUILD", "True")
    fake.endpoint_states["bakehouse-large-order"] = [READY]
    fake.invocation["bakehouse-large-order"] = (200, {"predictions": [0]})
    fake.run_results.update({1: "SUCCESS", 2: "TIMEDOUT"})
    path = tmp_path / "outputs-dev.json"
    path.write_text(json.dumps(outputs({"bakehouse_autolog": None, "bakehouse_large_order": "bakehouse-large-order"},
                                       {"bakehouse_autolog": 1, "bakehouse_large_order": 2})))

    code = smoke.main(["--stack", "dev", "--outputs", str(path), "--poll", "0.01"])

    out = capsys.readouterr().out
    assert code == 1
    assert "ended TIMEDOUT" in out
    assert "##vso[task.logissue type=error]smoke bakehouse_large_order" in out
    assert "smoke: 2 ok, 0 warn, 1 skip, 1 FAIL" in out

    fake.run_results[2] = "SUCCESS"
    assert smoke.main(["--stack", "dev", "--outputs", str(path), "--model", "bakehouse_large_order"]) == 0


def test_without_outputs_the_models_come_from_the_stack_config():
    todo = smoke.targets("dev", {})
    assert [t.model for t in todo] == stack_info.deployed_models("dev", None)
    assert all(t.endpoint is None and t.job_id is None for t in todo)


def test_output_keys_match_what_the_infra_program_exports():
    """The keys smoke.py reads are the ones ModelDeployment puts in each model's stack output entry."""
    source = (ROOT / "infra" / "components" / "model.py").read_text()
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Attribute) and t.attr == "outputs" for t in node.targets)):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    assert {smoke.ENDPOINT_KEY, smoke.JOB_KEY, smoke.REGISTERED_MODEL_KEY} <= keys, keys
    main = (ROOT / "infra" / "__main__.py").read_text()
    assert 'pulumi.export("models", {name: deployment.outputs' in main


def test_champion_check_decides_whether_to_promote(fake, capsys, monkeypatch):
    """champion.py: source champion read through the SDK (fake REST API), target champion's provenance tags
    through the workloads registry, as promote_across compares them."""
    from workloads import registry

    source = "mlops_dev.bakehouse_ml.bakehouse_autolog_model"
    fake.aliases[source] = [{"alias_name": "previous", "version_num": 2}, {"alias_name": "champion", "version_num": 3}]
    fake.aliases["mlops_dev.bakehouse_ml.bakehouse_decorators_model"] = [{"alias_name": "challenger", "version_num": 1}]
    targets = {}  # registered model -> VersionInfo of its champion

    def get_alias(settings, spec, alias):
        assert alias == "champion"
        return targets.get(settings.registered_model(spec))

    monkeypatch.setattr(registry, "get_alias", get_alias)
    for key in ("MLOPS_HOME", "MLOPS_CATALOG", "MLOPS_BACKEND", "MLOPS_ENV"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLOPS_CATALOG_DEV", "mlops_dev")
    monkeypatch.setenv("MLOPS_CATALOG_PROD", "mlops_prod")
    w = client(fake)

    def decide(model):
        code = champion.main(["--model", model, "--from", "dev", "--to", "prod"], client=w)
        return code, capsys.readouterr()

    code, out = decide("bakehouse_autolog")
    assert (code, out.out.strip()) == (champion.PROMOTE, f"{source} v3 -> mlops_prod.bakehouse_ml.bakehouse_autolog_model")
    first_api_call = next(p for _, p, _ in fake.requests if p.startswith("/api/"))
    assert first_api_call == f"/api/2.1/unity-catalog/models/{source}"

    def info(tags):
        return registry.VersionInfo("mlops_prod.bakehouse_ml.bakehouse_autolog_model", 5, None, ("champion",), tags, "",
                                    0)

    targets["mlops_prod.bakehouse_ml.bakehouse_autolog_model"] = info({"source_model": source, "source_version": "3"})
    assert decide("bakehouse_autolog")[0] == champion.UP_TO_DATE
    targets["mlops_prod.bakehouse_ml.bakehouse_autolog_model"] = info({"source_model": source, "source_version": "2"})
    assert decide("bakehouse_autolog")[0] == champion.PROMOTE, "an older copy is not up to date"

    assert decide("bakehouse_decorators")[0] == champion.NO_CHAMPION
    assert decide("bakehouse_large_order")[0] == champion.NO_CHAMPION  # no such model in dev

    fake.denied.add(source)
    code, out = decide("bakehouse_autolog")
    assert code == 1, "a permission error must fail the step, not read as no champion"
    assert "User does not have USE CATALOG" in out.err
