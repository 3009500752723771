"""MLflow logging shared by trainers: datasets with their Delta versions, data lineage, the model."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import sklearn

from workloads.training.context import TrainingContext

# Pinned explicitly: inferring requirements at log_model costs seconds per call.
PIP_REQUIREMENTS = [
    f"scikit-learn=={sklearn.__version__}",
    f"pandas=={pd.__version__}",
    f"numpy=={np.__version__}",
    "cloudpickle",
]


def dataset(ctx: TrainingContext, frame: pd.DataFrame, name: str):
    """An MLflow dataset for ``frame`` whose source is the Delta table and version it was read from."""
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    table = ctx.source_table()
    source = DeltaDatasetSource(delta_table_name=table, delta_table_version=ctx.data_versions.get(table))
    columns = [*ctx.spec.feature_names, ctx.spec.label.name]
    return mlflow.data.from_pandas(frame[columns], source=source, targets=ctx.spec.label.name, name=name)


def log_lineage(ctx: TrainingContext) -> None:
    """Training and evaluation datasets as run inputs; every input table's Delta version as a param."""
    mlflow.log_input(dataset(ctx, ctx.train, f"{ctx.spec.name}_train"), context="training")
    mlflow.log_input(dataset(ctx, ctx.holdout, f"{ctx.spec.name}_holdout"), context="evaluation")
    mlflow.log_params({f"data_version.{table}": version for table, version in ctx.data_versions.items()})
    mlflow.log_params({"train_rows": len(ctx.train), "holdout_rows": len(ctx.holdout)})


def log_model(ctx: TrainingContext, pipeline) -> str:
    """Log the fitted pipeline with signature and input example; returns the model URI."""
    from mlflow.models import infer_signature

    example = ctx.X_holdout.head(5)
    signature = infer_signature(example, pipeline.predict(example))
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        serialization_format="cloudpickle",
        pip_requirements=PIP_REQUIREMENTS,
        signature=signature,
        input_example=example,
    )
    return info.model_uri
