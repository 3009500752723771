"""Everything one model spec gets in a stack, grouped under one parent."""

from __future__ import annotations

import pulumi

from infra.champion import ChampionLookup
from infra.components.jobs import ModelJobs
from infra.components.monitor import InferenceMonitor
from infra.components.platform import Platform
from infra.components.registry import ModelRegistry
from infra.components.serving import ServingEndpoint
from infra.components.tables import InferenceTables
from infra.config import StackConfig
from workloads.specs import ModelSpec


class ModelDeployment(pulumi.ComponentResource):
    """Registered model, inference/baseline tables, endpoint (follows the champion), monitor and jobs.

    ``outputs`` is the model's entry in the stack outputs.
    """

    def __init__(self, name: str, spec: ModelSpec, config: StackConfig, platform: Platform,
                 champion: ChampionLookup, opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:model:ModelDeployment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.registry = ModelRegistry(f"{name}-registry", spec, config, platform.models_schema, opts=child)
        self.tables = InferenceTables(f"{name}-tables", spec, config, platform.models_schema, platform.warehouse_id,
                                      opts=child)
        self.serving = ServingEndpoint(f"{name}-serving", spec, config, self.registry.full_name, champion, opts=child)
        self.monitor = InferenceMonitor(f"{name}-monitor", spec, config, self.tables.processed_table,
                                        self.tables.baseline_table, platform.monitoring_schema,
                                        platform.warehouse_id, opts=child)
        self.jobs = ModelJobs(f"{name}-jobs", spec, config, platform.wheel_path, platform.step_notebook_path,
                              platform.webhook_destination_id, opts=child)
        self.outputs = {
            "registered_model": self.registry.full_name,
            "endpoint_name": self.serving.endpoint_name,
            "endpoint_url": self.serving.endpoint_url,
            "endpoint_auth": self.serving.endpoint_auth,
            "served_version": self.serving.served_version,
            "payload_table": self.serving.payload_table,
            "processed_table": self.tables.processed_table,
            "baseline_table": self.tables.baseline_table,
            "profile_metrics_table": self.monitor.profile_metrics_table,
            "drift_metrics_table": self.monitor.drift_metrics_table,
            "monitor_dashboard_id": self.monitor.dashboard_id,
            "watcher_job_id": self.jobs.watcher_job_id,
            "training_job_id": self.jobs.training_job_id,
            "batch_job_id": self.jobs.batch_job_id,
        }
        self.register_outputs(self.outputs)
