"""Smoke test of a deployed stack: each serving endpoint answers (where a champion exists) and each watcher
job runs once to success.

    python infra/pipeline/smoke.py --stack dev --outputs outputs-dev.json

The endpoint names, watcher job ids and registered model names come from `pulumi stack output --json`
(saved to the --outputs file); the models from the `models` output or Pulumi.<stack>.yaml. Databricks
auth is whatever databricks-sdk finds in the environment: in the pipeline DATABRICKS_AUTH_TYPE=azure-cli
inside an AzureCLI@2 task (workload identity federation), the host from the stack config.

Per model (stack output `models.<model>`: endpoint_name, watcher_job_id, registered_model):
- an endpoint in the outputs (the infra program declares it once the model has a `champion` alias)
  must become READY and answer one request, a row built from the model spec. HTTP 200 with predictions
  passes; HTTP 400 (the model answered but refused the synthetic row) passes with a warning; anything
  else fails. No endpoint (deferred: no champion yet) is skipped with a warning; in the pipeline it does
  not come to that, as DeployDev first trains the first champions and deploys again
  (infra/pipeline/bootstrap.py, docs/deploy.md).
- the watcher job is started (`run_now`) and must finish with result SUCCESS; for a model with no
  champion yet (endpoint deferred) a run that does not succeed is a warning (nothing to watch yet).
Exit code 0 when nothing failed, 1 otherwise; every check is one line of the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, DatabricksError, OperationFailed

from infra.pipeline.report import Report
from infra.pipeline.stack_info import (
    ENDPOINT_KEY,
    REGISTERED_MODEL_KEY,
    StackInfoError,
    job_id,
    load_outputs,
    model_entries,
    workspace_host,
)
from infra.pipeline.stack_info import WATCHER_JOB_KEY as JOB_KEY
from workloads.serving.databricks import EndpointError, query_serving_endpoint

CHAMPION = "champion"


@dataclass
class Target:
    """What the smoke test checks for one model."""

    model: str
    endpoint: str | None = None
    job_id: int | None = None
    registered_model: str | None = None


class SmokeReport(Report):
    """One line per check; `warn` and `skip` lines are pipeline warnings, `FAIL` lines errors."""

    def __init__(self):
        super().__init__("smoke", frozenset({"warn", "skip"}))


def targets(stack: str, outputs: dict[str, Any], only: list[str] | None = None) -> list[Target]:
    """Per deployed model: endpoint name, watcher job id and registered model from the `models` output.

    The models are the keys of that output, else (no outputs yet) the stack config's model list. A model
    whose endpoint name is null has its endpoint deferred (no champion at deploy time).
    """
    return [Target(model, entry.get(ENDPOINT_KEY) or None, job_id(entry.get(JOB_KEY), model, "watcher"),
                   entry.get(REGISTERED_MODEL_KEY))
            for model, entry in model_entries(stack, outputs) if not only or model in only]


def example_row(model: str) -> dict[str, Any]:
    """One request row with every feature of the model's spec, typed as the spec says."""
    from workloads.specs import load_spec

    samples = {"string": "smoke-test", "bigint": 1, "int": 1, "double": 1.0, "float": 1.0,
               "boolean": False, "timestamp": "2024-01-01T00:00:00", "date": "2024-01-01"}
    return {column.name: samples[column.type] for column in load_spec(model).features}


def wait_ready(w: WorkspaceClient, name: str, deadline: float, poll_s: float) -> str | None:
    """None when the endpoint is READY with no update in progress, else why not (at the ``time.monotonic()``
    ``deadline``, which all endpoints share: they become ready in parallel, so the smoke test's worst case is one
    timeout, not one per endpoint)."""
    while True:
        state = w.serving_endpoints.get(name).state
        ready = state.ready.value if state and state.ready else "UNKNOWN"
        update = state.config_update.value if state and state.config_update else "UNKNOWN"
        if update == "UPDATE_FAILED":
            return f"config update failed (ready={ready})"
        if ready == "READY" and update != "IN_PROGRESS":
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            return f"not ready by the smoke test's deadline (ready={ready}, config_update={update})"
        time.sleep(min(poll_s, left))


