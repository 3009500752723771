"""``mlops spec init``: a complete, commented spec drafted from a table's columns.

What it guesses, and shows: the id column (a column named like an id whose values are unique, else the first
unique integer or text column), the timestamp column (the first timestamp or date column), the problem type
(classification for a boolean or text label or an integer label with few values, else regression), thresholds a
model must beat to be worth serving (regression: rmse at most the label's standard deviation, i.e. better than
predicting the mean, and r2 of at least 0.3; classification: accuracy above always predicting the most
frequent class, and macro f1 of at least 0.5). Every other column is a feature, except timestamps (features
must be numbers, text or booleans). The drafted file passes ``mlops spec check``; edit it freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.errors import SpecError

_ID_NAME = re.compile(r"(^id$|_id$|^id_|ID$|Id$|^key$|_key$)")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Draft:
    """A drafted spec and the guesses a person should see."""

    name: str
    text: str
    id_column: str
    timestamp_column: str
    problem_type: str
    features: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature
    guesses: list[str] = field(default_factory=list)


def guess_id(frame: pd.DataFrame, types: dict[str, str], exclude: set[str]) -> str | None:
    """The column that identifies an example: unique and non-null, named like an id first."""
    candidates = [c for c in frame.columns if c not in exclude and types[c] in ("bigint", "string")
                  and frame[c].notna().all() and frame[c].is_unique]
    named = [c for c in candidates if _ID_NAME.search(c)]
    return (named or candidates or [None])[0]


def guess_timestamp(types: dict[str, str], exclude: set[str]) -> str | None:
    return next((c for c, t in types.items() if c not in exclude and t in ("timestamp", "date")), None)


def guess_problem(label: pd.Series, label_type: str) -> str:
    if label_type in ("boolean", "string"):
        return "classification"
    if label_type == "bigint" and label.nunique(dropna=True) <= 10:
        return "classification"
    return "regression"


def _model_name(table: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", table.split(".")[-1].lower()).strip("_")
    return name if _NAME.match(name or "") else f"model_{name}"


def draft_spec(frame: pd.DataFrame, types: dict[str, str], table: str, label: str, *,
               problem_type: str | None = None, name: str | None = None, id_column: str | None = None,
               timestamp_column: str | None = None, source_table: str | None = None) -> Draft:
    """Draft a spec for ``table`` (whose rows are ``frame`` and column types ``types``) predicting ``label``.

    Args:
        frame: The table's rows (or a large sample of them) to guess from.
        types: ``{column: spec type}`` of the table.
        table: The table's three-level name.
        label: The column to predict.
        problem_type: ``regression`` or ``classification`` (default: guessed from the label).
        name: The model name (default: the table's name).
        id_column: The id column (default: guessed).
        timestamp_column: The timestamp column (default: guessed).
        source_table: What the spec's ``source.table`` says (default: ``table``; ``{catalog}.s.t`` per stack).

    Raises:
        SpecError: the label, id or timestamp column is missing or cannot be guessed (saying what to pass).
    """
    columns = list(types)
    if label not in types:
        raise SpecError(f"label {label!r} is not a column of {table} (columns: {', '.join(columns)})")
    if frame[label].isna().all():
        raise SpecError(f"label {label!r} of {table} has no values")
    guesses = []
    for given, what in ((id_column, "id"), (timestamp_column, "timestamp")):
        if given is not None and given not in types:
            raise SpecError(f"{what} column {given!r} is not a column of {table} (columns: {', '.join(columns)})")
    timestamp_column = timestamp_column or guess_timestamp(types, {label})
    if timestamp_column is None:
        raise SpecError(f"{table} has no timestamp or date column; every example needs a time (monitoring windows, "
                        "retraining periods): add one, or name a column with --timestamp")
    if id_column is None:
        id_column = guess_id(frame, types, {label, timestamp_column})
        if id_column is None:
            raise SpecError(f"{table} has no column with unique, non-null values to identify an example; add an id "
                            "column, or name one with --id")
        guesses.append(f"id column: {id_column} (unique values; --id to choose another)")
    elif not (frame[id_column].notna().all() and frame[id_column].is_unique):
        raise SpecError(f"id column {id_column!r} of {table} has repeated or null values; an id names one example")
    guesses.append(f"timestamp column: {timestamp_column} (--timestamp to choose another)")
    label_type = types[label]
    problem = problem_type or guess_problem(frame[label], label_type)
    if problem not in ("regression", "classification"):
        raise SpecError(f"problem type must be regression or classification, got {problem!r}")
    if problem_type is None:
        guesses.append(f"problem type: {problem} (label {label!r} is {label_type} with "
                       f"{frame[label].nunique()} distinct values; --problem-type to choose)")
    if problem == "regression" and label_type not in ("bigint", "double"):
        raise SpecError(f"label {label!r} is {label_type}; a regression label must be numeric")
    model = name or _model_name(table)
    if not _NAME.match(model):
        raise SpecError(f"model name {model!r} must be lower case letters, digits and underscores, starting with a "
                        "letter (it names the registered model, tables and endpoint)")
    skipped, features = {}, []
    for column in columns:
        if column in (label, id_column, timestamp_column):
            continue
        if types[column] in ("timestamp", "date"):
            skipped[column] = "a timestamp (derive numeric features from it in a builder if it matters)"
        elif frame[column].isna().all():
            skipped[column] = "has no values"
        else:
            features.append(column)
    if not features:
        raise SpecError(f"{table} has no column left to use as a feature besides label, id and timestamp")
    text = _render(model, table if source_table is None else source_table, id_column, timestamp_column, label,
                   label_type, problem, features, types, skipped, frame[label])
    return Draft(model, text, id_column, timestamp_column, problem, features, skipped, guesses)


def _thresholds(problem: str, label: pd.Series) -> list[str]:
    if problem == "regression":
        std = float(pd.to_numeric(label, errors="coerce").std())
        rmse = float(f"{std:.3g}") if np.isfinite(std) and std > 0 else 1.0
        return [(f"  rmse: {{max: {rmse:g}}}        # the label's standard deviation: a model must beat predicting "
                "the mean"), "  r2: {min: 0.3}"]
    majority = float(label.value_counts(normalize=True).iloc[0])
    accuracy = round(min(0.99, majority + 0.02), 2)
    return [(f"  accuracy_score: {{min: {accuracy:g}}}   # the majority class is {majority:.0%} of the rows: "
            "a model must beat always predicting it"), "  f1_score: {min: 0.5}       # macro average over classes"]


def _render(model: str, table: str, id_column: str, timestamp_column: str, label: str, label_type: str,
            problem: str, features: list[str], types: dict[str, str], skipped: dict[str, str],
            label_values: pd.Series) -> str:
    prediction_type = label_type if problem == "classification" else "double"
    categorical = [f for f in features if types[f] in ("string", "boolean")]
    lines = [
        f"# Drafted by `mlops spec init` from {table}. Check it with: mlops spec check <this file>",
        "# Every key is shown; unknown keys are an error naming the closest valid one.",
        f"name: {model}             # = the file name; the registered model is <catalog>.<schema>.{model}_model",
        f"description: Predicts {label} from {table}.",
        f"problem_type: {problem}   # regression | classification",
        "trainer: generic           # honours `hyperparameters` below (a grid: the best on a validation cut wins)",
        "source:                    # every step reads this table; {catalog}.schema.table reads each stack's own catalog",
        f"  table: {table}",
        f"  id: {id_column}          # one example; its hash fixes the role: training 60%, holdout 20%, serving 20%",
        f"  timestamp: {timestamp_column}",
        "features:",
        *[f"  - {{name: {f}, type: {types[f]}}}" for f in features],
    ]
    for column, why in skipped.items():
        lines.append(f"  # not a feature: {column} ({why})")
    lines += [
        f"label: {{name: {label}, type: {label_type}}}",
        f"prediction: {{name: prediction, type: {prediction_type}}}",
        "thresholds:                # quality: max breaches above, min below; a breach needs its interval beyond it",
        *_thresholds(problem, label_values),
        "drift_thresholds:          # per feature: js_distance (categorical), population_stability_index (numeric)",
        "  js_distance: {max: 0.28}",
        "  population_stability_index: {max: 0.25}",
        "min_rows: 30               # fewest labelled rows in a window for its quality metrics to count",
        "hyperparameters: {}        # e.g. {max_iter: [100, 200], learning_rate: [0.05, 0.1]}",
        f"slices: {categorical[:1]}".replace("'", "") + "   # feature columns the monitor slices by",
    ]
    return "\n".join(lines) + "\n"


def write_draft(draft: Draft, directory: Path, force: bool = False) -> Path:
    """Write ``<directory>/<name>.yaml``; an existing file is replaced only with ``force``.

    Raises:
        SpecError: the file exists and ``force`` is not set.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{draft.name}.yaml"
    if path.exists() and not force:
        raise SpecError(f"spec file {path} already exists; pass --force to replace it, or --name for another model")
    path.write_text(draft.text, encoding="utf-8")
    return path
