"""Offline plans: what the program declares for a stack, and what differs between two stacks.

Built on :func:`infra.offline.evaluate`; rendering is the CLI's job (``mlops plan``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.artifacts import WheelNotFoundError, locate_wheel
from infra.offline import DeclaredResource, Evaluation, evaluate, placeholder_wheel, read_stack_config

ASSUMED_CHAMPION = 1


@dataclass
class PlannedResource:
    type: str
    name: str
    path: str
    parent: str
    protect: bool
    summary: str
    inputs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "path": self.path, "parent": self.parent,
                "protect": self.protect, "summary": self.summary, "inputs": self.inputs}


@dataclass
class Plan:
    stack: str
    resources: list[PlannedResource]
    outputs: dict[str, Any]
    warnings: list[str]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "resource_count": len(self.resources),
                "resources": [r.as_dict() for r in self.resources], "outputs": self.outputs,
                "warnings": self.warnings, "notes": self.notes}


@dataclass
class Change:
    path: str
    type: str
    kind: str  # "only-in-<stack>" or "changed"
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "kind": self.kind,
                "fields": {k: {"from": v[0], "to": v[1]} for k, v in self.fields.items()}}


def short_type(token: str) -> str:
    """``databricks:index/job:Job`` -> ``databricks:Job``; components keep their module."""
    package, _, rest = token.partition(":")
    return f"{package}:{rest.rsplit(':', 1)[-1]}"


def _path(resource: DeclaredResource) -> str:
    """Stack-independent identity: the chain of component types and names down to the resource."""
    qualified = resource.urn.split("::")[2]
    name = resource.urn.split("::", 3)[3]
    return f"{'$'.join(short_type(t) for t in qualified.split('$'))}::{name}"


def _schedule(inputs: Mapping[str, Any]) -> str:
    schedule = inputs.get("schedule") or {}
    return f"{schedule.get('quartzCronExpression')} {schedule.get('timezoneId')}" if schedule else "on demand"


def summarize(resource: DeclaredResource) -> str:
    """The key inputs of a resource in one line."""
    i = resource.inputs
    kind = resource.type.rsplit(":", 1)[-1]
    if kind in ("Catalog",):
        return f"{i.get('name')} owner={i.get('owner')}"
    if kind == "Schema":
        return f"{i.get('catalogName')}.{i.get('name')} owner={i.get('owner')}"
    if kind in ("SqlTable", "RegisteredModel", "Volume"):
        columns = f" columns={len(i.get('columns') or [])}" if kind == "SqlTable" else ""
        return f"{i.get('catalogName')}.{i.get('schemaName')}.{i.get('name')}{columns}"
    if kind == "Grants":
        target = next((f"{k}={v}" for k, v in i.items() if k not in ("grants",) and isinstance(v, str)), "")
        grants = ", ".join(f"{g.get('principal')}:{'/'.join(g.get('privileges') or [])}" for g in i.get("grants") or [])
        return f"{target} [{grants}]"
    if kind == "Grant":
        return f"catalog={i.get('catalog')} {i.get('principal')}:{'/'.join(i.get('privileges') or [])}"
    if kind == "File":
        return str(i.get("path"))
    if kind == "ModelServing":
        entities = ", ".join(f"{e.get('entityName')}@{e.get('entityVersion')} {e.get('workloadSize')}"
                             f"{' scale-to-zero' if e.get('scaleToZeroEnabled') else ''}"
                             for e in (i.get("config") or {}).get("servedEntities") or [])
        table = ((i.get("aiGateway") or {}).get("inferenceTableConfig") or {})
        return (f"{i.get('name')} -> {entities}; inference table "
                f"{table.get('catalogName')}.{table.get('schemaName')}.{table.get('tableNamePrefix')}_payload")
    if kind == "QualityMonitor":
        log = i.get("inferenceLog") or {}
        return (f"{i.get('tableName')} baseline={i.get('baselineTableName')} out={i.get('outputSchemaName')} "
                f"{log.get('problemType')} {log.get('granularities')} {_schedule(i)}")
    if kind == "Job":
        tasks = " -> ".join(f"{t.get('taskKey', '?')}{_task_kind(t)}" for t in i.get("tasks") or [])
        run_as = (i.get("runAs") or {}).get("servicePrincipalName")
        environments = ", ".join(f"env {(e.get('spec') or {}).get('environmentVersion')} + "
                                 f"{len((e.get('spec') or {}).get('dependencies') or [])} dependency"
                                 for e in i.get("environments") or [])
        return f"{i.get('name')}: {tasks}; {environments}; {_schedule(i)}; run as {run_as or 'deployer'}"
    if kind == "Notebook":
        return f"{i.get('path')} ({i.get('language')})"
    if kind == "SqlEndpoint":
        return f"{i.get('name')} {i.get('clusterSize')} serverless={i.get('enableServerlessCompute')}"
    if kind == "NotificationDestination":
        return f"{i.get('displayName')} (webhook)"
    return ""


def _task_kind(task: dict) -> str:
    """`` (wheel)``, `` (notebook)``, `` (condition)``: how a job task runs, for the plan."""
    for key, label in (("pythonWheelTask", "wheel"), ("notebookTask", "notebook"), ("conditionTask", "condition")):
        if task.get(key):
            return f" ({label})"
    return ""


def _tree_order(resource: DeclaredResource) -> tuple:
    """The platform first, then each model's resources together, parents before children."""
    in_platform = "Platform" in resource.urn.split("::")[2]
    return (not in_platform, resource.name.split("-", 1)[0] if not in_platform else "", _path(resource).count("$"),
            resource.name)


