"""Example roles: every example is training, validation holdout or serving pool, fixed by a hash of its id.

What this guarantees: the same id always gets the same role, on every machine and in every environment (the
hash is pandas' SipHash-2-4 of the id's text with pandas' fixed key, ``pandas.util.hash_array``), so

- training fits on the ``training`` share only;
- the thresholds, the first-champion gate, batch scoring and the dev -> prod gate score the ``holdout`` share,
  which nothing trains on;
- ``mlops traffic`` and ``mlops drift simulate`` send the ``serving`` pool, so labelled traffic (what a retrain
  learns from) never repeats a holdout example.

Fresh traffic has no source id (a request is not a source row): a retrain splits it by a hash of its content
(features and label), so the same example sent twice lands on one side only. :func:`check_disjoint` is the
check in code that a model is never scored on what it trained on: it refuses any overlap of ids or contents
between a training frame and the frame it is compared on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workloads.errors import MlopsError
from workloads.specs import ModelSpec

TRAINING, HOLDOUT, SERVING = "training", "holdout", "serving"
# Percent of examples per role, in bucket order: buckets 0-59 training, 60-79 holdout, 80-99 serving pool.
SHARES = {TRAINING: 60, HOLDOUT: 20, SERVING: 20}
FRESH_HOLDOUT_PERCENT = 30  # share of fresh traffic a retrain holds out to compare champion and challenger


class LeakError(MlopsError):
    """A model would be scored on examples it trained on."""


@dataclass
class Split:
    """A source frame cut into its three roles (each keeps the frame's ``attrs``: data versions)."""

    training: pd.DataFrame
    holdout: pd.DataFrame
    serving: pd.DataFrame


def _buckets(hashes: np.ndarray) -> np.ndarray:
    return (hashes % np.uint64(100)).astype(np.int64)


def id_hashes(ids: pd.Series) -> np.ndarray:
    """Stable 64-bit hashes of example ids (their text: 7 and "7" are the same id)."""
    if ids.isna().any():
        raise MlopsError(f"id column {ids.name!r} has {int(ids.isna().sum())} null values; every example needs an id")
    values = ids.to_numpy()
    if pd.api.types.is_float_dtype(ids) and np.all(np.mod(values, 1) == 0):
        values = values.astype(np.int64)  # 7.0 read back from a float column is the id 7
    return pd.util.hash_array(np.asarray([str(v) for v in values], dtype=object))


def roles(ids: pd.Series) -> np.ndarray:
    """The role of each id: ``training``, ``holdout`` or ``serving``."""
    buckets = _buckets(id_hashes(ids))
    cut1, cut2 = SHARES[TRAINING], SHARES[TRAINING] + SHARES[HOLDOUT]
    return np.where(buckets < cut1, TRAINING, np.where(buckets < cut2, HOLDOUT, SERVING))


def split(frame: pd.DataFrame, spec: ModelSpec) -> Split:
    """Cut ``frame`` (rows of the spec's source) into training, holdout and serving pool by the id's hash."""
    role = roles(frame[spec.source.id])
    parts = []
    for name in (TRAINING, HOLDOUT, SERVING):
        part = frame[role == name].reset_index(drop=True)
        part.attrs.update(frame.attrs)
        parts.append(part)
    return Split(*parts)


def content_keys(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Stable hashes of each row's content: its features and, where present, its label."""
    columns = [*spec.feature_names, *([spec.label.name] if spec.label.name in frame.columns else [])]
    normalised = frame[columns].copy()
    for column in spec.features:  # a value's hash must not depend on how a table typed it (int64 vs Int64)
        if column.type in ("bigint", "int", "double", "float") and column.name in normalised:
            normalised[column.name] = pd.to_numeric(normalised[column.name]).astype("float64")
        elif column.name in normalised:
            normalised[column.name] = normalised[column.name].astype(str)
    if spec.label.name in normalised:
        normalised[spec.label.name] = normalised[spec.label.name].astype(str)
    return pd.util.hash_pandas_object(normalised, index=False).to_numpy()


def is_fresh_holdout(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Whether each fresh (traffic) example is in the share a retrain holds out, by its content's hash."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    return _buckets(content_keys(frame, spec)) < FRESH_HOLDOUT_PERCENT


def _has_id(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    column = spec.source.id
    return frame[column].notna().to_numpy() if column in frame.columns else np.zeros(len(frame), dtype=bool)


def check_disjoint(training: pd.DataFrame, compared_on: pd.DataFrame, spec: ModelSpec,
                   what: str = "the holdout") -> None:
    """Refuse to compare a model on rows it trained on.

    Source rows carry the spec's id: two such rows are the same example when their ids are equal. Traffic rows
    have no source id: such a row is the same example as any row with identical features and label. So ids
    are compared between rows that both have one, and the content of every id-less row on either side against
    every row on the other side (duplicated source records with different ids stay distinct examples).

    Raises:
        LeakError: naming how many examples are shared and one of them.
    """
    if training.empty or compared_on.empty:
        return
    problems = []
    id_column = spec.source.id
    train_has, other_has = _has_id(training, spec), _has_id(compared_on, spec)
    if train_has.any() and other_has.any():
        trained_ids = set(map(str, training.loc[train_has, id_column]))
        shared = [i for i in map(str, compared_on.loc[other_has, id_column]) if i in trained_ids]
        if shared:
            problems.append(f"{len(shared)} example id(s) (e.g. {id_column}={shared[0]})")
    train_keys, other_keys = content_keys(training, spec), content_keys(compared_on, spec)
    same = np.isin(other_keys[~other_has], train_keys).sum() + np.isin(other_keys[other_has],
                                                                        train_keys[~train_has]).sum()
    if same:
        problems.append(f"{int(same)} example(s) with identical features and label, one of them without an id")
    if problems:
        raise LeakError(f"{spec.name}: refusing to compare on {what}: it shares {' and '.join(problems)} with the "
                        f"rows the model trained on; a model is never scored on what it trained on")
