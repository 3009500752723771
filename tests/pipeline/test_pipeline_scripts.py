"""The promotion step's shell script, taken from azure-pipelines.yml and run with bash for real: the
Azure macros substituted, `uv` replaced by a stub that runs the real stack_info.py and records what the
champion check and `mlops` were asked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pipeline_rules as rules
import pytest

UV_STUB = r"""#!/usr/bin/env bash
[ "$1" = run ] && [ "$2" = --locked ] || { echo "uv stub: unexpected $*" >&2; exit 99; }
shift 2
if [ "$1" = python ] && [ "$2" = infra/pipeline/stack_info.py ]; then
  shift 2; exec "$REAL_PYTHON" infra/pipeline/stack_info.py "$@"
fi
if [ "$1" = python ] && [ "$2" = infra/pipeline/champion.py ]; then
  shift 2; echo "$*" >> "$LOG/champion"
  case "$2" in
    *large_order*) echo "no 'champion' alias"; exit 3 ;;
    *decorators*) exit "${DECORATORS_CHECK:-0}" ;;
    *up_to_date*) echo "already is"; exit 4 ;;
  esac
  echo "promote"; exit 0
fi
if [ "$1" = mlops ]; then
  shift; echo "$DATABRICKS_HOST $MLOPS_CATALOG_DEV $MLOPS_CATALOG_PROD | $*" >> "$LOG/mlops"; exit 0
fi
echo "uv stub: unexpected $*" >&2; exit 98
"""


def promote_script() -> str:
    doc = rules.load_pipeline()
    steps = rules.job_steps(rules.stage_by_id(doc, "DeployProd")["jobs"][0])
    (step,) = [s for s in steps if s.get("name") == "promote"]
    return step["inputs"]["inlineScript"]


@pytest.fixture
def run_promote(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text(UV_STUB)
    (bin_dir / "uv").chmod(0o755)
    log = tmp_path / "log"
    log.mkdir()

    def run(outputs: str | None, **env):
        temp = tmp_path / "agent-temp"
        temp.mkdir(exist_ok=True)
        if outputs is not None:
            (temp / "outputs-prod.json").write_text(outputs)
        script = promote_script().replace("$(Agent.TempDirectory)", str(temp))
        assert not re.search(r"\$\([A-Z][\w]*\.", script), "an Azure macro is left unsubstituted"
        result = subprocess.run(["bash", "-c", script], cwd=rules.ROOT, capture_output=True, text=True, timeout=120,
                                check=False, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log),
                                                  "REAL_PYTHON": sys.executable, **env})
        read = {name: (log / name).read_text().splitlines() if (log / name).exists() else []
                for name in ("champion", "mlops")}
        return result, read

    return run


def test_promotes_models_with_a_dev_champion_and_skips_the_others(run_promote):
    outputs = '{"models": {"bakehouse_autolog": {}, "bakehouse_decorators": {}, "bakehouse_large_order": {}}}'
    result, log = run_promote(outputs)
    assert result.returncode == 0, result.stderr
    assert log["champion"] == [f"--model {m} --from dev --to prod"
                               for m in ("bakehouse_autolog", "bakehouse_decorators", "bakehouse_large_order")]
    host = "https://adb-6543210987654321.3.azuredatabricks.net"
    assert log["mlops"] == [f"{host} mlops_dev mlops_prod | --backend databricks promote --model {m} --from dev --to prod"
                            for m in ("bakehouse_autolog", "bakehouse_decorators")]
    assert "##vso[task.logissue type=warning]bakehouse_large_order: no champion in dev yet" in result.stdout
    assert result.stdout.rstrip().endswith("##vso[task.setvariable variable=promotedModels]2")


def test_models_already_promoted_are_left_alone(run_promote):
    result, log = run_promote('{"models": {"up_to_date": {}, "bakehouse_autolog": {}}}')
    assert result.returncode == 0, result.stderr
    assert [line.split("| ")[1] for line in log["mlops"]] == [
        "--backend databricks promote --model bakehouse_autolog --from dev --to prod"]
    assert "already is" in result.stdout and "warning]up_to_date" not in result.stdout
    assert result.stdout.rstrip().endswith("promotedModels]1")


def test_without_outputs_the_prod_config_lists_the_models(run_promote):
    result, log = run_promote("")
    assert result.returncode == 0, result.stderr
    assert len(log["mlops"]) == 2 and len(log["champion"]) == 3


def test_a_failing_champion_check_fails_the_step_before_promoting_further(run_promote):
    outputs = '{"models": {"bakehouse_decorators": {}, "bakehouse_autolog": {}}}'
    result, log = run_promote(outputs, DECORATORS_CHECK="1")
    assert result.returncode == 1
    assert log["mlops"] == []


def test_unreadable_outputs_fail_the_step(run_promote):
    result, log = run_promote("[1, 2]")
    assert result.returncode == 1
    assert "error:" in result.stderr and log["champion"] == []


def test_nothing_promoted_skips_the_second_prod_deploy():
    doc = rules.load_pipeline()
    steps = rules.job_steps(rules.stage_by_id(doc, "DeployProd")["jobs"][0])
    names = [s.get("name") for s in steps]
    after = steps[names.index("promote") + 1]
    assert re.search(r"\bpulumi up\b.*--stack prod\b.*--yes", rules.step_script(after))
    condition = rules.parse_condition(after["condition"])
    assert rules.evaluate(condition, {"promotedModels": "2"}, [])
    assert not rules.evaluate(condition, {"promotedModels": "0"}, [])


def test_promote_command_matches_the_workloads_cli():
    """The pipeline calls `mlops --backend databricks promote --model M --from dev --to prod`."""
    from typer.testing import CliRunner

    from workloads.cli import app

    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    if "promote" not in names:
        pytest.skip("the workloads CLI has no `promote` command yet")
    help_text = CliRunner().invoke(app, ["promote", "--help"]).output
    for option in ("--model", "--from", "--to"):
        assert option in help_text
    assert Path(rules.PIPELINE).read_text().count("mlops --backend databricks promote") == 1


def _bash_steps():
    doc = rules.load_pipeline()
    for stage in rules.stages(doc):
        for job, step in rules.stage_steps(stage):
            inputs = step.get("inputs") or {}
            if "script" in step or "bash" in step:
                text = step.get("script", step.get("bash"))
            elif step.get("task") == "AzureCLI@2" and inputs.get("scriptType") == "bash":
                text = inputs["inlineScript"]
            else:
                continue
            name = f"{stage['stage']}/{job.get('job') or job.get('deployment')}/{step.get('displayName')}"
            yield pytest.param(text, id=name)


@pytest.mark.parametrize("script", list(_bash_steps()))
def test_every_bash_step_parses(script, tmp_path):
    """`bash -n` on each inline script after Azure macro expansion ($(Agent.TempDirectory) and the like
    become words, as the agent substitutes them before bash runs)."""
    expanded = re.sub(r"\$\((?:[A-Z]\w*\.)+\w+\)|\$\((?:pythonVersion|PULUMI_CONFIG_PASSPHRASE)\)", "MACRO", script)
    path = tmp_path / "step.sh"
    path.write_text(expanded)
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_setup_script_parses_and_pins_the_cli_to_the_locked_sdk():
    setup = rules.ROOT / "infra" / "pipeline" / "setup.sh"
    result = subprocess.run(["bash", "-n", str(setup)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    text = setup.read_text()
    assert "uv sync --locked" in text and 'm.version("pulumi")' in text and "get.pulumi.com" in text
    assert "##vso[task.prependpath]$HOME/.pulumi/bin" in text
