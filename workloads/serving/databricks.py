"""The Databricks path: a Model Serving endpoint for the champion, with the AI Gateway inference table.

Create the endpoint (or point an existing one at a new version), enable the inference table
``<catalog>.<schema>.<prefix>_payload``, wait until the config update is done, query it, and report its
status. The retraining step calls :func:`deploy_endpoint` after a promotion. Everything goes through
``databricks-sdk`` ``serving_endpoints``; the client is injectable (tests point it at a fake REST API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from workloads import registry
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


def _inference_table_config(settings: Settings, spec: ModelSpec):
    from databricks.sdk.service.serving import AiGatewayInferenceTableConfig

    return AiGatewayInferenceTableConfig(catalog_name=settings.catalog, schema_name=settings.schema_name,
                                         table_name_prefix=spec.payload_prefix, enabled=True)


def _served_entities(settings: Settings, spec: ModelSpec, version: int, workload_size: str, scale_to_zero: bool):
    from databricks.sdk.service.serving import Route, ServedEntityInput, TrafficConfig

    name = spec.databricks_entity_name
    entities = [ServedEntityInput(name=name, entity_name=settings.registered_model(spec.name),
                                  entity_version=str(int(version)), workload_size=workload_size,
                                  scale_to_zero_enabled=scale_to_zero)]
    traffic = TrafficConfig(routes=[Route(served_entity_name=name, traffic_percentage=100)])
    return entities, traffic


def endpoint_status(settings: Settings, spec: ModelSpec, client=None) -> EndpointStatus | None:
    """The endpoint's status, or ``None`` when it does not exist."""
    from databricks.sdk.errors import NotFound

    client = client or workspace_client(settings)
    try:
        return _status(client.serving_endpoints.get(spec.endpoint_name), settings, spec)
    except NotFound:
        return None


def deploy_endpoint(settings: Settings, spec: ModelSpec, version: int | None = None, client=None,
                    wait: bool = True, timeout: timedelta = timedelta(minutes=30), workload_size: str | None = None,
                    scale_to_zero: bool | None = None) -> EndpointStatus:
    """Create or update the model's endpoint to serve ``version`` (default: the champion).

    The AI Gateway inference table is enabled on create, and on update when it is off or points
    elsewhere. An update already in progress is waited for first (Databricks rejects overlapping ones).
    On update, the served entity keeps its workload size and scale-to-zero unless given here (the stack
    config declared them); on create they default to ``Small`` and scale to zero.

    Raises:
        EndpointError: the API refused the change, or the update failed or timed out.
        RegistryError: no version given and the model has no champion.
    """
    from databricks.sdk.errors import DatabricksError, NotFound, OperationFailed
    from databricks.sdk.service.serving import AiGatewayConfig, EndpointCoreConfigInput

    if version is None:
        version = registry.require_alias(settings, spec, registry.CHAMPION).version
    client = client or workspace_client(settings)
    api = client.serving_endpoints
    name = spec.endpoint_name
    table_config = _inference_table_config(settings, spec)
    try:
        try:
            current = api.get(name)
        except NotFound:
            current = None
        existing = ((current.config.served_entities if current and current.config else None) or [None])[0]
        if workload_size is None:
            workload_size = getattr(existing, "workload_size", None) or "Small"
        if scale_to_zero is None:
            kept = getattr(existing, "scale_to_zero_enabled", None)
            scale_to_zero = True if kept is None else bool(kept)
        entities, traffic = _served_entities(settings, spec, version, workload_size, scale_to_zero)
        if current is None:
            api.create(name, config=EndpointCoreConfigInput(name=name, served_entities=entities,
                                                            traffic_config=traffic),
                       ai_gateway=AiGatewayConfig(inference_table_config=table_config))
        else:
            status = _status(current, settings, spec)
            if status.config_update == "IN_PROGRESS":
                api.wait_get_serving_endpoint_not_updating(name, timeout=timeout)
            if status.served_versions != (str(int(version)),):
                api.update_config(name, served_entities=entities, traffic_config=traffic)
            wanted = f"{settings.table(spec.payload_table)}"
            if status.inference_table != wanted:
                gateway = current.ai_gateway
                api.put_ai_gateway(name, inference_table_config=table_config,
                                   guardrails=getattr(gateway, "guardrails", None),
                                   rate_limits=getattr(gateway, "rate_limits", None),
                                   usage_tracking_config=getattr(gateway, "usage_tracking_config", None),
                                   fallback_config=getattr(gateway, "fallback_config", None))
        if wait:
            return _status(api.wait_get_serving_endpoint_not_updating(name, timeout=timeout), settings, spec)
        return _status(api.get(name), settings, spec)
    except OperationFailed as exc:
        raise EndpointError(f"endpoint {name} failed to serve version {version}: {exc}") from exc
    except TimeoutError as exc:
        raise EndpointError(f"endpoint {name} did not finish updating within {timeout}: {exc}") from exc
    except DatabricksError as exc:
        raise EndpointError(f"Databricks refused to deploy endpoint {name} (version {version}): {exc}") from exc


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
