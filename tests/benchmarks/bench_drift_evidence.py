"""Drift and quality verdicts that hold statistically: false breaches on healthy windows, detection of real drift.

    uv run python tests/benchmarks/bench_drift_evidence.py [--quick] [--trials N] [--drift-trials N] [--model NAME]

Each demo model (``bakehouse_decorators``, regression with rmse max 5 and r2 min 0.5; ``bakehouse_large_order``,
classification with accuracy min 0.7 and f1 min 0.5; both with 9 categorical features, franchise_name with 48
values, and 5 numeric ones) is trained on the bakehouse twin's training split, as the demo trains it. Each trial
draws one window of N labelled examples, runs the real monitor computation on it against the training split as
baseline (``workloads.monitoring.compute``), reads it back as the watcher does (``observe_latest_window``: the
metric tables, and the window's labelled rows of the processed table for the quality intervals) and judges it
with the real ``evaluate_window``:

- healthy windows: N examples drawn from the same population the baseline comes from;
- covariate drift: ``drift simulate --kind covariate`` with its defaults (numeric features 2 standard deviations
  up, 80% of each categorical feature's rows moved to its rarest quarter of categories); concept drift:
  ``--kind concept`` with its defaults (the label 2 standard deviations up).

Printed side by side in one table per model, per window size: the share of healthy windows called a breach under
the evidence rules (goal: at most 1% at every size) and under the distance-only rule they replace, the share called
"not enough data"; the quality thresholds alone judged with ``min_rows`` lowered to 2 (so that windows of 20 rows
are judged too), with their confidence intervals (goal: at most 1% false breaches at every size) and on the point
estimate alone (the rule the intervals replace); and the share of drifted windows caught (goal: 100% from 200
rows per window). The last quality pair is the hard case: every quality threshold moved onto the model's own
metric on the population the healthy windows come from (healthy, just), where a point estimate is beyond its
threshold about half the time; the intervals bound that at ``quality_evidence.alpha`` (1%) by construction, up
to the intervals' approximation, which this column measures.
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

MODELS = ("bakehouse_decorators", "bakehouse_large_order")
SIZES = (20, 50, 100, 200, 500, 1000, 2000, 5000)
DRIFT_FROM = 200
WINDOW_START = pd.Timestamp("2026-11-20", tz="UTC")


class WindowTables:
    """The tables port as the watcher's reader sees it: one computed refresh's metric tables and the processed
    table holding the window's rows (read with the columns and row filter the observation asks for)."""

    def __init__(self, computed, processed: pd.DataFrame):
        self.computed, self.processed = computed, processed

    def exists(self, name: str) -> bool:
        return True

    def _table(self, name: str):
        import pyarrow as pa

        if name.endswith("_profile_metrics"):
            return self.computed.profile
        if name.endswith("_drift_metrics"):
            return self.computed.drift
        return pa.Table.from_pandas(self.processed, preserve_index=False)

    def columns(self, name: str) -> list[str]:
        return list(self._table(name).column_names)

    def read(self, name: str, columns=None, version=None, where=None) -> pd.DataFrame:
        table = self._table(name)
        if where is not None:
            table = table.filter(where.arrow(table.schema))
        return table.select(list(columns) if columns else table.column_names).to_pandas()


def world(model: str, seed: int = 42):
    """The demo model trained on the twin's training split; the population healthy windows come from."""
    from workloads.data import roles
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features
    from workloads.data.source import with_label
    from workloads.specs import load_spec
    from workloads.training.pipeline import build_pipeline

    spec = load_spec(model)
    population = with_label(build_features(generate(seed=seed)), spec)
    train = roles.split(population, spec).training
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


def at_the_truth(spec, model, population: pd.DataFrame):
    """``spec`` with ``min_rows`` 2 and each quality threshold moved onto the model's own metric on the whole
    population healthy windows are drawn from: every window's population meets its thresholds, just."""
    from workloads.metric_names import metric_value
    from workloads.specs import Threshold
    from workloads.training.evaluation import quality_metrics

    truth = quality_metrics(spec, population[spec.label.name], model.predict(population[spec.feature_names]))
    thresholds = {m: Threshold(**{t.direction: metric_value(truth, m)}) for m, t in spec.thresholds.items()}
    return spec.model_copy(update={"min_rows": 2, "thresholds": thresholds})


def _quality(spec, observed) -> tuple[bool, bool]:
    """(any quality threshold breached with evidence, any point estimate beyond its threshold)."""
    from workloads.metric_names import metric_value
    from workloads.watcher.evaluation import evaluate_window

    evidence = any(c.status == "breach" for c in evaluate_window(spec, observed).checks if c.scope == "quality")
    point = [metric_value(observed.quality, m) for m in spec.thresholds]
    return evidence, any(v is not None and t.breached(v) for v, t in zip(point, spec.thresholds.values()))


