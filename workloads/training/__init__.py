"""Training: validate data, fit with the spec's trainer, register, and gate the first champion.

Data enters from the spec's source table (:mod:`workloads.data.source`), is validated and cut into roles by the
hash of its id (:mod:`workloads.data.roles`: the model fits the training share and is scored on the holdout
share), is fit by the trainer named in the spec (``autolog``, ``decorators``, ``generic`` or a module of your own
here), and leaves as a registered model version with its holdout metrics, data versions and spec hash as tags.
Before fitting, the frame it will be scored on is checked against the frame it fits (no shared example).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workloads import registry
from workloads.data import roles
from workloads.data.source import read_examples, with_label
from workloads.data.validation import validate_frame
from workloads.errors import SpecError
from workloads.ports.tables import get_tables
from workloads.ports.tracking import configure_tracking, ensure_experiment
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, ModelSpec
from workloads.training.context import TrainedModel, TrainingContext, git_tags
from workloads.training.evaluation import threshold_failures


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`."""

    model: str
    version: int | None
    run_id: str
    metrics: dict[str, float]
    failures: list[str]
    alias: str | None
    data_versions: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures


def trainer_for(spec: ModelSpec):
    """The spec's trainer module, after checking it honours the spec's ``hyperparameters``.

    Raises:
        SpecError: no such trainer, or hyperparameters it would ignore or the estimator does not take.
    """
    try:
        trainer = importlib.import_module(f"workloads.training.{spec.trainer}")
    except ModuleNotFoundError as exc:
        raise SpecError(f"model {spec.name}: trainer {spec.trainer!r} not found (workloads/training/{spec.trainer}.py)") from exc
    check_hyperparameters(spec, trainer)
    return trainer


def check_hyperparameters(spec: ModelSpec, trainer=None) -> None:
    """Refuse hyperparameters that would be silently ignored: a trainer that does not declare
    ``HONOURS_HYPERPARAMETERS = True``, or names the estimator does not take, or an empty list of values.

    Raises:
        SpecError: naming the trainer, the bad keys and the valid ones.
    """
    if not spec.hyperparameters:
        return
    trainer = trainer or trainer_for(spec)
    if not getattr(trainer, "HONOURS_HYPERPARAMETERS", False):
        raise SpecError(f"model {spec.name}: trainer {spec.trainer!r} ignores hyperparameters, but the spec sets "
                        f"{sorted(spec.hyperparameters)}; use trainer 'generic' or 'decorators', or remove them")
    from workloads.training.pipeline import estimator_parameters

    valid = estimator_parameters(spec)
    unknown = sorted(set(spec.hyperparameters) - valid)
    empty = sorted(k for k, v in spec.hyperparameters.items() if not v)
    problems = ([f"unknown {unknown} (the estimator takes: {', '.join(sorted(valid))})"] if unknown else []) + (
        [f"no values for {empty}"] if empty else [])
    if problems:
        raise SpecError(f"model {spec.name}: hyperparameters: {'; '.join(problems)}")


