"""A model's jobs: the watcher (unpack -> monitor -> evaluate -> retrain?), training, daily batch inference.

Every task calls the ``mlops`` entry point of the uploaded wheel with the global options first, then the step's
command, then ``--model``: a serverless ``python_wheel_task``, except the watcher's ``evaluate``, a
``notebook_task`` of the step notebook (infra/runtime.py) because only notebooks can set the task value the
``retrain_needed`` condition task reads. The watch steps pass each other's values through the run-state directory
``/Volumes/<catalog>/<schema>/<volume>/runs/{{job.run_id}}`` (``--run-state``), under their task keys
(``monitor``, ``evaluate``, ``retrain``).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_databricks as databricks

from infra.config import StackConfig
from infra.runtime import SERVERLESS_ENVIRONMENT_VERSION, STEP_NOTEBOOK_ARGS
from workloads.specs import ModelSpec

PACKAGE_NAME = "lakehouse_mlops"
ENTRY_POINT = "mlops"
ENVIRONMENT_KEY = "workloads"
RETRAIN_VALUE = "{{tasks.evaluate.values.retrain_needed}}"


def global_args(config: StackConfig) -> list[str]:
    """The ``mlops`` global options every job task passes: the Databricks backend on this stack's names."""
    return ["--backend", "databricks", "--env", config.environment, "--catalog", config.catalog.name,
            "--schema", config.models_schema, "--monitoring-schema", config.monitoring_schema]


def step_args(config: StackConfig, command: list[str], model: str, *extra: str) -> list[str]:
    """``[<global options>, <command...>, --model M, <extra...>]``."""
    return [*global_args(config), *command, "--model", model, *extra]


def run_state_args(config: StackConfig) -> list[str]:
    """``--run-state <artifacts volume>/runs/{{job.run_id}}``: where one watcher run's steps pass values.

    ``{{job.run_id}}`` is a dynamic value reference, substituted inside a parameter string ("job_{{job.run_id}}"
    evaluates to job_550315892394120, https://docs.databricks.com/jobs/dynamic-value-references.html).
    """
    volume = f"/Volumes/{config.catalog.name}/{config.models_schema}/{config.artifacts_volume}"
    return ["--run-state", volume + "/runs/{{job.run_id}}"]


def threshold_args(config: StackConfig, model: str) -> list[str]:
    """``--threshold METRIC=DIRECTION:VALUE`` per stack override (the direction is the spec's)."""
    args: list[str] = []
    for metric, bound in config.thresholds_for(model).items():
        args += ["--threshold", f"{metric}={bound.direction}:{bound.value:g}"]
    return args


def _wheel_task(key: str, args: list[str], depends_on: list[str] | None = None,
                outcome: str | None = None) -> databricks.JobTaskArgs:
    return databricks.JobTaskArgs(
        task_key=key, environment_key=ENVIRONMENT_KEY,
        depends_ons=[databricks.JobTaskDependsOnArgs(task_key=d, outcome=outcome) for d in depends_on or []] or None,
        python_wheel_task=databricks.JobTaskPythonWheelTaskArgs(
            package_name=PACKAGE_NAME, entry_point=ENTRY_POINT, parameters=args))


def _notebook_task(key: str, notebook_path: pulumi.Input[str], args: list[str],
                   depends_on: list[str]) -> databricks.JobTaskArgs:
    """The step notebook running ``mlops <args>`` (serverless: no environment_key; it installs the wheel itself)."""
    return databricks.JobTaskArgs(
        task_key=key, depends_ons=[databricks.JobTaskDependsOnArgs(task_key=d) for d in depends_on],
        notebook_task=databricks.JobTaskNotebookTaskArgs(
            notebook_path=notebook_path, source="WORKSPACE", base_parameters={STEP_NOTEBOOK_ARGS: json.dumps(args)}))


