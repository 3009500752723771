"""Every databricks-sdk call the project makes, checked against its contract.

Each test runs the project's own function with the real ``WorkspaceClient`` against a local server that records the
requests (tests/fakes.py ``json_server``) and answers in the documented response shape, built from the SDK's own
dataclasses (``SomeResponse(...).as_dict()``). It asserts the method, the path and the body fields, and that every
request body survives a round trip through the SDK dataclass of that request (``Cls.from_dict(body).as_dict() ==
body``: no field the API does not know, no field lost). The SDK (``databricks-sdk`` 0.162 here) is generated from
the same OpenAPI description as the REST reference linked below.

| call (where) | REST method and path | documentation | test |
|---|---|---|---|
| ``serving_endpoints.get`` (serving/databricks.py ``endpoint_status``, ``describe_following`` after a promotion, ``query_serving_endpoint``; status.py) | GET /api/2.0/serving-endpoints/{name} | https://docs.databricks.com/api/workspace/servingendpoints/get | test_endpoint_status_reads_the_documented_endpoint_shape, test_following_a_champion_only_reads_the_endpoint |
| ``serving_endpoints.query`` (``query_endpoint``; infra/pipeline/smoke.py) | POST /serving-endpoints/{name}/invocations | https://docs.databricks.com/api/workspace/servingendpoints/query | test_query_sends_only_documented_fields |
| ``serving_endpoints_data_plane.query`` (route-optimized endpoints) | POST {data_plane_info.query_info.endpoint_url} | https://learn.microsoft.com/azure/databricks/machine-learning/model-serving/query-route-optimization | tests/serving/test_databricks_path.py::test_a_route_optimized_endpoint_is_queried_at_its_own_url_with_a_data_plane_oauth_token |
| ``tables.get`` (monitoring/monitor_api.py, the table's UUID) | GET /api/2.1/unity-catalog/tables/{full_name} | https://docs.databricks.com/api/workspace/tables/get | test_monitor_refresh_through_the_data_quality_api |
| ``data_quality.create_refresh`` / ``get_refresh`` (monitor_api.py) | POST / GET /api/data-quality/v1/monitors/table/{table_id}/refreshes[/{refresh_id}] | https://docs.databricks.com/api/workspace/dataquality/createrefresh, .../getrefresh | test_monitor_refresh_through_the_data_quality_api |
| ``quality_monitors.run_refresh`` / ``get_refresh`` (monitor_api.py fallback) | POST / GET /api/2.1/unity-catalog/tables/{full_name}/monitor/refreshes[/{refresh_id}] | https://docs.databricks.com/api/workspace/qualitymonitors/runrefresh, .../getrefresh | test_monitor_refresh_through_the_legacy_api |
| ``registered_models.get`` (infra/pipeline/champion.py; infra/champion.py, the deploy-time champion lookup) | GET /api/2.1/unity-catalog/models/{full_name}?include_aliases=true | https://docs.databricks.com/api/workspace/registeredmodels/get | test_champion_lookup_reads_the_documented_aliases |
| ``jobs.run_now`` and its waiter ``jobs.get_run`` (infra/pipeline/smoke.py) | POST /api/2.2/jobs/run-now, GET /api/2.2/jobs/runs/get?run_id= | https://docs.databricks.com/api/workspace/jobs/runnow, https://docs.databricks.com/api/workspace/jobs/getrun | test_watcher_run_now_and_wait |
| the local endpoint read by ``serving_endpoints.get`` / ``query`` (serving/app.py; ``mlops status``) | GET /api/2.0/serving-endpoints/{name}, POST /serving-endpoints/{name}/invocations | as above; inference table columns: https://learn.microsoft.com/azure/databricks/ai-gateway/inference-tables | tests/contracts/test_local_endpoint_contract.py |

Not a databricks-sdk call: the served-entity lookup (unpacking.py ``served_entity_resolver``) reads the system table
``system.serving.served_entities`` (columns ``served_entity_id``, ``entity_version``) through the tables port.
"""

from __future__ import annotations

import inspect
import re

import pandas as pd
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.service import catalog, dataquality, jobs, serving

from tests.fakes import json_server
from workloads.specs import load_spec

ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")  # create's docstring: alphanumerics, dashes and underscores
UC_NAME = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
TABLE_ID = "3f0a6c2e-5b7d-4e1a-9c8b-2d4e6f8a0b1c"
WORKLOAD_SIZES = {"Small", "Medium", "Large"}  # ServedEntityInput.workload_size docstring


def documented_fields(method) -> set[str]:
    """The body/query fields an SDK method sends: its keyword parameters (the SDK builds the body from them)."""
    return {name for name, p in inspect.signature(method).parameters.items() if name not in ("self", "name")}


