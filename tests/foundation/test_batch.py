import pandas as pd
import pytest
from mlflow import MlflowClient

from workloads.batch import LINEAGE_COLUMNS, score_batch
from workloads.errors import DataValidationError, RegistryError
from workloads.ports.tables import get_tables
from workloads.specs import load_spec


def test_batch_scores_with_the_champion_and_writes_lineage(trained):
    settings, results = trained
    spec = load_spec("bakehouse_decorators")
    result = score_batch(settings, spec)
    out = get_tables(settings).read(result.table)
    out = out[out["score_batch_id"] == result.score_batch_id]
    assert result.table == "mlops_dev.bakehouse_ml.bakehouse_decorators_predictions"
    assert len(out) == result.rows > 500
    assert set(LINEAGE_COLUMNS) <= set(out.columns)
    assert set(out["model_version"]) == {str(results[spec.name].version)}
    assert set(out["run_id"]) == {results[spec.name].run_id}
    assert set(out["model_name"]) == {settings.registered_model(spec.name)}
    assert isinstance(out["scored_at"].dtype, pd.DatetimeTZDtype)
    assert out["prediction"].notna().all()
    # Labels were present: batch metrics logged, and the scored data as an inference input.
    run = MlflowClient(settings.tracking_uri).get_run(result.run_id)
    assert {"batch_rmse", "batch_mae", "batch_r2"} <= set(run.data.metrics)
    assert run.data.metrics["batch_rmse"] < 5
    contexts = {t.value for i in run.inputs.dataset_inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert contexts == {"inference"}


def test_batch_appends_a_new_batch_each_run(trained):
    settings, _ = trained
    spec = load_spec("bakehouse_autolog")
    first = score_batch(settings, spec)
    second = score_batch(settings, spec)
    out = get_tables(settings).read(first.table)
    assert {first.score_batch_id, second.score_batch_id} <= set(out["score_batch_id"])


def test_batch_without_labels_logs_no_metrics_and_bad_frames_fail_clearly(trained):
    settings, _ = trained
    spec = load_spec("bakehouse_autolog")
    from workloads.data.source import read_examples

    frame = read_examples(settings, spec).drop(columns=["quantity"]).head(20)
    result = score_batch(settings, spec, frame=frame)
    assert result.metrics == {} and result.rows == 20
    with pytest.raises(DataValidationError, match="missing feature columns \\['product'\\]"):
        score_batch(settings, spec, frame=frame.drop(columns=["product"]))


def test_batch_without_champion_is_a_clear_error(settings):
    with pytest.raises(RegistryError, match="has no 'champion' version; train one first"):
        score_batch(settings, load_spec("bakehouse_autolog"))
