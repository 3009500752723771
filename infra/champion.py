"""Which model version the ``champion`` alias points at, asked of Unity Catalog at deploy time.

The answer decides whether a model's endpoint is declared: no champion defers it (a first deploy), so reading
"absent" where the truth is "cannot read" would make ``pulumi up`` delete a live endpoint. The two are told apart
by the error code Unity Catalog returns, never by message text: the lookup goes through databricks-sdk, which
raises ``DatabricksError`` with the response's ``error_code`` (``RESOURCE_DOES_NOT_EXIST`` is
``ResourceDoesNotExist``; ``PERMISSION_DENIED`` is ``PermissionDenied``; "Errors ... are mapped to exception
classes based on the error code", https://databricks-sdk-py.readthedocs.io/en/latest/errors.html). The
provider's ``get_registered_model`` data source is not used for this: an invoke that fails reaches the program as
a plain Exception carrying only the message text.

- ``RESOURCE_DOES_NOT_EXIST`` (the registered model is not there): absent.
- ``CATALOG_DOES_NOT_EXIST`` / ``SCHEMA_DOES_NOT_EXIST``: absent only when this stack creates that catalog
  (``catalog.create``), i.e. a first deploy; for a reused catalog it means a wrong name or a catalog not bound
  to this workspace, which is an error.
- anything else (``PERMISSION_DENIED``, a 404 without those codes, a network error): :class:`ChampionLookupError`.

Prod endpoints are also protected (infra/components/serving.py), so even a wrong "absent" cannot delete one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workloads.errors import MlopsError

CHAMPION_ALIAS = "champion"
MODEL_ABSENT = "RESOURCE_DOES_NOT_EXIST"
CONTAINER_ABSENT = ("CATALOG_DOES_NOT_EXIST", "SCHEMA_DOES_NOT_EXIST")


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


def workspace_client(host: str, auth_type: str | None = None) -> Any:
    """The databricks-sdk client the lookup uses: the stack's workspace with the provider's auth type (in the
    pipeline ``azure-cli``, the AzureCLI@2 task's login), otherwise the SDK's own resolution (env, profile)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=host or None, auth_type=auth_type or None)


# What the program calls to get a client; offline runs (infra/offline.py) install a stand-in answering from mocks.
client_factory: Callable[[str, str | None], Any] = workspace_client


def lookup_champion(full_name: str, client: Any, *, creates_catalog: bool = False) -> ChampionLookup:
    """Read the ``champion`` alias of ``full_name`` (``registered_models.get`` with ``include_aliases``).

    A model that does not exist yet (first deploy) or has no champion is not an error: the caller defers
    the endpoint until the training job has bootstrapped a champion.

    Args:
        full_name: ``catalog.schema.model``.
        client: A databricks-sdk ``WorkspaceClient`` (or a stand-in with ``registered_models.get``).
        creates_catalog: Whether this stack creates the catalog, so that its absence means a first deploy.

    Raises:
        ChampionLookupError: any other failure (e.g. ``PERMISSION_DENIED``). Deferring then would delete a live
            endpoint, so the deployment stops instead.
    """
    from databricks.sdk.errors import DatabricksError

    try:
        info = client.registered_models.get(full_name, include_aliases=True)
    except DatabricksError as exc:
        code = exc.error_code or ""
        if code == MODEL_ABSENT:
            return ChampionLookup(full_name, None, "registered model does not exist yet")
        if code in CONTAINER_ABSENT and creates_catalog:
            return ChampionLookup(full_name, None, f"registered model does not exist yet ({code})")
        raise ChampionLookupError(
            f"cannot read the champion alias of {full_name}: {code or type(exc).__name__}: {exc}; grant the "
            f"deploying principal USE_CATALOG, USE_SCHEMA and EXECUTE on it (and check the catalog is bound to this "
            f"workspace) and retry") from None
    except (OSError, ValueError) as exc:  # no route to the workspace, or no usable auth
        raise ChampionLookupError(f"cannot read the champion alias of {full_name}: {type(exc).__name__}: {exc}"
                                  ) from None
    for alias in info.aliases or []:
        if alias.alias_name == CHAMPION_ALIAS and alias.version_num is not None:
            return ChampionLookup(full_name, int(alias.version_num))
    return ChampionLookup(full_name, None, f"no '{CHAMPION_ALIAS}' alias yet")
