"""Typed stack configuration: ``Pulumi.<stack>.yaml`` parsed into pydantic models before anything is declared.

Every key lives under the ``lakehouse-mlops:`` namespace and is read through :class:`pulumi.Config`, so the
program reads the same values under the engine and under mocks fed from a stack file. A bad config fails
with one :class:`StackConfigError` that names every bad key and why.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from infra.specs import known_specs, resolve_spec
from workloads.errors import MlopsError
from workloads.specs import Threshold

NAMESPACE = "lakehouse-mlops"
WEBHOOK_KEY = "alertWebhookUrl"

Granularity = Literal["5 minutes", "30 minutes", "1 hour", "1 day", "1 week", "1 month", "1 year"]
WorkloadSize = Literal["Small", "Medium", "Large"]

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
# Quartz: seconds minutes hours day-of-month month day-of-week [year]
_QUARTZ = re.compile(r"^\S+ \S+ \S+ \S+ \S+ \S+( \S+)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class StackConfigError(MlopsError):
    """The stack config is invalid; ``problems`` holds one ``key: why`` entry per bad key."""

    def __init__(self, stack: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"invalid config for stack {stack!r}: " + "; ".join(problems)
                         + f" (fix Pulumi.{stack}.yaml or `pulumi config set --stack {stack}`)")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a Unity Catalog identifier (lowercase letters, digits, underscores)")
    return value


def _quartz(value: str) -> str:
    if not _QUARTZ.match(value.strip()):
        raise ValueError(f"{value!r} is not a Quartz cron expression (6 or 7 fields, e.g. '0 0 0/6 * * ?')")
    return value.strip()


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA timezone (e.g. 'America/Detroit')") from None
    return value


class CatalogConfig(_Model):
    name: str = Field(description="Unity Catalog catalog holding the models' schemas, tables and volume.")
    create: bool = Field(True, description="Create (and own) the catalog; false reuses an existing catalog.")
    comment: str = Field("", description="Catalog comment, for people browsing Unity Catalog.")
    storage_root: str | None = Field(
        None, description="Managed storage location of a created catalog (abfss://<container>@<account>.dfs.core."
                          "windows.net/<path>, under an external location); required where the metastore has no "
                          "storage root (workspaces enabled for Unity Catalog automatically); unset: the metastore's.")

    _name = field_validator("name")(_identifier)

    @field_validator("storage_root")
    @classmethod
    def _abfss(cls, value: str | None) -> str | None:
        # "MANAGED LOCATION 'abfss://...'" (https://learn.microsoft.com/azure/databricks/catalogs/create-catalog)
        if value is not None and not re.match(r"^abfss://[^@/\s]+@[^/\s]+\.dfs\.core\.windows\.net(/\S*)?$", value):
            raise ValueError(f"{value!r} is not an ADLS Gen2 path (abfss://<container>@<account>.dfs.core.windows.net/"
                             "<path>)")
        return value


class SchemasConfig(_Model):
    models: str = Field("bakehouse_ml", description="Schema for registered models, inference and baseline tables.")
    monitoring: str | None = Field(None, description="Schema for the monitors' metric tables; defaults to `models`.")

    _models = field_validator("models")(_identifier)

    @field_validator("monitoring")
    @classmethod
    def _monitoring(cls, value: str | None) -> str | None:
        return None if value is None else _identifier(value)

    @property
    def monitoring_schema(self) -> str:
        return self.monitoring or self.models


def principal_kind(principal: str) -> Literal["service_principal", "user", "group"]:
    """How Databricks names a principal in an access control list: a service principal by application id (UUID), a
    user by e-mail address, anything else is a group name."""
    if _UUID.match(principal.lower()):
        return "service_principal"
    return "user" if "@" in principal else "group"


class ServingConfig(_Model):
    workload_size: WorkloadSize = Field("Small", description="Serving compute per served entity: Small, Medium, Large.")
    scale_to_zero: bool = Field(True, description="Let the endpoint scale to zero when idle (cheap, cold starts).")
    route_optimized: bool = Field(False, description="Route-optimized endpoint (lower latency, dedicated URL).")
    consumers: list[str] = Field(
        default_factory=list,
        description="Principals that may query the endpoints (CAN_QUERY): group names, user e-mails or service "
                    "principal application ids. The endpoint permissions are authoritative: nobody else queries.")

    @field_validator("consumers")
    @classmethod
    def _consumers(cls, value: list[str]) -> list[str]:
        blank = [v for v in value if not v.strip()]
        if blank:
            raise ValueError("consumers must be group names, user e-mails or service principal application ids, "
                             "not empty strings")
        if len(set(value)) != len(value):
            raise ValueError("consumers must not repeat")
        return [v.lower() if principal_kind(v) == "service_principal" else v for v in value]


class MonitorConfig(_Model):
    granularities: list[Granularity] = Field(["1 day"], min_length=1,
                                             description="Monitor window sizes, e.g. '1 hour', '1 day'.")
    schedule: str = Field("0 15 * * * ?", description="Quartz cron of the monitor refresh.")
    timezone: str = Field("America/Detroit", description="IANA timezone of the refresh schedule.")

    _schedule = field_validator("schedule")(_quartz)
    _timezone = field_validator("timezone")(_timezone)

    @field_validator("granularities")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("granularities must not repeat")
        return value


class ThresholdOverride(_Model, Threshold):
    """A metric bound for this environment, the same shape as a model spec's (``max`` or ``min``)."""


