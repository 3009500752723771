"""What a trainer receives and returns."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import pandas as pd

from workloads.settings import Settings
from workloads.specs import ModelSpec


@dataclass
class TrainingContext:
    """Inputs of one training: the spec, the split data and where it came from."""

    settings: Settings
    spec: ModelSpec
    train: pd.DataFrame
    holdout: pd.DataFrame
    data_versions: dict[str, int]
    experiment: str
    tags: dict[str, str] = field(default_factory=dict)
    sample_weight: object = None  # per training row; fresh traffic can outweigh the original data

    @property
    def fit_params(self) -> dict:
        """Keyword arguments for ``Pipeline.fit`` (sample weights routed to the estimator step)."""
        return {} if self.sample_weight is None else {"model__sample_weight": self.sample_weight}

    @property
    def X_train(self) -> pd.DataFrame:
        return self.train[self.spec.feature_names]

    @property
    def y_train(self) -> pd.Series:
        return self.train[self.spec.label.name]

    @property
    def X_holdout(self) -> pd.DataFrame:
        return self.holdout[self.spec.feature_names]

    @property
    def y_holdout(self) -> pd.Series:
        return self.holdout[self.spec.label.name]

    def source_table(self) -> str:
        """The spec's source table in this stack (the MLflow datasets' Delta source)."""
        from workloads.data.source import source_table

        return source_table(self.settings, self.spec)


@dataclass
class TrainedModel:
    """What a trainer produced: the logged model and its holdout metrics."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]
    params: dict[str, object] = field(default_factory=dict)
    model: object = None


def git_tags() -> dict[str, str]:
    """``git_sha`` and ``branch`` of the code that trained (CI variables first, then git, else unknown)."""
    import os

    sha = os.environ.get("BUILD_SOURCEVERSION") or os.environ.get("GIT_SHA")
    branch = os.environ.get("BUILD_SOURCEBRANCHNAME") or os.environ.get("GIT_BRANCH")

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
            return out.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "git_sha": sha or git("rev-parse", "HEAD") or "unknown",
        "branch": branch or git("rev-parse", "--abbrev-ref", "HEAD") or "unknown",
    }
