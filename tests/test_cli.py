"""The CLI boundary: bad input is one clear line and a non-zero exit, no stack trace unless --debug."""

import subprocess
import sys

import pytest

from workloads.cli import main


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "workloads.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_unknown_model_is_one_clear_line(home):
    code, out = run("--home", str(home), "train", "--model", "nope")
    assert code == 1
    assert "error: unknown model 'nope'; known models in " in out and ": bakehouse_autolog, " in out
    assert "Traceback" not in out


def test_missing_table_says_what_to_run(home):
    code, out = run("--home", str(home), "train", "--model", "bakehouse_autolog")
    assert code == 1
    assert ("source table samples.bakehouse.sales_transactions of model bakehouse_autolog does not exist; run "
            "`mlops data generate` first") in out
    assert "Traceback" not in out


def test_bad_home_dir_is_refused(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, out = run("--home", str(not_a_dir), "data", "generate")
    assert code == 1
    assert f"home {not_a_dir} exists and is not a directory" in out


def test_debug_shows_the_stack_trace(home):
    code, out = run("--home", str(home), "--debug", "train", "--model", "nope")
    assert code != 0
    assert "Traceback" in out and "SpecError" in out


def test_bad_backend_and_usage_errors(home, capsys):
    assert main(["--backend", "cloud", "train", "--model", "bakehouse_autolog"]) == 1
    assert "backend must be 'local' or 'databricks'" in capsys.readouterr().err
    assert main(["train", "--no-such-flag"]) == 2


def test_data_generate_then_train_and_batch(home, capsys):
    assert main(["data", "generate", "--reference-date", "2026-11-01"]) == 0
    assert main(["train", "--model", "bakehouse_large_order"]) == 0
    out = capsys.readouterr().out
    assert "bakehouse_large_order" in out and "champion" in out
    assert main(["batch", "--model", "bakehouse_large_order"]) == 0
    assert "mlops_dev.bakehouse_ml.bakehouse_large_order_predictions" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.parametrize("command", [["ui"], ["train"]])
def test_commands_without_prerequisites_fail_clearly(home, capsys, command):
    assert main(command) == 1
    err = capsys.readouterr().err
    assert ("no MLflow store" in err) or ("give --model NAME or --all" in err)


def test_demo_refuses_a_used_home_and_reset_refuses_a_home_with_foreign_files(tmp_path, capsys):
    home = tmp_path / "h"
    home.mkdir()
    (home / "mlflow.db").write_bytes(b"")
    assert main(["--home", str(home), "demo"]) == 1
    assert f"{home} already holds an MLflow store" in capsys.readouterr().err
    (home / "notes.txt").write_text("mine")
    assert main(["--home", str(home), "demo", "--reset"]) == 1
    assert "it holds files mlops did not write (notes.txt)" in capsys.readouterr().err.replace("\n", "")
    assert (home / "notes.txt").exists() and (home / "mlflow.db").exists()


def test_tables_fold_long_names_instead_of_cutting_them():
    import io

    from rich.table import Table

    from workloads.cli.common import FoldingConsole

    name = "mlops_dev.bakehouse_ml.bakehouse_decorators_inference_profile_metrics_with_a_long_suffix"
    table = Table("chapter", "where to look")
    table.add_row("report", name)
    out = io.StringIO()
    FoldingConsole(file=out, width=60, color_system=None).print(table)
    text = out.getvalue()
    assert "…" not in text
    pieces = [line.split("│")[2].strip() for line in text.splitlines() if line.count("│") == 3]
    assert "".join(pieces).endswith(name)  # every character of the name is there, in order


def test_watch_run_with_a_stack_applies_that_stacks_overrides_as_its_job_does(monkeypatch, home):
    from infra.components.jobs import threshold_args
    from infra.config import stack_config_from_file
    from workloads.watcher import steps
    from workloads.watcher.evaluation import Evaluation, ObservedMetrics

    seen = {}

    def fake_run_watcher(settings, spec, task_values, granularity, overrides, force):
        seen["overrides"] = overrides
        return steps.WatchResult(ObservedMetrics(), Evaluation(False, "healthy", [], []))

    monkeypatch.setattr(steps, "run_watcher", fake_run_watcher)
    assert main(["--home", str(home), "watch", "run", "-m", "bakehouse_large_order", "--stack", "prod"]) == 0
    job_args = threshold_args(stack_config_from_file("prod"), "bakehouse_large_order")
    assert job_args == ["--threshold", "f1_score=min:0.6"]  # what the prod watcher job passes
    assert {m: (t.direction, t.value) for m, t in seen["overrides"].items()} == {"f1_score": ("min", 0.6)}
    assert main(["--home", str(home), "watch", "run", "-m", "bakehouse_large_order", "--stack", "prod",
                 "--threshold", "f1_score=min:0.9"]) == 1