def check_endpoint(w: WorkspaceClient, target: Target, report: Report, deadline: float,
                   poll_s: float) -> None:
    model = target.model
    if not target.endpoint:
        report.add("skip", model, f"no serving endpoint in the stack outputs: deferred because "
                                  f"{target.registered_model or 'the registered model'} had no '{CHAMPION}' "
                                  "alias at deploy time (bootstrap a champion: docs/deploy.md)")
        return
    try:
        problem = wait_ready(w, target.endpoint, deadline, poll_s)
    except DatabricksError as exc:
        report.add("FAIL", model, f"endpoint {target.endpoint}: {exc.error_code or type(exc).__name__}: {exc}")
        return
    if problem:
        report.add("FAIL", model, f"endpoint {target.endpoint}: {problem}")
        return
    try:
        response = query_serving_endpoint(w, target.endpoint, dataframe_records=[example_row(model)])
    except BadRequest as exc:
        # The endpoint is up and the model answered; it only refused the synthetic row.
        report.add("warn", model, f"endpoint {target.endpoint} answered HTTP 400 to the synthetic row "
                                  f"({exc.error_code}: {exc})")
        return
    except DatabricksError as exc:
        report.add("FAIL", model, f"endpoint {target.endpoint} did not answer: "
                                  f"{exc.error_code or type(exc).__name__}: {exc}")
        return
    except EndpointError as exc:  # route-optimized, but the pipeline authenticates without OAuth
        report.add("FAIL", model, str(exc))
        return
    predictions = response.predictions
    if not predictions:
        report.add("FAIL", model, f"endpoint {target.endpoint} answered without predictions")
        return
    report.add("ok", model, f"endpoint {target.endpoint} answered: prediction {predictions[0]!r}")


def run_watchers(w: WorkspaceClient, todo: list[Target], report: Report, timeout_s: float) -> None:
    """Start every watcher job, then wait for each run; each must end with result SUCCESS. The runs go on in
    parallel and share one deadline, ``timeout_s`` from the start: the worst case is one timeout, not one per run."""
    started = []
    for target in todo:
        if target.job_id is None:
            report.add("FAIL", target.model, "the stack outputs no watcher job id for this model")
            continue
        try:
            waiter = w.jobs.run_now(target.job_id)
        except DatabricksError as exc:
            report.add("FAIL", target.model, f"watcher job {target.job_id} did not start: {exc}")
            continue
        started.append((target, waiter))
    deadline = time.monotonic() + timeout_s
    for target, waiter in started:
        try:
            run = waiter.result(timeout=timedelta(seconds=max(deadline - time.monotonic(), 0.001)))
        except (OperationFailed, TimeoutError, DatabricksError) as exc:
            report.add("FAIL", target.model, f"watcher job {target.job_id} run {waiter.run_id}: {exc}")
            continue
        state = run.state
        result = state.result_state.value if state and state.result_state else "NONE"
        where = f" ({run.run_page_url})" if run.run_page_url else ""
        if result == "SUCCESS":
            report.add("ok", target.model, f"watcher job {target.job_id} run {run.run_id} succeeded{where}")
        else:
            message = f": {state.state_message}" if state and state.state_message else ""
            text = f"watcher job {target.job_id} run {run.run_id} ended {result}{message}{where}"
            if target.endpoint:
                report.add("FAIL", target.model, text)
            else:
                # No champion yet (endpoint deferred): nothing to watch, so a failed run does not block
                # the release; it is reported. Models with a champion must watch successfully.
                report.add("warn", target.model, text + " (no champion yet)")


def smoke(stack: str, outputs: dict[str, Any], w: WorkspaceClient, *, models: list[str] | None = None,
          watcher: bool = True, ready_timeout_s: float = 1800, run_timeout_s: float = 3600,
          poll_s: float = 15) -> Report:
    report = SmokeReport()
    todo = targets(stack, outputs, models)
    if not todo:
        report.add("FAIL", "-", f"no models to check in stack {stack}")
        return report
    deadline = time.monotonic() + ready_timeout_s
    for target in todo:
        try:
            check_endpoint(w, target, report, deadline, poll_s)
        except DatabricksError as exc:
            report.add("FAIL", target.model, f"{exc.error_code or type(exc).__name__}: {exc}")
    if watcher:
        run_watchers(w, todo, report, run_timeout_s)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke test of a deployed lakehouse-mlops stack.")
    parser.add_argument("--stack", required=True, help="Pulumi stack (dev, prod)")
    parser.add_argument("--outputs", help="file holding `pulumi stack output --json` of the stack")
    parser.add_argument("--host", help="workspace URL (default: DATABRICKS_HOST, else the stack config)")
    parser.add_argument("--model", action="append", dest="models", help="only this model (repeatable)")
    parser.add_argument("--no-watcher", action="store_true", help="do not run the watcher jobs")
    parser.add_argument("--ready-timeout", type=float, default=1800, help="seconds for an endpoint to be READY")
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds for a watcher run to finish")
    parser.add_argument("--poll", type=float, default=15, help="seconds between endpoint state polls")
    args = parser.parse_args(argv)
    try:
        outputs = load_outputs(args.outputs)
        w = WorkspaceClient(host=workspace_host(args.stack, args.host))
        report = smoke(args.stack, outputs, w, models=args.models, watcher=not args.no_watcher,
                       ready_timeout_s=args.ready_timeout, run_timeout_s=args.run_timeout, poll_s=args.poll)
    except (StackInfoError, json.JSONDecodeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    counts = {s: sum(1 for line in report.lines if line[0] == s) for s in ("ok", "warn", "skip", "FAIL")}
    print("smoke: " + ", ".join(f"{n} {s}" for s, n in counts.items()), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
