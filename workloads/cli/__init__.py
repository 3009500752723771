"""The ``mlops`` console script: one entry point for people and for Databricks ``python_wheel_task``s.

Command groups live in the modules of this package; each defines ``register(app)`` and is discovered
here, so adding a group touches no shared file.

Two functions, one behaviour: :func:`main` runs the CLI and *returns* its exit code (for callers in Python:
tests, the step notebook); :func:`run` is the ``mlops`` entry point (``[project.scripts]``), which ends the
process with that code. The difference matters on Databricks: a ``python_wheel_task`` loads the entry point and
calls it as a function, with the task's ``parameters`` in ``sys.argv``, and ignores what it returns (the Databricks
CLI's wheel wrapper, which emulates it, runs ``entry[0].load()()``: bundle/python/transform.go in
github.com/databricks/cli; "Entry Point ... the function that runs the logic in the wheel",
https://docs.databricks.com/jobs/python-wheel.html). Only an exception fails the task, so :func:`run` raises
``SystemExit`` with the non-zero code on every error path, and returns normally on success.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer
from pydantic import ValidationError
from rich.markup import escape

from workloads.cli.common import err_console, state
from workloads.errors import MlopsError

app = typer.Typer(
    name="mlops",
    help="One governed lifecycle for ML models: data, training, registry, serving, monitoring, watcher.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"mlops (lakehouse-mlops) {version('lakehouse-mlops')}")
        except PackageNotFoundError:
            print("mlops (lakehouse-mlops, not installed)")
        raise typer.Exit(0)


@app.callback()
def _global(
    home: str | None = typer.Option(None, "--home", help="Local home (warehouse, MLflow store). Env: MLOPS_HOME; default ./.mlops"),
    backend: str | None = typer.Option(None, "--backend", help="local (default) or databricks. Env: MLOPS_BACKEND"),
    env: str | None = typer.Option(None, "--env", help="dev (default) or prod. Env: MLOPS_ENV"),
    catalog: str | None = typer.Option(None, "--catalog", help="Unity Catalog catalog. Env: MLOPS_CATALOG"),
    schema: str | None = typer.Option(None, "--schema", help="Unity Catalog schema. Env: MLOPS_SCHEMA"),
    monitoring_schema: str | None = typer.Option(
        None, "--monitoring-schema",
        help="Schema of the monitors' metric tables (default: --schema). Env: MLOPS_MONITORING_SCHEMA"),
    specs: str | None = typer.Option(None, "--specs", help="Directory of model specs (default: the package's). "
                                                           "Env: MLOPS_SPECS"),
    debug: bool = typer.Option(False, "--debug", help="Show full stack traces on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    state.home, state.backend, state.env = home, backend, env
    state.catalog, state.schema, state.debug = catalog, schema, debug
    state.monitoring_schema = monitoring_schema
    state._settings = None
    from workloads.specs import set_spec_dir

    set_spec_dir(specs)


def _register_commands() -> None:
    package = sys.modules[__name__]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name == "common" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def _quiet_environment(debug: bool = False) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Small models on small machines: one OpenMP thread per process. With more, the tree learners' threads
    # spin against other busy processes (seen: a 7 s training taking 48 s on a loaded 2-core machine).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not debug:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        import logging
        import warnings

        # Library chatter (MLflow INFO lines, pickle warnings) would bury the one line a user needs.
        for name in ("mlflow", "alembic", "urllib3", "databricks", "py4j"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one clear line and a non-zero exit code (stack trace with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _quiet_environment(debug)
    try:
        result = app(args=args, standalone_mode=False)
        if isinstance(result, int) and result:
            return result  # typer.Exit(n) under standalone_mode=False comes back as a return value
    except MlopsError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 1
    except ValidationError as exc:  # a value pydantic refused on its way in: one line per problem, no dump
        if debug:
            raise
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        err_console.print(f"[bold red]error:[/] {escape(problems)}", soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("[bold red]aborted[/]")
        return 130
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # typer's (vendored) click usage errors
            exc.show()
            return exc.exit_code
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for the "
                          "stack trace)",
                          soft_wrap=True)
        return 1
    return 0


def run() -> None:
    """The ``mlops`` entry point: run the CLI on ``sys.argv`` and end with its exit code.

    A console script wrapper (``sys.exit(run())``) exits 0 on success as before; a Databricks
    ``python_wheel_task``, which calls this function and ignores its return value, sees ``SystemExit`` on failure
    and fails the task (so its failure e-mails and webhooks fire).

    Raises:
        SystemExit: with the non-zero exit code of a failed command (usage errors included).
    """
    code = main()
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    run()