def to_plan(evaluation: Evaluation, notes: list[str] | None = None) -> Plan:
    ordered = sorted(evaluation.resources, key=_tree_order)
    return Plan(
        stack=evaluation.stack,
        resources=[PlannedResource(type=short_type(r.type), name=r.name, path=_path(r), parent=r.parent_name,
                                   protect=r.protect, summary=summarize(r), inputs=r.key_inputs())
                   for r in ordered],
        outputs=evaluation.outputs, warnings=evaluation.warnings, notes=list(notes or []))


def _offline_wheel(scratch: Path) -> tuple[Path, list[str]]:
    try:
        return locate_wheel(None).path, []
    except WheelNotFoundError:
        note = "no built wheel in dist/: planned with a placeholder (run `uv build --wheel` before `pulumi up`)"
        return placeholder_wheel(scratch), [note]


def plan_stack(stack: str, champions: Mapping[str, int | None] | None = None, first_deploy: bool = False,
               root: Path | None = None) -> Plan:
    """Evaluate ``infra/__main__.py`` for ``stack`` under mocks and describe every declared resource.

    Unless ``first_deploy``, every deployed model is assumed to have champion version 1 (overridden per model by
    ``champions``); with ``first_deploy`` no registered model exists yet, so endpoints are deferred.
    """
    config = read_stack_config(stack, root)
    models = config.get("lakehouse-mlops:models") or []
    assumed: dict[str, int | None] = {} if first_deploy else {m: ASSUMED_CHAMPION for m in models
                                                              if isinstance(m, str)}
    assumed.update(champions or {})
    with tempfile.TemporaryDirectory(prefix="mlops-plan-") as scratch:
        wheel, notes = _offline_wheel(Path(scratch))
        evaluation = evaluate(stack, champions=assumed, wheel=wheel, root=root)
    if not first_deploy:
        shown = ", ".join(f"{m}@{v}" for m, v in sorted(assumed.items()) if v is not None)
        notes.append(f"champions assumed offline: {shown or 'none'} (use --champion MODEL=VERSION or --first-deploy)")
    return to_plan(evaluation, notes)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for n, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{n}]"))
        return out
    return {prefix: value}


def diff_plans(left: Plan, right: Plan) -> list[Change]:
    """Resources only in one stack, and changed inputs/protection of resources in both."""
    a = {r.path: r for r in left.resources}
    b = {r.path: r for r in right.resources}
    changes: list[Change] = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            changes.append(Change(path, a[path].type, f"only-in-{left.stack}"))
        elif path not in a:
            changes.append(Change(path, b[path].type, f"only-in-{right.stack}"))
        else:
            fa = {**_flatten(a[path].inputs), "(protect)": a[path].protect}
            fb = {**_flatten(b[path].inputs), "(protect)": b[path].protect}
            fields = {k: (fa.get(k), fb.get(k)) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)}
            if fields:
                changes.append(Change(path, a[path].type, "changed", fields))
    return changes
