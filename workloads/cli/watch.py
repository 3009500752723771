"""``mlops watch ...``, ``mlops rollback``, ``mlops promote`` and ``mlops drift simulate/reset``.

The watch steps are what the Databricks watcher job's ``python_wheel_task``s call; locally they pass
values through a run-state file (``MLOPS_RUN_ID`` names the run; ``watch run`` makes one).
"""

from __future__ import annotations

import uuid

import typer
from rich.markup import escape
from rich.table import Table

from workloads.cli.common import console, group, state, step

MODEL = typer.Option(..., "--model", "-m", help="Model spec name.")
GRANULARITY = typer.Option("1 day", "--granularity", help="Monitor granularity whose latest window is judged.")
THRESHOLDS = typer.Option(None, "--threshold", help="Stack override, e.g. rmse=max:4.5 (repeatable).")
ENV = typer.Option(None, "--env", help="dev or prod (default: the global --env).")
FEATURES = typer.Option(None, "--feature", help="Covariate drift: shift only this feature (repeatable; default every "
                                                "feature).")
RUN_STATE = typer.Option(None, "--run-state",
                         help="Databricks only: the directory where this job run's steps pass values (the watcher "
                              "job passes /Volumes/<catalog>/<schema>/<volume>/runs/{{job.run_id}}). Locally "
                              "the run-state file is <home>/runs/$MLOPS_RUN_ID/task_values.json.")


def _evaluation_table(evaluation) -> Table:
    table = Table("check", "observed", "threshold", "status", title=f"window {evaluation.window_start or '-'}")
    for c in evaluation.checks:
        shown = "-" if c.observed is None else f"{c.observed:.4g}"
        colour = {"ok": "green", "breach": "red", "not_significant": "green"}.get(c.status, "yellow")
        # escape: "[product]" would otherwise be read as rich markup and vanish from the table.
        table.add_row(escape(f"{c.metric} [{c.scope}]"), shown, f"{c.direction} {c.threshold:g}",
                      f"[{colour}]{c.status.replace('_', ' ')}[/]")
    return table


def _task_values(settings, task_key: str, run_state: str | None = None):
    from workloads.ports.task_values import get_task_values

    return get_task_values(settings, task_key=task_key, run_dir=run_state)


def _print_evaluation(evaluation, skipped: str | None = None) -> None:
    console.print(_evaluation_table(evaluation))
    console.print(f"health: {evaluation.health}; retrain needed: {evaluation.retrain_needed}"
                  + (f" ({skipped})" if skipped else ""))
    for reason in evaluation.reasons:
        console.print(f"  - {escape(reason)}")


