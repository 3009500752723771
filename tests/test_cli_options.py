"""CLI options that cannot surprise: ``-m`` wherever ``--model`` is, the environment order, and the server child
of ``mlops ui`` (its exit code, a bounded stop)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from workloads.cli import app, main


def _commands(command, path=()):
    """Every leaf command of the click tree, with its ``mlops ...`` path."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def test_every_command_that_takes_model_also_takes_m():
    taking_model = {}
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            if "--model" in param.opts:
                taking_model[path] = param.opts + param.secondary_opts
    # the lifecycle commands are among them (a guard against finding none)
    assert {"train", "serve", "traffic", "rollback", "promote", "status", "drift simulate", "drift reset",
            "watch run"} <= set(taking_model)
    assert {path: opts for path, opts in taking_model.items() if "-m" not in opts} == {}


def test_the_version_is_the_installed_package_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mlops (lakehouse-mlops) {version('lakehouse-mlops')}"


def test_promotion_follows_the_environment_order_unless_forced():
    from workloads.environments import CrossEnvironmentPromotionError, check_promotion_order

    check_promotion_order("dev", "prod")
    check_promotion_order("prod", "dev", force=True)
    with pytest.raises(CrossEnvironmentPromotionError,
                       match=r"^promoting prod -> dev goes against the environment order \(dev -> prod\) and would "
                             r"replace dev's champion; pass --force if that is what you want$"):
        check_promotion_order("prod", "dev")
    with pytest.raises(CrossEnvironmentPromotionError,
                       match=r"^--to 'staging' is not an environment; environments: dev, prod$"):
        check_promotion_order("dev", "staging", force=True)  # --force does not invent environments


def test_forced_promotion_against_the_order_gets_past_the_order_check(home, capsys):
    assert main(["promote", "-m", "bakehouse_autolog", "--from", "prod", "--to", "dev", "--force"]) == 1
    # past the order check, refused for its own reason: there is nothing in prod to promote
    assert " ".join(capsys.readouterr().err.split()) == (
        "error: mlops_prod.bakehouse_ml.bakehouse_autolog_model has no champion to promote; train one in prod first")


def test_conflicting_model_and_all_is_one_line(home, capsys):
    assert main(["train", "--model", "bakehouse_autolog", "--all"]) == 1
    assert capsys.readouterr().err.strip() == "error: give --model bakehouse_autolog or --all, not both"


def test_the_ui_server_child_exit_code_is_the_commands(capsys):
    from workloads.cli.ui import run_until_stopped

    code = run_until_stopped([sys.executable, "-c", "import sys; sys.exit(3)"], {}, "starting")
    assert code == 3
    assert "the server exited with code 3" in capsys.readouterr().out


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period():
    from workloads.cli.ui import _stop_group

    script = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
              "time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        _stop_group(child, grace_s=1.0)
        assert child.wait(timeout=30) == -9  # SIGKILL after the SIGTERM was ignored
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_ui_exits_non_zero_when_the_mlflow_server_fails(home):
    from tests.fakes import free_port

    (home / "mlflow.db").write_text("not a database")  # the MLflow server starts, then fails on its store
    proc = subprocess.run([sys.executable, "-m", "workloads.cli", "--home", str(home), "ui", "--port",
                           str(free_port())], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert "the server exited with code 1" in proc.stdout


def test_a_pydantic_validation_error_reaching_the_cli_is_one_line(home, monkeypatch, capsys):
    from pydantic import BaseModel

    class Window(BaseModel):
        days: int
        granularity: str

    def refuse(settings, spec, client=None):
        Window(days="many", granularity=None)  # a value pydantic refuses deep inside a command

    monkeypatch.setattr("workloads.status.model_status", refuse)
    assert main(["status", "-m", "bakehouse_autolog"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == ("error: days: Input should be a valid integer, unable to parse string as an "
                                    "integer; granularity: Input should be a valid string")
    assert "ValidationError" not in captured.out + captured.err and "Traceback" not in captured.out + captured.err