def round_trips(cls, body: dict) -> bool:
    """The body is exactly what the SDK dataclass serialises: no unknown field, nothing dropped or retyped."""
    return cls.from_dict(body).as_dict() == body


class RecordingWorkspace:
    """A scripted Databricks REST API: ``answers[(method, path)]`` is a list of (status, payload) given in turn (the
    last one repeats); every request is recorded as (method, path, query, body)."""

    def __init__(self):
        self.answers: dict[tuple[str, str], list[tuple[int, object]]] = {}
        self.requests: list[tuple[str, str, dict, dict | None]] = []
        self.url = ""

    def answer(self, method: str, path: str, *replies: tuple[int, object]) -> None:
        self.answers[(method, path)] = list(replies)

    def handle(self, method, path, query, body, headers):
        self.requests.append((method, path, query, body))
        replies = self.answers.get((method, path))
        if not replies:
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {method} {path}"}
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def client(self) -> WorkspaceClient:
        return WorkspaceClient(config=Config(host=self.url, token="contract-token", auth_type="pat",
                                             retry_timeout_seconds=5))

    def api(self) -> list[tuple[str, str, dict, dict | None]]:
        return [r for r in self.requests if r[1].startswith(("/api/", "/serving-endpoints/"))]

    def bodies(self, method: str, path: str) -> list[dict | None]:
        return [body for m, p, _, body in self.requests if (m, p) == (method, path)]


@pytest.fixture
def workspace():
    state = RecordingWorkspace()
    with json_server(state.handle) as url:
        state.url = url
        yield state


@pytest.fixture(scope="module")
def spec():
    return load_spec("bakehouse_autolog")


def detailed(spec, settings, version: str, *, update: str = "NOT_UPDATING", gateway: bool = True,
             route_optimized: bool = False) -> dict:
    """The endpoint as GET /api/2.0/serving-endpoints/{name} documents it, from the SDK's dataclasses."""
    entity = spec.databricks_entity_name
    endpoint = serving.ServingEndpointDetailed(
        name=spec.endpoint_name, id="ep-0001", creator="sp-deployer", creation_timestamp=1767225600000,
        route_optimized=route_optimized,
        state=serving.EndpointState(ready=serving.EndpointStateReady.READY,
                                    config_update=serving.EndpointStateConfigUpdate(update)),
        config=serving.EndpointCoreConfigOutput(
            config_version=1,
            served_entities=[serving.ServedEntityOutput(
                name=entity, entity_name=settings.registered_model(spec.name), entity_version=version,
                workload_size="Medium", scale_to_zero_enabled=False)],
            traffic_config=serving.TrafficConfig(routes=[serving.Route(served_entity_name=entity,
                                                                         traffic_percentage=100)])),
        ai_gateway=serving.AiGatewayConfig(inference_table_config=serving.AiGatewayInferenceTableConfig(
            catalog_name=settings.catalog, schema_name=settings.schema_name, table_name_prefix=spec.payload_prefix,
            enabled=True)) if gateway else None)
    return endpoint.as_dict()


def check_served_entities(config: dict) -> None:
    """The documented constraints of a served-entities config the SDK cannot check by itself."""
    entities = config["served_entities"]
    assert entities and all(e["entity_name"] and UC_NAME.match(e["entity_name"]) for e in entities)
    assert all(str(e["entity_version"]).isdigit() for e in entities)  # entity_name + entity_version together
    assert all(e["workload_size"] in WORKLOAD_SIZES for e in entities)
    routes = config["traffic_config"]["routes"]
    assert {r["served_entity_name"] for r in routes} == {e["name"] for e in entities}
    assert sum(r["traffic_percentage"] for r in routes) == 100
    assert "served_models" not in config and "auto_capture_config" not in config  # deprecated shapes


