"""infra/pipeline/bootstrap.py (train the first champions in DeployDev) against a fake Databricks REST API on
127.0.0.1: the real databricks-sdk WorkspaceClient sends the requests, the fake answers in the shapes of the
SDK's own dataclasses (Jobs 2.2 `run-now` / `runs/get`, Unity Catalog registered models; every answer is
checked to round-trip through them). Then the DeployDev step that runs it, taken from azure-pipelines.yml and
run with bash (a `uv` stub), and the condition of the `pulumi up` that follows it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pipeline_rules as rules
import pytest
from databricks.sdk.service.catalog import RegisteredModelInfo
from databricks.sdk.service.jobs import Run, RunNowResponse

from infra.pipeline import bootstrap
from tests.fakes import fake_databricks_auth, json_server

CATALOG = "mlops_dev.bakehouse_ml"
RUN_PAGE = "https://adb-1.1.azuredatabricks.net/?o=1#job/{job}/run/{run}"


# ------------------------------------------------------------------------- run states (documented shapes)
def queued() -> dict:
    return {"state": {"life_cycle_state": "QUEUED", "state_message": "Waiting for an active run to finish"},
            "status": {"state": "QUEUED", "queue_details": {"code": "MAX_CONCURRENT_RUNS_REACHED",
                                                             "message": "Maximum concurrent runs reached"}}}


def running() -> dict:
    return {"state": {"life_cycle_state": "RUNNING", "state_message": "In run"}, "status": {"state": "RUNNING"}}


def terminated(result: str, code: str, kind: str, message: str = "") -> dict:
    return {"state": {"life_cycle_state": "TERMINATED", "result_state": result, "state_message": message},
            "status": {"state": "TERMINATED",
                       "termination_details": {"code": code, "type": kind, "message": message}}}


def succeeded() -> dict:
    return terminated("SUCCESS", "SUCCESS", "SUCCESS")


TRAIN_FAILED = "Task train failed with message: ValueError: the training table mlops_dev.bakehouse_ml.sales is empty"


@dataclass
class Job:
    """A training job: the successive `runs/get` states of its run (the last repeats) and the champion version
    the run sets when it ends in SUCCESS (None: the gate refuses the trained version)."""

    registered_model: str
    states: list[dict]
    sets_champion: int | None = 1


@dataclass
class FakeWorkspace:
    aliases: dict[str, list[dict]] = field(default_factory=dict)  # registered model -> aliases (absent: 404)
    denied: set[str] = field(default_factory=set)  # registered models the caller may not read
    jobs: dict[int, Job] = field(default_factory=dict)
    runs: dict[int, int] = field(default_factory=dict)  # run id -> job id
    requests: list[tuple[str, str, dict, dict | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # answers that broke the documented shapes
    url: str = ""

    def handle(self, method, path, query, body, headers):
        self.requests.append((method, path, query, body))
        try:
            return self._answer(method, path, query, body)
        except AssertionError as exc:  # answered as a client error, so the SDK does not retry for minutes
            self.problems.append(str(exc))
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"fake: {exc}"}

    def _answer(self, method, path, query, body):
        if method == "GET" and path.startswith("/api/2.1/unity-catalog/models/"):
            name = path.rsplit("/", 1)[1]
            if name in self.denied:
                return 403, {"error_code": "PERMISSION_DENIED",
                             "message": f"User does not have USE SCHEMA on Schema '{CATALOG}'"}
            if name not in self.aliases:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Model '{name}' does not exist."}
            assert query.get("include_aliases") == ["true"], "aliases are only answered when asked for"
            answer = {"full_name": name}
            if self.aliases[name]:  # an empty list is left out, as the SDK's as_dict leaves it out
                answer["aliases"] = list(self.aliases[name])
            return 200, _checked(RegisteredModelInfo, answer)
        if method == "POST" and path == "/api/2.2/jobs/run-now":
            job_id = int(body["job_id"])
            if job_id not in self.jobs:
                return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Job {job_id} does not exist."}
            run_id = 5000 + job_id
            self.runs[run_id] = job_id
            return 200, _checked(RunNowResponse, {"run_id": run_id, "number_in_job": run_id})
        if method == "GET" and path == "/api/2.2/jobs/runs/get":
            run_id = int(query["run_id"][0])
            job = self.jobs[self.runs[run_id]]
            state = job.states.pop(0) if len(job.states) > 1 else job.states[0]
            if state["state"].get("result_state") == "SUCCESS" and job.sets_champion is not None:
                # the training run registered a version and made it champion (workloads.training)
                aliases = self.aliases.setdefault(job.registered_model, [])
                if not any(a["alias_name"] == "champion" for a in aliases):
                    aliases.append({"alias_name": "champion", "version_num": job.sets_champion})
            return 200, _checked(Run, {"job_id": self.runs[run_id], "run_id": run_id,
                                       "run_page_url": RUN_PAGE.format(job=self.runs[run_id], run=run_id), **state})
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"fake has no {method} {path}"}

    def calls(self, method: str, path: str) -> list[tuple[dict, dict | None]]:
        return [(query, body) for m, p, query, body in self.requests if m == method and p == path]

    @property
    def started_jobs(self) -> list[int]:
        return [int(body["job_id"]) for _, body in self.calls("POST", "/api/2.2/jobs/run-now")]


def _checked(cls, payload: dict) -> dict:
    """The answer exactly as the SDK's dataclass serialises it: a misspelt or undocumented field fails here."""
    assert cls.from_dict(payload).as_dict() == payload, f"{cls.__name__} does not round-trip {payload}"
    return payload


