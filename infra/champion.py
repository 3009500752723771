"""Which model version the ``champion`` alias points at, asked of Unity Catalog at deploy time."""

from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import MlopsError

CHAMPION_ALIAS = "champion"
# What Unity Catalog says when the model (or its catalog/schema) is not there yet.
_ABSENT = ("resource_does_not_exist", "does not exist", "not found", "not_found")


class ChampionLookupError(MlopsError):
    """The champion alias could not be read for a reason other than the model not existing yet."""


@dataclass(frozen=True)
class ChampionLookup:
    """The champion version of a registered model, or why there is none yet."""

    model: str
    version: int | None
    reason: str = ""

    @property
    def found(self) -> bool:
        return self.version is not None


def lookup_champion(full_name: str) -> ChampionLookup:
    """Read the ``champion`` alias through the ``databricks.get_registered_model`` data source.

    A model that does not exist yet (first deploy) or has no champion is not an error: the caller defers
    the endpoint until the training job has bootstrapped a champion.

    Raises:
        ChampionLookupError: any other failure (e.g. no permission). Deferring then would delete a live
            endpoint, so the deployment stops instead.
    """
    import pulumi_databricks as databricks

    try:
        result = databricks.get_registered_model(full_name=full_name, include_aliases=True)
    except Exception as exc:  # noqa: BLE001 - the engine reports every failed invoke as a plain Exception
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if any(marker in reason.lower() for marker in _ABSENT):
            return ChampionLookup(full_name, None, "registered model does not exist yet")
        raise ChampionLookupError(
            f"cannot read the champion alias of {full_name}: {reason}; grant the deploying principal "
            f"USE_CATALOG, USE_SCHEMA and EXECUTE on it and retry") from None
    for info in result.model_infos or []:
        for alias in info.aliases or []:
            if alias.alias_name == CHAMPION_ALIAS and alias.version_num is not None:
                return ChampionLookup(full_name, int(alias.version_num))
    return ChampionLookup(full_name, None, f"no '{CHAMPION_ALIAS}' alias yet")
