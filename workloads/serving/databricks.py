"""The Databricks path: read and query a model's Model Serving endpoint.

The endpoint itself (served entity = the ``champion`` version, the AI Gateway inference table
``<catalog>.<schema>.<prefix>_payload``, size, permissions) is declared by the Pulumi program only
(infra/components/serving.py): nothing here creates or changes it. A promotion or rollback moves aliases, and
:func:`describe_following` says what serves until the next ``pulumi up``. Everything goes through ``databricks-sdk``
``serving_endpoints``; the client is injectable (tests point it at a fake REST API).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workloads.errors import MlopsError
from workloads.settings import Settings
from workloads.specs import ModelSpec


class EndpointError(MlopsError):
    """A Databricks serving endpoint could not be created, updated, reached or queried."""


@dataclass(frozen=True)
class EndpointStatus:
    """What an endpoint serves and whether it is ready."""

    name: str
    ready: bool
    config_update: str
    served_versions: tuple[str, ...]
    inference_table: str | None

    def describe(self) -> str:
        versions = ", ".join(self.served_versions) or "nothing"
        table = self.inference_table or "off"
        return (f"endpoint {self.name}: {'ready' if self.ready else 'not ready'} ({self.config_update}), "
                f"serving version {versions}; inference table {table}")


def workspace_client(settings: Settings | None = None):
    """A ``WorkspaceClient`` from the environment's Databricks auth (``DATABRICKS_HOST`` / token / profile)."""
    from databricks.sdk import WorkspaceClient

    try:
        return WorkspaceClient()
    except Exception as exc:  # ValueError from the SDK's config resolution
        raise EndpointError(f"cannot authenticate to Databricks: {exc}; set DATABRICKS_HOST and "
                            "DATABRICKS_TOKEN (or a profile)") from exc


def _status(endpoint, settings: Settings, spec: ModelSpec) -> EndpointStatus:
    state = endpoint.state
    ready = getattr(getattr(state, "ready", None), "value", None) == "READY"
    update = getattr(getattr(state, "config_update", None), "value", None) or "UNKNOWN"
    entities = (endpoint.config.served_entities if endpoint.config else None) or []
    versions = tuple(str(e.entity_version) for e in entities if e.entity_version is not None)
    table = None
    gateway = getattr(endpoint, "ai_gateway", None)
    itc = getattr(gateway, "inference_table_config", None) if gateway else None
    if itc is not None and itc.enabled:
        table = f"{itc.catalog_name}.{itc.schema_name}.{itc.table_name_prefix}_payload"
    return EndpointStatus(endpoint.name or spec.endpoint_name, ready, update, versions, table)


def endpoint_status(settings: Settings, spec: ModelSpec, client=None) -> EndpointStatus | None:
    """The endpoint's status, or ``None`` when it does not exist."""
    from databricks.sdk.errors import NotFound

    client = client or workspace_client(settings)
    try:
        return _status(client.serving_endpoints.get(spec.endpoint_name), settings, spec)
    except NotFound:
        return None


def describe_following(settings: Settings, spec: ModelSpec, champion: int, client=None) -> str:
    """What serves the model after its ``champion`` alias moved to ``champion``: read-only, never a change.

    Pulumi owns every serving endpoint (infra/components/serving.py declares it serving the ``champion`` alias as of
    deploy time): a promotion or rollback moves aliases only, and the endpoint serves the new champion after the next
    ``pulumi up --stack <env>``. Creating or updating the endpoint here would collide with the program (a ``create``
    of the same name fails with "already exists"; an out-of-band ``update_config`` drifts from the state). This only
    reads the endpoint (``CAN_VIEW``, which the stack grants the run-as principal) to say what serves now; a read that
    fails is reported in the text, since the alias has already moved.
    """
    from databricks.sdk.errors import DatabricksError

    follow = f"`pulumi up --stack {settings.env}` serves v{champion} on endpoint {spec.endpoint_name}"
    try:
        status = endpoint_status(settings, spec, client=client)
    except (DatabricksError, EndpointError) as exc:
        return f"endpoint {spec.endpoint_name} not readable ({type(exc).__name__}: {exc}); {follow}"
    if status is None:
        return f"endpoint {spec.endpoint_name} is not deployed yet; {follow}"
    if status.served_versions == (str(int(champion)),):
        return f"endpoint {spec.endpoint_name} already serves v{champion}"
    return (f"endpoint {spec.endpoint_name} serves v{', v'.join(status.served_versions) or ' nothing'} until "
            f"{follow}")


def query_serving_endpoint(client, name: str, **request):
    """Query endpoint ``name`` where Databricks serves it: at the workspace, or, when route-optimized, at its own
    data-plane URL with an OAuth token.

    Route-optimized endpoints are not queried at ``<host>/serving-endpoints/<name>/invocations``: "Starting
    September 22, 2025, all newly created route-optimized endpoints must be queried exclusively through the
    route-optimized URL" and "Querying route-optimized endpoints only support using OAuth tokens. Personal access
    tokens are not supported" (https://learn.microsoft.com/azure/databricks/machine-learning/model-serving/
    query-route-optimization). databricks-sdk's ``serving_endpoints_data_plane.query`` does both: it reads the
    endpoint's ``data_plane_info.query_info`` (``endpoint_url``, ``authorization_details``), exchanges the
    workspace credentials for a data-plane token and posts there.

    Args:
        client: A ``WorkspaceClient``.
        name: The endpoint name.
        **request: The query's fields (``dataframe_split``, ``dataframe_records``, ``client_request_id``...).

    Returns:
        The SDK's ``QueryEndpointResponse``.

    Raises:
        EndpointError: the endpoint is route-optimized and the client does not authenticate with OAuth.
    """
    endpoint = client.serving_endpoints.get(name)
    if not endpoint.route_optimized:
        return client.serving_endpoints.query(name, **request)
    try:
        return client.serving_endpoints_data_plane.query(name, **request)
    except ValueError as exc:  # the SDK: "OAuth tokens are not available for pat authentication"
        raise EndpointError(f"endpoint {name} is route-optimized and accepts OAuth tokens only ({exc}); "
                            "authenticate with a service principal (DATABRICKS_CLIENT_ID and "
                            "DATABRICKS_CLIENT_SECRET) or `databricks auth login`, not a personal access token"
                            ) from exc


def query_endpoint(spec: ModelSpec, rows: pd.DataFrame, client=None, client_request_id: str | None = None,
                   settings: Settings | None = None) -> list:
    """Score ``rows`` (the spec's feature columns) on the endpoint; returns the predictions."""
    import json

    from databricks.sdk.errors import DatabricksError
    from databricks.sdk.service.serving import DataframeSplitInput

    client = client or workspace_client(settings)
    split = json.loads(rows[spec.feature_names].to_json(orient="split", index=False))
    try:
        response = query_serving_endpoint(
            client, spec.endpoint_name, dataframe_split=DataframeSplitInput(columns=split["columns"],
                                                                            data=split["data"]),
            client_request_id=client_request_id)
    except DatabricksError as exc:
        raise EndpointError(f"query to endpoint {spec.endpoint_name} failed: {exc}") from exc
    return list(response.predictions or [])
