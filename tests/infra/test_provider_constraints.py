"""Every declared resource's inputs against the provider's documented constraints that Pulumi mocks cannot see.

The real program runs under mocks for dev and prod (conftest ``dev``/``prod``); each rule below reads one input path of
one resource type (inputs as the engine receives them, camelCase; ``[]`` walks a list) and says what Databricks
accepts there, citing the installed provider's docstring (``pulumi_databricks`` 1.118, ``.venv/.../pulumi_databricks``),
the SDK's (``databricks-sdk``) or Databricks' documentation. Every rule also breaks a copy of a real resource's inputs
to show it catches the violation.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

SERVING = "databricks:index/modelServing:ModelServing"
MONITOR = "databricks:index/qualityMonitor:QualityMonitor"
JOB = "databricks:index/job:Job"
NOTEBOOK = "databricks:index/notebook:Notebook"
PERMISSIONS = "databricks:index/permissions:Permissions"
VOLUME = "databricks:index/volume:Volume"
TABLE = "databricks:index/sqlTable:SqlTable"
CATALOG = "databricks:index/catalog:Catalog"
SCHEMA = "databricks:index/schema:Schema"
MODEL = "databricks:index/registeredModel:RegisteredModel"

TASK_TYPES = ("notebookTask", "pythonWheelTask", "conditionTask", "sparkPythonTask", "sparkJarTask", "sqlTask",
              "runJobTask", "pipelineTask", "forEachTask", "dbtTask", "sparkSubmitTask", "cleanRoomsNotebookTask",
              "dashboardTask", "powerBiTask", "genAiComputeTask")
# Job tasks that name an environment on serverless compute: "Required for some tasks (spark_python_task,
# python_wheel_task, ...) running on serverless compute" (JobTaskArgs.environment_key docstring).
ENVIRONMENT_TASKS = ("pythonWheelTask", "sparkPythonTask", "dbtTask")
CLUSTER_KEYS = ("existingClusterId", "newCluster", "jobClusterKey")


def walk(value: Any, path: str) -> Iterator[Any]:
    """The values at ``path`` ("a.b[].c"; "" is the value itself); absent keys yield nothing."""
    if not path:
        yield value
        return
    head, _, rest = path.partition(".")
    key, is_list = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(value, dict) or value.get(key) is None:
        return
    child = value[key]
    for item in (child if is_list else [child]):
        yield from walk(item, rest)


def one_of(*allowed: str) -> Callable[[Any, dict], str | None]:
    return lambda v, _: None if v in allowed else f"{v!r} is not one of {sorted(allowed)}"


def matches(pattern: str, max_len: int) -> Callable[[Any, dict], str | None]:
    compiled = re.compile(pattern)

    def check(value, _):
        if not isinstance(value, str) or not compiled.fullmatch(value) or len(value) > max_len:
            return f"{value!r} does not match {pattern} (max {max_len} chars)"
        return None

    return check


# Unity Catalog names: "cannot contain a period, space, forward slash, or control characters" and at most 255
# characters (https://docs.databricks.com/en/sql/language-manual/sql-ref-names.html).
UC_PART = r"[^.\s/\x00-\x1f\x7f]+"
uc_name = matches(UC_PART, 255)
uc_two = matches(rf"{UC_PART}\.{UC_PART}", 511)
uc_three = matches(rf"{UC_PART}\.{UC_PART}\.{UC_PART}", 767)

# Quartz cron: seconds minutes hours day-of-month month day-of-week [year]; one of day-of-month/day-of-week is "?"
# (https://www.quartz-scheduler.org/documentation/quartz-2.3.0/tutorials/crontrigger.html, linked from the
# provider's quartz_cron_expression docstring).
_QUARTZ_FIELDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (1, 7), (1970, 2099)]
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"


def quartz(expression, _):
    fields = str(expression).split()
    if len(fields) not in (6, 7):
        return f"{expression!r} has {len(fields)} fields; Quartz takes 6 or 7"
    if (fields[3] == "?") == (fields[5] == "?"):
        return f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
    for text, (low, high) in zip(fields, _QUARTZ_FIELDS, strict=False):
        if text in ("*", "?"):
            continue
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and not step.isdigit():
                return f"{expression!r}: bad step {part!r}"
            bounds = base.split("-") if base not in ("*", "") else []
            for bound in bounds:
                bound = re.sub(r"^(L|LW|\d+[LW#]\d*)$", lambda m: m.group(0).rstrip("LW#0123456789") or "1", bound)
                if re.fullmatch(_MONTHS + "|" + _DAYS, bound.upper()):
                    continue
                if not bound.isdigit() or not low <= int(bound) <= high:
                    return f"{expression!r}: {bound!r} is outside {low}-{high}"
    return None


def granularity(value, _):
    # MonitorInferenceLog.granularities (databricks-sdk catalog.py): "Currently the following static granularities
    # are supported: {"5 minutes", "30 minutes", "1 hour", "1 day", "<n> week(s)", "1 month", "1 year"}".
    if value in ("5 minutes", "30 minutes", "1 hour", "1 day", "1 month", "1 year"):
        return None
    return None if re.fullmatch(r"[1-9]\d* weeks?", str(value)) else f"{value!r} is not a supported granularity"


def served_entity_pairs(entity, _):
    # ServedEntityInput docstrings: entity_name names a UC model and "entity_version" its version; a workload_size
    # "Conflicts with min_provisioned_concurrency and max_provisioned_concurrency".
    if bool(entity.get("entityName")) != bool(entity.get("entityVersion")):
        return "entityName and entityVersion go together"
    if not str(entity.get("entityVersion", "")).isdigit():
        return f"entityVersion {entity.get('entityVersion')!r} is not a version number"
    if entity.get("workloadSize") and ({"minProvisionedConcurrency", "maxProvisionedConcurrency"} & set(entity)):
        return "workloadSize conflicts with min/maxProvisionedConcurrency"
    return None


def traffic_routes(config, _):
    names = {e.get("name") for e in config.get("servedEntities", [])}
    routes = (config.get("trafficConfig") or {}).get("routes", [])
    if routes and sum(r.get("trafficPercentage", 0) for r in routes) != 100:
        return "traffic percentages do not add up to 100"
    unknown = [r.get("servedEntityName") for r in routes if r.get("servedEntityName") not in names]
    return f"routes name unknown served entities {unknown}" if unknown else None


def notebook_content(inputs, _):
    # NotebookArgs: content_base64 "Conflicts with source"; one of them carries the notebook.
    has = [k for k in ("contentBase64", "source", "url") if inputs.get(k)]
    return None if len(has) == 1 else f"exactly one of contentBase64/source/url, got {has}"


def one_task_type(task, _):
    # JobTaskArgs.task_key docstring: "*_task - (Required) one of the specific task blocks".
    kinds = [k for k in TASK_TYPES if task.get(k) is not None]
    return None if len(kinds) == 1 else f"task {task.get('taskKey')!r} has task blocks {kinds}"


def task_environment(task, job):
    # JobTaskArgs.environment_key: "identifier of an environment block ... Required for some tasks
    # (spark_python_task, python_wheel_task, ...) running on serverless compute". Notebook tasks on serverless take
    # their environment from the notebook itself (infra/runtime.py step_notebook_environment), not from a job environment
    # (https://docs.databricks.com/en/jobs/run-serverless-jobs.html).
    serverless = not any(task.get(k) for k in CLUSTER_KEYS)
    declared = {e.get("environmentKey") for e in job.get("environments") or []}
    key = task.get("environmentKey")
    if serverless and any(task.get(k) is not None for k in ENVIRONMENT_TASKS) and key not in declared:
        return f"serverless task {task.get('taskKey')!r} needs an environmentKey of {sorted(declared)}, got {key!r}"
    if serverless and task.get("notebookTask") is not None and key is not None:
        return f"serverless notebook task {task.get('taskKey')!r} must not name an environment ({key!r})"
    if key is not None and key not in declared:
        return f"task {task.get('taskKey')!r} names undeclared environment {key!r}"
    return None


def task_graph(job, _):
    # task_key "must be unique within its parent job" (databricks-sdk jobs.Task.task_key); depends_on names tasks.
    keys = [t.get("taskKey") for t in job.get("tasks") or []]
    if len(keys) != len(set(keys)):
        return f"duplicate task keys {keys}"
    missing = [d.get("taskKey") for t in job.get("tasks") or [] for d in t.get("dependsOns") or []
               if d.get("taskKey") not in keys]
    return f"dependsOn names unknown tasks {missing}" if missing else None


def grant_privileges(grant, _):
    privileges = grant.get("privileges") or []
    return None if privileges and grant.get("principal") else f"grant without principal or privileges: {grant}"


# Valid permission levels per object the Permissions resource controls (pulumi_databricks/permissions.py: "Valid
# permission levels for Notebook are: CAN_READ, CAN_RUN, CAN_EDIT, and CAN_MANAGE"; "Valid permission levels for
# ModelServing are: CAN_VIEW, CAN_QUERY, and CAN_MANAGE").
PERMISSION_LEVELS = {"notebookPath": {"CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"},
                     "servingEndpointId": {"CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"}}


def permission_levels(permissions, _):
    objects = [key for key in PERMISSION_LEVELS if permissions.get(key)]
    if len(objects) != 1:
        return f"expected exactly one object of {sorted(PERMISSION_LEVELS)}, got {objects}"
    allowed = PERMISSION_LEVELS[objects[0]]
    bad = [a.get("permissionLevel") for a in permissions.get("accessControls") or []
           if a.get("permissionLevel") not in allowed]
    principals = [a for a in permissions.get("accessControls") or []
                  if sum(bool(a.get(k)) for k in ("groupName", "userName", "servicePrincipalName")) != 1]
    if bad:
        return f"{bad} not valid on {objects[0]} (valid: {sorted(allowed)})"
    return f"access controls without exactly one principal: {principals}" if principals else None


@dataclass(frozen=True)
class Rule:
    resource: str
    path: str
    check: Callable[[Any, dict], str | None]
    source: str
    breaks: Callable[[dict], None]  # mutates a copy of a real resource's inputs so that the rule fails

    @property
    def id(self) -> str:
        return f"{self.resource.rsplit(':', 1)[-1]}:{self.path or '(resource)'}"

    def violations(self, inputs: dict) -> list[str]:
        return [f"{self.id}: {problem}" for value in walk(inputs, self.path)
                if (problem := self.check(value, inputs)) is not None]


def _first_task(job: dict, kind: str) -> dict:
    return next(t for t in job["tasks"] if t.get(kind) is not None)


def _set(path: list, value) -> Callable[[dict], None]:
    def mutate(inputs: dict) -> None:
        target = inputs
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


PROVIDER = ".venv/lib/python3.11/site-packages/pulumi_databricks"
RULES = [
    Rule(SERVING, "name", matches(r"[A-Za-z0-9_-]+", 63),
         f"{PROVIDER}/model_serving.py name: 'alphanumeric characters, dashes, and underscores'; 63 chars (Databricks "
         "serving UI limit)", _set(["name"], "bakehouse.autolog endpoint")),
    Rule(SERVING, "config.servedEntities[].workloadSize", one_of("Small", "Medium", "Large"),
         f"{PROVIDER}/_inputs.py ModelServingConfigServedEntityArgs.workload_size: 'Valid workload sizes are Small, "
         "Medium, and Large'", lambda i: i["config"]["servedEntities"][0].update(workloadSize="small")),
    Rule(SERVING, "config.servedEntities[]", served_entity_pairs,
         f"{PROVIDER}/_inputs.py ModelServingConfigServedEntityArgs (entity_name/entity_version; workload_size "
         "conflicts with min/max_provisioned_concurrency)",
         lambda i: i["config"]["servedEntities"][0].pop("entityVersion")),
    Rule(SERVING, "config.servedEntities[].entityName", uc_three,
         "Unity Catalog models are served by their three-level name (docs.databricks.com/api/workspace/"
         "servingendpoints/create, served_entities.entity_name)",
         lambda i: i["config"]["servedEntities"][0].update(entityName="bakehouse_autolog_model")),
    Rule(SERVING, "config", traffic_routes,
         "https://docs.databricks.com/api/workspace/servingendpoints/create (traffic_config.routes: served_entity_name"
         " of a served entity, traffic_percentage summing to 100)",
         lambda i: i["config"]["trafficConfig"]["routes"][0].update(trafficPercentage=50)),
    Rule(SERVING, "aiGateway.inferenceTableConfig.tableNamePrefix", uc_name,
         f"{PROVIDER}/_inputs.py ModelServingAiGatewayInferenceTableConfigArgs; UC names",
         lambda i: i["aiGateway"]["inferenceTableConfig"].update(tableNamePrefix="bad/prefix")),
    Rule(MONITOR, "inferenceLog.problemType", one_of("PROBLEM_TYPE_CLASSIFICATION", "PROBLEM_TYPE_REGRESSION"),
         f"{PROVIDER}/_inputs.py QualityMonitorInferenceLogArgs.problem_type: 'Either PROBLEM_TYPE_CLASSIFICATION or "
         "PROBLEM_TYPE_REGRESSION'", lambda i: i["inferenceLog"].update(problemType="regression")),
    Rule(MONITOR, "inferenceLog.granularities[]", granularity,
         "databricks-sdk catalog.MonitorInferenceLog.granularities docstring",
         lambda i: i["inferenceLog"]["granularities"].append("2 hours")),
    Rule(MONITOR, "schedule.quartzCronExpression", quartz,
         f"{PROVIDER}/_inputs.py QualityMonitorScheduleArgs.quartz_cron_expression (Quartz syntax)",
         lambda i: i["schedule"].update(quartzCronExpression="0 15 * * *")),
    Rule(MONITOR, "tableName", uc_three, f"{PROVIDER}/quality_monitor.py table_name: 'full name of the table'",
         lambda i: i.update(tableName="bakehouse_autolog_inference")),
    Rule(MONITOR, "baselineTableName", uc_three, f"{PROVIDER}/quality_monitor.py baseline_table_name",
         lambda i: i.update(baselineTableName="baseline")),
    Rule(MONITOR, "outputSchemaName", uc_two, f"{PROVIDER}/quality_monitor.py output_schema_name: "
         "'Schema where output metric tables are created' (catalog.schema)",
         lambda i: i.update(outputSchemaName="bakehouse_ml")),
    Rule(JOB, "tasks[]", one_task_type, f"{PROVIDER}/_inputs.py JobTaskArgs.task_key ('one of the specific task "
         "blocks')", lambda i: i["tasks"][0].update(notebookTask={"notebookPath": "/x"})),
    Rule(JOB, "tasks[].taskKey", matches(r"[\w\-.]+", 100),
         "https://docs.databricks.com/api/workspace/jobs/create (task_key: pattern ^[\\w\\-.]+$, max 100)",
         lambda i: i["tasks"][0].update(taskKey="train model")),
    Rule(JOB, "", task_graph, "databricks-sdk jobs.Task.task_key ('must be unique within its parent job'); "
         "depends_on", lambda i: i["tasks"].append(copy.deepcopy(i["tasks"][0]))),
    Rule(JOB, "tasks[]", task_environment, f"{PROVIDER}/_inputs.py JobTaskArgs.environment_key; "
         "https://docs.databricks.com/en/jobs/run-serverless-jobs.html",
         lambda i: _first_task(i, "pythonWheelTask").update(environmentKey="default")),
    Rule(JOB, "tasks[].conditionTask.op",
         one_of("EQUAL_TO", "GREATER_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN", "LESS_THAN_OR_EQUAL", "NOT_EQUAL"),
         f"{PROVIDER}/_inputs.py JobTaskConditionTaskArgs.op",
         lambda i: _first_task(i, "conditionTask")["conditionTask"].update(op="==")),
    Rule(JOB, "tasks[].notebookTask.source", one_of("WORKSPACE", "GIT"),
         f"{PROVIDER}/_inputs.py JobTaskNotebookTaskArgs.source: 'Possible values are WORKSPACE and GIT'",
         lambda i: _first_task(i, "notebookTask")["notebookTask"].update(source="workspace")),
    Rule(JOB, "schedule.quartzCronExpression", quartz, f"{PROVIDER}/_inputs.py JobScheduleArgs.quartz_cron_expression",
         lambda i: i["schedule"].update(quartzCronExpression="0 0 5 * * MON")),
    Rule(JOB, "schedule.pauseStatus", one_of("PAUSED", "UNPAUSED"), f"{PROVIDER}/_inputs.py JobScheduleArgs."
         "pause_status", lambda i: i["schedule"].update(pauseStatus="ACTIVE")),
    Rule(JOB, "environments[].spec.environmentVersion", matches(r"[1-9]\d*", 3),
         "https://docs.databricks.com/api/workspace/jobs/create (environments.spec.environment_version)",
         lambda i: i["environments"][0]["spec"].update(environmentVersion="v5")),
    Rule(NOTEBOOK, "", notebook_content, f"{PROVIDER}/notebook.py content_base64: 'Conflicts with source'",
         lambda i: i.update(source="/tmp/mlops_step.py")),
    Rule(NOTEBOOK, "language", one_of("SCALA", "PYTHON", "SQL", "R"), f"{PROVIDER}/notebook.py language",
         lambda i: i.update(language="python")),
    Rule(PERMISSIONS, "", permission_levels,
         f"{PROVIDER}/permissions.py: 'Valid permission levels for Notebook are: CAN_READ, CAN_RUN, CAN_EDIT, and "
         "CAN_MANAGE'; 'Valid permission levels for ModelServing are: CAN_VIEW, CAN_QUERY, and CAN_MANAGE'",
         lambda i: i["accessControls"][0].update(permissionLevel="CAN_RUN" if "servingEndpointId" in i
                                                 else "CAN_QUERY")),
    Rule(VOLUME, "volumeType", one_of("MANAGED", "EXTERNAL"), f"{PROVIDER}/volume.py volume_type: 'EXTERNAL or "
         "MANAGED'", lambda i: i.update(volumeType="STANDARD")),
    Rule(TABLE, "tableType", one_of("MANAGED", "EXTERNAL", "VIEW"), f"{PROVIDER}/sql_table.py table_type: "
         "'MANAGED, EXTERNAL or VIEW'", lambda i: i.update(tableType="TEMPORARY")),
    Rule(TABLE, "dataSourceFormat", one_of("DELTA", "CSV", "JSON", "AVRO", "PARQUET", "ORC", "TEXT"),
         f"{PROVIDER}/sql_table.py data_source_format", lambda i: i.update(dataSourceFormat="delta")),
    Rule(CATALOG, "name", uc_name, "UC names (sql-ref-names)", lambda i: i.update(name="mlops dev")),
    Rule(SCHEMA, "name", uc_name, "UC names (sql-ref-names)", lambda i: i.update(name="ml.schema")),
    Rule(MODEL, "name", uc_name, "UC names (sql-ref-names)", lambda i: i.update(name="models/bakehouse")),
    Rule(TABLE, "name", uc_name, "UC names (sql-ref-names)", lambda i: i.update(name="a.b")),
    Rule(VOLUME, "name", uc_name, "UC names (sql-ref-names)", lambda i: i.update(name="art facts")),
    Rule("databricks:index/grants:Grants", "grants[]", grant_privileges,
         f"{PROVIDER}/grants.py (each grant: a principal and its privileges)",
         lambda i: i["grants"][0].update(privileges=[])),
]


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request):
    return request.getfixturevalue(request.param)


def test_every_rule_applies_to_something_declared(dev, prod):
    """A rule whose path reads nothing (a renamed input) would pass silently: each one must see a value."""
    unread = [rule.id for rule in RULES
              if not any(list(walk(r.inputs, rule.path)) for ev in (dev, prod) for r in ev.resources
                         if r.type == rule.resource)]
    assert not unread


def test_declared_inputs_follow_the_documented_constraints(stack):
    problems = [f"{r.name}: {problem}" for rule in RULES for r in stack.resources if r.type == rule.resource
                for problem in rule.violations(r.inputs)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_a_broken_copy_is_caught(rule, dev):
    """Each rule fails on a copy of a real resource's inputs broken the way its break says."""
    candidates = [r for r in dev.resources if r.type == rule.resource and list(walk(r.inputs, rule.path))]
    for resource in candidates:
        broken = copy.deepcopy(resource.inputs)
        try:
            rule.breaks(broken)
        except (KeyError, IndexError, StopIteration):
            continue  # this resource lacks the part the break edits (e.g. a job without a condition task)
        assert not rule.violations(resource.inputs)
        assert rule.violations(broken), f"{rule.id} did not catch the broken copy of {resource.name}"
        return
    pytest.fail(f"no declared {rule.resource} has the inputs {rule.id} breaks")
