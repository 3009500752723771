"""CLI commands and the HTML report (rendered in headless Chromium)."""

import html
import re
import shutil
import subprocess

import pandas as pd
import pytest

from tests.monitoring.conftest import seed_tables
from workloads.cli import main
from workloads.monitoring.checks import check_payload_table
from workloads.monitoring.report import build_report, write_report
from workloads.ports.tables import get_tables
from workloads.specs import load_spec


def test_cli_refresh_drift_analyze_and_report(settings, home, tmp_path, capsys):
    spec = load_spec("bakehouse_decorators")
    seed_tables(settings, spec, rows=500, days=6, baseline_rows=200, drift_from_day=3)
    assert main(["--home", str(home), "monitor", "refresh", "--model", spec.name, "-g", "1 day", "-g", "12 hours"]) == 0
    out = capsys.readouterr().out
    assert "1 day: 6 window(s) recomputed" in out and "12 hours: 12 window(s) recomputed" in out
    assert main(["--home", str(home), "monitor", "refresh", "--all"]) == 0
    out = capsys.readouterr().out
    assert "0 window(s) recomputed, 6 unchanged" in out and "bakehouse_autolog: no processed inference table" in out
    assert main(["--home", str(home), "drift", "analyze", "--model", spec.name, "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert "drifted features:" in out and "unitPrice" in out and "stale" not in out
    # new rows after the refresh: the values shown no longer hold them, and analyze says so
    from workloads.ports.tables import get_tables

    tables = get_tables(settings)
    processed = settings.table(spec.processed_table)
    version = tables.version(processed)
    tables.write(processed, tables.read(processed).head(5), mode="append")
    assert main(["--home", str(home), "drift", "analyze", "--model", spec.name, "--days", "7"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"stale: these values were computed from version {version} of {processed}, which is at version "
            f"{version + 1} now") in out and f"run `mlops monitor refresh -m {spec.name}`" in out
    target = tmp_path / "r.html"
    assert main(["--home", str(home), "report", "--model", spec.name, "--out", str(target)]) == 0
    assert target.is_file() and "report:" in capsys.readouterr().out


def test_cli_errors_are_one_line(home, capsys):
    assert main(["--home", str(home), "monitor", "refresh", "--model", "bakehouse_autolog"]) == 1
    err = capsys.readouterr().err
    assert "does not exist yet" in err and "Traceback" not in err
    assert main(["--home", str(home), "monitor", "refresh"]) == 1
    assert main(["--home", str(home), "monitor", "refresh", "--model", "bakehouse_autolog", "-g", "2 eons"]) == 1
    assert "not supported" in capsys.readouterr().err


def _payload(n, errors, newest):
    return pd.DataFrame({
        "databricks_request_id": [f"r{i}" for i in range(n)], "client_request_id": [None] * n,
        "request_date": [newest.date()] * n, "request_time": [newest - pd.Timedelta(minutes=i) for i in range(n)],
        "status_code": [400 if i < errors else 200 for i in range(n)], "sampling_fraction": [1.0] * n,
        "execution_duration_ms": [5] * n, "request": ["{}"] * n, "response": ["{}"] * n,
        "served_entity_id": ["e"] * n, "logging_error_codes": [None] * n, "requester": ["me"] * n,
    })


def test_check_inference_table(settings, home, capsys):
    spec = load_spec("bakehouse_autolog")
    report = check_payload_table(settings, spec)
    assert not report.ok and report.checks[0].name == "exists"
    now = pd.Timestamp.now(tz="UTC")
    get_tables(settings).write(settings.table(spec.payload_table), _payload(40, 1, now))
    assert check_payload_table(settings, spec).ok
    assert main(["--home", str(home), "monitor", "check-inference-table", "--model", spec.name]) == 0
    get_tables(settings).write(settings.table(spec.payload_table), _payload(40, 30, now - pd.Timedelta(days=3)),
                               mode="overwrite")
    failed = {c.name for c in check_payload_table(settings, spec).checks if not c.ok}
    assert failed == {"recent", "error rate"}
    assert main(["--home", str(home), "monitor", "check-inference-table", "--model", spec.name]) == 1
    assert "FAIL" in capsys.readouterr().out


def _promotion(settings, spec, at="2026-01-04"):
    return pd.DataFrame({"model": [spec.name], "action": ["promote"], "env": [settings.env], "from_version": ["1"],
                         "to_version": ["2"], "from_metrics": ['{"rmse": 9.81}'], "to_metrics": ['{"rmse": 2.86}'],
                         "reason": ["beat champion"], "actor": ["watcher"], "at": [pd.Timestamp(at, tz="UTC")]})


def test_report_is_self_contained_with_a_verdict_and_a_readable_history(refreshed):
    settings, spec, _ = refreshed
    page = build_report(settings, spec)
    assert "no promotions yet" in page
    assert not re.search(r'<script[^>]+src="http', page)
    assert page.count("plotly-graph-div") == 1  # one figure: every panel on one time axis
    assert 'id="verdict"' in page and "Verdict: " in page
    for panel in ("per 1 day window", "Drift against the baseline", "1.0 = breach line",
                  "Examples and requests per window", "(ms) and error rate"):  # ('/' is escaped in the JSON)
        assert panel in page, panel
    tables = get_tables(settings)
    tables.write(settings.table("model_promotions"), _promotion(settings, spec))
    page = build_report(settings, spec)
    assert "beat champion" in page and "no promotions yet" not in page
    assert "rmse 9.81" in page and "rmse 2.86" in page and "v1 → v2" in page  # not raw JSON
    assert '{"rmse"' not in page.split("Champion history")[1]
    assert "promote: v2 champion" in page  # the marker on the quality charts
    tables.drop(settings.table("model_promotions"))


def test_the_verdict_banner_is_the_watchers_verdict(refreshed):
    from workloads.watcher.evaluation import evaluate_window
    from workloads.watcher.observation import observe_latest_window

    settings, spec, _ = refreshed
    expected = evaluate_window(spec, observe_latest_window(settings, spec))
    page = build_report(settings, spec)
    assert f"Verdict: {expected.health}" in page
    for check in expected.checks:
        if check.status == "breach":
            assert html.escape(check.line()) in page


@pytest.mark.browser
def test_report_renders_in_headless_chromium(refreshed, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    settings, spec, _ = refreshed
    tables = get_tables(settings)
    tables.write(settings.table("model_promotions"), _promotion(settings, spec, at="2026-01-03T12:00:00"))
    try:
        path = write_report(settings, spec, tmp_path / "report.html")
    finally:
        tables.drop(settings.table("model_promotions"))
    png = tmp_path / "shot.png"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
            "--window-size=1280,2000", "--virtual-time-budget=5000"]
    subprocess.run([*base, f"--screenshot={png}", path.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*base, "--dump-dom", path.as_uri()], check=True, capture_output=True, timeout=120,
                         text=True).stdout
    # plotly.js ran: the figure got its rendered SVG layers, with every panel's title drawn.
    assert dom.count('class="main-svg"') >= 1
    assert "Drift against the baseline" in dom
    assert 'id="verdict"' in dom and "Verdict: " in dom  # the banner
    assert "promote: v2 champion" in dom  # the champion-change marker, drawn as an SVG annotation
    assert "Latency p50 / p99 (ms) and error rate" in dom and "latency p99 (ms)" in dom  # the latency panel
    from PIL import Image

    image = Image.open(png).convert("L")
    lo, hi = image.getextrema()
    assert hi - lo > 100  # not blank
    colours = len(set(image.resize((320, 500)).get_flattened_data()))
    assert colours > 20