class ModelJobs(pulumi.ComponentResource):
    """The watcher job, the on-demand training job and the daily batch-inference job of one model.

    Outputs: ``watcher_job_id``, ``training_job_id``, ``batch_job_id``.
    """

    def __init__(self, name: str, spec: ModelSpec, config: StackConfig, wheel_path: pulumi.Input[str],
                 step_notebook_path: pulumi.Input[str], webhook_destination_id: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:model:ModelJobs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        common = {
            "environments": [databricks.JobEnvironmentArgs(
                environment_key=ENVIRONMENT_KEY,
                spec=databricks.JobEnvironmentSpecArgs(environment_version=SERVERLESS_ENVIRONMENT_VERSION,
                                                       dependencies=[wheel_path]))],
            "max_concurrent_runs": 1,
            "run_as": (databricks.JobRunAsArgs(service_principal_name=config.run_as.service_principal)
                    if config.run_as else None),
            "email_notifications": databricks.JobEmailNotificationsArgs(on_failures=list(config.alerts.emails)),
            "webhook_notifications": (databricks.JobWebhookNotificationsArgs(
                on_failures=[databricks.JobWebhookNotificationsOnFailureArgs(id=webhook_destination_id)])
                if webhook_destination_id is not None else None),
        }
        tags = {**config.tags, "model": spec.name, "environment": config.environment, "managed-by": "pulumi"}
        model = spec.name
        granularity = ["--granularity", config.watcher.granularity]
        thresholds = threshold_args(config, model)
        run_state = run_state_args(config)

        self.watcher = databricks.Job(
            f"{model}-watcher", name=f"[{config.environment}] {model} watcher",
            description=f"Watch {model}: unpack payloads, refresh the monitor, evaluate, retrain on breach.",
            tasks=[
                _wheel_task("unpack", step_args(config, ["unpack"], model)),
                _wheel_task("monitor", step_args(config, ["watch", "monitor"], model, *granularity, *run_state),
                            ["unpack"]),
                _notebook_task("evaluate", step_notebook_path,
                               step_args(config, ["watch", "evaluate"], model, *granularity, *thresholds, *run_state),
                               ["monitor"]),
                databricks.JobTaskArgs(
                    task_key="retrain_needed",
                    depends_ons=[databricks.JobTaskDependsOnArgs(task_key="evaluate")],
                    condition_task=databricks.JobTaskConditionTaskArgs(
                        left=RETRAIN_VALUE, op="EQUAL_TO", right="true")),
                _wheel_task("retrain", step_args(config, ["watch", "retrain"], model, *thresholds, *run_state),
                            ["retrain_needed"], outcome="true"),
            ],
            schedule=databricks.JobScheduleArgs(
                quartz_cron_expression=config.watcher.schedule, timezone_id=config.watcher.timezone,
                pause_status="PAUSED" if config.watcher.paused else "UNPAUSED"),
            tags={**tags, "job": "watcher"}, opts=child, **common)

        self.training = databricks.Job(
            f"{model}-training", name=f"[{config.environment}] {model} training",
            description=f"Train {model} on demand; the first run bootstraps the champion.",
            tasks=[_wheel_task("train", step_args(config, ["train"], model))],
            tags={**tags, "job": "training"}, opts=child, **common)

        self.batch = databricks.Job(
            f"{model}-batch", name=f"[{config.environment}] {model} batch inference",
            description=f"Score {model}'s daily batch with the champion into {spec.predictions_table}.",
            tasks=[_wheel_task("batch", step_args(config, ["batch"], model))],
            schedule=databricks.JobScheduleArgs(quartz_cron_expression=config.batch.schedule,
                                                timezone_id=config.batch.timezone, pause_status="UNPAUSED"),
            tags={**tags, "job": "batch"}, opts=child, **common)

        self.watcher_job_id = self.watcher.id
        self.training_job_id = self.training.id
        self.batch_job_id = self.batch.id
        self.register_outputs({"watcher_job_id": self.watcher_job_id, "training_job_id": self.training_job_id,
                               "batch_job_id": self.batch_job_id})