@pytest.fixture
def fake(monkeypatch):
    workspace = FakeWorkspace()
    with json_server(workspace.handle) as url:
        workspace.url = url
        fake_databricks_auth(monkeypatch, url)
        yield workspace
    assert not workspace.problems, workspace.problems


def registered(model: str) -> str:
    return f"{CATALOG}.{model}_model"


def outputs_file(tmp_path, models: dict[str, tuple[int, str | None]]) -> str:
    """`pulumi stack output --json` with each model's training job id and endpoint name (None: deferred)."""
    data = {"catalog": "mlops_dev", "models": {
        model: {"registered_model": registered(model), "endpoint_name": endpoint, "training_job_id": job_id,
                "watcher_job_id": job_id + 100, "batch_job_id": job_id + 200}
        for model, (job_id, endpoint) in models.items()}}
    path = tmp_path / "outputs-dev.json"
    path.write_text(json.dumps(data))
    return str(path)


class FakeTime:
    """Injected clock and sleep: waiting takes no real time, and every sleep is recorded."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_main(path: str, *extra: str, time: FakeTime | None = None) -> int:
    time = time or FakeTime()
    return bootstrap.main(["--stack", "dev", "--outputs", path, "--poll-seconds", "15", *extra],
                          sleep=time.sleep, clock=time.clock)


# ------------------------------------------------------------------------------------------ the script
def test_models_without_a_champion_are_trained_and_the_stack_deployed_again(fake, tmp_path, capsys):
    fake.aliases[registered("bakehouse_autolog")] = [{"alias_name": "champion", "version_num": 4}]
    fake.aliases[registered("bakehouse_large_order")] = [{"alias_name": "challenger", "version_num": 1}]
    # bakehouse_decorators: the registered model does not exist yet (404), as on a brand-new stack
    fake.jobs[10] = Job(registered("bakehouse_autolog"), [succeeded()])
    fake.jobs[11] = Job(registered("bakehouse_decorators"), [queued(), running(), succeeded()], sets_champion=1)
    fake.jobs[12] = Job(registered("bakehouse_large_order"), [running(), succeeded()], sets_champion=2)
    path = outputs_file(tmp_path, {"bakehouse_autolog": (10, "bakehouse-autolog"),
                                   "bakehouse_decorators": (11, None), "bakehouse_large_order": (12, None)})
    time = FakeTime()

    code = run_main(path, time=time)

    out = capsys.readouterr().out
    assert code == bootstrap.TRAINED == 3
    assert fake.started_jobs == [11, 12], "run_now exactly for the models without a champion, by training job id"
    # all runs are started before any is waited on, then they are polled together
    order = [p for m, p, _, _ in fake.requests if p.startswith("/api/2.2/jobs/")]
    assert order[:2] == ["/api/2.2/jobs/run-now"] * 2 and "/api/2.2/jobs/run-now" not in order[2:]
    polled = [int(q["run_id"][0]) for q, _ in fake.calls("GET", "/api/2.2/jobs/runs/get")]
    assert polled == [5011, 5012, 5011, 5012, 5011], "each unfinished run once per poll round"
    assert time.sleeps == [15, 15]
    # each result in the log: run id, run page, life-cycle and result state; then the champion it set
    assert "ok    bakehouse_autolog: mlops_dev.bakehouse_ml.bakehouse_autolog_model has champion v4" in out
    for model, job, version in (("bakehouse_decorators", 11, 1), ("bakehouse_large_order", 12, 2)):
        (line,) = [x for x in out.splitlines() if x.startswith(f"new   {model}:")]
        assert f"training job {job} run {5000 + job}" in line
        assert "life cycle TERMINATED, result SUCCESS" in line and RUN_PAGE.format(job=job, run=5000 + job) in line
        assert line.endswith(f"{registered(model)} champion v{version}")
    assert "train bakehouse_decorators: mlops_dev.bakehouse_ml.bakehouse_decorators_model has no 'champion' alias: " \
           "started training job 11 run 5011" in out
    assert out.rstrip().endswith("bootstrap: 1 ok, 2 new, 0 FAIL (deploy again)")
    # the champion was read again after each run, through the SDK's registered_models.get(include_aliases)
    reads = [p for m, p, _, _ in fake.requests if "unity-catalog" in p]
    assert reads.count(f"/api/2.1/unity-catalog/models/{registered('bakehouse_decorators')}") == 2


def test_a_failed_training_run_fails_with_its_reason(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_BUILD", "True")
    fake.aliases[registered("bakehouse_autolog")] = []
    fake.aliases[registered("bakehouse_large_order")] = []
    fake.jobs[10] = Job(registered("bakehouse_autolog"), [running(), succeeded()])
    fake.jobs[12] = Job(registered("bakehouse_large_order"),
                        [running(), terminated("FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR", TRAIN_FAILED)])
    path = outputs_file(tmp_path, {"bakehouse_autolog": (10, None), "bakehouse_large_order": (12, None)})

    code = run_main(path)

    out = capsys.readouterr().out
    assert code == bootstrap.FAILED, "one failed run fails the stage even though the other model got a champion"
    (fail,) = [x for x in out.splitlines() if x.startswith("FAIL  bakehouse_large_order:")]
    assert "training job 12 run 5012" in fail and "life cycle TERMINATED, result FAILED" in fail
    assert f"message: {TRAIN_FAILED}" in fail
    assert "termination RUN_EXECUTION_ERROR/CLIENT_ERROR" in fail and "run/5012" in fail
    assert "##vso[task.logissue type=error]bootstrap bakehouse_large_order: training job 12 run 5012" in out
    assert out.count("##vso[task.logissue type=error]") == 1, "only the failure is an error"
    assert "new   bakehouse_autolog:" in out
    assert out.rstrip().endswith("bootstrap: 0 ok, 1 new, 1 FAIL (failed)")


@pytest.mark.parametrize("final,expected", [
    (terminated("TIMEDOUT", "CANCELED", "SUCCESS", "Run timed out after 3600 seconds"), "result TIMEDOUT"),
    (terminated("CANCELED", "USER_CANCELED", "SUCCESS", "Run cancelled by someone@example.com"), "USER_CANCELED"),
    (terminated("SUCCESS_WITH_FAILURES", "SUCCESS_WITH_FAILURES", "SUCCESS", "1 of 2 tasks failed"),
     "result SUCCESS_WITH_FAILURES"),
    ({"state": {"life_cycle_state": "SKIPPED", "state_message": "An active run of this job exists"},
      "status": {"state": "TERMINATED", "termination_details": {"code": "SKIPPED", "type": "SUCCESS",
                                                                "message": "An active run of this job exists"}}},
     "life cycle SKIPPED, result none"),
    ({"state": {"life_cycle_state": "INTERNAL_ERROR", "state_message": "Jobs service unavailable"},
      "status": {"state": "TERMINATED", "termination_details": {"code": "INTERNAL_ERROR", "type": "INTERNAL_ERROR",
                                                                "message": "Jobs service unavailable"}}},
     "life cycle INTERNAL_ERROR"),
])
def test_every_final_state_but_success_fails(fake, tmp_path, capsys, final, expected):
    fake.jobs[12] = Job(registered("bakehouse_large_order"), [final])
    path = outputs_file(tmp_path, {"bakehouse_large_order": (12, None)})

    assert run_main(path) == bootstrap.FAILED

    (fail,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("FAIL")]
    assert expected in fail and "did not succeed" in fail
    assert len(fake.calls("GET", "/api/2.2/jobs/runs/get")) == 1, "a final state is not polled again"


def test_runs_still_going_at_the_timeout_fail_after_a_bounded_wait(fake, tmp_path, capsys):
    fake.jobs[10] = Job(registered("bakehouse_autolog"), [running()])
    fake.jobs[12] = Job(registered("bakehouse_large_order"), [queued()])
    path = outputs_file(tmp_path, {"bakehouse_autolog": (10, None), "bakehouse_large_order": (12, None)})
    time = FakeTime()

    code = run_main(path, "--timeout-minutes", "1", time=time)

    out = capsys.readouterr().out
    assert code == bootstrap.FAILED
    assert sum(time.sleeps) == 60, "the bound is overall, not per run"
    assert len(fake.calls("GET", "/api/2.2/jobs/runs/get")) == 2 * 5  # t = 0, 15, 30, 45, 60
    fails = {m: x for s, m, x in (line.split(None, 2) for line in out.splitlines() if line.startswith("FAIL"))}
    assert "life cycle RUNNING" in fails["bakehouse_autolog:"] and "not finished after 1 minutes" in fails[
        "bakehouse_autolog:"]
    assert "life cycle QUEUED" in fails["bakehouse_large_order:"] and "Waiting for an active run" in fails[
        "bakehouse_large_order:"]


def test_a_successful_run_that_sets_no_champion_fails(fake, tmp_path, capsys):
    fake.aliases[registered("bakehouse_large_order")] = []
    fake.jobs[12] = Job(registered("bakehouse_large_order"), [running(), succeeded()], sets_champion=None)
    path = outputs_file(tmp_path, {"bakehouse_large_order": (12, None)})

    assert run_main(path) == bootstrap.FAILED

    (fail,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("FAIL")]
    assert "result SUCCESS" in fail and "still has no 'champion' alias" in fail and "thresholds" in fail
    reads = [p for m, p, _, _ in fake.requests if "unity-catalog" in p]
    assert len(reads) == 2, "the alias is read before starting and again after the run"


def test_nothing_to_do_when_every_model_has_a_champion(fake, tmp_path, capsys):
    for model in ("bakehouse_autolog", "bakehouse_large_order"):
        fake.aliases[registered(model)] = [{"alias_name": "champion", "version_num": 1}]
    fake.jobs[10] = Job(registered("bakehouse_autolog"), [succeeded()])
    path = outputs_file(tmp_path, {"bakehouse_autolog": (10, "bakehouse-autolog"),
                                   "bakehouse_large_order": (12, "bakehouse-large-order")})

    assert run_main(path) == bootstrap.NOTHING_TO_DO

    assert fake.started_jobs == [] and not fake.calls("GET", "/api/2.2/jobs/runs/get")
    assert capsys.readouterr().out.rstrip().endswith("bootstrap: 2 ok, 0 new, 0 FAIL (nothing to do)")


def test_a_champion_the_deploy_did_not_see_yet_deploys_again_without_training(fake, tmp_path, capsys):
    """Champion set after `pulumi up` read it (e.g. a training run someone started by hand): no endpoint in
    the outputs, so deploying again declares it; nothing is trained."""
    fake.aliases[registered("bakehouse_autolog")] = [{"alias_name": "champion", "version_num": 2}]
    path = outputs_file(tmp_path, {"bakehouse_autolog": (10, None)})

    assert run_main(path) == bootstrap.TRAINED
    assert fake.started_jobs == []
    assert "declared no endpoint" in capsys.readouterr().out


def test_unreadable_aliases_unknown_jobs_and_missing_ids_fail_without_training(fake, tmp_path, capsys):
    fake.denied.add(registered("bakehouse_autolog"))
    fake.aliases[registered("bakehouse_large_order")] = []
    path = outputs_file(tmp_path, {"bakehouse_autolog": (10, None), "bakehouse_large_order": (99, None)})
    data = json.loads(Path(path).read_text())
    data["models"]["bakehouse_decorators"] = {"registered_model": registered("bakehouse_decorators")}
    Path(path).write_text(json.dumps(data))

    assert run_main(path) == bootstrap.FAILED

    fails = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")}
    assert "PERMISSION_DENIED" in fails["bakehouse_autolog:"], "a permission error is not 'no champion'"
    assert "training job 99 did not start" in fails["bakehouse_large_order:"]
    assert "Job 99 does not exist" in fails["bakehouse_large_order:"]
    assert "no usable training job id" in fails["bakehouse_decorators:"]
    assert fake.started_jobs == [99]


def test_bad_outputs_and_arguments_fail(fake, tmp_path, capsys):
    path = tmp_path / "outputs-dev.json"
    path.write_text("[1, 2]")
    assert run_main(str(path)) == bootstrap.FAILED
    assert "expected the JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run_main(str(path), "--timeout-minutes", "0")
    assert exc.value.code not in (bootstrap.NOTHING_TO_DO, bootstrap.TRAINED)
    assert not fake.requests


def test_output_keys_match_what_the_infra_program_exports():
    """The keys bootstrap.py reads are the ones ModelDeployment puts in each model's stack output entry."""
    source = (rules.ROOT / "infra" / "components" / "model.py").read_text()
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Attribute) and t.attr == "outputs" for t in node.targets)):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    assert {bootstrap.TRAINING_JOB_KEY, bootstrap.REGISTERED_MODEL_KEY, bootstrap.ENDPOINT_KEY} <= keys, keys


