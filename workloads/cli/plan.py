"""``mlops plan``: what the Pulumi program declares for a stack, offline (mocks; no CLI, credentials, network)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workloads.cli.common import console, step
from workloads.errors import MlopsError

WIDTH = 200


class PlanOptionError(MlopsError):
    """A ``mlops plan`` option is malformed."""


def _wide() -> Console:
    """The shared console on a terminal; a wide one when piped (plans have long names)."""
    return console if console.is_terminal else Console(highlight=False, width=WIDTH)


def _champions(values: list[str]) -> dict[str, int]:
    champions: dict[str, int] = {}
    for value in values:
        model, _, version = value.partition("=")
        if not model or not version.isdigit():
            raise PlanOptionError(f"--champion takes MODEL=VERSION (e.g. bakehouse_autolog=3), got {value!r}")
        champions[model] = int(version)
    return champions


def _plan_table(plan) -> Table:
    table = Table(title=f"stack {plan.stack}: {len(plan.resources)} resources", title_justify="left")
    for column in ("type", "name", "parent", "protect", "key inputs"):
        table.add_column(column, overflow="fold")
    for r in plan.resources:
        table.add_row(*(Text(cell) for cell in (r.type, r.name, r.parent, "yes" if r.protect else "", r.summary)))
    return table


def _label(path: str) -> str:
    """``<parent chain>$databricks:Job::bakehouse_autolog-watcher`` -> ``databricks:Job bakehouse_autolog-watcher``."""
    types, _, name = path.rpartition("::")
    return f"{types.rsplit('$', 1)[-1]} {name}"


def _diff_table(left: str, right: str, changes) -> Table:
    table = Table(title=f"{left} -> {right}: {len(changes)} differences", title_justify="left")
    for column in ("resource", "difference", left, right):
        table.add_column(column, overflow="fold")
    for change in changes:
        if change.kind != "changed":
            table.add_row(Text(_label(change.path)), change.kind, "", "")
            continue
        for i, (key, (a, b)) in enumerate(change.fields.items()):
            table.add_row(Text(_label(change.path) if i == 0 else ""), Text(key), Text(json.dumps(a)),
                          Text(json.dumps(b)))
    return table


def plan(
    stack: str = typer.Option("dev", "--stack", help="Stack whose Pulumi.<stack>.yaml config is planned."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (or diff) as JSON."),
    diff: str | None = typer.Option(None, "--diff", help="Show what differs from this other stack."),
    champion: Annotated[list[str] | None, typer.Option(
        "--champion", help="MODEL=VERSION champion assumed offline (repeatable).")] = None,
    first_deploy: bool = typer.Option(False, "--first-deploy", help="No registered models yet: endpoints deferred."),
) -> None:
    """Run the real infra/__main__.py under Pulumi mocks with a stack's config and show what it declares."""
    from infra.plan import diff_plans, plan_stack

    champions = _champions(champion or [])

    def evaluated(name: str):
        # JSON output stays machine-readable: no progress line around the evaluation.
        with nullcontext() if as_json else step(f"evaluating infra/__main__.py for stack {name} under mocks"):
            return plan_stack(name, champions, first_deploy)

    left = evaluated(stack)
    if diff is None:
        if as_json:
            print(json.dumps(left.as_dict(), indent=2, default=str))
            return
        _wide().print(_plan_table(left))
        for note in left.notes:
            console.print(Text.assemble(("note: ", "dim"), note))
        for warning in left.warnings:
            console.print(Text.assemble(("warning: ", "yellow"), warning))
        return
    changes = diff_plans(left, evaluated(diff))
    if as_json:
        print(json.dumps({"from": stack, "to": diff, "changes": [c.as_dict() for c in changes]}, indent=2,
                         default=str))
        return
    _wide().print(_diff_table(stack, diff, changes))


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