def prepare_data(settings: Settings, spec: ModelSpec, extra_data: pd.DataFrame | None = None,
                 holdout: pd.DataFrame | None = None,
                 include_original: bool = True,
                 source: roles.Split | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Read, label, validate and split the source; ``extra_data`` (e.g. labelled traffic) joins training.

    The returned training frame has a boolean ``_extra`` column marking the rows that came from ``extra_data``.

    Raises:
        LeakError: the holdout shares an example with the training frame.
    """
    parts = source or roles.split(read_examples(settings, spec), spec)
    versions = dict(parts.training.attrs.get("data_versions", {}))
    validate_frame(parts.training, spec)
    train = parts.training.copy()
    train["_extra"] = False
    if extra_data is not None and len(extra_data):
        extra = with_label(extra_data, spec)
        validate_frame(extra, spec, _relaxed(spec))
        extra = extra[[c for c in train.columns if c in extra.columns]].assign(_extra=True)
        train = pd.concat([train, extra], ignore_index=True) if include_original else extra.reset_index(drop=True)
    chosen = holdout if holdout is not None else parts.holdout
    roles.check_disjoint(train, chosen, spec)
    return train, chosen, versions


def _relaxed(spec: ModelSpec):
    """The spec's dataset expectations, for a few extra rows (fresh traffic) rather than a training set."""
    from dataclasses import replace

    from workloads.data.validation import EXPECTATIONS, Expectations

    return replace(EXPECTATIONS.get(spec.builder or "", Expectations()), min_rows=1)


def train_model(settings: Settings, spec: ModelSpec, *, extra_data: pd.DataFrame | None = None,
                holdout: pd.DataFrame | None = None, register: bool = True, alias: str | None = None,
                tags: dict[str, str] | None = None, extra_weight: float = 1.0,
                include_original: bool = True, source: roles.Split | None = None) -> TrainResult:
    """Train one model version for ``spec``.

    Args:
        settings: Runtime settings.
        spec: The model spec.
        extra_data: Extra labelled rows (feature frame shape) added to the training split.
        holdout: Evaluate on this frame instead of the default holdout split.
        register: Register the logged model as a new version.
        alias: Alias to give the new version. ``None``: ``champion`` when the model has no champion yet and
            the version passes the spec's thresholds, else ``challenger`` when it passes, else none.
        tags: Extra run and version tags.
        extra_weight: Sample weight of each ``extra_data`` row (original rows weigh 1): fresh traffic after a
            concept change should outweigh the older data it contradicts.
        include_original: Train on the original training split too; ``False`` trains on ``extra_data`` alone
            (the original split still defines the default holdout and the recorded data versions).
        source: The spec's source already read and split (a retrain has it); ``None`` reads it.

    Returns:
        The version, metrics, threshold failures and the alias set.
    """
    trainer = trainer_for(spec)
    configure_tracking(settings)
    train, holdout_frame, versions = prepare_data(settings, spec, extra_data, holdout, include_original, source)
    experiment = ensure_experiment(settings, spec.name)
    run_tags = {**git_tags(), "environment": settings.env, "spec_hash": spec.content_hash(),
                "model_spec": spec.name, **(tags or {})}
    ctx = TrainingContext(settings=settings, spec=spec, train=train, holdout=holdout_frame, data_versions=versions,
                          experiment=experiment, tags=run_tags)
    if extra_weight != 1.0 and train["_extra"].any():
        ctx.sample_weight = np.where(train["_extra"].to_numpy(), float(extra_weight), 1.0)
    trained: TrainedModel = trainer.train(ctx)
    failures = threshold_failures(spec, trained.metrics)
    if not register:
        return TrainResult(spec.name, None, trained.run_id, trained.metrics, failures, None, versions)

    version_tags = {**run_tags, "data_versions": json.dumps(versions, sort_keys=True),
                    "holdout_metrics": json.dumps({k: round(v, 6) for k, v in trained.metrics.items()}),
                    "passed_thresholds": str(not failures).lower(), "run_id": trained.run_id}
    version = registry.register(settings, spec, trained.model_uri, tags=version_tags)
    chosen = alias
    if chosen is None and not failures:
        chosen = registry.CHALLENGER if registry.get_alias(settings, spec, registry.CHAMPION) else registry.CHAMPION
    if chosen:
        registry.set_alias(settings, spec, chosen, version)
        if chosen == registry.CHAMPION:
            write_baseline(settings, spec, trained, train, version)
    return TrainResult(spec.name, version, trained.run_id, trained.metrics, failures, chosen, versions)


def write_baseline(settings: Settings, spec: ModelSpec, trained: TrainedModel, train: pd.DataFrame,
                   version: int) -> str:
    """The monitor's baseline: the champion's training data with its predictions, replacing that version's rows."""
    tables = get_tables(settings)
    name = settings.table(spec.baseline_table)
    baseline = train[[*spec.feature_names, spec.label.name]].copy()
    baseline[spec.prediction.name] = trained.model.predict(train[spec.feature_names])
    if spec.prediction.type in ("bigint", "int"):
        baseline[spec.prediction.name] = baseline[spec.prediction.name].astype("int64")
    else:
        baseline[spec.prediction.name] = baseline[spec.prediction.name].astype("float64")
    baseline[MODEL_ID_COLUMN] = str(version)
    if tables.exists(name):
        tables.delete(name, f"{MODEL_ID_COLUMN} = '{version}'")
    tables.write(name, baseline, mode="append", declared=True)
    return name
