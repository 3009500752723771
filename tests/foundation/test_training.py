"""Each training variant logs what it claims, checked through MlflowClient."""

import json

import pytest
from mlflow import MlflowClient

from workloads import registry
from workloads.data import roles
from workloads.data.source import read_examples
from workloads.specs import load_spec
from workloads.training.evaluation import evaluate


@pytest.fixture(scope="module")
def client(trained):
    settings, _ = trained
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def _version(client, settings, model, alias="champion"):
    return client.get_model_version_by_alias(settings.registered_model(model), alias)


@pytest.mark.parametrize("model", ["bakehouse_autolog", "bakehouse_decorators"])
def test_healthy_champion_meets_its_thresholds_on_the_holdout(trained, model):
    settings, results = trained
    spec = load_spec(model)
    champion = registry.load_model(settings, spec)  # by alias
    holdout = roles.split(read_examples(settings, spec), spec).holdout
    metrics = evaluate(spec, champion, holdout)
    assert metrics["rmse"] < 5.0
    assert metrics["r2"] > 0.5
    assert results[model].alias == "champion" and results[model].passed
    assert metrics["rmse"] == pytest.approx(results[model].metrics["rmse"])


def test_experiments_and_registered_models_exist(client):
    names = {e.name for e in client.search_experiments()}
    assert {"bakehouse_autolog", "bakehouse_decorators"} <= names
    registered = {m.name for m in client.search_registered_models()}
    assert {"mlops_dev.bakehouse_ml.bakehouse_autolog_model", "mlops_dev.bakehouse_ml.bakehouse_decorators_model",
            "mlops_dev.bakehouse_ml.bakehouse_large_order_model"} <= registered


def test_autolog_variant_logs_params_training_metrics_and_model(trained, client):
    settings, results = trained
    run = client.get_run(results["bakehouse_autolog"].run_id)
    # Logged by autolog itself: estimator params and training metrics.
    assert "model__learning_rate" in run.data.params or "model" in run.data.params
    assert any(k.startswith("training_") for k in run.data.metrics)
    assert {"rmse", "mae", "r2"} <= set(run.data.metrics)
    mv = _version(client, settings, "bakehouse_autolog")
    assert mv.run_id == run.info.run_id


def test_decorators_variant_logs_params_metrics_inputs_tags_signature(trained, client):
    settings, results = trained
    spec = load_spec("bakehouse_decorators")
    run = client.get_run(results["bakehouse_decorators"].run_id)
    assert {"max_iter", "learning_rate"} <= set(run.data.params)
    assert {"rmse", "mae", "r2"} <= set(run.data.metrics)
    tags = run.data.tags
    assert tags["environment"] == "dev"
    assert tags["spec_hash"] == spec.content_hash()
    assert tags["git_sha"] and tags["branch"]
    contexts = {}
    for inp in run.inputs.dataset_inputs:
        ctx = next(t.value for t in inp.tags if t.key == "mlflow.data.context")
        contexts[ctx] = inp.dataset
    assert {"training", "evaluation"} <= set(contexts)
    source = json.loads(contexts["training"].source)
    assert source["delta_table_name"] == "samples.bakehouse.sales_transactions"
    # MLflow's DeltaDatasetSource.to_dict omits a version of 0 (falsy); the param below is authoritative.
    assert source.get("delta_table_version", 0) == 0
    assert run.data.params["data_version.samples.bakehouse.sales_transactions"] == "0"
    # The sweep: the parent has one child run per candidate; the registered one is the best.
    parent_id = run.data.params["parent_run_id"]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 4
    best = min(children, key=lambda r: r.data.metrics["rmse"])
    assert best.info.run_id == run.info.run_id
    # Signature and input example travel with the model.
    from mlflow.models import get_model_info

    info = get_model_info(registry.model_uri(settings, spec, alias="champion"))
    assert {c.name for c in info.signature.inputs} == set(spec.feature_names)
    assert info.saved_input_example_info is not None


def test_decorators_variant_traces_its_steps(trained, client):
    _, results = trained
    import mlflow

    run = client.get_run(results["bakehouse_decorators"].run_id)
    traces = mlflow.search_traces(locations=[run.info.experiment_id], return_type="list")
    span_names = {span.name for trace in traces for span in trace.data.spans}
    assert {"prepare_features", "build_pipeline", "evaluate"} <= span_names


def test_model_version_traces_back_to_data_and_spec(trained, client):
    settings, _ = trained
    mv = _version(client, settings, "bakehouse_decorators")
    versions = json.loads(mv.tags["data_versions"])
    assert versions["samples.bakehouse.sales_transactions"] == 0
    # the tables training read, and only those (the builder joins customers and franchises, not suppliers)
    assert set(versions) == {f"samples.bakehouse.{t}" for t in
                             ("sales_transactions", "sales_customers", "sales_franchises")}
    assert mv.tags["spec_hash"] == load_spec("bakehouse_decorators").content_hash()


def test_classification_spec_is_trained_by_the_generic_code(trained, client):
    _, results = trained
    result = results["bakehouse_large_order"]
    assert load_spec("bakehouse_large_order").trainer == "generic"
    assert result.alias == "champion"
    assert result.metrics["accuracy_score"] > 0.7
    assert {"accuracy_score", "precision", "recall", "f1_score"} <= set(client.get_run(result.run_id).data.metrics)


def test_baseline_table_holds_the_champions_training_data(trained):
    from workloads.ports.tables import get_tables

    settings, results = trained
    spec = load_spec("bakehouse_autolog")
    baseline = get_tables(settings).read(settings.table(spec.baseline_table))
    assert set(baseline["model_version"]) == {str(results["bakehouse_autolog"].version)}
    assert {*spec.feature_names, "quantity", "prediction"} <= set(baseline.columns)
    assert baseline["prediction"].notna().all()
