"""Model specs: what a model is, independent of environment.

A spec is a YAML file in this package (``<name>.yaml``). Adding a model means adding a spec (and, if
needed, a trainer); infra and the workloads both discover specs through :func:`list_specs`.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from workloads.errors import SpecError

ColumnType = Literal["string", "bigint", "int", "double", "float", "boolean", "timestamp", "date"]
ProblemType = Literal["regression", "classification", "forecasting"]

# Columns every processed inference table carries besides features, prediction and label.
MODEL_ID_COLUMN = "model_version"
TIMESTAMP_COLUMN = "timestamp"
REQUEST_ID_COLUMN = "request_id"
EXAMPLE_ID_COLUMN = "example_id"


class Column(BaseModel):
    name: str = Field(description="Column name as it appears in tables and requests.")
    type: ColumnType = Field(description="Spark SQL type of the column.")
    categorical: bool | None = Field(None, description="Override: treat as categorical (default: string/boolean).")

    @property
    def is_categorical(self) -> bool:
        if self.categorical is not None:
            return self.categorical
        return self.type in ("string", "boolean")


class Threshold(BaseModel):
    """A bound on a metric with its direction: ``max`` (breach above) or ``min`` (breach below)."""

    max: float | None = Field(None, description="Breach when the metric is above this value.")
    min: float | None = Field(None, description="Breach when the metric is below this value.")

    @model_validator(mode="after")
    def _one_direction(self):
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of 'max' or 'min'")
        return self

    @property
    def direction(self) -> str:
        return "max" if self.max is not None else "min"

    @property
    def value(self) -> float:
        return self.max if self.max is not None else self.min  # type: ignore[return-value]

    def breached(self, observed: float) -> bool:
        return observed > self.value if self.direction == "max" else observed < self.value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` for this metric."""
        return a < b if self.direction == "max" else a > b


class ModelSpec(BaseModel):
    """What a model is: data, columns, trainer, thresholds."""

    name: str = Field(description="Model name; registered model is <catalog>.<schema>.<name>_model.")
    description: str = Field("", description="What the model predicts, for people.")
    problem_type: ProblemType = Field(description="regression, classification or forecasting.")
    trainer: str = Field("generic", description="Trainer module under workloads.training (autolog, decorators, generic).")
    dataset: str = Field("bakehouse", description="Feature builder that produces the training frame.")
    features: list[Column] = Field(description="Feature columns and their types.")
    label: Column = Field(description="Ground-truth column.")
    label_expression: str | None = Field(
        None, description="pandas eval expression deriving the label from the feature frame (e.g. 'quantity >= 10').")
    prediction: Column = Field(Column(name="prediction", type="double"), description="Prediction column.")
    thresholds: dict[str, Threshold] = Field(description="Model-quality thresholds by metric name, with direction.")
    drift_thresholds: dict[str, Threshold] = Field(
        default_factory=dict, description="Drift thresholds by drift metric (applied per feature).")
    min_rows: int = Field(30, description="Fewest labelled rows for a window's quality metrics to count.")
    hyperparameters: dict[str, list] = Field(default_factory=dict, description="Sweep grid for trainers that sweep.")
    slices: list[str] = Field(default_factory=list, description="Feature columns the monitor slices by.")

    @model_validator(mode="after")
    def _check(self):
        names = [c.name for c in self.features]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate feature columns: {sorted(dupes)}")
        if self.label.name in names:
            raise ValueError(f"label {self.label.name!r} is also a feature (it would leak the target)")
        bad_slices = [s for s in self.slices if s not in names]
        if bad_slices:
            raise ValueError(f"slices {bad_slices} are not feature columns")
        return self

    # --- names derived from the spec (the same on both runtimes and in infra) ---
    @property
    def registered_model_suffix(self) -> str:
        return f"{self.name}_model"

    @property
    def payload_prefix(self) -> str:
        """AI Gateway inference table prefix: the payload table is ``<prefix>_payload``."""
        return self.name

    @property
    def payload_table(self) -> str:
        return f"{self.payload_prefix}_payload"

    @property
    def processed_table(self) -> str:
        return f"{self.name}_inference"

    @property
    def baseline_table(self) -> str:
        return f"{self.name}_baseline"

    @property
    def predictions_table(self) -> str:
        return f"{self.name}_predictions"

    @property
    def profile_metrics_table(self) -> str:
        return f"{self.processed_table}_profile_metrics"

    @property
    def drift_metrics_table(self) -> str:
        return f"{self.processed_table}_drift_metrics"

    @property
    def endpoint_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def databricks_entity_name(self) -> str:
        """Served entity name on Databricks: stable across versions (the champion alias picks the version)."""
        return f"{self.endpoint_name}-champion"

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def processed_columns(self) -> list[Column]:
        """Columns of the processed inference table (and, minus ids, the baseline table)."""
        pred_type = self.prediction.type
        return [
            *self.features,
            Column(name=self.prediction.name, type=pred_type),
            Column(name=self.label.name, type=self.label.type),
            Column(name=MODEL_ID_COLUMN, type="string"),
            Column(name=TIMESTAMP_COLUMN, type="timestamp"),
            Column(name=REQUEST_ID_COLUMN, type="string"),
            Column(name=EXAMPLE_ID_COLUMN, type="string"),
        ]

    def content_hash(self) -> str:
        """Stable hash of the spec's content (tagged on runs so a model traces back to its spec)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def _spec_dir() -> Path:
    return Path(str(resources.files(__name__)))


def list_specs() -> list[str]:
    """Names of every model spec shipped in the package (templates excluded)."""
    return sorted(p.stem for p in _spec_dir().glob("*.yaml"))


def parse_spec(data: dict, source: str = "<spec>") -> ModelSpec:
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"model spec {source} is invalid: {problems}") from None


@cache
def load_spec(name: str) -> ModelSpec:
    """Load a shipped spec by name; unknown names raise :class:`SpecError` listing the known ones."""
    path = _spec_dir() / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"unknown model {name!r}; known models: {', '.join(list_specs())}")
    data = yaml.safe_load(path.read_text())
    spec = parse_spec(data, str(path.name))
    if spec.name != name:
        raise SpecError(f"model spec {path.name} declares name {spec.name!r}; file and name must match")
    return spec


def load_template(problem_type: str) -> dict:
    """Raw template for a new spec of the given problem type."""
    path = _spec_dir() / "templates" / f"{problem_type}.yaml"
    if not path.is_file():
        raise SpecError(f"no spec template for {problem_type!r}; templates: regression, classification, forecasting")
    return yaml.safe_load(path.read_text())