# ------------------------------------------------------------------------------------- the DeployDev step
UV_STUB = r"""#!/usr/bin/env bash
[ "$1" = run ] && [ "$2" = --locked ] || { echo "uv stub: unexpected $*" >&2; exit 99; }
shift 2
if [ "$1" = python ] && [ "$2" = infra/pipeline/bootstrap.py ]; then
  shift 2; echo "$*" >> "$LOG"
  if [ -n "${BOOTSTRAP_EXIT:-}" ]; then echo "bootstrap stub"; exit "$BOOTSTRAP_EXIT"; fi
  exec "$REAL_PYTHON" infra/pipeline/bootstrap.py "$@"
fi
echo "uv stub: unexpected $*" >&2; exit 98
"""
SETVARIABLE = re.compile(r"^##vso\[task\.setvariable variable=(\w+)\](.*)$", re.MULTILINE)


def deploy_dev_steps() -> list[dict]:
    return rules.job_steps(rules.stage_by_id(rules.load_pipeline(), "DeployDev")["jobs"][0])


def bootstrap_step() -> dict:
    (step,) = [s for s in deploy_dev_steps() if s.get("name") == "bootstrap"]
    return step


@pytest.fixture
def run_step(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text(UV_STUB)
    (bin_dir / "uv").chmod(0o755)
    temp = tmp_path / "agent-temp"
    temp.mkdir()
    log = tmp_path / "bootstrap-args"

    def run(**env):
        script = bootstrap_step()["inputs"]["inlineScript"].replace("$(Agent.TempDirectory)", str(temp))
        assert not re.search(r"\$\([A-Z]\w*\.", script), "an Azure macro is left unsubstituted"
        result = subprocess.run(["bash", "-c", script], cwd=rules.ROOT, capture_output=True, text=True, timeout=120,
                                check=False, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log),
                                                  "REAL_PYTHON": sys.executable, **env})
        variables = dict(SETVARIABLE.findall(result.stdout))
        return result, variables, log.read_text().splitlines() if log.exists() else []

    run.temp = temp
    return run