def judge(settings, spec, baseline, window: pd.DataFrame, distance_only_spec, quality_only_spec,
          at_truth_spec) -> dict:
    """One window's verdicts through the real monitor, observation and evaluation: ``health`` under the evidence
    rules, ``distance_only`` under the distance-only drift rule, ``quality`` (any quality threshold breached,
    with intervals, ``min_rows`` 2) and ``quality_point`` (any point estimate beyond its threshold), and the same
    two with the thresholds at the population's own metrics (``truth``, ``truth_point``)."""
    from workloads.monitoring.compute import compute_metrics, prepare
    from workloads.watcher.evaluation import evaluate_window
    from workloads.watcher.observation import observe_latest_window

    computed = compute_metrics(prepare(window, baseline, spec), "1 day")
    observed = observe_latest_window(settings, spec, "1 day", tables=WindowTables(computed, window))
    quality, quality_point = _quality(quality_only_spec, observed)
    truth, truth_point = _quality(at_truth_spec, observed)
    return {"health": evaluate_window(spec, observed).health,
            "distance_only": evaluate_window(distance_only_spec, observed).health,
            "quality": quality, "quality_point": quality_point, "truth": truth, "truth_point": truth_point}


def run(model_name: str, trials_healthy: int, trials_drift: int, sizes=SIZES) -> tuple[list[dict], float]:
    from workloads.drift import concept_shift, covariate_shift
    from workloads.settings import load_settings

    started = time.perf_counter()
    spec, model, population, baseline = world(model_name)
    # The rule this replaces: any distance over its threshold is a breach, whatever the rows or the p-value.
    distance_only = spec.model_copy(update={"drift_evidence": spec.drift_evidence.model_copy(
        update={"min_rows": 1, "min_expected_per_category": 0.0, "alpha": 1 - 1e-12})})
    quality_only = spec.model_copy(update={"min_rows": 2})  # windows of 20 rows judged too
    at_truth = at_the_truth(spec, model, population)
    settings = load_settings(home=tempfile.mkdtemp(prefix="bench-drift-evidence-"))
    rng = np.random.default_rng(2026)
    results = []
    for n in sizes:
        row = {"rows": n, "healthy": 0, "breach": 0, "breach_distance_only": 0, "not_enough": 0, "quality": 0,
               "quality_point": 0, "truth": 0, "truth_point": 0}
        for _ in range(trials_healthy):
            sample = population.iloc[rng.integers(0, len(population), n)]
            verdict = judge(settings, spec, baseline, processed_window(spec, model, sample, rng), distance_only,
                            quality_only, at_truth)
            row["healthy"] += 1
            row["breach"] += verdict["health"] == "breach"
            row["breach_distance_only"] += verdict["distance_only"] == "breach"
            row["not_enough"] += verdict["health"] == "not enough data"
            row["quality"] += verdict["quality"]
            row["quality_point"] += verdict["quality_point"]
            row["truth"] += verdict["truth"]
            row["truth_point"] += verdict["truth_point"]
        for kind in ("concept", "covariate"):
            caught = 0
            trials = trials_drift if n >= DRIFT_FROM else 0
            for t in range(trials):
                if kind == "covariate":
                    shifted = covariate_shift(population, spec, seed=int(rng.integers(1 << 31)))
                else:
                    shifted = concept_shift(population, spec)
                sample = shifted.iloc[rng.integers(0, len(shifted), n)]
                verdict = judge(settings, spec, baseline, processed_window(spec, model, sample, rng), distance_only,
                                quality_only, at_truth)
                caught += verdict["health"] == "breach"
            row[f"{kind}_trials"], row[f"{kind}_caught"] = trials, caught
        results.append(row)
    return results, time.perf_counter() - started


def report(model: str, results: list[dict], seconds: float, console: Console) -> bool:
    table = Table(title=f"Drift and quality evidence: {model}, real monitor + evaluation per window ({seconds:.0f} s); "
                        "quality columns judged with min_rows 2")
    for column in ("rows per window", "healthy windows", "false breach (evidence rules)",
                   "false breach (distance only)", "not enough data", "false quality breach (intervals)",
                   "false quality breach (point only)", "at the truth: false quality breach (intervals)",
                   "at the truth: (point only)", "concept drift caught", "covariate drift caught"):
        table.add_column(column, justify="right")
    ok = True
    for r in results:
        rate = r["breach"] / r["healthy"]
        old = r["breach_distance_only"] / r["healthy"]
        quality = r["quality"] / r["healthy"]
        ok &= rate <= 0.01 and quality <= 0.01
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
                      f"{r['not_enough'] / r['healthy']:.0%}", f"{quality:.1%} ({r['quality']})",
                      f"{r['quality_point'] / r['healthy']:.1%}", f"{r['truth'] / r['healthy']:.1%} ({r['truth']})",
                      f"{r['truth_point'] / r['healthy']:.1%}", *cells)
    console.print(table)
    console.print(f"{model}: goals: false breach and false quality breach <= 1% at every size; 100% of concept and "
                  f"covariate drift caught from {DRIFT_FROM} rows per window: "
                  + ("[green]met[/]" if ok else "[red]NOT met[/]"))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--trials", type=int, default=None, help="healthy windows per size (default 200; quick 20)")
    parser.add_argument("--drift-trials", type=int, default=None,
                        help="drifted windows per kind and size (default 40; quick 5)")
    parser.add_argument("--model", action="append", choices=MODELS, help="a demo model (default: both)")
    args = parser.parse_args(argv)
    healthy = args.trials or (20 if args.quick else 200)
    drift = args.drift_trials or (5 if args.quick else 40)
    sizes = (20, 200, 1000) if args.quick else SIZES
    ok = True
    for model in args.model or MODELS:
        results, seconds = run(model, healthy, drift, sizes)
        ok &= report(model, results, seconds, Console(width=200))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
