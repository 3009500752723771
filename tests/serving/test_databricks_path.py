"""The Databricks serving path against a fake Model Serving REST API: the real SDK serialises every call. The\nendpoint is the Pulumi program's: nothing here creates or changes it."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.fakes import json_server
from workloads.serving.databricks import EndpointError, endpoint_status, query_endpoint


class FakeServing:
    """In-memory serving endpoints behind the REST paths the SDK calls; records every request."""

    def __init__(self, polls_in_progress: int = 1, fail_update: bool = False):
        self.endpoints: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict | None]] = []
        self.polls_in_progress = polls_in_progress
        self.fail_update = fail_update
        self._pending: dict[str, int] = {}

    def handle(self, method: str, path: str, query: dict, body: dict | None, headers) -> tuple[int, dict]:
        self.calls.append((method, path, body))
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/api/2.0/serving-endpoints":
            if body["name"] in self.endpoints:
                return 409, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}
            self.endpoints[body["name"]] = {"name": body["name"], "config": body["config"],
                                            "ai_gateway": body.get("ai_gateway", {})}
            return 200, self._begin_update(body["name"])
        if parts[:2] == ["api", "2.0"] and len(parts) >= 4:
            name = parts[3]
            if name not in self.endpoints:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"endpoint {name} not found"}
            if method == "GET" and len(parts) == 4:
                return 200, self._describe(name)
            if method == "PUT" and parts[4:] == ["config"]:
                self.endpoints[name]["config"] = body
                return 200, self._begin_update(name)
            if method == "PUT" and parts[4:] == ["ai-gateway"]:
                self.endpoints[name]["ai_gateway"] = body
                return 200, body
        if method == "POST" and parts[0] == "serving-endpoints" and parts[-1] == "invocations":
            rows = body["dataframe_split"]["data"]
            return 200, {"predictions": [float(i) for i in range(len(rows))]}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {method} {path}"}

    def _begin_update(self, name: str) -> dict:
        self._pending[name] = self.polls_in_progress
        return self._describe(name, advance=False)

    def _describe(self, name: str, advance: bool = True) -> dict:
        endpoint = self.endpoints[name]
        pending = self._pending.get(name, 0)
        if pending > 0:
            update = "IN_PROGRESS"
            if advance:
                self._pending[name] = pending - 1
        else:
            update = "UPDATE_FAILED" if self.fail_update else "NOT_UPDATING"
        config = endpoint["config"]
        return {
            "name": name,
            "state": {"ready": "READY", "config_update": update},
            "config": {"served_entities": config.get("served_entities", []),
                       "traffic_config": config.get("traffic_config", {})},
            "ai_gateway": endpoint["ai_gateway"],
        }


@pytest.fixture
def fake():
    state = FakeServing()
    with json_server(state.handle) as url:
        state.url = url
        yield state


@pytest.fixture
def client(fake):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=fake.url, token="fake-token")


def serving_endpoint(spec, version: str, size: str = "Small") -> dict:
    """An endpoint as the Pulumi program declared it (the fake's stored shape)."""
    return {"name": spec.endpoint_name, "config": {"served_entities": [
        {"name": spec.databricks_entity_name, "entity_name": "mlops_dev.bakehouse_ml.m", "entity_version": version,
         "workload_size": size, "scale_to_zero_enabled": False}]}, "ai_gateway": {}}


def databricks_settings(settings):
    return settings.model_copy(update={"backend": "databricks"})


def test_a_promotion_on_databricks_only_reads_the_endpoint(fake, client, settings, spec, monkeypatch):
    """Pulumi owns the endpoint: following a new champion never creates or updates it (no POST, no PUT), whether
    the endpoint is missing (a first release: the program creates it at the next `pulumi up`) or serves another
    version (the next `pulumi up` serves the champion)."""
    from workloads import promotion
    from workloads.serving import databricks as serving_databricks

    monkeypatch.setattr(serving_databricks, "workspace_client", lambda settings=None: client)
    on_databricks = databricks_settings(settings)

    said = promotion.follow_champion(on_databricks, spec, 4)
    assert said == (f"endpoint {spec.endpoint_name} is not deployed yet; `pulumi up --stack dev` serves v4 on "
                    f"endpoint {spec.endpoint_name}")
    fake.endpoints[spec.endpoint_name] = serving_endpoint(spec, "3", size="Large")
    said = promotion.follow_champion(on_databricks, spec, 4)
    assert said.startswith(f"endpoint {spec.endpoint_name} serves v3 until `pulumi up --stack dev` serves v4")
    fake.endpoints[spec.endpoint_name] = serving_endpoint(spec, "4")
    assert promotion.follow_champion(on_databricks, spec, 4) == f"endpoint {spec.endpoint_name} already serves v4"

    assert {method for method, _, _ in fake.calls} == {"GET"}
    assert fake.endpoints[spec.endpoint_name]["config"]["served_entities"][0]["workload_size"] == "Small"


def test_an_unreadable_endpoint_does_not_undo_a_promotion(client, settings, spec, monkeypatch):
    """The alias has moved when the endpoint is read: a 403 is reported in the text, not raised."""
    from tests.fakes import json_server
    from workloads.promotion import follow_champion
    from workloads.serving import databricks as serving_databricks

    calls = []

    def forbidden(method, path, query, body, headers):
        if path.startswith("/.well-known/"):  # the SDK's host-metadata probe, not a call of ours
            return 404, {"error_code": "NOT_FOUND", "message": "no metadata"}
        calls.append((method, path))
        return 403, {"error_code": "PERMISSION_DENIED", "message": "no CAN_VIEW on the endpoint"}

    from databricks.sdk import WorkspaceClient

    with json_server(forbidden) as url:
        monkeypatch.setattr(serving_databricks, "workspace_client",
                            lambda settings=None: WorkspaceClient(host=url, token="fake-token"))
        said = follow_champion(databricks_settings(settings), spec, 5)
    assert said.startswith(f"endpoint {spec.endpoint_name} not readable (PermissionDenied: no CAN_VIEW")
    assert said.endswith(f"`pulumi up --stack dev` serves v5 on endpoint {spec.endpoint_name}")
    assert calls == [("GET", f"/api/2.0/serving-endpoints/{spec.endpoint_name}")]


def test_status_and_query_of_a_deployed_endpoint(fake, client, settings, spec):
    assert endpoint_status(settings, spec, client=client) is None
    fake.endpoints[spec.endpoint_name] = serving_endpoint(spec, "4")
    status = endpoint_status(settings, spec, client=client)
    assert status.ready and status.served_versions == ("4",) and status.inference_table is None

    assert query_endpoint(spec, pd.DataFrame({c: ["x"] for c in spec.feature_names}).head(1), client=client) == [0.0]
    invocation = fake.calls[-1]
    assert invocation[1] == f"/serving-endpoints/{spec.endpoint_name}/invocations"
    assert invocation[2]["dataframe_split"]["columns"] == spec.feature_names


class RouteOptimizedWorkspace:
    """A workspace with one route-optimized endpoint: OAuth discovery and token endpoints, the endpoint's
    control-plane GET (with ``data_plane_info``) and its data-plane invocation URL, in the documented shapes."""

    AUTH_DETAILS = '[{"type":"workspace_permission","object_type":"serving-endpoints","object_path":"/x"}]'

    def __init__(self, name: str):
        self.name = name
        self.calls: list[tuple[str, str, dict | None, str | None]] = []

    def handle(self, method, path, query, body, headers):
        self.calls.append((method, path, body, headers.get("Authorization")))
        if path == "/.well-known/databricks-config":  # host metadata: where the workspace's OIDC lives
            return 200, {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": "1234567890"}
        if path == "/oidc/.well-known/oauth-authorization-server":
            return 200, {"authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                         "token_endpoint": f"{self.url}/oidc/v1/token"}
        if method == "POST" and path == "/oidc/v1/token":
            if body.get("grant_type") == "client_credentials":
                return 200, {"access_token": "control-plane-token", "token_type": "Bearer", "expires_in": 3600}
            if (body.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
                    and body.get("assertion") == "control-plane-token"
                    and body.get("authorization_details") == self.AUTH_DETAILS):
                return 200, {"access_token": "data-plane-token", "token_type": "Bearer", "expires_in": 3600}
            return 400, {"error": "invalid_grant"}
        if method == "GET" and path == f"/api/2.0/serving-endpoints/{self.name}":
            from databricks.sdk.service.serving import ServingEndpointDetailed

            detailed = ServingEndpointDetailed.from_dict({
                "name": self.name, "route_optimized": True,
                "endpoint_url": f"{self.url}/dp/ep-1/serving-endpoints/{self.name}/invocations",
                "data_plane_info": {"query_info": {
                    "endpoint_url": f"{self.url}/dp/ep-1/serving-endpoints/{self.name}/invocations",
                    "authorization_details": self.AUTH_DETAILS}},
                "state": {"ready": "READY", "config_update": "NOT_UPDATING"}})
            return 200, detailed.as_dict()
        if method == "POST" and path == f"/dp/ep-1/serving-endpoints/{self.name}/invocations":
            return 200, {"predictions": [1.5] * len(body["dataframe_split"]["data"])}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {method} {path}"}


def test_a_route_optimized_endpoint_is_queried_at_its_own_url_with_a_data_plane_oauth_token(spec):
    from databricks.sdk import WorkspaceClient

    workspace = RouteOptimizedWorkspace(spec.endpoint_name)
    with json_server(workspace.handle) as url:
        workspace.url = url
        client = WorkspaceClient(host=url, client_id="sp-app-id", client_secret="sp-secret")
        rows = pd.DataFrame({c: ["x"] for c in spec.feature_names}).head(1)
        assert query_endpoint(spec, rows, client=client, client_request_id="r-1") == [1.5]
    method, path, body, auth = workspace.calls[-1]
    assert (method, path, auth) == ("POST", f"/dp/ep-1/serving-endpoints/{spec.endpoint_name}/invocations",
                                    "Bearer data-plane-token")
    assert body["client_request_id"] == "r-1" and body["dataframe_split"]["columns"] == spec.feature_names
    # Never the workspace's /serving-endpoints/<name>/invocations, which route-optimized endpoints do not serve.
    assert not any(p.startswith("/serving-endpoints/") for _, p, _, _ in workspace.calls)


def test_a_route_optimized_endpoint_with_a_personal_access_token_is_one_clear_error(spec):
    from databricks.sdk import WorkspaceClient

    workspace = RouteOptimizedWorkspace(spec.endpoint_name)
    with json_server(workspace.handle) as url:
        workspace.url = url
        client = WorkspaceClient(host=url, token="dapi-personal")
        rows = pd.DataFrame({c: ["x"] for c in spec.feature_names}).head(1)
        with pytest.raises(EndpointError, match=r"route-optimized and accepts OAuth tokens only.*DATABRICKS_CLIENT_ID"):
            query_endpoint(spec, rows, client=client)
    assert not any("invocations" in p for _, p, _, _ in workspace.calls)
