"""Where a model stands, per environment: versions and aliases, the endpoint, the last watcher verdict, the last
promotion and the last alert.

The same code reads both runtimes: the registry through MLflow (local store or Unity Catalog), the endpoint
through databricks-sdk's ``serving_endpoints.get`` (on Databricks the workspace's endpoint; locally the running
``mlops serve``, which answers the same REST path), the verdicts and promotions through the tables port.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workloads import registry
from workloads.settings import Settings
from workloads.specs import ModelSpec


@dataclass
class EndpointState:
    url: str | None
    state: str  # up | down | not deployed | not running
    served_versions: tuple[str, ...] = ()
    detail: str = ""


@dataclass
class ModelStatus:
    model: str
    env: str
    registered_model: str
    versions: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    endpoint: EndpointState | None = None
    verdict: dict | None = None
    promotion: dict | None = None
    alert: dict | None = None
    alert_note: str = ""  # why there is no alert to show, when that is not simply "none yet"
    problems: list[str] = field(default_factory=list)


def endpoint_state(settings: Settings, spec: ModelSpec, client=None) -> EndpointState:
    """The endpoint's URL, whether it is up, and the versions it serves."""
    from databricks.sdk.errors import DatabricksError

    from workloads.errors import MlopsError
    from workloads.serving.databricks import endpoint_status, workspace_client

    url = None
    if settings.backend == "databricks" and client is None:
        try:
            client = workspace_client(settings)  # built here, so its host names the endpoint's URL
        except MlopsError as exc:  # no Databricks auth: the endpoint is unknown, the rest of the status stands
            return EndpointState(None, "unknown", detail=str(exc))
    elif client is None:
        from databricks.sdk import WorkspaceClient

        from workloads.serving.running import running_url

        url = running_url(settings, spec.name)
        if url is None:
            return EndpointState(None, "not running", detail="start it with `mlops serve -m " + spec.name + "`")
        # A local endpoint answers at once or not at all: no minutes of the SDK's default retries on a dead one.
        from databricks.sdk.core import Config

        client = WorkspaceClient(config=Config(host=url, token="local", auth_type="pat", retry_timeout_seconds=5,
                                               http_timeout_seconds=10))
    try:
        status = endpoint_status(settings, spec, client=client)
    except (DatabricksError, OSError, ValueError) as exc:
        return EndpointState(url, "down", detail=f"{type(exc).__name__}: {exc}")
    if status is None:
        return EndpointState(url, "not deployed", detail="no serving endpoint " + spec.endpoint_name)
    host = url or getattr(getattr(client, "config", None), "host", None) or ""
    url = f"{host.rstrip('/')}/serving-endpoints/{spec.endpoint_name}/invocations" if host else None
    return EndpointState(url, "up" if status.ready else "down", status.served_versions, status.config_update)


def model_status(settings: Settings, spec: ModelSpec, client=None) -> ModelStatus:
    """Everything ``mlops status`` shows for one model in ``settings``' environment; a part that cannot be read
    is named in ``problems`` instead of failing the whole status."""
    from workloads.alerts.outbox import read_outbox
    from workloads.promotion import last_change
    from workloads.watcher.steps import last_verdict

    status = ModelStatus(spec.name, settings.env, settings.registered_model(spec.name))
    try:
        aliases: dict[int, list[str]] = {}
        for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS):
            info = registry.get_alias(settings, spec, alias)
            if info is not None:
                aliases.setdefault(info.version, []).append(alias)
        status.versions = [(v.version, tuple(aliases.get(v.version, ())))
                           for v in registry.list_versions(settings, spec)]
    except Exception as exc:  # noqa: BLE001 - one unreadable part must not hide the rest
        status.problems.append(f"registry: {type(exc).__name__}: {exc}")
    status.endpoint = endpoint_state(settings, spec, client)
    for part, read in (("verdict", lambda: last_verdict(settings, spec)),
                       ("promotion", lambda: last_change(settings, spec.name))):
        try:
            setattr(status, part, read())
        except Exception as exc:  # noqa: BLE001
            status.problems.append(f"{part}: {type(exc).__name__}: {exc}")
    alerts = [a for a in read_outbox(settings.home, model=spec.name) if a.env == settings.env]
    if alerts:
        status.alert = alerts[-1].model_dump(mode="json")
    else:
        status.alert_note = _outbox_note(settings)
    return status


def _outbox_note(settings: Settings) -> str:
    """Why no alert is shown when alerts are not kept in this home's outbox (off by default on Databricks)."""
    from workloads.alerts.outbox import OutboxDestination, outbox_path
    from workloads.alerts.send import destinations_from_settings
    from workloads.errors import MlopsError

    try:
        kept = any(isinstance(d, OutboxDestination) for d in destinations_from_settings(settings))
    except MlopsError as exc:
        return f"none readable: {exc}"
    if kept:
        return ""
    return (f"not kept here: the outbox is off, alerts go to the configured email, webhooks or SNS "
            f"(MLOPS_ALERT_OUTBOX=true also keeps them in {outbox_path(settings.home)})")