class WatcherConfig(_Model):
    schedule: str = Field("0 0 0/6 * * ?", description="Quartz cron of the watcher job (default every 6 hours).")
    timezone: str = Field("America/Detroit", description="IANA timezone of the watcher schedule.")
    paused: bool = Field(False, description="Deploy the watcher schedule paused.")
    granularity: Granularity = Field("1 day", description="Monitor granularity whose latest window is judged.")
    threshold_overrides: dict[str, dict[str, ThresholdOverride]] = Field(
        default_factory=dict,
        description="Per model, per metric: this environment's threshold, same direction as the spec's.")

    _schedule = field_validator("schedule")(_quartz)
    _timezone = field_validator("timezone")(_timezone)


class BatchConfig(_Model):
    schedule: str = Field("0 0 5 * * ?", description="Quartz cron of the daily batch-inference job.")
    timezone: str = Field("America/Detroit", description="IANA timezone of the batch schedule.")

    _schedule = field_validator("schedule")(_quartz)
    _timezone = field_validator("timezone")(_timezone)


class AlertsConfig(_Model):
    emails: list[str] = Field(min_length=1, description="Addresses notified on job and monitor failures.")

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _EMAIL.match(v)]
        if bad:
            raise ValueError(f"not email addresses: {bad}")
        return value


class RunAsConfig(_Model):
    service_principal: str = Field(description="Application id (UUID) of the service principal jobs run as.")

    @field_validator("service_principal")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not _UUID.match(value.lower()):
            raise ValueError(f"{value!r} is not a service principal application id (UUID)")
        return value.lower()


class GrantsConfig(_Model):
    owner: str = Field(description="Principal (group or service principal) that owns catalog, schemas and models.")
    readers: list[str] = Field(default_factory=list, description="Groups that may read tables, models and volumes.")
    writers: list[str] = Field(default_factory=list, description="Groups that may also write tables and register models.")
    cross_environment_readers: list[str] = Field(
        default_factory=list,
        description="Identities of other stacks that read this stack's registered models (the prod deploy and "
                    "preview identities, which copy and compare the dev champion): USE CATALOG, USE SCHEMA and "
                    "EXECUTE on the models, nothing else. Declared here, by the stack owning the models, because "
                    "grants are authoritative: a grant made outside the stack is revoked by its next deploy.")

    preview_identities: list[str] = Field(
        default_factory=list,
        description="This stack's read-only pull-request preview identities (application ids of the "
                    "`lakehouse-mlops-<stack>-preview` service connections): `pulumi preview` runs the program, which "
                    "reads each model's champion alias, so they get USE CATALOG, USE SCHEMA and EXECUTE on the models, "
                    "nothing else (docs/deploy.md, the identity model).")

    @field_validator("cross_environment_readers", "preview_identities")
    @classmethod
    def _readers(cls, value: list[str], info) -> list[str]:
        if len(set(value)) != len(value):
            key = "crossEnvironmentReaders" if info.field_name == "cross_environment_readers" else "previewIdentities"
            raise ValueError(f"{key} must not repeat")
        return [v.lower() if _UUID.match(v.lower()) else v for v in value]


