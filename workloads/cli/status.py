"""``mlops status [--model M]``: per model and environment, where it stands."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from workloads.cli.common import console, state

MODEL = typer.Option(None, "--model", "-m", help="Only this model (default: every model spec).")


def _versions(status) -> str:
    if not status.versions:
        return "none"
    shown = [f"v{v} ({', '.join(a)})" for v, a in status.versions if a]
    rest = [v for v, a in status.versions if not a]
    if not shown:
        return ", ".join(f"v{v}" for v in rest) + " (no alias: none passed its thresholds, or none was promoted)"
    return ", ".join(shown) + (f"; {len(rest)} more without alias" if rest else "")


def _endpoint(status) -> str:
    e = status.endpoint
    if e is None:
        return "-"
    served = f", serving v{', v'.join(e.served_versions)}" if e.served_versions else ""
    colour = {"up": "green", "down": "red"}.get(e.state, "yellow")
    where = f" {e.url}" if e.url else ""
    detail = f" ({e.detail})" if e.detail and e.state != "up" else ""
    return f"[{colour}]{e.state}[/]{escape(where)}{served}{escape(detail)}"


def _verdict(status) -> str:
    v = status.verdict
    if not v:
        return "the watcher has not run"
    colour = {"healthy": "green", "breach": "red"}.get(v["health"], "yellow")
    reasons = "; ".join(v["reasons"][:3])
    return (f"[{colour}]{v['health']}[/] window {v['window_start'] or '-'} ({v['rows']} rows) at "
            f"{str(v['at'])[:19]}" + (f": {escape(reasons)}" if reasons else ""))


def _promotion(status) -> str:
    p = status.promotion
    if not p:
        return "none"
    def version(value) -> str:
        return "none" if value is None or str(value) in ("", "nan", "None") else f"v{value}"

    return escape(f"{p['action']} {version(p['from_version'])} -> {version(p['to_version'])} at "
                  f"{str(p['at'])[:19]} by {p['actor']}: {p['reason']}")


def _alert(status) -> str:
    a = status.alert
    if not a:
        return escape(status.alert_note or "none")
    return escape(f"{a['kind']} at {a['time'][:19]}: {a['summary']}")


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(model: str | None = MODEL) -> None:
        """Per model and environment: versions and aliases, endpoint, last verdict, promotion and alert."""
        from workloads.specs import list_specs, load_spec
        from workloads.status import model_status

        settings = state.settings()
        names = [model] if model else list_specs()
        envs = [settings.env] if settings.backend == "databricks" or state.env else ["dev", "prod"]
        for name in names:
            spec = load_spec(name)
            for env in envs:
                current = settings if env == settings.env else settings.for_env(env)
                result = model_status(current, spec)
                table = Table("", "", title=escape(f"{name} [{env}] {result.registered_model}"),
                              show_header=False, title_justify="left")
                table.add_row("versions", _versions(result))
                table.add_row("endpoint", _endpoint(result))
                table.add_row("last verdict", _verdict(result))
                table.add_row("last promotion", _promotion(result))
                table.add_row("last alert", _alert(result))
                for problem in result.problems:
                    table.add_row("[red]unreadable[/]", escape(problem))
                console.print(table)
