"""Shared CLI state: settings from the global options, the console, and progress display."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from workloads.settings import Settings, load_settings


def fold(table: Table) -> Table:
    """Long cells (three-level table names, model names, URLs) fold onto more lines instead of being cut."""
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    return table


class FoldingConsole(Console):
    """A console whose tables never cut a cell: key columns hold names a person must be able to copy."""

    def print(self, *objects, **kwargs) -> None:
        for obj in objects:
            if isinstance(obj, Table):
                fold(obj)
        super().print(*objects, **kwargs)


console = FoldingConsole(highlight=False)
err_console = FoldingConsole(stderr=True, highlight=False)


@dataclass
class CliState:
    home: str | None = None
    backend: str | None = None
    env: str | None = None
    catalog: str | None = None
    schema: str | None = None
    monitoring_schema: str | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self, env: str | None = None) -> Settings:
        """Settings from the global options (``env`` overrides ``--env`` for commands that take one)."""
        if env is not None and env != (self.env or None):
            return load_settings(self.home, self.backend, env, None, self.schema, self.monitoring_schema)
        if self._settings is None:
            self._settings = load_settings(self.home, self.backend, self.env, self.catalog, self.schema,
                                           self.monitoring_schema)
        return self._settings


state = CliState()


@contextmanager
def step(description: str):
    """Show a spinner while a long step runs, then a check mark."""
    with console.status(f"[bold]{description}[/]…", spinner="dots"):
        yield
    console.print(f"[green]✓[/] {description}")


def group(app, name: str, help_text: str):
    """The ``mlops <name>`` command group, shared by modules that add commands to it."""
    import typer

    for info in app.registered_groups:
        if info.name == name:
            return info.typer_instance
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub
