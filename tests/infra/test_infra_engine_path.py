"""The engine runs infra/__main__.py with infra/ first on sys.path: nothing in infra/ may shadow an import."""

from __future__ import annotations

import importlib.util
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


def test_program_runs_with_infra_first_on_sys_path(tmp_path):
    wheel = tmp_path / "lakehouse_mlops-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"fake")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from infra.offline import evaluate;"
        "ev = evaluate('prod', wheel=sys.argv[2], champions={'bakehouse_autolog': 1});"
        "print(len(ev.resources), len(ev.of_type('ModelServing')), len(ev.deprecations))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(INFRA), str(wheel)], check=False, cwd=INFRA,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    resources, endpoints, deprecations = map(int, result.stdout.split())
    assert resources > 40 and endpoints == 1 and deprecations == 0


def test_project_file_runs_infra_with_uv():
    import yaml

    project = yaml.safe_load((INFRA.parent / "Pulumi.yaml").read_text())
    assert project["name"] == "lakehouse-mlops"
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv"}}