class StackConfig(_Model):
    """Everything a stack decides: where the models run and how."""

    stack: str = Field(description="Pulumi stack name (not a config key; set by the loader).")
    host: str = Field("", description="Databricks workspace URL (from `databricks:host`).")
    environment: Literal["dev", "prod"] = Field(description="Environment the stack deploys; jobs act on it.")
    catalog: CatalogConfig = Field(description="Catalog to create or reuse.")
    schemas: SchemasConfig = Field(default_factory=SchemasConfig, description="Schemas for models and monitor outputs.")
    artifacts_volume: str = Field("artifacts", description="Managed volume (in the models schema) for the wheel.")
    models: list[str] = Field(min_length=1, description="Model specs (workloads/specs/<name>.yaml) deployed here.")
    serving: ServingConfig = Field(default_factory=ServingConfig, description="Serving endpoint size and scaling.")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="Quality monitor windows and schedule.")
    watcher: WatcherConfig = Field(default_factory=WatcherConfig, description="Watcher job schedule and thresholds.")
    batch: BatchConfig = Field(default_factory=BatchConfig, description="Daily batch-inference job schedule.")
    alerts: AlertsConfig = Field(description="Where failures and breaches are reported.")
    has_webhook: bool = Field(False, description="Whether the secret `alertWebhookUrl` is set (not a config key).")
    run_as: RunAsConfig | None = Field(None, description="Service principal the jobs run as (required in prod).")
    grants: GrantsConfig = Field(description="Ownership and group grants (least privilege).")
    protect: bool | None = Field(None, description="Protect catalog, schemas, tables, models; default: prod only.")
    warehouse_id: str | None = Field(None, description="SQL warehouse for table DDL and monitors; created if unset.")
    workspace_assets_root: str = Field("/Workspace/Shared/lakehouse-mlops",
                                       description="Workspace folder for monitor assets (dashboards).")
    wheel: str | None = Field(None, description="Path of the built workloads wheel; default: newest in dist/.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on endpoints and jobs.")

    _volume = field_validator("artifacts_volume")(_identifier)

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str]) -> list[str]:
        known = known_specs()
        unknown = [m for m in value if m not in known]
        if unknown:
            raise ValueError(f"unknown model specs {unknown}; known: {', '.join(known)}")
        if len(set(value)) != len(value):
            raise ValueError("models must not repeat")
        return value

    @field_validator("workspace_assets_root")
    @classmethod
    def _workspace_path(cls, value: str) -> str:
        if not value.startswith("/Workspace/"):
            raise ValueError(f"{value!r} must be a workspace path under /Workspace/")
        return value.rstrip("/")

    # --- derived names -------------------------------------------------------------------------------
    @property
    def is_protected(self) -> bool:
        return self.environment == "prod" if self.protect is None else self.protect

    @property
    def models_schema(self) -> str:
        return self.schemas.models

    @property
    def monitoring_schema(self) -> str:
        return self.schemas.monitoring_schema

    def table(self, name: str) -> str:
        return f"{self.catalog.name}.{self.models_schema}.{name}"

    def metric_table(self, name: str) -> str:
        return f"{self.catalog.name}.{self.monitoring_schema}.{name}"

    def registered_model(self, model: str) -> str:
        return f"{self.catalog.name}.{self.models_schema}.{model}_model"

    def thresholds_for(self, model: str) -> dict[str, Threshold]:
        """This stack's threshold overrides for ``model`` (metric -> bound, the spec's direction): what the
        deployed watcher job passes as ``--threshold`` and ``mlops watch run --stack`` applies locally."""
        return {metric: Threshold(**{bound.direction: bound.value})
                for metric, bound in sorted(self.watcher.threshold_overrides.get(model, {}).items())}

    @property
    def writer_principals(self) -> list[str]:
        """Writers plus the run-as service principal (the jobs write tables and register versions)."""
        principals = list(self.grants.writers)
        if self.run_as and self.run_as.service_principal not in principals:
            principals.append(self.run_as.service_principal)
        return principals


# Config keys and whether pulumi.Config returns them as objects (JSON) or strings.
_OBJECT_KEYS = ("catalog", "schemas", "models", "serving", "monitor", "watcher", "batch", "alerts", "runAs",
                "grants", "tags")
_STRING_KEYS = ("environment", "artifactsVolume", "protect", "warehouseId", "workspaceAssetsRoot", "wheel")


def _location(loc: tuple) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += ("." if key else "") + str(part)
    return f"{NAMESPACE}:{key}" if key else NAMESPACE


