"""The first prod release, in the pipeline's order: `pulumi up --plan` (no prod champion yet: endpoints deferred),
`mlops promote` (moves aliases only; reads the endpoint, creates none), `pulumi up` again (the program creates the
endpoint). The workspace is the recording server of tests/fakes.py, driven by the real databricks-sdk; the program
is the real infra/__main__.py under mocks. Before issue 19 the promotion created the endpoint itself (Small,
scale-to-zero, not route-optimized), and the next `pulumi up` failed on "already exists"."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pipeline_rules as rules
import pytest
from databricks.sdk import WorkspaceClient

from infra.offline import evaluate
from tests.fakes import json_server
from workloads.specs import load_spec

MODELS = ["bakehouse_autolog", "bakehouse_decorators", "bakehouse_large_order"]


class Workspace:
    """Serving endpoints of one workspace: who created each, and every call made."""

    def __init__(self):
        self.endpoints: dict[str, str] = {}  # name -> creator
        self.calls: list[tuple[str, str]] = []

    def handle(self, method, path, query, body, headers):
        if path.startswith("/.well-known/"):
            return 404, {"error_code": "NOT_FOUND", "message": "no host metadata"}
        self.calls.append((method, path))
        if method == "POST" and path == "/api/2.0/serving-endpoints":
            if body["name"] in self.endpoints:
                return 400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": f"{body['name']} already exists"}
            self.endpoints[body["name"]] = "mlops promote"
            return 200, {"name": body["name"]}
        name = path.rsplit("/", 1)[-1]
        if method == "GET" and path.startswith("/api/2.0/serving-endpoints/"):
            if name not in self.endpoints:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"{name} does not exist"}
            return 200, {"name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
                         "config": {"served_entities": [{"name": "x", "entity_version": "1"}]}}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {method} {path}"}

    def pulumi_creates(self, evaluation) -> None:
        """What `pulumi up` does with the endpoints the program declares: create each one, or fail as Databricks
        does when the name is taken."""
        for endpoint in evaluation.of_type("ModelServing"):
            name = endpoint.inputs["name"]
            if name in self.endpoints:
                raise AssertionError(f"pulumi up: serving endpoint {name} already exists "
                                     f"(created by {self.endpoints[name]})")
            self.endpoints[name] = "pulumi"


def test_the_first_prod_release_promotes_then_pulumi_creates_the_endpoints(fake_wheel, tmp_path, monkeypatch):
    from workloads.promotion import follow_champion
    from workloads.serving import databricks as serving_databricks
    from workloads.settings import load_settings

    workspace = Workspace()
    # 1. `pulumi up --stack prod --plan`: no prod champion yet, every endpoint deferred.
    first = evaluate("prod", champions={}, wheel=fake_wheel)
    assert first.of_type("ModelServing") == [] and first.of_type("RegisteredModel")
    workspace.pulumi_creates(first)

    with json_server(workspace.handle) as url:
        monkeypatch.setattr(serving_databricks, "workspace_client",
                            lambda settings=None: WorkspaceClient(host=url, token="dapi-fake"))
        settings = load_settings(home=tmp_path, backend="databricks", env="prod", catalog="mlops_prod")
        # 2. `mlops promote --from dev --to prod` moved each prod champion alias to v1; the endpoint only follows.
        said = {m: follow_champion(settings, load_spec(m), 1) for m in MODELS}
    assert {m: s.split(";")[0] for m, s in said.items()} == {
        m: f"endpoint {load_spec(m).endpoint_name} is not deployed yet" for m in MODELS}
    assert workspace.endpoints == {} and {method for method, _ in workspace.calls} == {"GET"}

    # 3. `pulumi up --stack prod` once more: the program creates the endpoints it declares, as the stack says.
    second = evaluate("prod", champions=dict.fromkeys(MODELS, 1), wheel=fake_wheel)
    workspace.pulumi_creates(second)
    assert workspace.endpoints == {load_spec(m).endpoint_name: "pulumi" for m in MODELS}
    for model in MODELS:
        endpoint = second.get("ModelServing", name=f"{model}-endpoint")
        (entity,) = endpoint.inputs["config"]["servedEntities"]
        assert (entity["entityVersion"], entity["workloadSize"], entity["scaleToZeroEnabled"]) == ("1", "Medium", False)
        assert endpoint.inputs["routeOptimized"] is True and endpoint.protect


def test_the_old_order_collides_and_the_recording_server_sees_it():
    """The check above can fail: an endpoint created out of band makes the program's create fail."""
    workspace = Workspace()
    workspace.endpoints["bakehouse-autolog"] = "mlops promote"

    class Evaluation:
        def of_type(self, kind):
            return [SimpleNamespace(inputs={"name": "bakehouse-autolog"})]

    with pytest.raises(AssertionError, match="already exists .created by mlops promote"):
        workspace.pulumi_creates(Evaluation())


def test_the_pipeline_runs_promote_between_the_two_prod_updates(doc):
    steps = rules.job_steps(rules.stage_by_id(doc, "DeployProd")["jobs"][0])
    scripts = [rules.step_script(s) for s in steps]
    ups = [i for i, text in enumerate(scripts) if re.search(r"\bpulumi up\b(?=.*--stack prod\b)", text)]
    promote = next(i for i, text in enumerate(scripts) if "mlops --backend databricks promote" in text)
    assert len(ups) == 2 and ups[0] < promote < ups[1]
    assert "--plan" in scripts[ups[0]] and "--plan" not in scripts[ups[1]]


@pytest.fixture(scope="module")
def fake_wheel(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist") / "lakehouse_mlops-0.1.0-py3-none-any.whl"
    path.write_bytes(b"PK fake wheel for mock tests")
    return path
