"""The engine runs infra/__main__.py with infra/ first on sys.path: nothing in infra/ may shadow an import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"


def test_no_module_in_infra_shadows_an_installed_top_level_module():
    names = {p.stem for p in INFRA.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.name for p in INFRA.iterdir() if p.is_dir() and not p.name.startswith("__")}
    shadowing = {}
    for name in sorted(names):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and not str(spec.origin).startswith(str(INFRA)):
            shadowing[name] = spec.origin
    assert shadowing == {}


def test_plan_runs_in_a_fresh_process_with_infra_first_on_sys_path(tmp_path):
    """As the engine would import things, from outside the project, minimal environment: no Pulumi CLI,
    credentials or network; the wheel is found in dist/ or planned with a placeholder."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from workloads.cli import main; sys.exit(main(['plan', '--stack', 'prod', '--json']))")
    result = subprocess.run([sys.executable, "-c", code, str(INFRA)], check=False, cwd=tmp_path,
                            capture_output=True, text=True, timeout=180,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLOPS_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["stack"] == "prod" and plan["resource_count"] > 40
    assert [r["name"] for r in plan["resources"] if r["type"] == "databricks:ModelServing"] == [
        "bakehouse_autolog-endpoint", "bakehouse_decorators-endpoint", "bakehouse_large_order-endpoint"]
    wheel = next(r for r in plan["resources"] if r["type"] == "databricks:File")
    assert wheel["summary"].startswith("/Volumes/mlops_prod/bakehouse_ml/artifacts/wheels/")

def test_project_file_runs_infra_with_uv():
    import yaml

    project = yaml.safe_load((INFRA.parent / "Pulumi.yaml").read_text())
    assert project["name"] == "lakehouse-mlops"
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
