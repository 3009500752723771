"""A model's serving endpoint: the champion version, with the AI Gateway inference table."""

from __future__ import annotations

import pulumi
import pulumi_databricks as databricks

from infra.champion import ChampionLookup
from infra.config import StackConfig, principal_kind
from workloads.specs import ModelSpec

# Serving endpoint permission levels ("CAN_VIEW, CAN_QUERY, CAN_MANAGE" for serving_endpoint_id,
# https://www.pulumi.com/registry/packages/databricks/api-docs/permissions/; what each allows:
# https://learn.microsoft.com/azure/databricks/security/auth/access-control/#serving-endpoint-acls).
CAN_MANAGE, CAN_QUERY, CAN_VIEW = "CAN_MANAGE", "CAN_QUERY", "CAN_VIEW"
# How long `pulumi up` waits for an endpoint to be created or updated (ready), then fails: the provider waits for the
# endpoint by default; these bound it, so the deploy steps' timeouts in azure-pipelines.yml (50 minutes for a
# `pulumi up`) hold ("customTimeouts ... create, update", https://www.pulumi.com/docs/iac/concepts/options/customtimeouts/).
ENDPOINT_READY_TIMEOUT = "40m"
INFERENCE_TABLE_IMMUTABLE = [f"aiGateway.inferenceTableConfig.{field}"
                             for field in ("catalogName", "schemaName", "tableNamePrefix")]


def endpoint_access(config: StackConfig) -> list[tuple[str, str]]:
    """``(principal, permission level)`` on each of the stack's endpoints, one level per principal (the highest).

    - the owner group (``grants.owner``): ``CAN_MANAGE``, as it owns everything else of the stack;
    - the endpoint consumers (``serving.consumers``): ``CAN_QUERY``;
    - the run-as principal: ``CAN_VIEW``, what a promotion needs: it moves aliases only and reads the endpoint to say
      what serves until the next ``pulumi up`` (workloads/serving/databricks.py ``describe_following``).

    The deploying identity creates the endpoint and keeps managing it through the provider; nothing else is granted.
    """
    levels: dict[str, str] = {}
    rank = {CAN_VIEW: 0, CAN_QUERY: 1, CAN_MANAGE: 2}
    wanted = [(config.grants.owner, CAN_MANAGE), *((c, CAN_QUERY) for c in config.serving.consumers)]
    if config.run_as:
        wanted.append((config.run_as.service_principal, CAN_VIEW))
    for principal, level in wanted:
        if rank[level] > rank.get(levels.get(principal, ""), -1):
            levels[principal] = level
    return sorted(levels.items())


def access_control(principal: str, level: str) -> databricks.PermissionsAccessControlArgs:
    """One access control entry, naming the principal the way its kind is named (application id, e-mail, group)."""
    kind = principal_kind(principal)
    return databricks.PermissionsAccessControlArgs(
        permission_level=level, service_principal_name=principal if kind == "service_principal" else None,
        user_name=principal if kind == "user" else None, group_name=principal if kind == "group" else None)


