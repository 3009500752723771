"""A model's quality monitor: an InferenceLog profile of the processed table against the baseline."""

from __future__ import annotations

import pulumi
import pulumi_databricks as databricks

from infra.config import StackConfig
from workloads.specs import MODEL_ID_COLUMN, TIMESTAMP_COLUMN, ModelSpec

PROBLEM_TYPES = {"regression": "PROBLEM_TYPE_REGRESSION", "forecasting": "PROBLEM_TYPE_REGRESSION",
                 "classification": "PROBLEM_TYPE_CLASSIFICATION"}


MONITOR_IMMUTABLE = ["tableName", "assetsDir", "warehouseId"]


class InferenceMonitor(pulumi.ComponentResource):
    """``QualityMonitor`` with ``inference_log`` on ``<model>_inference``, writing to the monitoring schema.

    Outputs: ``dashboard_id``, ``profile_metrics_table``, ``drift_metrics_table``.
    """

    def __init__(self, name: str, spec: ModelSpec, config: StackConfig, processed_table: pulumi.Input[str],
                 baseline_table: pulumi.Input[str], output_schema: databricks.Schema,
                 warehouse_id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("lakehouse-mlops:model:InferenceMonitor", name, None, opts)
        self.monitor = databricks.QualityMonitor(
            f"{spec.name}-monitor", table_name=processed_table, baseline_table_name=baseline_table,
            output_schema_name=pulumi.Output.concat(output_schema.catalog_name, ".", output_schema.name),
            assets_dir=f"{config.workspace_assets_root}/{config.environment}/monitors/{spec.name}",
            inference_log=databricks.QualityMonitorInferenceLogArgs(
                problem_type=PROBLEM_TYPES[spec.problem_type], prediction_col=spec.prediction.name,
                label_col=spec.label.name, model_id_col=MODEL_ID_COLUMN, timestamp_col=TIMESTAMP_COLUMN,
                granularities=list(config.monitor.granularities)),
            slicing_exprs=list(spec.slices) or None,
            schedule=databricks.QualityMonitorScheduleArgs(
                quartz_cron_expression=config.monitor.schedule, timezone_id=config.monitor.timezone),
            notifications=databricks.QualityMonitorNotificationsArgs(
                on_failure=databricks.QualityMonitorNotificationsOnFailureArgs(
                    email_addresses=list(config.alerts.emails))),
            warehouse_id=warehouse_id,
            # A monitor's table, assets directory and warehouse cannot be updated in place (the provider fails
            # the update): changing one replaces the monitor. A table holds one monitor, so the old one goes
            # first; its metric tables stay and the new monitor's first refresh rewrites them.
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=MONITOR_IMMUTABLE,
                                        delete_before_replace=True))
        self.dashboard_id = self.monitor.dashboard_id
        self.profile_metrics_table = config.metric_table(spec.profile_metrics_table)
        self.drift_metrics_table = config.metric_table(spec.drift_metrics_table)
        self.register_outputs({"dashboard_id": self.dashboard_id,
                               "profile_metrics_table": self.profile_metrics_table,
                               "drift_metrics_table": self.drift_metrics_table})
