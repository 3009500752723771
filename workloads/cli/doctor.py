"""``mlops doctor --stack S``: a read-only preflight of the stack's workspace before the first ``pulumi up``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workloads.cli.common import console

# Piped output (CI logs, tests) keeps each check on one line; a terminal wraps to its width.
PIPED_WIDTH = 1000
STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def _console() -> Console:
    return console if console.is_terminal else Console(highlight=False, width=PIPED_WIDTH)


def doctor(
    stack: str = typer.Option("dev", "--stack", help="Stack whose Pulumi.<stack>.yaml names the workspace and what it needs."),
    host: str | None = typer.Option(None, "--host", help="Workspace URL (default: the stack's databricks:host)."),
    from_stack: str | None = typer.Option(
        None, "--from-stack",
        help="Stack whose models this one is promoted from (default: the previous environment, dev for prod)."),
) -> None:
    """Check the workspace before a deploy (read-only): identity, metastore, catalog, storage root, owner group,
    warehouse, run-as principal, Model Serving, serverless jobs, the principals the stack names, its model readers'
    privileges, for prod the dev models, and (with the Azure CLI) the roles on the stack's state container. Exits 1
    if any check fails."""
    from infra.config import stack_config_from_file
    from workloads.doctor import DoctorError, other_stack_config, run_doctor, source_stack_of

    config = stack_config_from_file(stack)
    source = from_stack or source_stack_of(config)
    if source == stack:
        raise DoctorError(f"--from-stack {source!r} is the stack itself; name the stack its models come from")
    other = other_stack_config(config)
    report = run_doctor(config, host=host, source_stack=source, other=other)
    who = f" as {report.caller.user_name}" if report.caller else ""
    table = Table("check", "result", "found", "fix", title=f"doctor: stack {stack} on {report.host}{who} (read-only)",
                  title_justify="left")
    for result in report.results:
        table.add_row(Text(result.check), Text(result.status.upper() if result.status == "fail" else result.status,
                                               style=STYLE[result.status]),
                      Text(result.detail), Text(result.fix))
    out = _console()
    out.print(table)
    counts = {s: sum(1 for r in report.results if r.status == s) for s in ("pass", "warn", "fail", "skip")}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
