"""The shared platform of a stack: catalog, schemas, artifacts volume, grants, the uploaded wheel, alerts."""

from __future__ import annotations

import base64

import pulumi
import pulumi_databricks as databricks

from infra.artifacts import Wheel
from infra.config import StackConfig
from infra.runtime import STEP_NOTEBOOK_FORMAT, step_notebook_source

# Least privilege: readers browse and read; writers also write tables and volumes and create models.
CATALOG_READ = ["USE_CATALOG"]
SCHEMA_READ = ["USE_SCHEMA", "SELECT", "EXECUTE", "READ_VOLUME"]
SCHEMA_WRITE = [*SCHEMA_READ, "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "CREATE_FUNCTION", "WRITE_VOLUME"]


# Another stack's identity reading our registered models: to use a model one needs "USE CATALOG on the parent
# catalog, USE SCHEMA on the parent schema" and EXECUTE on the model
# (https://learn.microsoft.com/azure/databricks/machine-learning/manage-model-lifecycle/#control-access-to-models).
SCHEMA_CROSS_READ = ["USE_SCHEMA"]


def model_readers(config: StackConfig) -> list[str]:
    """Who reads the registered models and nothing else: ``grants.previewIdentities`` (this stack's pull-request
    previews run the program, which reads each champion alias) and ``grants.crossEnvironmentReaders`` (the next
    stack's identities, which copy and compare the champion), unless already granted more as readers or writers."""
    local = {*config.grants.readers, *config.writer_principals}
    wanted = [*config.grants.preview_identities, *config.grants.cross_environment_readers]
    return [p for p in dict.fromkeys(wanted) if p not in local]


def schema_grants(config: StackConfig, models_schema: bool = True) -> list[databricks.GrantsGrantArgs]:
    """Grants on a models/monitoring schema for the stack's readers, writers and run-as principal (and, on the
    models schema, the other stacks' identities that read the models)."""
    grants = [databricks.GrantsGrantArgs(principal=p, privileges=SCHEMA_READ)
              for p in config.grants.readers if p not in config.writer_principals]
    grants += [databricks.GrantsGrantArgs(principal=p, privileges=SCHEMA_WRITE) for p in config.writer_principals]
    if models_schema:
        grants += [databricks.GrantsGrantArgs(principal=p, privileges=SCHEMA_CROSS_READ) for p in model_readers(config)]
    return grants


def _full_name(catalog_name: pulumi.Input[str], schema: databricks.Schema) -> pulumi.Output[str]:
    return pulumi.Output.concat(catalog_name, ".", schema.name)


def step_notebook_path(config: StackConfig) -> str:
    """Workspace path of the stack's step notebook (one per stack; the environment keeps stacks apart)."""
    return f"/Shared/lakehouse-mlops/{config.environment}/mlops_step"


def _slug(principal: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in principal.lower()).strip("-")


class Platform(pulumi.ComponentResource):
    """Catalog (created or reused), schemas, artifacts volume, grants, the wheel upload and alert destinations.

    Outputs: ``catalog_name``, ``models_schema``, ``monitoring_schema``, ``wheel_path`` (in the volume),
    ``step_notebook_path`` (the workspace notebook running task-value steps),
    ``warehouse_id``, ``webhook_destination_id`` (None without a webhook).
    """

    def __init__(self, name: str, config: StackConfig, wheel: Wheel, webhook_url: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        protected = pulumi.ResourceOptions(parent=self, protect=config.is_protected)
        principals = sorted({*config.grants.readers, *config.writer_principals, *model_readers(config)})

        if config.catalog.create:
            self.catalog = databricks.Catalog(
                "catalog", name=config.catalog.name, comment=config.catalog.comment or None,
                storage_root=config.catalog.storage_root, owner=config.grants.owner,
                properties={"purpose": "mlops", "environment": config.environment}, opts=protected)
            catalog_name: pulumi.Input[str] = self.catalog.name
            self.catalog_grants = [databricks.Grants(
                "catalog-grants", catalog=catalog_name,
                grants=[databricks.GrantsGrantArgs(principal=p, privileges=CATALOG_READ) for p in principals],
                opts=child)]
        else:
            # A reused catalog is not ours: grant additively, never authoritatively.
            self.catalog = None
            catalog_name = config.catalog.name
            self.catalog_grants = [
                databricks.Grant(f"catalog-use-{_slug(principal)}", catalog=catalog_name, principal=principal,
                                 privileges=CATALOG_READ, opts=child)
                for principal in principals]

        self.models_schema = databricks.Schema(
            "models-schema", catalog_name=catalog_name, name=config.models_schema, owner=config.grants.owner,
            comment="Registered models, inference and baseline tables.", opts=protected)
        databricks.Grants("models-schema-grants", schema=_full_name(catalog_name, self.models_schema),
                          grants=schema_grants(config), opts=child)
        if config.monitoring_schema != config.models_schema:
            self.monitoring_schema = databricks.Schema(
                "monitoring-schema", catalog_name=catalog_name, name=config.monitoring_schema,
                owner=config.grants.owner, comment="Quality monitor profile and drift metric tables.", opts=protected)
            databricks.Grants("monitoring-schema-grants", schema=_full_name(catalog_name, self.monitoring_schema),
                              grants=schema_grants(config, models_schema=False), opts=child)
        else:
            self.monitoring_schema = self.models_schema

        self.volume = databricks.Volume(
            "artifacts", catalog_name=catalog_name, schema_name=self.models_schema.name,
            name=config.artifacts_volume, volume_type="MANAGED", owner=config.grants.owner,
            comment="Built workloads wheels the jobs install.", opts=protected)
        wheel_path = wheel.volume_path(config.catalog.name, config.models_schema, config.artifacts_volume)
        self.wheel = databricks.File(
            "wheel", source=str(wheel.path), path=wheel_path,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.volume]))
        # The notebook that runs the steps which must set task values (infra/runtime.py says why). Its content
        # names this deploy's wheel, so a new wheel rewrites it; it is a few hundred bytes in the state.
        self.step_notebook = databricks.Notebook(
            "step-notebook", path=step_notebook_path(config), language="PYTHON", format=STEP_NOTEBOOK_FORMAT,
            content_base64=self.wheel.path.apply(
                lambda path: base64.b64encode(step_notebook_source(path).encode()).decode()),
            opts=child)
        if config.run_as:
            # The jobs run as this principal; it must be able to run the notebook (an authoritative ACL on our
            # own notebook only).
            databricks.Permissions(
                "step-notebook-permissions", notebook_path=self.step_notebook.path,
                access_controls=[databricks.PermissionsAccessControlArgs(
                    service_principal_name=config.run_as.service_principal, permission_level="CAN_RUN")],
                opts=child)

        if config.warehouse_id:
            self.warehouse = None
            warehouse_id: pulumi.Input[str] = config.warehouse_id
        else:
            self.warehouse = databricks.SqlEndpoint(
                "warehouse", name=f"mlops-{config.environment}", cluster_size="2X-Small",
                enable_serverless_compute=True, warehouse_type="PRO", auto_stop_mins=10, max_num_clusters=1,
                opts=child)
            warehouse_id = self.warehouse.id

        self.webhook = None
        if webhook_url is not None:
            self.webhook = databricks.NotificationDestination(
                "alerts-webhook", display_name=f"lakehouse-mlops {config.environment} alerts",
                config=databricks.NotificationDestinationConfigArgs(
                    generic_webhook=databricks.NotificationDestinationConfigGenericWebhookArgs(url=webhook_url)),
                opts=child)

        self.catalog_name = pulumi.Output.from_input(catalog_name)
        self.wheel_path = self.wheel.path
        self.step_notebook_path = self.step_notebook.path
        self.warehouse_id = pulumi.Output.from_input(warehouse_id)
        self.webhook_destination_id = self.webhook.id if self.webhook else None
        self.register_outputs({
            "catalog_name": self.catalog_name,
            "models_schema": self.models_schema.name,
            "monitoring_schema": self.monitoring_schema.name,
            "wheel_path": self.wheel_path,
            "step_notebook_path": self.step_notebook_path,
            "warehouse_id": self.warehouse_id,
            "webhook_destination_id": self.webhook_destination_id,
        })