class ServingEndpoint(pulumi.ComponentResource):
    """``ModelServing`` serving the ``champion`` version, or nothing yet (with a warning) without a champion.

    Outputs: ``endpoint_name``, ``endpoint_url``, ``endpoint_auth``, ``served_version``, ``payload_table`` (None
    when deferred, except the payload table name, which is fixed by the spec).

    A route-optimized endpoint is queried at its own URL, ``https://<unique-id>.<shard>.serving.azuredatabricks.net/
    <workspace-id>/serving-endpoints/<name>/invocations``, with OAuth tokens only ("Querying route-optimized
    endpoints only support using OAuth tokens"; the URL is the endpoint's ``endpoint_url``, "only populated if the
    endpoint is route-optimized", https://learn.microsoft.com/azure/databricks/machine-learning/model-serving/
    query-route-optimization): ``endpoint_url`` is then
    the provider's ``endpoint_url`` output and ``endpoint_auth`` is ``oauth``; otherwise the workspace's
    ``<host>/serving-endpoints/<name>/invocations`` with any workspace token (``endpoint_auth`` ``workspace``).
    """

    def __init__(self, name: str, spec: ModelSpec, config: StackConfig, model_name: pulumi.Input[str],
                 champion: ChampionLookup, opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:model:ServingEndpoint", name, None, opts)
        self.endpoint = None
        self.payload_table = config.table(spec.payload_table)
        if not champion.found:
            pulumi.log.warn(
                f"{spec.name}: serving endpoint {spec.endpoint_name!r} deferred: {champion.reason} for "
                f"{champion.model}; run the training job, then `pulumi up` again", resource=self)
            self.endpoint_name = self.endpoint_url = self.endpoint_auth = self.served_version = None
        else:
            entity = spec.databricks_entity_name
            self.endpoint = databricks.ModelServing(
                f"{spec.name}-endpoint", name=spec.endpoint_name, route_optimized=config.serving.route_optimized,
                config=databricks.ModelServingConfigArgs(
                    served_entities=[databricks.ModelServingConfigServedEntityArgs(
                        name=entity, entity_name=model_name, entity_version=str(champion.version),
                        workload_size=config.serving.workload_size,
                        scale_to_zero_enabled=config.serving.scale_to_zero)],
                    traffic_config=databricks.ModelServingConfigTrafficConfigArgs(routes=[
                        databricks.ModelServingConfigTrafficConfigRouteArgs(
                            served_entity_name=entity, traffic_percentage=100)])),
                ai_gateway=databricks.ModelServingAiGatewayArgs(
                    inference_table_config=databricks.ModelServingAiGatewayInferenceTableConfigArgs(
                        enabled=True, catalog_name=config.catalog.name, schema_name=config.models_schema,
                        table_name_prefix=spec.payload_prefix),
                    usage_tracking_config=databricks.ModelServingAiGatewayUsageTrackingConfigArgs(enabled=True)),
                tags=[databricks.ModelServingTagArgs(key=k, value=v) for k, v in sorted(
                    {**config.tags, "model": spec.name, "environment": config.environment,
                     "champion_version": str(champion.version)}.items())],
                # Where an endpoint's inference table lands (catalog, schema, prefix) cannot change once set:
                # Databricks refuses the update, so a change replaces the endpoint (same name: the old one goes
                # first, so the endpoint is down until the new one is ready; move payload tables rarely).
                # Protected where the stack is (prod): a deploy that would delete it, e.g. after a champion lookup
                # gone wrong, fails instead ("protect ... prevents accidental deletion",
                # https://www.pulumi.com/docs/iac/concepts/options/protect/); a deliberate replace needs
                # `pulumi state unprotect` first.
                opts=pulumi.ResourceOptions(parent=self, replace_on_changes=INFERENCE_TABLE_IMMUTABLE,
                                            delete_before_replace=True, protect=config.is_protected,
                                            custom_timeouts=pulumi.CustomTimeouts(create=ENDPOINT_READY_TIMEOUT,
                                                                                  update=ENDPOINT_READY_TIMEOUT)))
            # Authoritative permissions on this endpoint (the provider resets grants made outside it).
            self.permissions = databricks.Permissions(
                f"{spec.name}-endpoint-permissions", serving_endpoint_id=self.endpoint.serving_endpoint_id,
                access_controls=[access_control(p, level) for p, level in endpoint_access(config)],
                opts=pulumi.ResourceOptions(parent=self))
            self.endpoint_name = self.endpoint.name
            if config.serving.route_optimized:
                self.endpoint_url = self.endpoint.endpoint_url
                self.endpoint_auth = "oauth"
            else:
                self.endpoint_url = pulumi.Output.concat(config.host.rstrip("/"), "/serving-endpoints/",
                                                         self.endpoint.name, "/invocations")
                self.endpoint_auth = "workspace"
            self.served_version = champion.version
        self.register_outputs({"endpoint_name": self.endpoint_name, "endpoint_url": self.endpoint_url,
                               "endpoint_auth": self.endpoint_auth,
                               "served_version": self.served_version, "payload_table": self.payload_table})
