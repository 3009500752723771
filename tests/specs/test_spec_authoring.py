"""Writing a spec without guessing: unknown keys named with the closest valid one, `mlops spec check`,
`mlops spec columns`, missing columns listed, templates that show (and pass with) every field."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from workloads.data.builders import builder_columns
from workloads.data.validation import check_frame
from workloads.errors import SpecError
from workloads.specs import (
    DriftEvidence,
    ModelSpec,
    PromotionEvidence,
    check_spec_file,
    load_spec,
    package_spec_dir,
    parse_spec,
)

TEMPLATES = sorted((package_spec_dir() / "templates").glob("*.yaml"))


def _spec_data(**changes) -> dict:
    data = load_spec("bakehouse_autolog").model_dump(exclude_none=True)
    data.update(changes)
    return data


def mlops(*args) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "workloads.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_an_unknown_key_is_an_error_naming_the_closest_valid_one():
    data = _spec_data()
    data["drift_threshold"] = data.pop("drift_thresholds")  # the typo that silently dropped all drift checks
    with pytest.raises(SpecError, match=r"drift_threshold: unknown key 'drift_threshold' \(did you mean "
                                        r"'drift_thresholds'\? valid keys: .*drift_evidence"):
        parse_spec(data, "my_model.yaml")


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("drift_evidence", "alfa"), 0.05, r"drift_evidence\.alfa: unknown key 'alfa' \(did you mean 'alpha'\?"),
    (("thresholds", "rmse", "maxx"), 4, r"thresholds\.rmse\.maxx: unknown key 'maxx' \(did you mean 'max'\?"),
    (("promotion_evidence", "min_holdout"), 10,
     r"promotion_evidence\.min_holdout: unknown key 'min_holdout' \(did you mean 'min_holdout_rows'\?"),
])
def test_nested_unknown_keys_are_named_too(path, value, expected):
    data = _spec_data()
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(SpecError, match=expected):
        parse_spec(data, "my_model.yaml")


def test_every_problem_is_in_one_message():
    data = _spec_data(problem_type="regresion", min_row=5)
    with pytest.raises(SpecError) as info:
        parse_spec(data, "my_model.yaml")
    message = str(info.value)
    assert "problem_type: Input should be 'regression'" in message
    assert "unknown key 'min_row' (did you mean 'min_rows'?" in message


def test_spec_check_validates_a_file_without_training(tmp_path):
    good = tmp_path / "my_model.yaml"
    good.write_text(yaml.safe_dump(_spec_data(name="my_model")))
    code, out = mlops("spec", "check", str(good))
    assert code == 0 and f"ok {good}: model 'my_model' (regression), 14 features" in out.replace("\n", "")

    typo = tmp_path / "typo.yaml"
    data = _spec_data(name="typo")
    data["drift_threshold"] = data.pop("drift_thresholds")
    typo.write_text(yaml.safe_dump(data))
    code, out = mlops("spec", "check", str(typo))
    assert code == 1 and "did you mean 'drift_thresholds'?" in out and "Traceback" not in out


def test_a_column_the_source_lacks_is_named_with_what_it_offers(tmp_path):
    path = tmp_path / "price.yaml"
    data = _spec_data(name="price", label={"name": "totalPrice", "type": "double"})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"label 'totalPrice' is not a column of builder 'bakehouse'; name one or "
                                        r"derive it with label_expression \(builder 'bakehouse' offers: .*"
                                        r"quantity \(bigint\)"):
        check_spec_file(path)
    data["label_expression"] = "quantity * unitPrice"  # the fix the message points at
    path.write_text(yaml.safe_dump(data))
    spec, notes = check_spec_file(path)
    assert spec.label.name == "totalPrice" and notes == ["label 'totalPrice' is derived: quantity * unitPrice"]


def test_training_data_missing_columns_lists_what_the_source_offers_once():
    spec = parse_spec(_spec_data(features=[{"name": "totalPrice", "type": "double"},
                                           {"name": "tax", "type": "double"}], slices=[]), "x.yaml")
    frame = pd.DataFrame({"quantity": [1] * 200, "product": ["a"] * 200, "transactionID": range(200)})
    failures = check_frame(frame, spec)
    schema = [f for f in failures if f.startswith("schema:")]
    assert len(schema) == 1, schema  # one line for every missing column, not one per column
    assert re.search(r"schema: columns 'totalPrice', 'tax' are missing \(the source offers: quantity \(bigint\), "
                     r"product \(string\).*`mlops spec columns --model bakehouse_autolog`\)", schema[0])
    assert "transactionID" not in schema[0]  # the id is not offered as a feature


def test_spec_columns_lists_what_a_models_source_offers_with_types_and_roles():
    code, out = mlops("spec", "columns", "--model", "bakehouse_autolog")
    assert code == 0
    offered = builder_columns("bakehouse", "transactionID", "dateTime")
    for column in offered:
        assert re.search(rf"{column.name}\s+│\s+{column.type}\s+│\s+{column.role}", out), column
    roles = {c.name: c.role for c in offered}
    assert roles["franchise_name"] == "feature" and roles["transactionID"] == "id" and roles["dateTime"] == "timestamp"
    code, out = mlops("spec", "columns", "--table", "nope.nope.nope")
    assert code == 1 and "table nope.nope.nope does not exist; import a file with `mlops data import" in out
    code, out = mlops("spec", "columns")
    assert code == 1 and "give --table catalog.schema.table or --model NAME" in out


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_each_template_shows_every_field_and_passes_the_check(template, tmp_path):
    text = template.read_text()
    for model in (ModelSpec, DriftEvidence, PromotionEvidence):
        for name in model.model_fields:
            shown = re.search(rf"^\s*{name}:", text, re.MULTILINE)
            assert shown, f"{template.name} does not show {model.__name__}.{name}"
    assert "mlops spec check" in text and "mlops spec columns" in text
    data = yaml.safe_load(text)
    copy = tmp_path / f"{data['name']}.yaml"
    copy.write_text(text)
    spec, _ = check_spec_file(copy)
    assert spec.problem_type == template.stem


def test_hyperparameters_a_trainer_would_ignore_are_refused(tmp_path):
    from workloads.training import check_hyperparameters, trainer_for

    ignored = parse_spec(_spec_data(hyperparameters={"max_iter": [50, 100]}), "x.yaml")  # trainer autolog
    with pytest.raises(SpecError, match=r"trainer 'autolog' ignores hyperparameters, but the spec sets \['max_iter'\]"):
        trainer_for(ignored)
    typo = parse_spec(_spec_data(trainer="generic", hyperparameters={"max_iters": [50]}), "x.yaml")
    with pytest.raises(SpecError, match=r"unknown \['max_iters'\] \(the estimator takes: .*max_iter"):
        check_hyperparameters(typo)
    path = tmp_path / "swept.yaml"
    path.write_text(yaml.safe_dump(_spec_data(name="swept", hyperparameters={"max_iter": [50]})))
    code, out = mlops("spec", "check", str(path))
    assert code == 1 and "ignores hyperparameters" in out and "Traceback" not in out


def test_the_generic_trainer_searches_the_grid_on_the_training_rows_only(home):
    from tests.conftest import make_trained_home
    from workloads.training import generic
    from workloads.training.context import TrainingContext
    from workloads.training.pipeline import hyperparameter_grid

    settings, _ = make_trained_home(home, models=())
    from workloads.data import roles
    from workloads.data.source import read_examples

    spec = parse_spec(_spec_data(name="swept", trainer="generic", hyperparameters={"max_iter": [5, 200]}), "x.yaml")
    parts = roles.split(read_examples(settings, spec), spec)
    ctx = TrainingContext(settings, spec, parts.training, parts.holdout, {}, "e")
    chosen, scores = generic.choose(ctx, hyperparameter_grid(spec))
    assert len(scores) == 2 and chosen["max_iter"] == 200  # 5 boosting rounds underfit: the grid is really searched
    assert scores["candidate_1_validation_rmse"] < scores["candidate_0_validation_rmse"]
