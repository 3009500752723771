"""Champion changes: promote a challenger, roll back to the previous champion, and the audit table.

Every change takes the model's promotion lock, re-checks that the champion is still the one the
decision was made against (two watcher runs cannot both promote), moves the aliases
(``previous`` <- old champion, ``champion`` <- new) and writes
one row to ``<catalog>.<schema>.model_promotions``. Endpoints are never changed here: locally the endpoint
follows the alias by itself, on Databricks the Pulumi program serves the champion at the next ``pulumi up``.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import pandas as pd

from workloads import registry
from workloads.errors import MlopsError
from workloads.locking import promotion_lock
from workloads.ports.tables import get_tables
from workloads.settings import Settings
from workloads.specs import ModelSpec

AUDIT_TABLE = "model_promotions"


class PromotionError(MlopsError):
    """A champion change was refused (no previous version, champion moved meanwhile, gate failed)."""


@dataclass
class PromotionRecord:
    """One row of the audit table."""

    model: str
    action: str  # promote | rollback | copy_promote
    from_version: int | None
    to_version: int
    from_metrics: dict
    to_metrics: dict
    reason: str
    actor: str
    at: datetime
    env: str
    serving: str = ""  # how the endpoint follows the change (not audited: it is not a decision)

    def row(self) -> dict:
        return {
            "model": self.model, "action": self.action, "env": self.env,
            "from_version": None if self.from_version is None else str(self.from_version),
            "to_version": str(self.to_version),
            "from_metrics": json.dumps(self.from_metrics, sort_keys=True, default=float),
            "to_metrics": json.dumps(self.to_metrics, sort_keys=True, default=float),
            "reason": self.reason, "actor": self.actor, "at": pd.Timestamp(self.at),
        }


def actor() -> str:
    """Who is acting: ``MLOPS_ACTOR``, the Azure DevOps requester, else ``user@host``."""
    return (os.environ.get("MLOPS_ACTOR") or os.environ.get("BUILD_REQUESTEDFOREMAIL")
            or f"{getpass.getuser()}@{socket.gethostname()}")


def audit_table(settings: Settings) -> str:
    return settings.table(AUDIT_TABLE)


def write_audit(settings: Settings, record: PromotionRecord) -> None:
    get_tables(settings).write(audit_table(settings), pd.DataFrame([record.row()]), mode="append")


def read_audit(settings: Settings, model: str | None = None) -> pd.DataFrame:
    tables = get_tables(settings)
    name = audit_table(settings)
    if not tables.exists(name):
        return pd.DataFrame(columns=[f.name for f in fields(PromotionRecord) if f.name != "serving"])
    frame = tables.read(name).sort_values("at", kind="stable").reset_index(drop=True)
    return frame if model is None else frame[frame["model"] == model].reset_index(drop=True)


def follow_champion(settings: Settings, spec: ModelSpec, version: int) -> str:
    """Say how the serving endpoint follows the new champion; changes no endpoint.

    Locally the endpoint polls the ``champion`` alias and swaps by itself. On Databricks the endpoint is the Pulumi
    program's: it serves the champion as of the next ``pulumi up`` (a promotion moves aliases only), so this only
    reads what serves now (:func:`workloads.serving.databricks.describe_following`).
    """
    if settings.backend != "databricks":
        return "local endpoint follows the champion alias"
    from workloads.serving.databricks import describe_following

    return describe_following(settings, spec, version)


def _change_champion(settings: Settings, spec: ModelSpec, to_version: int, *, action: str, reason: str,
                     expected_champion: int | None, from_metrics: dict, to_metrics: dict) -> PromotionRecord:
    with promotion_lock(settings, spec.name, timeout=30.0):
        current = registry.get_alias(settings, spec, registry.CHAMPION)
        current_version = current.version if current else None
        if current_version != expected_champion:
            raise PromotionError(
                f"{spec.name}: champion is v{current_version}, not v{expected_champion} as when the decision was "
                "made (another run changed it); nothing changed")
        if current_version == to_version:
            raise PromotionError(f"{spec.name}: v{to_version} is already the champion")
        registry.version_info(settings, spec, to_version)
        if current_version is not None:
            registry.set_alias(settings, spec, registry.PREVIOUS, current_version)
        registry.set_alias(settings, spec, registry.CHAMPION, to_version)
        challenger = registry.get_alias(settings, spec, registry.CHALLENGER)
        if challenger and challenger.version == to_version:
            registry.delete_alias(settings, spec, registry.CHALLENGER)
        record = PromotionRecord(model=spec.name, action=action, from_version=current_version, to_version=to_version,
                                 from_metrics=from_metrics, to_metrics=to_metrics, reason=reason, actor=actor(),
                                 at=datetime.now(UTC), env=settings.env)
        write_audit(settings, record)
    record.serving = follow_champion(settings, spec, to_version)
    return record


def promote(settings: Settings, spec: ModelSpec, version: int, *, reason: str, expected_champion: int | None,
            champion_metrics: dict | None = None, challenger_metrics: dict | None = None,
            action: str = "promote") -> PromotionRecord:
    """Make ``version`` the champion: ``previous`` <- old champion, audit row, endpoint follows."""
    return _change_champion(settings, spec, version, action=action, reason=reason,
                            expected_champion=expected_champion, from_metrics=champion_metrics or {},
                            to_metrics=challenger_metrics or {})


def rollback(settings: Settings, spec: ModelSpec, reason: str = "manual rollback",
             to_version: int | None = None) -> PromotionRecord:
    """Champion <- ``previous`` once; rolling back further needs an explicit ``to_version``.

    A rollback sets ``previous`` to the version it removed, so a second plain rollback would silently undo the
    first. It is refused instead: after a rollback, say which version should serve (``to_version``).
    """
    current = registry.get_alias(settings, spec, registry.CHAMPION)
    if current is None:
        raise PromotionError(f"{spec.name} has no champion to roll back from")
    if to_version is None:
        last = last_change(settings, spec.name)
        if last is not None and last["action"] == "rollback" and int(last["to_version"]) == current.version:
            raise PromotionError(
                f"{spec.name}: champion v{current.version} is already a rollback (from v{int(last['from_version'])}); "
                f"a second rollback would bring back the version just removed. Pass --to-version N to choose the "
                f"version to serve")
        previous = registry.get_alias(settings, spec, registry.PREVIOUS)
        if previous is None:
            raise PromotionError(f"{spec.name} has no 'previous' version to roll back to")
        to_version = previous.version
    return _change_champion(settings, spec, to_version, action="rollback", reason=reason,
                            expected_champion=current.version, from_metrics={}, to_metrics={})


def last_change(settings: Settings, model: str) -> dict | None:
    """The model's latest champion change in this environment's audit table (None when there is none)."""
    audit = read_audit(settings, model)
    if audit.empty:
        return None
    if "env" in audit:
        audit = audit[audit["env"] == settings.env]
    if audit.empty:
        return None
    return audit.sort_values("at").iloc[-1].to_dict()
