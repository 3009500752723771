"""The ``mlops demo`` story on the embedded default, chapter by chapter.

Generate data -> train both variants -> champions -> batch -> serve -> healthy traffic, labelled ->
watch (healthy) -> concept drift a day later -> watch (breach, retrain, validate, promote, endpoint
swap) -> copy the champion to prod -> HTML report. Each chapter is a function of the shared
:class:`Story`; the CLI shows progress per chapter and the summary at the end.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from workloads.clock import ShiftableClock
from workloads.settings import Settings

DEMO_MODELS = ("bakehouse_autolog", "bakehouse_decorators")
SERVED_MODEL = "bakehouse_decorators"
HEALTHY_REQUESTS, DRIFT_REQUESTS, ROWS_PER_REQUEST = 60, 120, 5


@dataclass
class Story:
    settings: Settings
    seed: int = 42
    facts: dict = field(default_factory=dict)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (chapter, outcome, where to look)
    timings: dict[str, float] = field(default_factory=dict)
    clock: ShiftableClock = field(default_factory=ShiftableClock)
    endpoint: object = None

    def note(self, chapter: str, outcome: str, where: str = "") -> None:
        self.rows.append((chapter, outcome, where))

    @property
    def spec(self):
        from workloads.specs import load_spec

        return load_spec(SERVED_MODEL)


def _metrics(values: dict, names=("rmse", "r2")) -> str:
    return ", ".join(f"{n}={values[n]:.2f}" for n in names if values.get(n) is not None)


def generate_data(story: Story) -> None:
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse

    tables = generate(seed=story.seed)
    write_bakehouse(story.settings, tables)
    story.note("data", f"{len(tables['sales_transactions']):,} transactions over 30 days",
               story.settings.source_table("sales_transactions"))


def train_models(story: Story) -> None:
    from workloads.specs import load_spec
    from workloads.training import train_model

    for name in DEMO_MODELS:
        result = train_model(story.settings, load_spec(name))
        story.facts[f"{name}.train"] = result
        story.note(f"train {name}", f"v{result.version} {result.alias or 'no alias'}: {_metrics(result.metrics)}",
                   story.settings.registered_model(name))


def batch_score(story: Story) -> None:
    from workloads.batch import score_batch
    from workloads.specs import load_spec

    for name in DEMO_MODELS:
        result = score_batch(story.settings, load_spec(name))
        story.facts[f"{name}.batch"] = result
        metrics = ", ".join(f"{k}={v:.2f}" for k, v in result.metrics.items() if k != "batch_mae")
        story.note(f"batch {name}", f"{result.rows} rows by v{result.model_version}: {metrics}", result.table)


def serve(story: Story) -> None:
    from workloads.serving.server import start_server

    story.endpoint = start_server(story.settings, story.spec, clock=story.clock, poll_interval=0.5)
    story.note("serve", f"{story.spec.endpoint_name} serves v{story.endpoint.served_version} (champion)",
               story.endpoint.invocations_url)


def healthy_traffic(story: Story) -> None:
    from workloads.labels import ingest_labels
    from workloads.traffic import send_traffic, serving_pool
    from workloads.unpacking import unpack

    spec, settings = story.spec, story.settings
    result = send_traffic(story.endpoint.url, spec, serving_pool(settings, spec), n=HEALTHY_REQUESTS,
                          batch_size=ROWS_PER_REQUEST, seed=story.seed, settings=settings)
    story.endpoint.flush()
    unpack(settings, spec)
    labelled = ingest_labels(settings, spec)
    story.note("traffic", f"{result.ok}/{result.requests} requests ok, {result.examples} rows; "
               f"{labelled.updated} labelled", settings.table(spec.payload_table))


def _watch(story: Story, label: str) -> None:
    from workloads.ports.task_values import LocalTaskValues
    from workloads.watcher.steps import run_watcher

    run_id = f"demo-{label}-{int(time.time())}"
    result = run_watcher(story.settings, story.spec, LocalTaskValues(story.settings.home, run_id))
    story.facts[f"watch.{label}"] = result
    ev = result.evaluation
    outcome = (f"{ev.health}, retrain {'needed' if ev.retrain_needed else 'not needed'}; "
               f"window {_metrics(result.observed.quality)}")
    if ev.health == "breach":
        outcome += "; " + "; ".join(r for r in ev.reasons[:2])
    story.note(f"watch ({label})", outcome, story.settings.metrics_table(story.spec.profile_metrics_table))
    if result.retrain is not None:
        r = result.retrain
        verdict = "promoted" if r.promoted else "kept champion: " + "; ".join(r.reasons)
        story.note("retrain", f"challenger v{r.challenger_version} ({r.training_data}) "
                   f"{_metrics(r.challenger_metrics)} vs champion v{r.champion_version} {_metrics(r.champion_metrics)} "
                   f"on the same {r.holdout} ({r.holdout_rows} rows): {verdict}", story.settings.table("model_promotions"))


def watch_healthy(story: Story) -> None:
    _watch(story, "healthy")


def drift(story: Story) -> None:
    from workloads.drift import simulate

    story.clock.offset = timedelta(days=1)  # the drifted traffic arrives in the next daily window
    result = simulate(story.settings, story.spec, kind="concept", requests=DRIFT_REQUESTS,
                      batch_size=ROWS_PER_REQUEST, url=story.endpoint.url)
    story.endpoint.flush()
    story.facts["drift"] = result
    story.note("drift (concept)", f"{result.requests} requests, {result.rows} rows a day later: customers now buy "
               "about 2 standard deviations more units each", f"simulation {result.simulation_id}")


def watch_drifted(story: Story) -> None:
    from workloads import registry

    _watch(story, "drifted")
    retrain = story.facts["watch.drifted"].retrain
    if retrain is not None and retrain.promoted:
        deadline = time.monotonic() + 30
        while story.endpoint.served_version != retrain.challenger_version and time.monotonic() < deadline:
            time.sleep(0.2)
        champion = registry.require_alias(story.settings, story.spec).version
        story.note("endpoint swap", f"now serving v{story.endpoint.served_version} (champion v{champion}), "
                   "no restart", story.endpoint.invocations_url)


def copy_to_prod(story: Story) -> None:
    from workloads.environments import promote_across

    result = promote_across(story.settings, story.spec, "dev", "prod")
    story.facts["prod"] = result
    prod = story.settings.for_env("prod")
    story.note("promote dev -> prod", f"{result.source} -> prod v{result.target_version} champion: "
               f"{_metrics(result.metrics)} on {result.validated_on}", prod.registered_model(story.spec.name))


def report(story: Story) -> None:
    from workloads.monitoring.report import write_report

    path = write_report(story.settings, story.spec)
    story.facts["report"] = path
    story.note("report", "quality per window, drift heatmap, volume, champion history", str(path))


def stop_endpoint(story: Story) -> None:
    if story.endpoint is not None:
        story.endpoint.stop()
        story.endpoint = None


CHAPTERS: list[tuple[str, Callable[[Story], None]]] = [
    ("Generate the bakehouse data", generate_data),
    ("Train both variants, register, gate the champions", train_models),
    ("Batch-score with the champions", batch_score),
    ("Serve the champion (local endpoint, inference table)", serve),
    ("Send traffic and label it", healthy_traffic),
    ("Watch: unpack, monitor, evaluate", watch_healthy),
    ("Simulate concept drift a day later", drift),
    ("Watch: breach -> retrain -> validate -> promote", watch_drifted),
    ("Copy the champion to prod and validate it there", copy_to_prod),
    ("Write the HTML monitoring report", report),
]


# What mlops writes directly under a local home (sqlite may add mlflow.db-journal etc.).
HOME_ENTRIES = ("mlflow.db", "mlartifacts", "warehouse", "runs", "serving", "monitor", "reports", "locks",
                "alerts.jsonl")


def reset_home(settings: Settings) -> None:
    """Remove the local home (warehouse, MLflow store, run state), only if it holds nothing but mlops's own files.

    A home given by mistake (``--home .``, ``MLOPS_HOME=$HOME``) is refused, not deleted.
    """
    from workloads.errors import MlopsError

    home = settings.home.resolve()
    if not home.exists():
        return
    foreign = sorted(p.name for p in home.iterdir() if not p.name.startswith(HOME_ENTRIES))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise MlopsError(f"not resetting {home}: it holds files mlops did not write ({shown}); "
                         "pick another --home, or empty it yourself")
    shutil.rmtree(home)


def run_story(settings: Settings, progress: Callable[[str], object] | None = None, seed: int = 42,
              chapters: list[tuple[str, Callable[[Story], None]]] | None = None) -> Story:
    story = Story(settings=settings, seed=seed)
    try:
        for title, chapter in chapters or CHAPTERS:
            start = time.perf_counter()
            if progress is not None:
                with progress(title):
                    chapter(story)
            else:
                chapter(story)
            story.timings[title] = time.perf_counter() - start
    finally:
        stop_endpoint(story)
    return story