def test_endpoint_status_reads_the_documented_endpoint_shape(workspace, settings, spec):
    from workloads.serving.databricks import endpoint_status

    path = f"/api/2.0/serving-endpoints/{spec.endpoint_name}"
    workspace.answer("GET", path, (200, detailed(spec, settings, "5")))
    status = endpoint_status(settings, spec, client=workspace.client())
    assert [(m, p) for m, p, _, _ in workspace.api()] == [("GET", path)]
    assert (status.ready, status.config_update, status.served_versions) == (True, "NOT_UPDATING", ("5",))
    assert status.inference_table == settings.table(spec.payload_table)

    # A missing endpoint: the documented 404 RESOURCE_DOES_NOT_EXIST reads as "not deployed".
    workspace.answer("GET", path, (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no endpoint"}))
    assert endpoint_status(settings, spec, client=workspace.client()) is None


def test_following_a_champion_only_reads_the_endpoint(workspace, settings, spec):
    """A promotion on Databricks reads the endpoint (GET) and changes nothing: Pulumi owns every endpoint."""
    from workloads.serving import databricks as serving_databricks

    path = f"/api/2.0/serving-endpoints/{spec.endpoint_name}"
    workspace.answer("GET", path, (200, detailed(spec, settings, "3")))
    client = workspace.client()
    said = serving_databricks.describe_following(settings.model_copy(update={"backend": "databricks"}), spec, 4,
                                                 client=client)
    assert said.startswith(f"endpoint {spec.endpoint_name} serves v3 until `pulumi up --stack dev` serves v4")
    assert [(m, p) for m, p, _, _ in workspace.api()] == [("GET", path)]


def test_query_sends_only_documented_fields(workspace, settings, spec):
    from workloads.serving.databricks import query_endpoint

    workspace.answer("GET", f"/api/2.0/serving-endpoints/{spec.endpoint_name}", (200, detailed(spec, settings, "4")))
    invocations = f"/serving-endpoints/{spec.endpoint_name}/invocations"
    workspace.answer("POST", invocations, (200, serving.QueryEndpointResponse(predictions=[2.5, 3.5]).as_dict()))
    rows = pd.DataFrame({c.name: ["x", "y"] if c.is_categorical else [1, 2] for c in spec.features})

    assert query_endpoint(spec, rows, client=workspace.client(), client_request_id="req-1") == [2.5, 3.5]

    (body,) = workspace.bodies("POST", invocations)
    assert set(body) <= documented_fields(serving.ServingEndpointsAPI.query)
    assert body["client_request_id"] == "req-1"
    assert round_trips(serving.DataframeSplitInput, body["dataframe_split"])
    assert body["dataframe_split"]["columns"] == spec.feature_names and len(body["dataframe_split"]["data"]) == 2
    # The documented request fields the local endpoint must also accept (tests/contracts/test_local_endpoint...).
    assert {"client_request_id", "usage_context", "extra_params"} <= documented_fields(serving.ServingEndpointsAPI.query)


class _Monitor:
    """Both refresh APIs answering in their documented shapes."""

    def __init__(self, workspace: RecordingWorkspace, table: str):
        self.table = table
        current = f"/api/data-quality/v1/monitors/table/{TABLE_ID}/refreshes"
        legacy = f"/api/2.1/unity-catalog/tables/{table}/monitor/refreshes"
        self.current, self.legacy = current, legacy
        catalog_name, schema_name, name = table.split(".")
        workspace.answer("GET", f"/api/2.1/unity-catalog/tables/{table}", (200, catalog.TableInfo(
            full_name=table, table_id=TABLE_ID, catalog_name=catalog_name, schema_name=schema_name, name=name,
            table_type=catalog.TableType.MANAGED, data_source_format=catalog.DataSourceFormat.DELTA).as_dict()))
        refresh = dataquality.Refresh(object_type="table", object_id=TABLE_ID, refresh_id=42,
                                      trigger=dataquality.RefreshTrigger.MONITOR_REFRESH_TRIGGER_MANUAL,
                                      start_time_ms=1767225600000)
        running = dataquality.Refresh.from_dict({**refresh.as_dict(), "state": "MONITOR_REFRESH_STATE_RUNNING"})
        done = dataquality.Refresh.from_dict({**refresh.as_dict(), "state": "MONITOR_REFRESH_STATE_SUCCESS",
                                              "end_time_ms": 1767225660000})
        workspace.answer("POST", current, (200, running.as_dict()))
        workspace.answer("GET", f"{current}/42", (200, done.as_dict()))
        info = catalog.MonitorRefreshInfo(refresh_id=42, state=catalog.MonitorRefreshInfoState.PENDING,
                                          start_time_ms=1767225600000,
                                          trigger=catalog.MonitorRefreshInfoTrigger.MANUAL)
        workspace.answer("POST", legacy, (200, info.as_dict()))
        workspace.answer("GET", f"{legacy}/42", (200, catalog.MonitorRefreshInfo.from_dict(
            {**info.as_dict(), "state": "SUCCESS", "end_time_ms": 1767225660000}).as_dict()))


def test_monitor_refresh_through_the_data_quality_api(workspace, settings, spec):
    from workloads.monitoring.monitor_api import DATA_QUALITY, MonitorRefreshes

    table = settings.table(spec.processed_table)
    monitor = _Monitor(workspace, table)
    refreshes = MonitorRefreshes(workspace.client(), table)
    started = refreshes.start()
    assert (started.refresh_id, started.state, started.api) == (42, "RUNNING", DATA_QUALITY)
    assert refreshes.get(42).state == "SUCCESS"
    assert [(m, p) for m, p, _, _ in workspace.api()] == [
        ("GET", f"/api/2.1/unity-catalog/tables/{table}"), ("POST", monitor.current), ("GET", f"{monitor.current}/42")]
    (body,) = workspace.bodies("POST", monitor.current)
    assert round_trips(dataquality.Refresh, body)
    assert body == {"object_type": "table", "object_id": TABLE_ID}  # the table's UUID, not its name


def test_monitor_refresh_through_the_legacy_api(workspace, settings, spec):
    from workloads.monitoring.monitor_api import LEGACY, MonitorRefreshes

    table = settings.table(spec.processed_table)
    monitor = _Monitor(workspace, table)
    workspace.answer("POST", monitor.current, (404, {"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found"}))
    refreshes = MonitorRefreshes(workspace.client(), table)
    started = refreshes.start()
    assert (started.refresh_id, started.state, started.api) == (42, "PENDING", LEGACY)
    assert refreshes.get(42).state == "SUCCESS"
    assert [(m, p) for m, p, _, _ in workspace.api()][-2:] == [("POST", monitor.legacy), ("GET", f"{monitor.legacy}/42")]
    assert workspace.bodies("POST", monitor.legacy) in ([None], [{}])  # run_refresh takes only the path's name


def test_champion_lookup_reads_the_documented_aliases(workspace):
    from infra.pipeline.champion import champion_version

    name = "mlops_dev.bakehouse_ml.bakehouse_autolog_model"
    path = f"/api/2.1/unity-catalog/models/{name}"
    workspace.answer("GET", path, (200, catalog.RegisteredModelInfo(
        full_name=name, catalog_name="mlops_dev", schema_name="bakehouse_ml", name="bakehouse_autolog_model",
        aliases=[catalog.RegisteredModelAlias(alias_name="previous", version_num=3),
                 catalog.RegisteredModelAlias(alias_name="champion", version_num=4)]).as_dict()))
    assert champion_version(workspace.client(), name) == 4
    ((method, called, query, body),) = workspace.api()
    assert (method, called, body) == ("GET", path, None)
    assert query == {"include_aliases": ["true"]}
    assert set(query) <= documented_fields(catalog.RegisteredModelsAPI.get) | {"full_name"}


def test_watcher_run_now_and_wait(workspace):
    from infra.pipeline.smoke import SmokeReport, Target, run_watchers

    workspace.answer("POST", "/api/2.2/jobs/run-now", (200, jobs.RunNowResponse(run_id=9001, number_in_job=1).as_dict()))
    state = jobs.RunState(life_cycle_state=jobs.RunLifeCycleState.TERMINATED, result_state=jobs.RunResultState.SUCCESS,
                          state_message="")
    workspace.answer("GET", "/api/2.2/jobs/runs/get", (200, jobs.Run(
        run_id=9001, job_id=101, state=state, run_page_url="https://adb-1.azuredatabricks.net/#job/101/run/9001"
    ).as_dict()))
    report = SmokeReport()
    target = Target(model="bakehouse_autolog", registered_model="m", endpoint="e", job_id=101)
    run_watchers(workspace.client(), [target], report, timeout_s=10)
    assert [status for status, _, _ in report.lines] == ["ok"]
    (body,) = workspace.bodies("POST", "/api/2.2/jobs/run-now")
    assert body == {"job_id": 101} and set(body) <= documented_fields(jobs.JobsAPI.run_now)
    polls = [query for m, p, query, _ in workspace.api() if p == "/api/2.2/jobs/runs/get"]
    assert polls and all(q["run_id"] == ["9001"] for q in polls)


@pytest.mark.parametrize("status,answer,expected", [
    (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered model not found"}, "absent"),
    (404, {"error_code": "CATALOG_DOES_NOT_EXIST", "message": "Catalog 'mlops_dev' does not exist."}, "absent"),
    (403, {"error_code": "PERMISSION_DENIED", "message": "User does not have EXECUTE on Routine or Model"}, "error"),
    # The same words in the message, another code: not "absent" (the old text match would have deferred it).
    (404, {"error_code": "NOT_FOUND", "message": "Catalog mlops_dev does not exist or is not found"}, "error"),
    (404, {"message": "not found"}, "error"),
])
def test_deploy_time_champion_lookup_tells_absent_from_unreadable_by_error_code(workspace, status, answer, expected):
    """infra/champion.py with the real SDK: the response's error_code decides, never its message."""
    from infra.champion import ChampionLookupError, lookup_champion

    name = "mlops_dev.bakehouse_ml.bakehouse_autolog_model"
    workspace.answer("GET", f"/api/2.1/unity-catalog/models/{name}", (status, answer))
    if expected == "absent":
        found = lookup_champion(name, workspace.client(), creates_catalog=True)
        assert not found.found and "does not exist yet" in found.reason
    else:
        with pytest.raises(ChampionLookupError, match=answer.get("error_code", "NotFound")):
            lookup_champion(name, workspace.client(), creates_catalog=True)
    ((method, called, query, _),) = workspace.api()
    assert (method, called, query) == ("GET", f"/api/2.1/unity-catalog/models/{name}", {"include_aliases": ["true"]})
