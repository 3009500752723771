"""Train the first champion of each deployed model that has none, so the same DeployDev run declares its endpoint.

    python infra/pipeline/bootstrap.py --stack dev --outputs outputs-dev.json [--timeout-minutes 60]
        exit 0  nothing to do: every deployed model has a `champion` alias (and the deploy declared its endpoint)
        exit 3  trained: at least one model got its first champion; the pipeline runs `pulumi up` again
        exit 1  a training run failed, timed out or passed without setting a champion, or any other error
                (auth, network, malformed outputs): the step fails with the reason
        (not 2: `uv run` exits 2 on its own errors and argparse on bad arguments, which must fail the
        step rather than read as "trained"; champion.py's informative codes skip 2 as well)

The infra program declares a model's serving endpoint only once the model has a `champion` alias
(infra/components/serving.py), so a new stack deploys without endpoints. For every model in the stack
output `models` (each entry: `training_job_id`, `registered_model`, `endpoint_name`) whose registered model
has no `champion` alias, this starts the model's training job (`jobs.run_now`), all of them first, then waits
for every run together, bounded by --timeout-minutes overall (polling `jobs.get_run`). Training registers a
version and makes it `champion` when it passes the spec's thresholds (workloads.training), so after a
successful run the alias is read again: a run that succeeds without a champion (the gate refused the
version) fails like a failed run. Each model's result is one line of the log (run id, run page, life-cycle
and result state, state message, termination code); under Azure Pipelines (TF_BUILD) failures are also
`##vso[task.logissue type=error]` lines, as smoke.py writes them. A run still going at the timeout is left
running (it may still set the champion; the next pipeline run then deploys the endpoint).

Run states, as Databricks documents them for `POST /api/2.2/jobs/run-now` (answers `run_id`) and
`GET /api/2.2/jobs/runs/get` (the databricks-sdk's `Run`, `RunState`, `RunStatus` dataclasses):
- `state.life_cycle_state`: QUEUED, PENDING, RUNNING, TERMINATING, BLOCKED and WAITING_FOR_RETRY are not
  final; TERMINATED, SKIPPED and INTERNAL_ERROR are terminal.
  https://databricks.github.io/sdk-js/api/types/_databricks_sdk-jobs.v2.RunLifeCycleState_RunLifeCycleState.html
- `state.result_state` is only set for terminal life-cycle states; SUCCESS is the only result that counts
  here (SUCCESS_WITH_FAILURES means some tasks failed; FAILED, TIMEDOUT, CANCELED, UPSTREAM_FAILED... fail).
  https://databricks.github.io/sdk-js/api/interfaces/_databricks_sdk-jobs.v2.RunState.html
  https://databricks.github.io/sdk-js/api/types/_databricks_sdk-jobs.v2.RunResultState_RunResultState.html
- `status.state` (the newer life cycle: ... TERMINATING, TERMINATED) with `status.termination_details`
  (`code` such as RUN_EXECUTION_ERROR or USER_CANCELED, `type` SUCCESS/CLIENT_ERROR/INTERNAL_ERROR/
  CLOUD_FAILURE, `message`), given for TERMINATING and TERMINATED runs; read as well, so a run is final when
  either field says so and the log shows the termination reason.
  https://databricks.github.io/sdk-js/api/types/_databricks_sdk-jobs.v2.TerminationCode_Code.html
  https://databricks.github.io/sdk-js/api/types/_databricks_sdk-jobs.v2.TerminationType_Type.html
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service.jobs import Run

from infra.pipeline.champion import CHAMPION, champion_version
from infra.pipeline.report import Report
from infra.pipeline.stack_info import (
    ENDPOINT_KEY,
    REGISTERED_MODEL_KEY,
    TRAINING_JOB_KEY,
    StackInfoError,
    job_id,
    load_outputs,
    model_entries,
    workspace_host,
)

NOTHING_TO_DO, FAILED, TRAINED = 0, 1, 3

# Terminal values of `state.life_cycle_state` and `status.state` (module docstring for the sources).
TERMINAL_LIFE_CYCLE = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
TERMINAL_STATUS = frozenset({"TERMINATED"})
PASSING_RESULT = "SUCCESS"


@dataclass
class TrainingRun:
    """One started training run and what is known of it."""

    model: str
    job_id: int
    registered_model: str
    run_id: int
    run: Run | None = None  # the last `runs/get` answer
    error: str | None = None  # why the run could not be read (no more polling)

    @property
    def finished(self) -> bool:
        if self.error:
            return True
        if self.run is None:
            return False
        state, status = self.run.state, self.run.status
        life_cycle = state.life_cycle_state.value if state and state.life_cycle_state else None
        v2 = status.state.value if status and status.state else None
        return life_cycle in TERMINAL_LIFE_CYCLE or v2 in TERMINAL_STATUS

    @property
    def result_state(self) -> str | None:
        state = self.run.state if self.run else None
        return state.result_state.value if state and state.result_state else None

    def describe(self) -> str:
        """Run id, run page, life-cycle and result state, state message and termination details."""
        run = self.run
        parts = [f"training job {self.job_id} run {self.run_id}"]
        if run is None:
            return parts[0]
        state, status = run.state, run.status
        life_cycle = state.life_cycle_state.value if state and state.life_cycle_state else "UNKNOWN"
        parts.append(f"life cycle {life_cycle}, result {self.result_state or 'none'}")
        if state and state.state_message:
            parts.append(f"message: {state.state_message}")
        details = status.termination_details if status else None
        if details and (details.code or details.message):
            code = details.code.value if details.code else "?"
            kind = f"/{details.type.value}" if details.type else ""
            parts.append(f"termination {code}{kind}" + (f": {details.message}" if details.message else ""))
        if run.run_page_url:
            parts.append(run.run_page_url)
        return "; ".join(parts)


class BootstrapReport(Report):
    """One line per model: `ok` (already has a champion), `train` (started), `new` (got its first champion),
    `FAIL`; printed as it happens; its exit code says what the pipeline does next."""

    def __init__(self):
        super().__init__("bootstrap")

    @property
    def trained(self) -> bool:
        return any(status == "new" for status, _, _ in self.lines)

    @property
    def exit_code(self) -> int:
        if self.failed:
            return FAILED
        return TRAINED if self.trained else NOTHING_TO_DO


def start_runs(w: WorkspaceClient, stack: str, outputs: dict[str, Any], report: BootstrapReport) -> list[TrainingRun]:
    """Start the training job of every deployed model without a champion; report the others."""
    started = []
    for model, entry in model_entries(stack, outputs):
        registered = entry.get(REGISTERED_MODEL_KEY)
        if not registered:
            report.add("FAIL", model, f"the stack outputs no `{REGISTERED_MODEL_KEY}` for this model")
            continue
        try:
            version = champion_version(w, registered)
        except DatabricksError as exc:
            report.add("FAIL", model, f"cannot read the aliases of {registered}: "
                                      f"{exc.error_code or type(exc).__name__}: {exc}")
            continue
        if version is not None:
            if entry.get(ENDPOINT_KEY):
                report.add("ok", model, f"{registered} has champion v{version}")
            else:
                # Set after this deploy looked (e.g. a manual training run): deploying again declares it.
                report.add("new", model, f"{registered} has champion v{version} but the deploy declared no "
                                         "endpoint for it yet")
            continue
        try:
            job = job_id(entry.get(TRAINING_JOB_KEY), model, "training")
            if job is None:
                raise StackInfoError(f"{model}: the stack outputs no usable training job id (None)")
            waiter = w.jobs.run_now(job)
        except StackInfoError as exc:
            report.add("FAIL", model, str(exc))
            continue
        except DatabricksError as exc:
            report.add("FAIL", model, f"training job {job} did not start: "
                                      f"{exc.error_code or type(exc).__name__}: {exc}")
            continue
        report.add("train", model, f"{registered} has no '{CHAMPION}' alias: started training job {job} "
                                   f"run {waiter.run_id}")
        started.append(TrainingRun(model, job, registered, waiter.run_id))
    return started


def wait_for_runs(w: WorkspaceClient, runs: list[TrainingRun], timeout_s: float, poll_s: float,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> list[TrainingRun]:
    """Poll every unfinished run until all are final or `timeout_s` has passed overall; returns the runs
    still unfinished at the deadline (each run's last `runs/get` answer is in `.run`)."""
    deadline = clock() + timeout_s
    pending = list(runs)
    while pending:
        for training in pending:
            try:
                training.run = w.jobs.get_run(training.run_id)
            except DatabricksError as exc:  # the SDK has retried what is transient already
                training.error = f"cannot read the run: {exc.error_code or type(exc).__name__}: {exc}"
        pending = [training for training in pending if not training.finished]
        if not pending or clock() >= deadline:
            break
        sleep(min(poll_s, max(deadline - clock(), 0.0)))
    return pending


def judge(w: WorkspaceClient, training: TrainingRun, report: Report) -> None:
    """A finished run: SUCCESS and a champion now, else a failure saying why."""
    if training.error:
        report.add("FAIL", training.model, f"{training.describe()}: {training.error}")
        return
    if training.result_state != PASSING_RESULT:
        report.add("FAIL", training.model, f"{training.describe()}: the training run did not succeed")
        return
    try:
        version = champion_version(w, training.registered_model)
    except DatabricksError as exc:
        report.add("FAIL", training.model, f"{training.describe()}; cannot read the aliases of "
                                           f"{training.registered_model}: {exc}")
        return
    if version is None:
        report.add("FAIL", training.model,
                   f"{training.describe()}: the run succeeded but {training.registered_model} still has no "
                   f"'{CHAMPION}' alias: the trained version did not pass the spec's thresholds (the first-"
                   "champion gate), see the run's output")
        return
    report.add("new", training.model, f"{training.describe()}: {training.registered_model} champion v{version}")


def bootstrap(stack: str, outputs: dict[str, Any], w: WorkspaceClient, *, timeout_s: float = 3600,
              poll_s: float = 30, sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> BootstrapReport:
    """Train each deployed model that has no champion; the report's exit code says what the pipeline does."""
    report = BootstrapReport()
    runs = start_runs(w, stack, outputs, report)
    if not runs:
        return report
    unfinished = wait_for_runs(w, runs, timeout_s, poll_s, sleep, clock)
    for training in runs:
        if training in unfinished:
            report.add("FAIL", training.model,
                       f"{training.describe()}: not finished after {timeout_s / 60:g} minutes (left running)")
        else:
            judge(w, training, report)
    return report


def main(argv: list[str] | None = None, client: WorkspaceClient | None = None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="Pulumi stack (dev)")
    parser.add_argument("--outputs", required=True, help="file holding `pulumi stack output --json` of the stack")
    parser.add_argument("--host", help="workspace URL (default: DATABRICKS_HOST, else the stack config)")
    parser.add_argument("--timeout-minutes", type=float, default=60,
                        help="overall bound on waiting for the training runs")
    parser.add_argument("--poll-seconds", type=float, default=30, help="seconds between run state polls")
    args = parser.parse_args(argv)
    if args.timeout_minutes <= 0 or args.poll_seconds <= 0:
        parser.error("--timeout-minutes and --poll-seconds must be positive")
    try:
        outputs = load_outputs(args.outputs)
        if client is None:
            client = WorkspaceClient(host=workspace_host(args.stack, args.host))
        report = bootstrap(args.stack, outputs, client, timeout_s=args.timeout_minutes * 60,
                           poll_s=args.poll_seconds, sleep=sleep, clock=clock)
    except (StackInfoError, DatabricksError, json.JSONDecodeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("TF_BUILD"):
            print(f"##vso[task.logissue type=error]bootstrap: {exc}", flush=True)
        return FAILED
    counts = {s: sum(1 for line in report.lines if line[0] == s) for s in ("ok", "new", "FAIL")}
    verdict = {NOTHING_TO_DO: "nothing to do", TRAINED: "deploy again", FAILED: "failed"}[report.exit_code]
    print("bootstrap: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({verdict})", flush=True)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
