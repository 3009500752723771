"""Policy rules as plain functions of a resource's type, inputs and options: unit-testable without the CLI.

Each ``check_*`` returns the list of violation messages (empty when the resource complies). Inputs use the
engine's camelCase property names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MODEL_SERVING = "databricks:index/modelServing:ModelServing"
JOB = "databricks:index/job:Job"
PROTECTED_TYPES = (
    "databricks:index/catalog:Catalog",
    "databricks:index/schema:Schema",
    "databricks:index/sqlTable:SqlTable",
    "databricks:index/registeredModel:RegisteredModel",
    "databricks:index/volume:Volume",
)
_UC_MODEL = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
_SECRET_KEY = re.compile(r"(secret|token|password|passwd|apikey|api_key|credential|webhookurl|privatekey)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"(^dapi[0-9a-f]{16,}|^dose[0-9a-f]{16,}|^ghp_|^xox[bp]-|hooks\.slack\.com|"
                           r"-----BEGIN [A-Z ]*PRIVATE KEY-----)")


def stack_of(urn: str) -> str:
    """The stack name in a URN ``urn:pulumi:<stack>::<project>::...``."""
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


def is_prod(stack: str) -> bool:
    return stack == "prod" or stack.endswith(("-prod", "/prod", ".prod")) or stack == "production"


def check_inference_table(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every serving endpoint logs to an AI Gateway inference table (and not the legacy auto-capture)."""
    if resource_type != MODEL_SERVING:
        return []
    problems = []
    table = ((props.get("aiGateway") or {}).get("inferenceTableConfig") or {})
    if table.get("enabled") is not True:
        problems.append("serving endpoint must enable aiGateway.inferenceTableConfig (the inference table)")
    elif not (table.get("catalogName") and table.get("schemaName")):
        problems.append("the inference table needs catalogName and schemaName")
    if (props.get("config") or {}).get("autoCaptureConfig"):
        problems.append("use aiGateway.inferenceTableConfig, not the deprecated config.autoCaptureConfig")
    return problems


def check_unity_catalog_entities(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every served entity is a Unity Catalog model version (``catalog.schema.model``), never served_models."""
    if resource_type != MODEL_SERVING:
        return []
    config = props.get("config") or {}
    problems = []
    if config.get("servedModels"):
        problems.append("use config.servedEntities, not the deprecated config.servedModels")
    for entity in config.get("servedEntities") or []:
        name = entity.get("entityName") or ""
        if entity.get("externalModel") or not _UC_MODEL.match(name):
            problems.append(f"served entity {entity.get('name') or name!r} is not a Unity Catalog model "
                            f"(entityName must be catalog.schema.model, got {name!r})")
        elif not str(entity.get("entityVersion") or "").isdigit():
            problems.append(f"served entity {name!r} needs a numeric entityVersion")
    return problems


def check_prod_protected(resource_type: str, stack: str, protect: bool) -> list[str]:
    """In prod, catalogs, schemas, tables, volumes and registered models are protected from deletion."""
    if resource_type in PROTECTED_TYPES and is_prod(stack) and not protect:
        return [f"{resource_type.rsplit(':', 1)[-1]} must be protected in prod stack {stack!r}"]
    return []


def check_prod_run_as(resource_type: str, stack: str, props: Mapping[str, Any]) -> list[str]:
    """In prod, every job runs as a service principal (not as whoever deployed it)."""
    if resource_type != JOB or not is_prod(stack):
        return []
    if not (props.get("runAs") or {}).get("servicePrincipalName"):
        return [f"job {props.get('name')!r} must run as a service principal in prod (runAs.servicePrincipalName)"]
    return []


def plaintext_secrets(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Stack-config keys holding a secret in plaintext (secret-like key name or token-like value).

    Values written ``{secure: ...}`` (``pulumi config set --secret``) are encrypted and fine.
    """
    found: list[str] = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if set(value) == {"secure"}:
                continue
            found += plaintext_secrets(value, f"{path}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += plaintext_secrets(item, f"{path}[{i}].")
                elif isinstance(item, str) and _SECRET_VALUE.search(item):
                    found.append(f"{path}[{i}]")
        elif isinstance(value, str) and value and (
                _SECRET_KEY.search(key.rsplit(":", 1)[-1]) or _SECRET_VALUE.search(value)):
            found.append(path)
    return found


def check_stack_config(config: Mapping[str, Any], stack: str) -> list[str]:
    """No plaintext secret in a stack file's config."""
    return [f"Pulumi.{stack}.yaml: {key} is a plaintext secret; use `pulumi config set --secret {key.split('.')[0]}`"
            for key in plaintext_secrets(config)]
