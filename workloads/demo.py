"""The ``mlops demo`` story on the embedded default: data -> two training variants -> champions -> batch.

Each chapter is a function taking the shared :class:`Story`; the CLI shows progress per chapter and a
summary table at the end.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workloads.settings import Settings

DEMO_MODELS = ("bakehouse_autolog", "bakehouse_decorators")


@dataclass
class Story:
    settings: Settings
    seed: int = 42
    facts: dict = field(default_factory=dict)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (chapter, outcome, where to look)
    timings: dict[str, float] = field(default_factory=dict)

    def note(self, chapter: str, outcome: str, where: str = "") -> None:
        self.rows.append((chapter, outcome, where))


def generate_data(story: Story) -> None:
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse

    tables = generate(seed=story.seed)
    write_bakehouse(story.settings, tables)
    story.note("data", f"{len(tables['sales_transactions']):,} transactions, 30 days",
               story.settings.source_table("sales_transactions"))


def train_models(story: Story) -> None:
    from workloads.specs import load_spec
    from workloads.training import train_model

    for name in DEMO_MODELS:
        spec = load_spec(name)
        result = train_model(story.settings, spec)
        story.facts[f"{name}.train"] = result
        metrics = ", ".join(f"{k}={result.metrics[k]:.2f}" for k in ("rmse", "r2"))
        story.note(f"train {name}", f"v{result.version} {result.alias or 'no alias'}: {metrics}",
                   story.settings.registered_model(name))


def batch_score(story: Story) -> None:
    from workloads.batch import score_batch
    from workloads.specs import load_spec

    for name in DEMO_MODELS:
        result = score_batch(story.settings, load_spec(name))
        story.facts[f"{name}.batch"] = result
        metrics = ", ".join(f"{k}={v:.2f}" for k, v in result.metrics.items())
        story.note(f"batch {name}", f"{result.rows} rows by v{result.model_version}: {metrics}", result.table)


CHAPTERS: list[tuple[str, Callable[[Story], None]]] = [
    ("Generate the bakehouse data", generate_data),
    ("Train both variants, register, gate the champions", train_models),
    ("Batch-score with the champions", batch_score),
]


def reset_home(settings: Settings) -> None:
    """Remove the demo's local state (warehouse, MLflow store, run state) under the home directory."""
    home = settings.home.resolve()
    if home.exists():
        shutil.rmtree(home)


def run_story(settings: Settings, progress: Callable[[str], object] | None = None, seed: int = 42) -> Story:
    story = Story(settings=settings, seed=seed)
    for title, chapter in CHAPTERS:
        start = time.perf_counter()
        if progress is not None:
            with progress(title):
                chapter(story)
        else:
            chapter(story)
        story.timings[title] = time.perf_counter() - start
    return story
