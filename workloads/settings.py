"""Runtime settings: which backend the ports use, where the local home is, which catalog/schema.

Resolved from (highest first) explicit arguments, environment variables, defaults:

- ``MLOPS_HOME`` (``--home``): local home, default ``./.mlops``
- ``MLOPS_BACKEND``: ``local`` (embedded default) or ``databricks``
- ``MLOPS_ENV``: ``dev`` or ``prod`` (selects the catalog when not given)
- ``MLOPS_CATALOG`` / ``MLOPS_SCHEMA``: Unity Catalog names for the models' tables and registry
- ``MLOPS_MONITORING_SCHEMA`` (``--monitoring-schema``): schema of the monitors' metric tables (the stack's
  ``schemas.monitoring``), default the models' schema
- ``MLOPS_RETRAIN_MAX_ROWS``: most labelled traffic rows a retrain reads (the newest are kept), default
  ``DEFAULT_RETRAIN_MAX_ROWS``; bounds the training sample that reaches one process (the job driver on Databricks)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from workloads.errors import SettingsError

DEFAULT_SCHEMA = "bakehouse_ml"
DEFAULT_RETRAIN_MAX_ROWS = 200_000
SAMPLES_CATALOG = "samples"
SAMPLES_SCHEMA = "bakehouse"


def default_catalog(env: str) -> str:
    return f"mlops_{env}"


class Settings(BaseModel):
    """Where and how the workloads run."""

    backend: Literal["local", "databricks"] = Field("local", description="Which implementation the ports use.")
    home: Path = Field(Path(".mlops"), description="Local home: warehouse, MLflow store, run state.")
    env: Literal["dev", "prod"] = Field("dev", description="Deployment environment the step acts on.")
    catalog: str = Field("", description="Unity Catalog catalog for models and tables.")
    schema_name: str = Field(DEFAULT_SCHEMA, description="Unity Catalog schema for models and tables.")
    monitoring_schema: str | None = Field(None, description="Schema of the monitors' metric tables; None: the "
                                                            "models' schema.")
    samples_catalog: str = Field(SAMPLES_CATALOG, description="Catalog holding the bakehouse source tables.")
    samples_schema: str = Field(SAMPLES_SCHEMA, description="Schema holding the bakehouse source tables.")
    retrain_max_rows: int = Field(DEFAULT_RETRAIN_MAX_ROWS, gt=0, description="Most labelled traffic rows a retrain "
                                  "reads, the newest kept (MLOPS_RETRAIN_MAX_ROWS).")

    def model_post_init(self, context, /) -> None:
        if not self.catalog:
            self.catalog = default_catalog(self.env)

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def tracking_uri(self) -> str:
        if self.backend == "databricks":
            return "databricks"
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def registry_uri(self) -> str:
        if self.backend == "databricks":
            return "databricks-uc"
        return self.tracking_uri

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    def table(self, name: str) -> str:
        """Three-level name of a table in the models' schema."""
        return f"{self.catalog}.{self.schema_name}.{name}"

    def metrics_table(self, name: str) -> str:
        """Three-level name of a monitor metric table (``<table>_profile_metrics`` / ``_drift_metrics``), in the
        monitoring schema, where Lakehouse Monitoring writes them."""
        return f"{self.catalog}.{self.monitoring_schema or self.schema_name}.{name}"

    def source_table(self, name: str) -> str:
        """Three-level name of a bakehouse source table."""
        return f"{self.samples_catalog}.{self.samples_schema}.{name}"

    def registered_model(self, model: str) -> str:
        """Unity Catalog name of a spec's registered model."""
        return f"{self.catalog}.{self.schema_name}.{model}_model"

    def for_env(self, env: str) -> Settings:
        """The same settings acting on another environment's catalog."""
        data = self.model_dump()
        data.update(env=env, catalog=os.environ.get(f"MLOPS_CATALOG_{env.upper()}", default_catalog(env)))
        return Settings(**data)


def load_settings(home: str | Path | None = None, backend: str | None = None, env: str | None = None,
                  catalog: str | None = None, schema: str | None = None,
                  monitoring_schema: str | None = None) -> Settings:
    """Settings from explicit values, then ``MLOPS_*`` environment variables, then defaults."""
    home_value = Path(home or os.environ.get("MLOPS_HOME") or ".mlops").expanduser()
    if home_value.exists() and not home_value.is_dir():
        raise SettingsError(f"home {home_value} exists and is not a directory; pass --home DIR or set MLOPS_HOME")
    backend_value = backend or os.environ.get("MLOPS_BACKEND") or "local"
    if backend_value not in ("local", "databricks"):
        raise SettingsError(f"backend must be 'local' or 'databricks', got {backend_value!r} (MLOPS_BACKEND)")
    env_value = env or os.environ.get("MLOPS_ENV") or "dev"
    if env_value not in ("dev", "prod"):
        raise SettingsError(f"env must be 'dev' or 'prod', got {env_value!r}")
    max_rows = os.environ.get("MLOPS_RETRAIN_MAX_ROWS") or str(DEFAULT_RETRAIN_MAX_ROWS)
    if not max_rows.strip().isdigit() or int(max_rows) < 1:
        raise SettingsError(f"MLOPS_RETRAIN_MAX_ROWS must be a positive whole number of rows, got {max_rows!r}")
    catalog_value = catalog or os.environ.get("MLOPS_CATALOG") or os.environ.get(f"MLOPS_CATALOG_{env_value.upper()}") or ""
    return Settings(
        backend=backend_value,
        home=home_value,
        env=env_value,
        catalog=catalog_value,
        schema_name=schema or os.environ.get("MLOPS_SCHEMA") or DEFAULT_SCHEMA,
        monitoring_schema=monitoring_schema or os.environ.get("MLOPS_MONITORING_SCHEMA") or None,
        retrain_max_rows=int(max_rows),
    )
