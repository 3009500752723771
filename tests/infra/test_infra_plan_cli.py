"""``mlops plan``: the real program under mocks per stack file, as a table, as JSON, and as a diff."""

from __future__ import annotations

import json

from workloads.cli import main


def test_plan_json_lists_every_declared_resource_with_parent_and_protect(capsys, dev):
    assert main(["plan", "--stack", "dev", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["stack"] == "dev"
    assert plan["resource_count"] == len(plan["resources"]) == len(dev.resources)
    by_name = {r["name"]: r for r in plan["resources"]}
    endpoint = by_name["bakehouse_autolog-endpoint"]
    assert endpoint["type"] == "databricks:ModelServing"
    assert endpoint["parent"] == "bakehouse_autolog-serving"
    assert endpoint["protect"] is False
    assert "mlops_dev.bakehouse_ml.bakehouse_autolog_model@1" in endpoint["summary"]
    watcher = by_name["bakehouse_autolog-watcher"]
    assert ("unpack (wheel) -> monitor (wheel) -> evaluate (notebook) -> retrain_needed (condition) -> "
            "retrain (wheel); env 5 + 1 dependency") in watcher["summary"]
    assert watcher["inputs"]["schedule"]["timezoneId"] == "America/Detroit"
    assert any("champions assumed offline" in n for n in plan["notes"])
    assert plan["outputs"]["models"]["bakehouse_autolog"]["endpoint_name"] == "bakehouse-autolog"


def test_plan_table_for_prod_shows_protection(capsys):
    assert main(["plan", "--stack", "prod", "--first-deploy"]) == 0
    out = capsys.readouterr().out
    assert "stack prod:" in out
    catalog_row = next(line for line in out.splitlines() if "databricks:Catalog" in line)
    assert "yes" in catalog_row and "mlops_prod" in catalog_row
    assert "deferred" in out  # first deploy: no champion, endpoints deferred with a warning
    assert "[prod] bakehouse_autolog watcher" in out  # names are shown literally, not read as markup
    assert "data-scientists:USE_SCHEMA/SELECT/EXECUTE/READ_VOLUME" in out


def test_diff_shows_the_real_differences_between_stacks(capsys):
    assert main(["plan", "--stack", "dev", "--diff", "prod", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert (diff["from"], diff["to"]) == ("dev", "prod")
    changes = {c["path"].rsplit("::", 1)[-1]: c for c in diff["changes"]}
    assert changes["catalog"]["fields"]["(protect)"] == {"from": False, "to": True}
    assert changes["catalog"]["fields"]["name"] == {"from": "mlops_dev", "to": "mlops_prod"}
    serving = changes["bakehouse_autolog-endpoint"]["fields"]
    assert serving["config.servedEntities[0].workloadSize"] == {"from": "Small", "to": "Medium"}
    assert serving["routeOptimized"] == {"from": False, "to": True}
    evaluate_args = changes["bakehouse_autolog-watcher"]["fields"]["tasks[2].notebookTask.baseParameters.args"]
    assert json.loads(evaluate_args["to"])[-4:-2] == ["--threshold", "rmse=max:4.5"]
    assert "--threshold" not in json.loads(evaluate_args["from"])
    assert "bakehouse_autolog-processed" in changes  # catalog differs, so does every table's catalog
    assert all(c["kind"] == "changed" for c in diff["changes"])


def test_diff_reports_resources_only_in_one_stack():
    from infra.plan import diff_plans, plan_stack

    dev = plan_stack("dev")
    prod = plan_stack("prod", first_deploy=True)
    changes = diff_plans(dev, prod)
    only_dev = sorted(c.path.rsplit("::", 1)[-1] for c in changes if c.kind == "only-in-dev")
    assert only_dev == sorted(f"{m}-endpoint{suffix}" for m in ("bakehouse_autolog", "bakehouse_decorators",
                                                                 "bakehouse_large_order")
                              for suffix in ("", "-permissions"))


def test_champion_option_and_errors(capsys):
    assert main(["plan", "--stack", "dev", "--json", "--champion", "bakehouse_autolog=12"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["outputs"]["models"]["bakehouse_autolog"]["served_version"] == 12
    assert main(["plan", "--stack", "dev", "--champion", "bakehouse_autolog"]) == 1
    assert "MODEL=VERSION" in capsys.readouterr().err
    assert main(["plan", "--stack", "staging"]) == 1
    err = capsys.readouterr().err
    assert "no stack file Pulumi.staging.yaml" in err and "dev, prod" in err

