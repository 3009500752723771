"""Drift verdicts that hold statistically: false breaches on healthy windows, detection of real drift.

    uv run python tests/benchmarks/bench_drift_evidence.py [--quick]

The demo model (``bakehouse_decorators``: 9 categorical features, franchise_name with 48 values, 5 numeric ones)
is trained on the bakehouse twin's training split, as the demo trains it. Each trial draws one window of N
labelled examples, runs the real monitor computation on it against the training split as baseline
(``workloads.monitoring.compute``), reads it back as the watcher does (``observe_latest_window``) and judges it
with the real ``evaluate_window``:

- healthy windows: N examples drawn from the same population the baseline comes from;
- covariate drift: ``drift simulate --kind covariate`` with its defaults (numeric features 2 standard deviations
  up, 80% of each categorical feature's rows moved to its rarest quarter of categories); concept drift:
  ``--kind concept`` with its defaults (the label 2 standard deviations up).

Printed side by side in one table, per window size: the share of healthy windows called a breach under the
evidence rules (goal: at most 1% at every size) and under the distance-only rule they replace, the share called
"not enough data", and the share of drifted windows caught (goal: 100% from 200 rows per window).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

MODEL = "bakehouse_decorators"
SIZES = (20, 50, 100, 200, 500, 1000, 2000, 5000)
DRIFT_FROM = 200
WINDOW_START = pd.Timestamp("2026-11-20", tz="UTC")


class MetricTables:
    """The tables port as the watcher's reader sees it, over one computed refresh."""

    def __init__(self, computed):
        self.computed = computed

    def _table(self, name: str):
        return self.computed.profile if name.endswith("_profile_metrics") else self.computed.drift

    def exists(self, name: str) -> bool:
        return True

    def columns(self, name: str) -> list[str]:
        return list(self._table(name).column_names)

    def read(self, name: str, columns=None) -> pd.DataFrame:
        table = self._table(name)
        return (table if columns is None else table.select(columns)).to_pandas()


def world(seed: int = 42):
    """The demo model trained on the twin's training split; the population healthy windows come from."""
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features, label_frame, split_holdout
    from workloads.specs import load_spec
    from workloads.training.pipeline import build_pipeline

    spec = load_spec(MODEL)
    population = label_frame(build_features(generate(seed=seed)), spec)
    train, _ = split_holdout(population)
    model = build_pipeline(spec).fit(train[spec.feature_names], train[spec.label.name])
    baseline = train[[*spec.feature_names, spec.label.name]].copy()
    baseline[spec.prediction.name] = model.predict(train[spec.feature_names])
    return spec, model, population, baseline


def processed_window(spec, model, rows: pd.DataFrame, rng) -> pd.DataFrame:
    """``rows`` as the processed inference table holds them: one day's window, predictions, ids."""
    from workloads.specs import EXAMPLE_ID_COLUMN, MODEL_ID_COLUMN, REQUEST_ID_COLUMN, TIMESTAMP_COLUMN

    frame = rows[[*spec.feature_names, spec.label.name]].reset_index(drop=True).copy()
    frame[spec.prediction.name] = model.predict(frame[spec.feature_names])
    frame[MODEL_ID_COLUMN] = "1"
    frame[TIMESTAMP_COLUMN] = WINDOW_START + pd.to_timedelta(rng.integers(0, 86_399, len(frame)), unit="s")
    frame[REQUEST_ID_COLUMN] = [f"r{i}" for i in range(len(frame))]
    frame[EXAMPLE_ID_COLUMN] = frame[REQUEST_ID_COLUMN]
    return frame


def judge(settings, spec, baseline, window: pd.DataFrame, distance_only_spec):
    """(evidence verdict, distance-only verdict) of one window, through the real monitor and evaluation."""
    from workloads.monitoring.compute import compute_metrics, prepare
    from workloads.watcher.evaluation import evaluate_window
    from workloads.watcher.observation import observe_latest_window

    computed = compute_metrics(prepare(window, baseline, spec), "1 day")
    observed = observe_latest_window(settings, spec, "1 day", tables=MetricTables(computed))
    return evaluate_window(spec, observed).health, evaluate_window(distance_only_spec, observed).health


