"""A team brings its own model on its own table with a CSV, the CLI and a spec, and edits no code.

The data is not the bakehouse: deliveries (an id, a timestamp over 30 days, numeric and categorical features, the
minutes a delivery took). It goes through every command a user runs: import, spec init, spec check, train, serve,
traffic, labels, watch (healthy: nothing promoted), drift simulate (caught), retrain and promotion on evidence
disjoint from what the challenger trained on, report, status, dev -> prod. No step may read a bakehouse table,
and the repository is left as it was (the spec lives in the user's own spec directory).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workloads.cli import main
from workloads.ports.tables import LocalTables

REPO = Path(__file__).resolve().parents[2]
TABLE = "mlops_dev.logistics.deliveries"
MODEL = "deliveries"


def deliveries_csv(path: Path, n: int = 3000, seed: int = 11) -> Path:
    rng = np.random.default_rng(seed)
    zone = rng.choice([f"zone_{c}" for c in "abcdefgh"], n)
    vehicle = rng.choice(["bike", "car", "van"], n, p=[0.5, 0.3, 0.2])
    distance = rng.gamma(2.0, 2.5, n).round(2)
    items = rng.integers(1, 12, n)
    zone_delay = pd.Series(zone).map({f"zone_{c}": i * 1.5 for i, c in enumerate("abcdefgh")}).to_numpy()
    speed = pd.Series(vehicle).map({"bike": 3.0, "car": 2.0, "van": 2.4}).to_numpy()
    minutes = (8 + speed * distance + 0.8 * items + zone_delay + rng.normal(0, 2.0, n)).round(1)
    start = pd.Timestamp("2026-11-01")
    frame = pd.DataFrame({
        "delivery_id": [f"d-{i:06d}" for i in range(n)],
        "ordered_at": (start + pd.to_timedelta(rng.uniform(0, 30 * 86_400, n), unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
        "zone": zone, "vehicle": vehicle, "distance_km": distance, "items": items, "minutes": minutes,
    })
    frame.to_csv(path, index=False)
    return path


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def reads(monkeypatch):
    """Every table the local tables port opens, by name."""
    opened: list[str] = []
    original_read, original_exists = LocalTables.read, LocalTables.exists

    def read(self, name, *args, **kwargs):
        opened.append(name)
        return original_read(self, name, *args, **kwargs)

    def exists(self, name):
        opened.append(name)
        return original_exists(self, name)

    monkeypatch.setattr(LocalTables, "read", read)
    monkeypatch.setattr(LocalTables, "exists", exists)
    return opened


def mlops(capsys, *args) -> str:
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, f"mlops {' '.join(args)} failed: {out.out}{out.err}"
    return out.out


def test_a_csv_of_ones_own_becomes_a_monitored_model_that_retrains_with_the_cli_and_a_spec_only(
        home, tmp_path, monkeypatch, capsys, reads):
    from workloads import registry
    from workloads.data import roles
    from workloads.data.source import read_examples
    from workloads.serving.running import clear_running, record_running
    from workloads.serving.server import start_server
    from workloads.settings import load_settings
    from workloads.specs import load_spec

    before = git_status()
    specs = tmp_path / "my-specs"
    specs.mkdir()
    monkeypatch.setenv("MLOPS_SPECS", str(specs))
    csv = deliveries_csv(tmp_path / "deliveries.csv")

    out = mlops(capsys, "data", "import", str(csv), "--table", TABLE)
    assert "3,000 rows" in out and "ordered_at" in out and "timestamp (parsed from text)" in out
    assert main(["data", "import", str(csv), "--table", TABLE]) == 1
    assert "already exists; pass --mode overwrite" in capsys.readouterr().err

    out = mlops(capsys, "spec", "init", "--table", TABLE, "--label", "minutes", "--name", MODEL)
    assert "guessed id column: delivery_id" in out and "guessed timestamp column: ordered_at" in out
    assert "problem type: regression" in out
    spec_file = specs / f"{MODEL}.yaml"
    drafted = yaml.safe_load(spec_file.read_text())
    assert drafted["source"] == {"table": TABLE, "id": "delivery_id", "timestamp": "ordered_at"}
    assert {f["name"] for f in drafted["features"]} == {"zone", "vehicle", "distance_km", "items"}
    assert "ok" in mlops(capsys, "spec", "check", str(spec_file))
    spec = load_spec(MODEL)

    out = mlops(capsys, "train", "--model", MODEL)
    settings = load_settings()
    champion = registry.get_alias(settings, spec, registry.CHAMPION)
    assert champion is not None and champion.version == 1, out

    handle = start_server(settings, spec, poll_interval=0.2)
    try:
        record_running(settings, MODEL, handle.url)  # as `mlops serve` does when it is ready
        out = mlops(capsys, "traffic", "--model", MODEL, "--n", "40", "--batch-size", "5")
        assert "40 ok, 0 failed" in out
        handle.flush()
        out = mlops(capsys, "watch", "run", "--model", MODEL)
        assert "retrain needed: False" in out and "promoted" not in out, out
        assert registry.get_alias(settings, spec, registry.CHAMPION).version == 1

        out = mlops(capsys, "drift", "simulate", "--model", MODEL, "--kind", "concept", "--days-ahead", "1",
                    "--requests", "120", "--batch-size", "5")
        handle.flush()
        out = mlops(capsys, "watch", "run", "--model", MODEL)
        assert "retrain needed: True" in out and "v2 promoted over v1" in out.replace("\n", " "), out
    finally:
        handle.stop()
        clear_running(settings, MODEL)  # as `mlops serve` does when it stops

    # The promotion rests on rows the challenger never trained on.
    champion = registry.get_alias(settings, spec, registry.CHAMPION)
    assert champion.version == 2
    import mlflow

    run = mlflow.get_run(champion.run_id)
    assert run.data.tags["mlops.holdout"] == "held-out recent labelled traffic"
    examples = read_examples(settings, spec)
    assert not roles.split(examples, spec).holdout.empty

    mlops(capsys, "report", "--model", MODEL)
    report = (home / "reports" / f"{MODEL}.html").read_text()
    assert "last action: retrained and promoted v2" in report  # the banner says what was done about the breach
    out = " ".join(mlops(capsys, "status", "--model", MODEL).split())
    assert "v1 (previous), v2 (champion)" in out
    prod = out[out.index("[prod]"):]
    assert re.search(r"versions │ none", prod) and re.search(r"endpoint │ not running", prod), prod  # not dev's
    out = mlops(capsys, "promote", "--model", MODEL, "--from", "dev", "--to", "prod")
    assert "mlops_prod." in out and "(champion)" in out

    bakehouse = sorted({name for name in reads if name.startswith("samples.")})
    assert bakehouse == [], f"steps of a non-bakehouse model read bakehouse tables: {bakehouse}"
    assert TABLE in reads
    assert git_status() == before  # no code edited, nothing written into the repository


def test_import_refuses_a_malformed_file_and_writes_nothing(home, tmp_path, capsys):
    from workloads.settings import load_settings

    bad = tmp_path / "bad.csv"
    bad.write_text("id,when,x\n1,2026-11-01,3\n2,2026-11-02,4,5,6\n")
    assert main(["data", "import", str(bad), "--table", TABLE]) == 1
    err = capsys.readouterr().err
    assert "error: file" in err and "is malformed" in err and "Traceback" not in err
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("my id,when\n1,2026-11-01\n")
    assert main(["data", "import", str(spaced), "--table", TABLE]) == 1
    assert "column names with spaces" in capsys.readouterr().err
    assert main(["data", "import", str(tmp_path / "none.csv"), "--table", TABLE]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not LocalTables(load_settings().warehouse).exists(TABLE)


def test_spec_init_says_what_to_pass_when_it_cannot_guess(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_SPECS", str(tmp_path))
    no_time = tmp_path / "no_time.csv"
    pd.DataFrame({"k": [1, 2, 3], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_csv(no_time, index=False)
    assert main(["data", "import", str(no_time), "--table", "mlops_dev.t.no_time"]) == 0
    capsys.readouterr()
    assert main(["spec", "init", "--table", "mlops_dev.t.no_time", "--label", "y"]) == 1
    assert "has no timestamp or date column" in capsys.readouterr().err
    assert main(["spec", "init", "--table", "mlops_dev.t.no_time", "--label", "nope"]) == 1
    assert "label 'nope' is not a column of mlops_dev.t.no_time (columns: k, x, y)" in capsys.readouterr().err


def test_a_parquet_file_becomes_a_table_and_a_classification_spec_that_checks(home, tmp_path, monkeypatch, capsys):
    from workloads.specs import check_spec_file, load_spec

    monkeypatch.setenv("MLOPS_SPECS", str(tmp_path / "specs"))
    (tmp_path / "specs").mkdir()
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({
        "patient_id": np.arange(10_000, 10_000 + n),  # integer ids
        "seen_at": pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 30, n), unit="D"),
        "radius": rng.normal(14, 3, n), "clinic": rng.choice(["north", "south"], n), "flag": rng.random(n) > 0.5,
        "malignant": (rng.random(n) > 0.6).astype("int64"),
    })
    path = tmp_path / "patients.parquet"
    frame.to_parquet(path)
    out = " ".join(mlops(capsys, "data", "import", str(path), "--table", "mlops_dev.clinic.patients").split())
    for column, kind in (("patient_id", "bigint"), ("seen_at", "timestamp"), ("radius", "double"),
                         ("clinic", "string"), ("flag", "boolean"), ("malignant", "bigint")):
        assert f"{column} │ {kind}" in out, (column, out)
    out = mlops(capsys, "spec", "init", "--table", "mlops_dev.clinic.patients", "--label", "malignant")
    assert "problem type: classification" in out and "guessed id column: patient_id" in out
    spec, _ = check_spec_file(tmp_path / "specs" / "patients.yaml")
    assert spec == load_spec("patients") and spec.prediction.type == "bigint"
    assert spec.thresholds["accuracy_score"].min > 0.6  # above always predicting the majority class (about 60%)
    # the same table again needs --mode overwrite, and then replaces it
    assert main(["data", "import", str(path), "--table", "mlops_dev.clinic.patients"]) == 1
    capsys.readouterr()
    assert "Delta version 1" in mlops(capsys, "data", "import", str(path), "--table", "mlops_dev.clinic.patients",
                                      "--mode", "overwrite")
