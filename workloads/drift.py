"""Drift simulation for any spec: send drifted, labelled traffic through an endpoint; reset removes exactly that.

Kinds, each a pure function of ``(frame, spec, seed, options) -> frame`` that reads only the spec's columns:

- ``covariate`` (:func:`covariate_shift`): the features move, the labels keep their rules. Every numeric feature
  is shifted by ``shift`` standard deviations of its column in the frame (default 2: the KS test rejects and the
  population stability index is far over any usual threshold from ``drift_evidence.min_rows`` rows on; integer
  columns stay integer, the shift rounded; a constant column has no spread to shift by and stays as it is);
  every categorical feature is reweighted toward a minority of its categories: ``category_mass`` of its rows
  (default 0.8) get one of its rarest ``category_share`` of categories (default a quarter, at least one; ties
  broken by the seed). ``features`` limits the shift to some features. Drift metrics breach; quality may hold.
- ``concept`` (:func:`concept_shift`): the same features, a new relation to the label. Regression: the label
  becomes ``mean + scale * (label - mean) + shift * std`` (default 2 standard deviations up: the champion's
  rmse grows past the label's own spread and its r2 falls below 0). Classification: ``flip_share`` of the rows
  (default three quarters) get another class (the next one in sorted order, so every changed label is wrong
  for a champion that was right: a binary champion with accuracy 0.9 falls to 0.3). A spec with
  ``label_expression`` has its label computed from the frame first, then perturbed and written to the frame's
  label column (which traffic records as the truth in place of the expression).

Size: by default a simulation sends :func:`default_requests` requests: enough rows in one window for every
evidence rule of the spec to judge it (``min_rows`` for quality, ``drift_evidence.min_rows`` for drift, and
``drift_evidence.min_expected_per_category`` rows per category of its widest categorical feature).

Time: the drifted requests are logged ``days_ahead`` days after now, so they land in a later monitoring window as
if that much time had passed. The local endpoint (``mlops serve``, ``url``, or the simulation's own in-process
endpoint when neither runs) has a days-ahead route for that: ``POST /mlops/days-ahead/<days>/serving-endpoints/
<name>/invocations`` scores as the normal route and logs ``request_time`` = its clock + ``days``, per request,
from loopback clients only (see :mod:`workloads.serving.app`); the simulation sends through
:func:`workloads.serving.app.days_ahead_url`. Nothing on the endpoint changes, so traffic sent to it meanwhile
keeps its own time.

Reset: every simulated request's id starts with ``drift-<simulation id>-`` and the simulation's MLflow run is
tagged ``mlops.simulation``; :func:`reset` deletes exactly those (payload, processed and pending-label rows,
and the runs), nothing else.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from workloads.errors import MlopsError
from workloads.ports.tables import get_tables
from workloads.settings import Settings
from workloads.specs import REQUEST_ID_COLUMN, Column, ModelSpec

KINDS = ("covariate", "concept")
PREFIX = "drift-"
SIMULATION_TAG = "mlops.simulation"
DEFAULT_BATCH_SIZE = 5


class DriftError(MlopsError):
    """A drift simulation cannot be built as asked (unknown kind or feature, an option out of range, no spread)."""


@dataclass(frozen=True)
class ShiftOptions:
    """How far a simulated drift goes (see the module docstring for what each kind does with them).

    Attributes:
        shift: Standard deviations: covariate: every numeric feature is shifted by this many of its column's;
            concept (regression): the label is shifted by this many of the label's.
        scale: Concept (regression): the label's deviations from its mean are multiplied by this.
        flip_share: Concept (classification): share of the rows whose label becomes another class, in (0, 1].
        category_share: Covariate: share of each categorical feature's categories (its rarest) that the rows move
            toward, in (0, 1).
        category_mass: Covariate: share of each categorical feature's rows given one of those categories, in
            (0, 1].
        features: Covariate: only these features are shifted (empty: every feature).
    """

    shift: float = 2.0
    scale: float = 1.0
    flip_share: float = 0.75
    category_share: float = 0.25
    category_mass: float = 0.8
    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not math.isfinite(self.shift):
            problems.append(f"shift must be a finite number of standard deviations, got {self.shift}")
        if not math.isfinite(self.scale):
            problems.append(f"scale must be a finite number, got {self.scale}")
        if not 0 < self.flip_share <= 1:
            problems.append(f"flip_share must be in (0, 1], got {self.flip_share}")
        if not 0 < self.category_share < 1:
            problems.append(f"category_share must be in (0, 1), got {self.category_share}")
        if not 0 < self.category_mass <= 1:
            problems.append(f"category_mass must be in (0, 1], got {self.category_mass}")
        if problems:
            raise DriftError("; ".join(problems))


# Which options each kind (and, for concept drift, each problem type) reads.
_COVARIATE_OPTIONS = {"shift", "category_share", "category_mass", "features"}
_CONCEPT_OPTIONS = {"regression": {"shift", "scale"}, "forecasting": {"shift", "scale"},
                    "classification": {"flip_share"}}


def shift_options(kind: str, spec: ModelSpec, **given) -> ShiftOptions:
    """:class:`ShiftOptions` from the options a user gave (``None`` values are not given), refusing any that
    ``kind`` drift of ``spec`` would ignore.

    Raises:
        DriftError: an unknown kind, an option this drift does not read, or a value out of range.
    """
    _check_kind(kind)
    given = {k: v for k, v in given.items() if v is not None and v != () and v != []}
    known = {f.name for f in fields(ShiftOptions)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise DriftError(f"unknown drift options {unknown}; known: {', '.join(sorted(known))}")
    applies = _COVARIATE_OPTIONS if kind == "covariate" else _CONCEPT_OPTIONS[spec.problem_type]
    ignored = sorted(set(given) - applies)
    if ignored:
        what = "covariate drift" if kind == "covariate" else f"concept drift of a {spec.problem_type} model"
        raise DriftError(f"{', '.join(map(_option_name, ignored))} do not apply to {what} ({spec.name}); it reads "
                         f"{', '.join(map(_option_name, sorted(applies)))}")
    if "features" in given:
        given["features"] = tuple(given["features"])
    return ShiftOptions(**given)


def _option_name(name: str) -> str:
    """An option as the function and the CLI call it: ``flip_share (--flip-share)``."""
    flag = "--feature" if name == "features" else f"--{name.replace('_', '-')}"
    return f"{name} ({flag})"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise DriftError(f"drift kind must be one of {', '.join(KINDS)}, got {kind!r}")


def _require_columns(frame: pd.DataFrame, names: Iterable[str], what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DriftError(f"the frame to drift has no column {', '.join(map(repr, missing))} ({what})")


def covariate_shift(frame: pd.DataFrame, spec: ModelSpec, seed: int = 0,
                    options: ShiftOptions | None = None) -> pd.DataFrame:
    """The frame with its features moved: numeric ones by ``options.shift`` standard deviations, categorical ones
    toward their rarest categories. Other columns (ids, timestamps, the label and its sources) are unchanged.

    Args:
        frame: Rows to drift (the spec's features, plus whatever else; not modified).
        spec: Which columns are features and which of those are categorical.
        seed: Seed of the category draws (the numeric shift is deterministic).
        options: How far; default :class:`ShiftOptions`.

    Returns:
        A new frame with the same columns, rows, index and dtypes.

    Raises:
        DriftError: a feature named in ``options.features`` is not a feature of the spec, a feature is missing
            from the frame, or a non-categorical feature is not numeric.
    """
    options = options or ShiftOptions()
    columns = {c.name: c for c in spec.features}
    names = list(options.features) or list(columns)
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise DriftError(f"{', '.join(map(repr, unknown))} not features of {spec.name}; its features: "
                         f"{', '.join(columns)}")
    _require_columns(frame, names, f"features of {spec.name}")
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for name in names:
        column = columns[name]
        if column.is_categorical:
            out[name] = _toward_rare_categories(frame[name], rng, options.category_share, options.category_mass)
        else:
            out[name] = _shift_numeric(frame[name], options.shift, column)
    return out


def _shift_numeric(values: pd.Series, k: float, column: Column) -> pd.Series:
    """``values + k * std(values)``, integers rounded and kept integer; a constant column unchanged."""
    if pd.api.types.is_datetime64_any_dtype(values):
        spread = values.std()
        return values if pd.isna(spread) or spread == pd.Timedelta(0) else values + k * spread
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise DriftError(f"feature {column.name!r} ({column.type}) holds {values.dtype} values, which cannot be "
                         "shifted by standard deviations; mark it `categorical: true` in the spec")
    spread = float(values.std())
    if not math.isfinite(spread) or spread == 0:
        return values
    shifted = values + k * spread
    if pd.api.types.is_integer_dtype(values):
        shifted = shifted.round()
        if pd.api.types.is_unsigned_integer_dtype(values) and (shifted < 0).any():
            raise DriftError(f"feature {column.name!r} is unsigned; a shift of {k:g} standard deviations makes it "
                             "negative (use a positive --shift)")
    return shifted.astype(values.dtype)


def _toward_rare_categories(values: pd.Series, rng: np.random.Generator, share: float, mass: float) -> pd.Series:
    """``mass`` of the non-null rows get one of the rarest ``share`` of the categories (uniformly)."""
    counts = values.value_counts(dropna=True)
    if len(counts) < 2:
        return values
    n_rare = min(len(counts) - 1, max(1, round(share * len(counts))))
    order = np.lexsort((rng.random(len(counts)), counts.to_numpy()))  # rarest first, ties by the seed
    rare = counts.index.to_numpy()[order[:n_rare]]
    positions = np.flatnonzero(values.notna().to_numpy())
    moved = positions[rng.random(len(positions)) < mass]
    out = values.copy()
    out.iloc[moved] = rng.choice(rare, size=len(moved))
    return out.astype(values.dtype)


def frame_labels(frame: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """The spec's label for each row: its ``label_expression`` evaluated on the frame, else the label column.

    Raises:
        DriftError: the expression cannot be evaluated on the frame, or the label column is missing.
    """
    if spec.label_expression:
        try:
            labels = frame.eval(spec.label_expression)
        except Exception as exc:  # noqa: BLE001 - pandas raises many kinds for a bad expression or column
            raise DriftError(f"label_expression {spec.label_expression!r} of {spec.name} cannot be computed on the "
                             f"frame: {type(exc).__name__}: {exc}") from None
        return pd.Series(labels, index=frame.index, name=spec.label.name)
    _require_columns(frame, [spec.label.name], f"the label of {spec.name}")
    return frame[spec.label.name]


def concept_shift(frame: pd.DataFrame, spec: ModelSpec, seed: int = 0,
                  options: ShiftOptions | None = None) -> pd.DataFrame:
    """The frame with the same features and a perturbed label in the spec's label column.

    Args:
        frame: Rows to drift (the spec's features and the label or its sources; not modified).
        spec: The label, how it is derived (``label_expression``) and the problem type.
        seed: Seed of which rows change class (classification; the regression shift is deterministic).
        options: How far; default :class:`ShiftOptions`.

    Returns:
        A new frame: the label column (added for a derived label) perturbed, every other column unchanged.

    Raises:
        DriftError: the label cannot be read or computed, a regression label is constant or not numeric, or a
            classification label has fewer than two classes.
    """
    options = options or ShiftOptions()
    labels = frame_labels(frame, spec)
    if spec.problem_type == "classification":
        perturbed = _flip_labels(labels, np.random.default_rng(seed), options.flip_share, spec)
    else:
        perturbed = _shift_label(labels, options, spec)
    out = frame.copy()
    out[spec.label.name] = perturbed
    return out


def _shift_label(labels: pd.Series, options: ShiftOptions, spec: ModelSpec) -> pd.Series:
    if not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        raise DriftError(f"label {spec.label.name!r} of {spec.name} holds {labels.dtype} values; a "
                         f"{spec.problem_type} concept shift needs numbers")
    mean, spread = float(labels.mean()), float(labels.std())
    if not math.isfinite(spread) or spread == 0:
        raise DriftError(f"label {spec.label.name!r} of {spec.name} does not vary in the frame; a concept shift in "
                         "standard deviations needs at least two distinct labels")
    shifted = mean + options.scale * (labels - mean) + options.shift * spread
    if pd.api.types.is_integer_dtype(labels):
        shifted = shifted.round()
        if pd.api.types.is_unsigned_integer_dtype(labels) and (shifted < 0).any():
            raise DriftError(f"label {spec.label.name!r} of {spec.name} is unsigned; this shift makes it negative")
    return shifted.astype(labels.dtype)


def _flip_labels(labels: pd.Series, rng: np.random.Generator, share: float, spec: ModelSpec) -> pd.Series:
    """``share`` of the labelled rows (exactly, rounded) get the next class in sorted order (a cyclic permutation:
    every changed label differs from the old one)."""
    classes = np.sort(labels.dropna().unique())
    if len(classes) < 2:
        raise DriftError(f"label {spec.label.name!r} of {spec.name} has {len(classes)} class in the frame; a "
                         "classification concept shift needs at least two")
    successor = {cls: classes[(i + 1) % len(classes)] for i, cls in enumerate(classes)}
    positions = np.flatnonzero(labels.notna().to_numpy())
    changed = rng.choice(positions, size=round(share * len(positions)), replace=False)
    out = labels.copy()
    out.iloc[changed] = labels.iloc[changed].map(successor).to_numpy()
    return out.astype(labels.dtype)


def rows_to_judge(spec: ModelSpec, frame: pd.DataFrame) -> int:
    """Fewest rows one window needs for every evidence rule of ``spec`` to judge it: ``min_rows`` labelled rows
    for quality, ``drift_evidence.min_rows`` for drift, and ``drift_evidence.min_expected_per_category`` rows per
    category of the categorical feature with the most categories in ``frame`` (a window never shows more)."""
    widest = max((frame[c.name].nunique() for c in spec.features if c.is_categorical and c.name in frame.columns),
                 default=0)
    evidence = spec.drift_evidence
    return max(spec.min_rows, evidence.min_rows, math.ceil(evidence.min_expected_per_category * widest))


def default_requests(spec: ModelSpec, frame: pd.DataFrame, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Requests of ``batch_size`` rows that carry :func:`rows_to_judge` rows."""
    if batch_size < 1:
        raise DriftError(f"batch size must be at least 1, got {batch_size}")
    return math.ceil(rows_to_judge(spec, frame) / batch_size)


@dataclass
class SimulationResult:
    simulation_id: str
    kind: str
    requests: int
    rows: int
    failed: int
    request_time: datetime
    run_id: str
    days_ahead: float = 0.0


def drifted_frame(settings: Settings, spec: ModelSpec, kind: str, seed: int = 0,
                  options: ShiftOptions | None = None) -> pd.DataFrame:
    """The rows a simulation sends: the serving pool of the spec's source with ``kind`` drift applied."""
    from workloads.traffic import serving_pool

    _check_kind(kind)
    frame = serving_pool(settings, spec)
    shift = covariate_shift if kind == "covariate" else concept_shift
    return shift(frame, spec, seed, options)


def simulate(settings: Settings, spec: ModelSpec, kind: str = "concept", requests: int | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE, url: str | None = None, days_ahead: float | None = None,
             seed: int = 7, options: ShiftOptions | None = None) -> SimulationResult:
    """Send drifted traffic (with its labels recorded) and log a tagged MLflow run describing it.

    Args:
        settings: The home (tables, registry, tracking).
        spec: The model whose endpoint receives the traffic.
        kind: ``covariate`` or ``concept``.
        requests: Requests to send; default :func:`default_requests` (enough rows in one window to judge).
        batch_size: Rows per request.
        url: A running local endpoint; ``None`` starts one in this process for the simulation.
        days_ahead: Days after the endpoint's clock the requests are logged at (its days-ahead route); default 1
            for the in-process endpoint and 0 for ``url`` (whose clock may already be moved, as the demo's is).
        seed: Seed of the drift and of the rows sampled.
        options: How far the drift goes; default :class:`ShiftOptions`.

    Raises:
        DriftError: a bad kind, option, size or ``days_ahead``.
        TrafficError: the endpoint cannot be reached.
    """
    import mlflow

    from workloads.ports.tracking import configure_tracking, ensure_experiment
    from workloads.serving.app import MAX_DAYS_AHEAD, days_ahead_url
    from workloads.traffic import send_traffic

    days = (1.0 if url is None else 0.0) if days_ahead is None else float(days_ahead)
    if not 0 <= days <= MAX_DAYS_AHEAD:
        raise DriftError(f"days ahead must be from 0 to {MAX_DAYS_AHEAD}, got {days_ahead}")
    frame = drifted_frame(settings, spec, kind, seed, options)
    requests = default_requests(spec, frame, batch_size) if requests is None else requests
    if requests < 1 or batch_size < 1:
        raise DriftError(f"a simulation sends at least one request of at least one row (got {requests} requests of "
                         f"{batch_size} rows)")
    simulation_id = uuid.uuid4().hex[:10]
    prefix = f"{PREFIX}{simulation_id}"
    started = datetime.now(UTC)

    def send(endpoint: str):
        return send_traffic(days_ahead_url(endpoint, days), spec, frame, n=requests, batch_size=batch_size, seed=seed,
                            settings=settings, request_prefix=prefix, replace=False)

    if url is None:
        from workloads.serving.server import start_server

        with start_server(settings, spec) as handle:
            result = send(handle.url)
            handle.flush()
    else:
        result = send(url)
    if result.ok == 0:
        first = result.errors[0] if result.errors else "no answer"
        hint = ("; an endpoint without the days-ahead route is not this version's `mlops serve`: restart it, or pass "
                "--days-ahead 0") if days and "Not Found" in first else ""
        raise DriftError(f"the endpoint answered none of the {requests} simulated requests with predictions (first "
                         f"answer: {first}){hint}")
    configure_tracking(settings)
    ensure_experiment(settings, spec.name)
    with mlflow.start_run(run_name=f"{spec.name}-drift-{kind}-{simulation_id}") as run:
        mlflow.set_tags({SIMULATION_TAG: simulation_id, "mlops.kind": "drift_simulation", "drift_kind": kind})
        shown = options or ShiftOptions()
        mlflow.log_params({"kind": kind, "requests": requests, "batch_size": batch_size, "days_ahead": days,
                           "request_prefix": prefix, "seed": seed,
                           **{f"shift.{f.name}": getattr(shown, f.name) for f in fields(ShiftOptions)}})
        mlflow.log_metrics({"sent_rows": result.examples, "failed_requests": result.failed})
    return SimulationResult(simulation_id, kind, requests, result.examples, result.failed,
                            started + timedelta(days=days), run.info.run_id, days)


@dataclass
class ResetResult:
    rows_deleted: dict[str, int]
    runs_deleted: int


def reset(settings: Settings, spec: ModelSpec) -> ResetResult:
    """Delete exactly the simulated requests (payload, processed, pending labels) and simulation runs."""
    import mlflow

    from workloads.labels import pending_labels_table
    from workloads.ports.tracking import configure_tracking, experiment_location

    tables = get_tables(settings)
    deleted: dict[str, int] = {}
    targets = {
        settings.table(spec.payload_table): "client_request_id",
        settings.table(spec.processed_table): REQUEST_ID_COLUMN,
        settings.table(pending_labels_table(spec)): REQUEST_ID_COLUMN,
    }
    for table, column in targets.items():
        if tables.exists(table):
            deleted[table] = tables.delete(table, f"{column} LIKE '{PREFIX}%'")
    configure_tracking(settings)
    runs_deleted = 0
    experiment = mlflow.get_experiment_by_name(experiment_location(settings, spec.name))
    if experiment is not None:
        client = mlflow.MlflowClient()
        for run in client.search_runs([experiment.experiment_id], f"tags.`{SIMULATION_TAG}` != ''", max_results=5000):
            client.delete_run(run.info.run_id)
            runs_deleted += 1
    return ResetResult(deleted, runs_deleted)