def register(app: typer.Typer) -> None:
    watch = typer.Typer(help="Watcher steps: monitor -> evaluate -> retrain (the Databricks job's tasks).",
                        no_args_is_help=True)

    @watch.command("monitor")
    def monitor(model: str = MODEL, granularity: str = GRANULARITY, env: str = ENV,
                run_state: str = RUN_STATE) -> None:
        """Unpack new payloads, refresh the monitor, read and publish the latest window's metrics."""
        from workloads.specs import load_spec
        from workloads.watcher.steps import MONITOR_TASK, step_monitor

        settings = state.settings(env)
        with step(f"Monitoring {model}"):
            observed = step_monitor(settings, load_spec(model), _task_values(settings, MONITOR_TASK, run_state),
                                    granularity)
        console.print(f"window {observed.window_start or '-'}: {observed.rows} rows, {observed.labelled_rows} labelled; "
                      + ", ".join(f"{k}={v:.3f}" for k, v in observed.quality.items() if k in
                                  ("root_mean_squared_error", "r2_score", "accuracy_score", "f1_score")))

    @watch.command("evaluate")
    def evaluate(model: str = MODEL, granularity: str = GRANULARITY, threshold: list[str] = THRESHOLDS,
                 force: bool = typer.Option(False, "--force", help="Retrain regardless of the metrics."),
                 env: str = ENV, run_state: str = RUN_STATE) -> None:
        """Judge the latest window against the thresholds; publish retrain_needed and the reasons."""
        from workloads.specs import load_spec
        from workloads.watcher.evaluation import parse_overrides
        from workloads.watcher.steps import EVALUATE_TASK, step_evaluate

        settings = state.settings(env)
        task_values = _task_values(settings, EVALUATE_TASK, run_state)
        evaluation, _, skipped = step_evaluate(settings, load_spec(model), task_values, granularity,
                                               parse_overrides(threshold), force)
        _print_evaluation(evaluation, skipped)

    @watch.command("retrain")
    def retrain(model: str = MODEL, threshold: list[str] = THRESHOLDS, env: str = ENV,
                run_state: str = RUN_STATE) -> None:
        """Train a challenger on fresh data; promote it only if it passes the gate and beats the champion."""
        from workloads.specs import load_spec
        from workloads.watcher.evaluation import parse_overrides
        from workloads.watcher.steps import RETRAIN_TASK, step_retrain

        settings = state.settings(env)
        with step(f"Retraining {model}"):
            outcome = step_retrain(settings, load_spec(model), _task_values(settings, RETRAIN_TASK, run_state),
                                   parse_overrides(threshold))
        console.print(outcome.summary())

    @watch.command("run")
    def run(model: str = MODEL, granularity: str = GRANULARITY, threshold: list[str] = THRESHOLDS,
            force: bool = typer.Option(False, "--force", help="Retrain regardless of the metrics."),
            env: str = ENV,
            stack: str | None = typer.Option(None, "--stack", help="Apply this stack's threshold overrides "
                                                                   "(Pulumi.<stack>.yaml), as its watcher job does.")
            ) -> None:
        """The whole watcher graph in one command, like the Databricks job."""
        from workloads.errors import MlopsError
        from workloads.ports.task_values import LocalTaskValues
        from workloads.specs import load_spec
        from workloads.watcher.evaluation import parse_overrides
        from workloads.watcher.steps import run_watcher

        if stack and threshold:
            raise MlopsError("give --stack or --threshold, not both (the stack's overrides are its thresholds)")
        if stack:
            from infra.components.jobs import threshold_args
            from infra.config import stack_config_from_file

            threshold = threshold_args(stack_config_from_file(stack), model)[1::2]
            console.print(f"thresholds from stack {stack}: {', '.join(threshold) or 'none (the spec’s own)'}")
        settings = state.settings(env)
        run_id = f"watch-{uuid.uuid4().hex[:12]}"
        with step(f"Watching {model} (run {run_id})"):
            result = run_watcher(settings, load_spec(model), LocalTaskValues(settings.home, run_id), granularity,
                                 parse_overrides(threshold), force)
        _print_evaluation(result.evaluation)
        if result.retrain:
            console.print(result.retrain.summary())

    app.add_typer(watch, name="watch")

    @app.command("rollback")
    def rollback(model: str = MODEL, reason: str = typer.Option("manual rollback", help="Why (audited)."),
                 to_version: int | None = typer.Option(
                     None, "--to-version", help="Serve this version (needed to roll back again after a rollback).")
                 ) -> None:
        """Champion <- previous, once; one audit row (on Databricks the endpoint follows at the next `pulumi up`)."""
        from workloads.alerts import notify
        from workloads.promotion import rollback as do_rollback
        from workloads.specs import load_spec

        settings = state.settings()
        record = do_rollback(settings, load_spec(model), reason, to_version=to_version)
        notify(settings, "rollback", model, f"{model}: rolled back v{record.from_version} -> v{record.to_version}")
        console.print(f"{model}: rolled back: champion v{record.from_version} -> v{record.to_version}; "
                      f"'previous' is now v{record.from_version}. A second `mlops rollback` is refused; use "
                      f"--to-version N to choose another version. {record.serving}", soft_wrap=True)

    @app.command("promote")
    def promote(model: str = MODEL, source: str = typer.Option("dev", "--from", help="Source environment."),
                target: str = typer.Option("prod", "--to", help="Target environment."),
                force: bool = typer.Option(False, "--force",
                                           help="Allow promoting against the environment order (prod -> dev).")
                ) -> None:
        """Copy the source champion into the target model, validate it there, then make it champion."""
        from workloads.alerts import notify
        from workloads.environments import check_promotion_order, promote_across
        from workloads.specs import load_spec

        settings = state.settings()
        check_promotion_order(source, target, force)
        with step(f"Promoting {model} from {source} to {target}"):
            result = promote_across(settings, load_spec(model), source, target)
        notify(settings.for_env(target), "promotion", model,
               f"{model}: {source} v{result.source_version} -> {target} v{result.target_version}")
        console.print(f"{result.source} -> {settings.for_env(target).registered_model(model)} v{result.target_version} "
                      f"(champion); " + ", ".join(f"{k}={result.metrics[k]:.3f}" for k in load_spec(model).thresholds
                                                  if k in result.metrics), soft_wrap=True)
        if result.record is not None and result.record.serving:
            console.print(result.record.serving, soft_wrap=True)

    drift = group(app, "drift", "Drift: simulate it, reset it, analyze it.")

    @drift.command("simulate")
    def simulate(model: str = MODEL,
                 kind: str = typer.Option("concept", "--kind",
                                          help="covariate (the features move: numeric ones by --shift standard "
                                               "deviations, categorical ones toward their rarest categories) or "
                                               "concept (the label's relation to them changes)."),
                 requests: int = typer.Option(None, "--requests",
                                              help="Requests to send (default: enough rows in one window for the "
                                                   "spec's evidence rules to judge: the most of min_rows, "
                                                   "drift_evidence.min_rows and min_expected_per_category x the "
                                                   "categories of the widest categorical feature)."),
                 batch_size: int = typer.Option(5, "--batch-size", help="Rows per request."),
                 url: str = typer.Option(None, "--url", help="Running local endpoint (default: the running `mlops "
                                                             "serve` of this model in this home, else an in-process "
                                                             "one)."),
                 days_ahead: float = typer.Option(1.0, "--days-ahead",
                                                  help="Log the requests this many days after now (a later "
                                                       "monitoring window), on the running `mlops serve`, --url or "
                                                       "the in-process endpoint alike (the endpoint's loopback-only "
                                                       "/mlops/days-ahead/N route); 0: now."),
                 shift: float = typer.Option(None, "--shift",
                                             help="Standard deviations (default 2): covariate: each numeric feature "
                                                  "moves by this many of its column's; concept (regression): the "
                                                  "label moves by this many of the label's."),
                 scale: float = typer.Option(None, "--scale",
                                             help="Concept (regression): multiply the label's deviations from its "
                                                  "mean by this (default 1)."),
                 flip_share: float = typer.Option(None, "--flip-share",
                                                  help="Concept (classification): share of rows whose label becomes "
                                                       "another class (default 0.75)."),
                 category_share: float = typer.Option(None, "--category-share",
                                                      help="Covariate: share of each categorical feature's categories, "
                                                           "its rarest, that rows move to (default 0.25)."),
                 category_mass: float = typer.Option(None, "--category-mass",
                                                     help="Covariate: share of each categorical feature's rows moved "
                                                          "to those categories (default 0.8)."),
                 feature: list[str] = FEATURES,
                 seed: int = typer.Option(7, "--seed", help="Seed of the drift and of the rows sent.")) -> None:
        """Send drifted, labelled traffic through the endpoint (tagged, so reset can remove it)."""
        from workloads.drift import shift_options
        from workloads.drift import simulate as run_simulation
        from workloads.serving.running import record_path, running_url
        from workloads.specs import load_spec
        from workloads.traffic import TrafficError

        settings = state.settings()
        spec = load_spec(model)
        options = shift_options(kind, spec, shift=shift, scale=scale, flip_share=flip_share,
                                category_share=category_share, category_mass=category_mass, features=feature)
        source = "--url"
        if url is None and (url := running_url(settings, model)):
            source = f"the running `mlops serve` recorded in {record_path(settings, model)}"
            # Two endpoints must not write one payload table: send to the running one.
            console.print(f"sending to the running `mlops serve` at {url}", soft_wrap=True)
        try:
            with step(f"Simulating {kind} drift on {model}"):
                result = run_simulation(settings, spec, kind, requests=requests, batch_size=batch_size, url=url,
                                        days_ahead=days_ahead, seed=seed, options=options)
        except TrafficError as exc:
            if url is None:
                raise
            raise TrafficError(f"{exc} (the URL came from {source})") from None
        console.print(f"simulation {result.simulation_id}: {result.requests} requests, {result.rows} rows, "
                      f"{result.failed} failed, at {result.request_time:%Y-%m-%d %H:%M} UTC "
                      f"({result.days_ahead:g} days ahead)")

    @drift.command("reset")
    def reset(model: str = MODEL) -> None:
        """Remove exactly the simulated requests (payload, processed, labels) and simulation runs, then refresh
        the monitor so the windows they were in no longer show their drift."""
        from workloads.drift import reset as run_reset
        from workloads.monitoring.refresh import refresh_monitor
        from workloads.ports.tables import get_tables
        from workloads.specs import load_spec

        settings = state.settings()
        spec = load_spec(model)
        result = run_reset(settings, spec)
        for table, rows in result.rows_deleted.items():
            console.print(f"{table}: {rows} simulated rows deleted")
        console.print(f"{result.runs_deleted} simulation runs deleted")
        if any(result.rows_deleted.values()) and get_tables(settings).exists(settings.table(spec.processed_table)):
            with step(f"Refreshing the monitor of {spec.name} (the windows the simulation touched)"):
                refreshed = refresh_monitor(settings, spec)
            windows = sum(refreshed.recomputed.values())
            console.print(f"monitor refreshed: {windows} window(s) recomputed; `mlops drift analyze` no longer "
                          "shows the removed drift")
