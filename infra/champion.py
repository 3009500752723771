"""Which model version the ``champion`` alias points at, asked of Unity Catalog at deploy time."""

from __future__ import annotations

from dataclasses import dataclass

CHAMPION_ALIAS = "champion"


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
    """
    import pulumi_databricks as databricks

    try:
        result = databricks.get_registered_model(full_name=full_name, include_aliases=True)
    except Exception as exc:  # noqa: BLE001 - any failed lookup (model absent, no access) defers the endpoint
        return ChampionLookup(full_name, None, f"registered model not readable yet ({str(exc).splitlines()[0]})")
    for info in result.model_infos or []:
        for alias in info.aliases or []:
            if alias.alias_name == CHAMPION_ALIAS and alias.version_num is not None:
                return ChampionLookup(full_name, int(alias.version_num))
    return ChampionLookup(full_name, None, f"no '{CHAMPION_ALIAS}' alias yet")
