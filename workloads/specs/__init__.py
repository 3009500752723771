"""Model specs: what a model is, independent of environment.

A spec is a YAML file (``<name>.yaml``) in the spec directory: this package's by default, or the directory
named by ``--specs DIR`` / ``MLOPS_SPECS``. Adding a model means adding a spec: its ``source`` names the table
its data comes from (with the id and timestamp columns every step uses); a trainer or a feature builder of
your own is possible, never required. Infra and the workloads both discover specs through :func:`list_specs`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workloads.errors import SpecError

ColumnType = Literal["string", "bigint", "int", "double", "float", "boolean", "timestamp", "date"]
ProblemType = Literal["regression", "classification", "forecasting"]

# Columns every processed inference table carries besides features, prediction and label.
MODEL_ID_COLUMN = "model_version"
TIMESTAMP_COLUMN = "timestamp"
REQUEST_ID_COLUMN = "request_id"
EXAMPLE_ID_COLUMN = "example_id"


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name as it appears in tables and requests.")
    type: ColumnType = Field(description="Spark SQL type of the column.")
    categorical: bool | None = Field(None, description="Override: treat as categorical (default: string/boolean).")

    @property
    def is_categorical(self) -> bool:
        if self.categorical is not None:
            return self.categorical
        return self.type in ("string", "boolean")


_TABLE_NAME = re.compile(r"^(\{catalog\}|[A-Za-z_][A-Za-z0-9_]*)\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
CATALOG_PLACEHOLDER = "{catalog}"


class Source(BaseModel):
    """Where a model's examples come from: one table, with the column that identifies an example and the
    column that dates it. Every step (train, batch, traffic, retrain, dev -> prod validation, drift simulation)
    reads this table; an example's role (training, holdout, serving pool) follows from a hash of its id."""

    model_config = ConfigDict(extra="forbid")

    table: str = Field(description="Three-level name catalog.schema.table (a Delta table in the home locally, "
                                   "the Unity Catalog table on Databricks). '{catalog}.schema.table' reads the "
                                   "stack's own catalog (mlops_dev in dev, mlops_prod in prod).")
    id: str = Field(description="Column identifying one example (unique per row); its hash fixes the example's "
                                "role, so it must never change.")
    timestamp: str = Field(description="Column dating an example (timestamp or date).")

    @model_validator(mode="after")
    def _names(self):
        if not _TABLE_NAME.match(self.table):
            raise ValueError(f"table {self.table!r} is not a three-level name catalog.schema.table "
                             "(or {catalog}.schema.table)")
        if self.id == self.timestamp:
            raise ValueError(f"id and timestamp are both {self.id!r}; name two columns")
        return self

    def table_in(self, catalog: str) -> str:
        """The source table's three-level name for a stack whose catalog is ``catalog``."""
        return self.table.replace(CATALOG_PLACEHOLDER, catalog, 1)


class Threshold(BaseModel):
    """A bound on a metric with its direction: ``max`` (breach above) or ``min`` (breach below)."""

    model_config = ConfigDict(extra="forbid")

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


class DriftEvidence(BaseModel):
    """When a window's drift counts as evidence: a distance over its threshold is a breach only on enough rows
    and only where the feature's two-sample test rejects "same distribution as the baseline".

    Small windows always look drifted on high-cardinality columns (50 rows over 48 franchises give a
    Jensen-Shannon distance near 0.5 from sampling alone), so a distance alone is not evidence.
    """

    model_config = ConfigDict(extra="forbid")

    min_rows: int = Field(100, ge=1, description="Fewest rows in a window for its drift to be judged at all; "
                                                  "below it the verdict is 'not enough data'.")
    min_expected_per_category: float = Field(
        5.0, ge=0, description="Categorical features: fewest rows per category seen in the window (rows / distinct "
                               "values), Cochran's rule for the chi-squared test; below it that feature is 'not "
                               "enough data'.")
    alpha: float = Field(0.01, gt=0, lt=1, description="Family-wise significance level: a distance breach counts "
                                                       "only if the feature's test p-value (KS for numeric, "
                                                       "chi-squared for categorical) is below alpha divided by the "
                                                       "number of features tested (Bonferroni).")