@pytest.mark.parametrize("exit_code,step_fails,bootstrapped", [
    (0, False, None),     # every model has a champion
    (3, False, "true"),   # trained: deploy again
    (1, True, None),      # a training run failed
    (2, True, None),      # uv's own error (or argparse): never read as "trained"
])
def test_the_step_turns_exit_codes_into_the_variable_or_a_failure(run_step, exit_code, step_fails, bootstrapped):
    result, variables, calls = run_step(BOOTSTRAP_EXIT=str(exit_code))
    assert (result.returncode != 0) == step_fails, result.stderr
    if step_fails:
        assert result.returncode == exit_code, "the step fails with the script's own code"
    assert variables.get("bootstrapped") == bootstrapped
    assert calls == [f"--stack dev --outputs {run_step.temp}/outputs-dev.json --timeout-minutes 60"]


def test_the_step_runs_the_real_script_against_a_workspace(run_step, fake):
    """End to end through bash and the real bootstrap.py: a new stack's model is trained, the step succeeds and
    sets the variable; on the next run (champion present, endpoint declared) it sets nothing."""
    fake.aliases[registered("bakehouse_autolog")] = []
    fake.jobs[10] = Job(registered("bakehouse_autolog"), [succeeded()], sets_champion=1)
    (run_step.temp / "outputs-dev.json").write_text(json.dumps({"models": {"bakehouse_autolog": {
        "registered_model": registered("bakehouse_autolog"), "endpoint_name": None, "training_job_id": 10}}}))
    env = {"DATABRICKS_HOST": fake.url, "DATABRICKS_TOKEN": "dapi-fake",
           "DATABRICKS_CONFIG_FILE": "/nonexistent/databrickscfg", "TF_BUILD": "True"}

    result, variables, _ = run_step(**env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert variables == {"bootstrapped": "true"}
    assert "new   bakehouse_autolog: training job 10 run 5010" in result.stdout
    assert fake.started_jobs == [10]

    (run_step.temp / "outputs-dev.json").write_text(json.dumps({"models": {"bakehouse_autolog": {
        "registered_model": registered("bakehouse_autolog"), "endpoint_name": "bakehouse-autolog",
        "training_job_id": 10}}}))
    result, variables, _ = run_step(**env)
    assert result.returncode == 0 and variables == {}
    assert fake.started_jobs == [10], "nothing trained the second time"

    fake.aliases[registered("bakehouse_autolog")] = []
    fake.jobs[10] = Job(registered("bakehouse_autolog"), [terminated("FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR",
                                                                     TRAIN_FAILED)])
    result, variables, _ = run_step(**env)
    assert result.returncode == 1 and variables == {}
    assert "##vso[task.logissue type=error]bootstrap bakehouse_autolog: training job 10 run 5010" in result.stdout
    assert TRAIN_FAILED in result.stdout


def _step_runs(step: dict, variables: dict[str, str], earlier: list[str]) -> bool:
    """Whether Azure Pipelines runs a step: its condition (default succeeded()) over the earlier steps' results."""
    return bool(rules.evaluate(rules.parse_condition(str(step.get("condition") or "succeeded()")), variables, earlier))


def test_the_second_dev_deploy_runs_only_when_bootstrapped_and_before_the_smoke_test(run_step):
    steps = deploy_dev_steps()
    scripts = [rules.step_script(s) for s in steps]
    ups = [i for i, text in enumerate(scripts) if re.search(r"\bpulumi up\b(?=.*--stack dev\b)(?=.*--yes)", text)]
    at = steps.index(bootstrap_step())
    smoke = next(i for i, text in enumerate(scripts) if "infra/pipeline/smoke.py" in text)
    assert len(ups) == 2 and ups[0] < at < ups[1] == at + 1 < smoke
    again = steps[ups[1]]
    assert again["task"] == "AzureCLI@2" and again["inputs"]["keepAzSessionActive"] is True
    assert again["inputs"]["azureSubscription"] == steps[ups[0]]["inputs"]["azureSubscription"]
    # it exports the outputs again, to the file the smoke test reads
    assert 'pulumi stack output --stack dev --json > "$(Agent.TempDirectory)/outputs-dev.json"' in scripts[ups[1]]
    assert '--outputs "$(Agent.TempDirectory)/outputs-dev.json"' in scripts[smoke]

    # Walk the job as the agent does: the bootstrap step's real script decides the variable.
    for exit_code, second_up, smoke_runs in ((3, True, True), (0, False, True), (1, False, False)):
        result, variables, _ = run_step(BOOTSTRAP_EXIT=str(exit_code))
        earlier = ["Succeeded"] * at + ["Succeeded" if result.returncode == 0 else "Failed"]
        assert _step_runs(again, variables, earlier) is second_up, exit_code
        if second_up:
            earlier.append("Succeeded")
        assert _step_runs(steps[smoke], variables, earlier) is smoke_runs, exit_code
    condition = rules.parse_condition(again["condition"])
    assert not rules.evaluate(condition, {"bootstrapped": "true"}, ["Succeeded", "Failed"])
    assert not rules.evaluate(condition, {"bootstrapped": "false"}, ["Succeeded"])


def test_a_failed_bootstrap_fails_dev_and_stops_the_promotion(doc):
    """The step failing (exit 1) fails DeployDev; prod is then never deployed."""
    results = rules.simulate(doc, rules.RUNS["push to main"], fail={"DeployDev"})
    assert results["DeployDev"] == "Failed" and results["DeployProd"] == "Skipped"
    assert rules.check_deploy_dev(doc) == []
