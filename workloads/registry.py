"""Registry helpers: register versions, move aliases, load by alias or version, read metadata.

Aliases: ``champion`` (served), ``challenger`` (candidate), ``previous`` (last champion, for rollback).
Registered model names are Unity Catalog names ``<catalog>.<schema>.<model>_model`` on both runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workloads.errors import RegistryError
from workloads.settings import Settings
from workloads.specs import ModelSpec

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    run_id: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    source: str
    creation_timestamp: int


def _client(settings: Settings):
    """A client bound to the settings' stores.

    It leaves MLflow's process-wide URIs alone: a serving endpoint's alias poller runs in a background
    thread, and must not re-point the fluent API the main thread is training or logging with.
    """
    from mlflow import MlflowClient

    if settings.backend == "local":
        settings.home.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def model_name(settings: Settings, spec: ModelSpec | str) -> str:
    model = spec if isinstance(spec, str) else spec.name
    return settings.registered_model(model)


def model_uri(settings: Settings, spec: ModelSpec | str, alias: str | None = None, version: int | None = None) -> str:
    """``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""
    name = model_name(settings, spec)
    if version is not None:
        return f"models:/{name}/{int(version)}"
    return f"models:/{name}@{alias or CHAMPION}"


def register(settings: Settings, spec: ModelSpec | str, source_uri: str, tags: dict[str, str] | None = None) -> int:
    """Register a logged model (``runs:/...`` or ``models:/m-...``) as a new version; returns the version."""
    import mlflow

    from workloads.ports.tracking import configure_tracking

    configure_tracking(settings)  # register_model is fluent: it uses the process-wide registry URI
    name = model_name(settings, spec)
    mv = mlflow.register_model(source_uri, name, tags=tags or None)
    return int(mv.version)


def _info(mv) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id,
        aliases=tuple(getattr(mv, "aliases", []) or []),
        tags=dict(mv.tags or {}),
        source=mv.source,
        creation_timestamp=int(mv.creation_timestamp or 0),
    )


def get_alias(settings: Settings, spec: ModelSpec | str, alias: str) -> VersionInfo | None:
    """The version holding ``alias``, or ``None`` when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        return _info(client.get_model_version_by_alias(model_name(settings, spec), alias))
    except MlflowException:
        return None


def require_alias(settings: Settings, spec: ModelSpec | str, alias: str = CHAMPION) -> VersionInfo:
    info = get_alias(settings, spec, alias)
    if info is None:
        raise RegistryError(
            f"model {model_name(settings, spec)} has no '{alias}' version; train one first (mlops train --model "
            f"{spec if isinstance(spec, str) else spec.name})"
        )
    return info


def set_alias(settings: Settings, spec: ModelSpec | str, alias: str, version: int) -> None:
    client = _client(settings)
    name = model_name(settings, spec)
    try:
        client.set_registered_model_alias(name, alias, str(int(version)))
    except Exception as exc:  # MlflowException: unknown model/version
        raise RegistryError(f"cannot set alias '{alias}' of {name} to version {version}: {exc}") from exc


def delete_alias(settings: Settings, spec: ModelSpec | str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        client.delete_registered_model_alias(model_name(settings, spec), alias)
    except MlflowException:
        pass  # already absent: deleting an alias is idempotent


def version_info(settings: Settings, spec: ModelSpec | str, version: int) -> VersionInfo:
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    name = model_name(settings, spec)
    try:
        return _info(client.get_model_version(name, str(int(version))))
    except MlflowException as exc:
        raise RegistryError(f"model {name} has no version {version}") from exc


def list_versions(settings: Settings, spec: ModelSpec | str) -> list[VersionInfo]:
    """Every version of the model, oldest first, with its tags and aliases.

    Unity Catalog's search answers versions without tags or aliases (MLflow's ``ModelVersionSearch`` raises on
    both), so there each version found is read once more, as Databricks' Get Model Version does
    (https://docs.databricks.com/api/uc-registered-models/v1/get-model-version).
    """
    client = _client(settings)
    name = model_name(settings, spec)
    versions = client.search_model_versions(f"name = '{name}'")
    if settings.registry_uri.startswith("databricks-uc"):
        versions = [client.get_model_version(name, str(v.version)) for v in versions]
    return sorted((_info(v) for v in versions), key=lambda v: v.version)


def set_version_tags(settings: Settings, spec: ModelSpec | str, version: int, tags: dict[str, Any]) -> None:
    client = _client(settings)
    name = model_name(settings, spec)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(int(version)), key, str(value))


def load_model(settings: Settings, spec: ModelSpec | str, alias: str | None = CHAMPION, version: int | None = None):
    """Load a pyfunc model by alias (default ``champion``) or explicit version."""
    import mlflow

    info = require_alias(settings, spec, alias or CHAMPION) if version is None else version_info(settings, spec, version)
    # Resolve through this settings' registry, not the process-wide one, then load from the artifacts.
    location = _client(settings).get_model_version_download_uri(info.name, str(info.version))
    return mlflow.pyfunc.load_model(location)