class QualityEvidence(BaseModel):
    """When a window's quality metric counts as evidence: a metric beyond its threshold is a breach only when its
    confidence interval, computed from the window's labelled rows, lies wholly beyond the threshold."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.01, gt=0, lt=0.5, description="Family-wise significance level: each quality threshold "
                                                         "is judged on a two-sided interval at confidence 1 - "
                                                         "2 * alpha / (quality thresholds) (Bonferroni; "
                                                         "Clopper-Pearson for accuracy, a bootstrap for the "
                                                         "others).")


class PromotionEvidence(BaseModel):
    """When a challenger's win over the champion means something: a large enough holdout and a paired
    comparison (the same rows scored by both) whose confidence interval excludes 'no difference'."""

    model_config = ConfigDict(extra="forbid")

    min_holdout_rows: int = Field(100, ge=2, description="Fewest holdout rows to compare champion and challenger on; "
                                                         "fewer keeps the champion.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence of the paired comparison's interval on the "
                                                              "per-row loss difference; the challenger must win "
                                                              "with the whole interval.")


class ModelSpec(BaseModel):
    """What a model is: data, columns, trainer, thresholds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Model name; registered model is <catalog>.<schema>.<name>_model.")
    description: str = Field("", description="What the model predicts, for people.")
    problem_type: ProblemType = Field(description="regression, classification or forecasting.")
    trainer: str = Field("generic", description="Trainer module under workloads.training (autolog, decorators, generic).")
    source: Source = Field(description="The table the model's examples come from, with its id and timestamp columns.")
    builder: str | None = Field(None, description="Optional feature builder under workloads/data/builders.py that "
                                                  "derives features from the source (e.g. joins); none: the "
                                                  "source's columns are the features.")
    features: list[Column] = Field(description="Feature columns and their types.")
    label: Column = Field(description="Ground-truth column.")
    label_expression: str | None = Field(
        None, description="pandas eval expression deriving the label from the feature frame (e.g. 'quantity >= 10').")
    prediction: Column = Field(Column(name="prediction", type="double"), description="Prediction column.")
    thresholds: dict[str, Threshold] = Field(description="Model-quality thresholds by metric name, with direction.")
    drift_thresholds: dict[str, Threshold] = Field(
        default_factory=dict, description="Drift thresholds by drift metric (applied per feature).")
    min_rows: int = Field(30, description="Fewest labelled rows for a window's quality metrics to count.")
    drift_evidence: DriftEvidence = Field(default_factory=DriftEvidence,
                                          description="When drift distances count as evidence (rows, significance).")
    quality_evidence: QualityEvidence = Field(default_factory=QualityEvidence,
                                              description="When quality metrics count as evidence (intervals).")
    promotion_evidence: PromotionEvidence = Field(
        default_factory=PromotionEvidence, description="When a challenger's win over the champion counts.")
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
        for role in ("id", "timestamp"):
            column = getattr(self.source, role)
            if column in names:
                raise ValueError(f"source {role} column {column!r} is also a feature (an {role} says which example "
                                 "it is, not what it is)")
            if column == self.label.name:
                raise ValueError(f"source {role} column {column!r} is also the label")
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

    def processed_table_properties(self) -> dict[str, str]:
        """Delta table properties of the processed inference table, on both runtimes (infra declares them on
        Databricks, the local unpack sets them when it creates the table).

        - ``delta.enableChangeDataFeed``: the Databricks monitor and ``changed_spans`` read changes incrementally.
        - ``delta.dataSkippingStatsColumns``: per-file statistics on the columns the workloads filter on (the
          timestamp for windows, retry and label bounds; the label for "labelled rows only"; prediction and model
          version; the request id, so unpack's client-retry lookup skips files whose ids cannot match). Without it Delta keeps statistics on the first 32 columns only, so a spec with more than ~28
          features would lose the timestamp's and every read would scan the table
          (https://learn.microsoft.com/azure/databricks/delta/table-properties; delta-rs honours it too).
        """
        stats = [TIMESTAMP_COLUMN, self.label.name, self.prediction.name, MODEL_ID_COLUMN, REQUEST_ID_COLUMN]
        return {"delta.enableChangeDataFeed": "true", "delta.dataSkippingStatsColumns": ",".join(stats)}

    def content_hash(self) -> str:
        """Stable hash of the spec's content (tagged on runs so a model traces back to its spec)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


SPECS_ENV = "MLOPS_SPECS"
_spec_dir_override: Path | None = None


def package_spec_dir() -> Path:
    """The specs shipped in the package (the demo's and the templates)."""
    return Path(str(resources.files(__name__)))


def set_spec_dir(path: str | Path | None) -> None:
    """Read specs from ``path`` (``mlops --specs DIR``); ``None``: ``MLOPS_SPECS``, else the package's."""
    global _spec_dir_override
    _spec_dir_override = Path(path).expanduser() if path else None


def spec_dir() -> Path:
    """Where specs are read from: ``--specs DIR``, else ``MLOPS_SPECS``, else this package.

    Raises:
        SpecError: the directory named does not exist.
    """
    chosen = _spec_dir_override or (Path(os.environ[SPECS_ENV]).expanduser() if os.environ.get(SPECS_ENV) else None)
    if chosen is None:
        return package_spec_dir()
    if not chosen.is_dir():
        source = "--specs" if _spec_dir_override else SPECS_ENV
        raise SpecError(f"spec directory {chosen} does not exist ({source}); create it or point {source} elsewhere")
    return chosen


def list_specs() -> list[str]:
    """Names of every model spec in the spec directory (templates excluded)."""
    return sorted(p.stem for p in spec_dir().glob("*.yaml"))


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (for naming the valid keys next to an unknown one)."""
    model: type[BaseModel] | None = ModelSpec
    for part in loc[:-1]:
        if model is None or str(part) not in model.model_fields:
            continue  # a list index or a dict key (a metric name): the same model holds the next field
        info = model.model_fields.get(str(part))
        annotation = getattr(info, "annotation", None)
        args = getattr(annotation, "__args__", ()) or ()
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _problem(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "spec"
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        model = _model_at(error["loc"])
        valid = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{where}: unknown key {key!r} ({hint}valid keys: {', '.join(valid)})"
    return f"{where}: {error['msg']}"


def parse_spec(data: dict, source: str = "<spec>") -> ModelSpec:
    """Validate spec data; every problem (unknown keys with the closest valid one) in one SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"model spec {source} is invalid: expected a mapping of keys, got {type(data).__name__}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise SpecError(f"model spec {source} is invalid: {problems}") from None


def read_spec_file(path: str | Path) -> ModelSpec:
    """Parse and validate one spec file (keys and values only).

    Raises:
        SpecError: the file is missing, not YAML, or invalid (every problem in one message).
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {path} is not valid YAML: {exc}") from None
    return parse_spec(data, path.name)


def check_spec_file(path: str | Path, settings=None) -> tuple[ModelSpec, list[str]]:
    """Validate a spec file without training: its keys and values, then its columns against its source.

    Args:
        path: The spec file.
        settings: Where the source table is read (default: from the environment, as the CLI does).

    Returns:
        The spec and notes (e.g. where the label comes from, or that the source could not be read yet).

    Raises:
        SpecError: every problem found, in one message.
    """
    from workloads.data.source import check_columns

    path = Path(path)
    spec = read_spec_file(path)
    if path.stem != spec.name:
        raise SpecError(f"model spec {path.name} declares name {spec.name!r}; file and name must match")
    notes = check_columns(spec, settings)
    if spec.label_expression:
        notes.insert(0, f"label {spec.label.name!r} is derived: {spec.label_expression}")
    return spec, notes


def load_spec(name: str) -> ModelSpec:
    """Load a spec by name from the spec directory; unknown names raise :class:`SpecError` listing the known ones."""
    path = spec_dir() / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"unknown model {name!r}; known models in {spec_dir()}: {', '.join(list_specs()) or 'none'}")
    return _load_spec_file(str(path.resolve()), path.stat().st_mtime_ns, name)


@cache
def _load_spec_file(path: str, mtime_ns: int, name: str) -> ModelSpec:
    spec = read_spec_file(path)
    if spec.name != name:
        raise SpecError(f"model spec {Path(path).name} declares name {spec.name!r}; file and name must match")
    return spec


def load_template(problem_type: str) -> dict:
    """Raw template for a new spec of the given problem type."""
    path = package_spec_dir() / "templates" / f"{problem_type}.yaml"
    if not path.is_file():
        raise SpecError(f"no spec template for {problem_type!r}; templates: regression, classification, forecasting")
    return yaml.safe_load(path.read_text())
