"""dev -> prod: copy the dev champion into the prod model, validate it on prod data, then make it champion.

``copy_model_version`` keeps the lineage (the prod version's source is the dev version). The copy gets
the prod ``champion`` alias only if it passes the spec's thresholds on the freshest ground truth there
is, in this order: prod's labelled traffic of its latest day; else (a new prod, or one whose labels lag)
the held-out share of the source environment's labelled traffic of its latest day (the evidence the
source champion was chosen on, never trained on); else prod's holdout split of the training data. Otherwise the copy stays an unaliased
version tagged with why, and the command refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workloads import registry
from workloads.errors import MlopsError
from workloads.promotion import PromotionRecord, promote
from workloads.settings import Settings
from workloads.specs import ModelSpec
from workloads.training.evaluation import evaluate, threshold_failures


class CrossEnvironmentPromotionError(MlopsError):
    """The dev champion is missing, or its copy failed the gate in the target environment."""


@dataclass
class CrossPromotion:
    model: str
    source: str  # models:/<dev name>/<version>
    source_version: int
    target_version: int
    metrics: dict[str, float]
    record: PromotionRecord | None
    validated_on: str = ""


def is_copy_of(target_champion, source_model: str, source_version: int) -> bool:
    """Whether a target environment's champion (registry alias info, or None) is already the copy of
    ``source_model`` v``source_version`` (the tags a cross-environment copy writes)."""
    return target_champion is not None and target_champion.tags.get("source_model") == source_model \
        and target_champion.tags.get("source_version") == str(source_version)


ENVIRONMENT_ORDER = ("dev", "prod")


def check_promotion_order(source_env: str, target_env: str, force: bool = False) -> None:
    """Environments are named, and a promotion goes dev -> prod unless forced.

    Raises:
        CrossEnvironmentPromotionError: an unknown environment, or prod -> dev without ``force``.
    """
    for flag, env in (("--from", source_env), ("--to", target_env)):
        if env not in ENVIRONMENT_ORDER:
            raise CrossEnvironmentPromotionError(
                f"{flag} {env!r} is not an environment; environments: {', '.join(ENVIRONMENT_ORDER)}")
    if ENVIRONMENT_ORDER.index(source_env) > ENVIRONMENT_ORDER.index(target_env) and not force:
        raise CrossEnvironmentPromotionError(
            f"promoting {source_env} -> {target_env} goes against the environment order "
            f"({' -> '.join(ENVIRONMENT_ORDER)}) and would replace {target_env}'s champion; pass --force if that "
            "is what you want")


def promote_across(settings: Settings, spec: ModelSpec, source_env: str = "dev", target_env: str = "prod") -> CrossPromotion:
    """Copy ``source_env``'s champion into ``target_env`` and gate it there."""
    if source_env == target_env:
        raise CrossEnvironmentPromotionError(f"--from and --to are both {source_env!r}; promote between two environments")
    source = settings.for_env(source_env)
    target = settings.for_env(target_env)
    champion = registry.get_alias(source, spec, registry.CHAMPION)
    if champion is None:
        raise CrossEnvironmentPromotionError(
            f"{source.registered_model(spec.name)} has no champion to promote; train one in {source_env} first")
    target_champion = registry.get_alias(target, spec, registry.CHAMPION)
    if is_copy_of(target_champion, champion.name, champion.version):
        raise CrossEnvironmentPromotionError(
            f"{target.registered_model(spec.name)} champion v{target_champion.version} already is "
            f"{champion.name} v{champion.version}; nothing to promote")
    client = registry._client(target)
    source_uri = registry.model_uri(source, spec, version=champion.version)
    copied = client.copy_model_version(source_uri, target.registered_model(spec.name))
    version = int(copied.version)
    registry.set_version_tags(target, spec, version, {
        "source_model": champion.name, "source_version": champion.version, "source_env": source_env,
        "data_versions": champion.tags.get("data_versions", "{}"), "spec_hash": champion.tags.get("spec_hash", "")})
    holdout, validated_on = validation_data(source, target, spec, source_env, target_env)
    metrics = evaluate(spec, registry.load_model(target, spec, version=version), holdout)
    failures = threshold_failures(spec, metrics)
    registry.set_version_tags(target, spec, version, {
        "validated_on": validated_on, "passed_thresholds": str(not failures).lower(),
        **({"gate_failures": "; ".join(failures)} if failures else {})})
    if failures:
        raise CrossEnvironmentPromotionError(
            f"{champion.name} v{champion.version} copied to {target.registered_model(spec.name)} v{version} but failed "
            f"the {target_env} gate on {validated_on}: " + "; ".join(failures) + f"; the {target_env} champion is unchanged")
    keep = ("rmse", "mae", "r2", "accuracy_score", "f1_score")
    record = promote(target, spec, version, action="copy_promote", expected_champion=(
        target_champion.version if target_champion else None),
        reason=f"promoted from {source_env} ({champion.name} v{champion.version}); validated on {validated_on}",
        challenger_metrics={k: round(v, 6) for k, v in metrics.items() if k in keep})
    return CrossPromotion(spec.name, source_uri, champion.version, version, metrics, record, validated_on)


def validation_data(source: Settings, target: Settings, spec: ModelSpec, source_env: str,
                    target_env: str) -> tuple[pd.DataFrame, str]:
    """The freshest labelled data to gate a copied version on, and a description of it."""
    from workloads.specs import EXAMPLE_ID_COLUMN
    from workloads.watcher.retraining import latest_labelled_window

    # Source traffic: only its held-out share, which no retrain in the source environment trained on.
    for settings, env, held_out in ((target, target_env, False), (source, source_env, True)):
        recent = latest_labelled_window(settings, spec, held_out_only=held_out)
        if len(recent) >= spec.min_rows:
            what = "held-out labelled" if held_out else "labelled"
            return recent.drop(columns=[EXAMPLE_ID_COLUMN]), f"{len(recent)} {what} {env} examples of the latest day"
    from workloads.data import roles
    from workloads.data.source import read_examples, source_table

    holdout = roles.split(read_examples(target, spec), spec).holdout
    return holdout, f"the holdout share of {source_table(target, spec)} ({len(holdout)} rows)"