def _cross_checks(raw: dict[str, Any]) -> list[str]:
    """Checks spanning keys, made on the raw values so they add to (not hide behind) field errors."""
    problems: list[str] = []
    env = raw.get("environment")
    if env == "prod" and not raw.get("runAs"):
        problems.append(f"{NAMESPACE}:runAs: required in prod (jobs must run as a service principal)")
    if env == "prod" and raw.get("protect") in (False, "false", "False"):
        problems.append(f"{NAMESPACE}:protect: prod resources must be protected (remove the key or set true)")
    grants = raw.get("grants") if isinstance(raw.get("grants"), dict) else {}
    if env == "prod":
        both = set(grants.get("readers") or []) & set(grants.get("writers") or [])
        if both:
            problems.append(f"{NAMESPACE}:grants: {sorted(both)} are both readers and writers in prod")
    deployed = raw.get("models") if isinstance(raw.get("models"), list) else []
    watcher = raw.get("watcher") if isinstance(raw.get("watcher"), dict) else {}
    monitor = raw.get("monitor") if isinstance(raw.get("monitor"), dict) else {}
    judged = watcher.get("granularity", "1 day")
    windows = monitor.get("granularities") or ["1 day"]
    if set(windows) <= set(get_args(Granularity)) and judged in get_args(Granularity) and judged not in windows:
        problems.append(f"{NAMESPACE}:watcher.granularity: {judged!r} is not one of monitor.granularities")
    overrides = watcher.get("thresholdOverrides") or {}
    if isinstance(overrides, dict):
        for model, metrics in overrides.items():
            key = f"{NAMESPACE}:watcher.thresholdOverrides.{model}"
            if model not in deployed:
                problems.append(f"{key}: model {model!r} is not deployed by this stack")
                continue
            if model not in known_specs() or not isinstance(metrics, dict):
                continue
            spec = resolve_spec(model)
            declared = {**spec.drift_thresholds, **spec.thresholds}
            for metric, bound in metrics.items():
                if metric not in declared:
                    problems.append(f"{key}.{metric}: the spec has no threshold {metric!r} "
                                    f"(spec thresholds: {', '.join(sorted(declared))})")
                    continue
                if isinstance(bound, dict):
                    given = [d for d in ("max", "min") if bound.get(d) is not None]
                    if given != [declared[metric].direction]:
                        problems.append(f"{key}.{metric}: give exactly '{declared[metric].direction}' "
                                        f"(the spec's direction for {metric})")
    return problems


def parse_stack_config(stack: str, raw: dict[str, Any], *, host: str = "", webhook_set: bool = False,
                       webhook_is_secret: bool = True) -> StackConfig:
    """Validate raw config values (camelCase keys, as in the stack file) into a :class:`StackConfig`.

    Raises:
        StackConfigError: naming every bad key and why; nothing is declared before this returns.
    """
    problems: list[str] = []
    try:
        config = StackConfig.model_validate({**raw, "stack": stack, "host": host, "hasWebhook": webhook_set})
    except ValidationError as exc:
        config = None
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "missing":
                message = "required"
            problems.append(f"{_location(error['loc'])}: {message}")
    problems.extend(_cross_checks(raw))
    if webhook_set and not webhook_is_secret:
        problems.append(f"{NAMESPACE}:{WEBHOOK_KEY}: must be a secret "
                        f"(`pulumi config set --secret {NAMESPACE}:{WEBHOOK_KEY} <url>`)")
    if problems or config is None:
        raise StackConfigError(stack, problems)
    return config


def stack_config_from_file(stack: str) -> StackConfig:
    """A stack's config read from its ``Pulumi.<stack>.yaml`` (no Pulumi engine), validated as deploys do."""
    from infra.offline import read_stack_config

    raw = read_stack_config(stack)
    values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")}
    return parse_stack_config(stack, values, host=str(raw.get("databricks:host", "")),
                              webhook_set=f"{NAMESPACE}:{WEBHOOK_KEY}" in raw)


def load_stack_config() -> StackConfig:
    """Read the current stack's config through :class:`pulumi.Config` and validate it."""
    import pulumi
    from pulumi.runtime.config import is_config_secret

    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for key in _OBJECT_KEYS:
        try:
            value = cfg.get_object(key)
        except pulumi.ConfigTypeError:
            problems.append(f"{NAMESPACE}:{key}: must be an object/list, not a string")
            continue
        if value is not None:
            raw[key] = value
    for key in _STRING_KEYS:
        value = cfg.get(key)
        if value is not None:
            raw[key] = value
    if isinstance(raw.get("protect"), str):
        raw["protect"] = {"true": True, "false": False}.get(raw["protect"].lower(), raw["protect"])
    webhook_set = cfg.get_secret(WEBHOOK_KEY) is not None
    stack = pulumi.get_stack()
    try:
        config = parse_stack_config(
            stack, raw, host=pulumi.Config("databricks").get("host") or "", webhook_set=webhook_set,
            webhook_is_secret=is_config_secret(f"{NAMESPACE}:{WEBHOOK_KEY}"))
    except StackConfigError as exc:
        raise StackConfigError(stack, problems + exc.problems) from None
    if problems:
        raise StackConfigError(stack, problems)
    return config


def webhook_url():
    """The alert webhook URL as a secret Output, or None when unset."""
    import pulumi

    return pulumi.Config(NAMESPACE).get_secret(WEBHOOK_KEY)