def run(trials_healthy: int, trials_drift: int, sizes=SIZES) -> tuple[list[dict], float]:
    from workloads.drift import concept_shift, covariate_shift
    from workloads.settings import load_settings

    started = time.perf_counter()
    spec, model, population, baseline = world()
    # The rule this replaces: any distance over its threshold is a breach, whatever the rows or the p-value.
    distance_only = spec.model_copy(update={"drift_evidence": spec.drift_evidence.model_copy(
        update={"min_rows": 1, "min_expected_per_category": 0.0, "alpha": 1 - 1e-12})})
    settings = load_settings(home=tempfile.mkdtemp(prefix="bench-drift-evidence-"))
    rng = np.random.default_rng(2026)
    results = []
    for n in sizes:
        row = {"rows": n, "healthy": 0, "breach": 0, "breach_distance_only": 0, "not_enough": 0}
        for _ in range(trials_healthy):
            sample = population.iloc[rng.integers(0, len(population), n)]
            health, old = judge(settings, spec, baseline, processed_window(spec, model, sample, rng), distance_only)
            row["healthy"] += 1
            row["breach"] += health == "breach"
            row["breach_distance_only"] += old == "breach"
            row["not_enough"] += health == "not enough data"
        for kind in ("concept", "covariate"):
            caught = 0
            trials = trials_drift if n >= DRIFT_FROM else 0
            for t in range(trials):
                if kind == "covariate":
                    shifted = covariate_shift(population, spec, seed=int(rng.integers(1 << 31)))
                else:
                    shifted = concept_shift(population, spec)
                sample = shifted.iloc[rng.integers(0, len(shifted), n)]
                health, _ = judge(settings, spec, baseline, processed_window(spec, model, sample, rng), distance_only)
                caught += health == "breach"
            row[f"{kind}_trials"], row[f"{kind}_caught"] = trials, caught
        results.append(row)
    return results, time.perf_counter() - started


def report(results: list[dict], seconds: float, console: Console) -> bool:
    table = Table(title=f"Drift evidence: {MODEL}, real monitor + evaluation per window ({seconds:.0f} s)")
    for column in ("rows per window", "healthy windows", "false breach (evidence rules)",
                   "false breach (distance only)", "not enough data", "concept drift caught",
                   "covariate drift caught"):
        table.add_column(column, justify="right")
    ok = True
    for r in results:
        rate = r["breach"] / r["healthy"]
        old = r["breach_distance_only"] / r["healthy"]
        ok &= rate <= 0.01
        cells = []
        for kind in ("concept", "covariate"):
            trials = r[f"{kind}_trials"]
            if trials:
                caught = r[f"{kind}_caught"] / trials
                ok &= caught == 1.0
                cells.append(f"{caught:.0%} ({r[f'{kind}_caught']}/{trials})")
            else:
                cells.append("-")
        table.add_row(str(r["rows"]), str(r["healthy"]), f"{rate:.1%} ({r['breach']})", f"{old:.1%}",
                      f"{r['not_enough'] / r['healthy']:.0%}", *cells)
    console.print(table)
    console.print("goals: false breach <= 1% at every size; 100% of concept and covariate drift caught from "
                  f"{DRIFT_FROM} rows per window: " + ("[green]met[/]" if ok else "[red]NOT met[/]"))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--trials", type=int, default=None, help="healthy windows per size (default 200; quick 20)")
    args = parser.parse_args(argv)
    healthy = args.trials or (20 if args.quick else 200)
    drift = 5 if args.quick else 40
    sizes = (20, 200, 1000) if args.quick else SIZES
    results, seconds = run(healthy, drift, sizes)
    return 0 if report(results, seconds, Console(width=160)) else 1


if __name__ == "__main__":
    sys.exit(main())
