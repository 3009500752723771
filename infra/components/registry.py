"""A model spec's Unity Catalog registered model and who may use it."""

from __future__ import annotations

import pulumi
import pulumi_databricks as databricks

from infra.components.platform import model_readers
from infra.config import StackConfig
from workloads.specs import ModelSpec

MODEL_READ = ["EXECUTE"]
MODEL_WRITE = ["EXECUTE", "APPLY_TAG"]
# The run-as principal registers versions and moves the champion/challenger/previous aliases.
MODEL_RUN_AS = ["EXECUTE", "APPLY_TAG", "MANAGE"]


class ModelRegistry(pulumi.ComponentResource):
    """``<catalog>.<schema>.<model>_model`` plus grants. Aliases belong to the watcher, not to Pulumi.

    Outputs: ``full_name``.
    """

    def __init__(self, name: str, spec: ModelSpec, config: StackConfig, schema: databricks.Schema,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:model:ModelRegistry", name, None, opts)
        self.model = databricks.RegisteredModel(
            f"{spec.name}-model", catalog_name=schema.catalog_name, schema_name=schema.name, name=spec.registered_model_suffix,
            comment=spec.description or None, owner=config.grants.owner,
            opts=pulumi.ResourceOptions(parent=self, protect=config.is_protected, ignore_changes=["aliases"]))
        self.full_name = pulumi.Output.concat(self.model.catalog_name, ".", self.model.schema_name, ".",
                                              self.model.name)
        run_as = config.run_as.service_principal if config.run_as else None
        grants = [databricks.GrantsGrantArgs(principal=p, privileges=MODEL_READ)
                  for p in config.grants.readers if p not in config.writer_principals]
        grants += [databricks.GrantsGrantArgs(principal=p, privileges=MODEL_RUN_AS if p == run_as else MODEL_WRITE)
                   for p in config.writer_principals]
        grants += [databricks.GrantsGrantArgs(principal=p, privileges=MODEL_READ) for p in model_readers(config)]
        self.grants = databricks.Grants(f"{spec.name}-model-grants", model=self.full_name, grants=grants,
                                        opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"full_name": self.full_name})
