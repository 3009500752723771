"""``--days-ahead`` on a running endpoint: ``mlops drift simulate`` sends through the endpoint's loopback-only
days-ahead route, so its requests land in a later window while the endpoint keeps logging everyone else at its
own time; ``drift reset`` then removes exactly the simulation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from workloads.cli import main
from workloads.drift import PREFIX
from workloads.labels import pending_labels_table
from workloads.ports.tables import get_tables
from workloads.serving.app import days_ahead_url
from workloads.serving.running import record_running
from workloads.specs import REQUEST_ID_COLUMN


def _payload(settings, spec) -> pd.DataFrame:
    return get_tables(settings).read(settings.table(spec.payload_table))


def test_days_ahead_url_prefixes_the_path_of_a_base_or_invocations_url():
    assert days_ahead_url("http://127.0.0.1:8080", 2) == "http://127.0.0.1:8080/mlops/days-ahead/2.0"
    assert days_ahead_url("http://127.0.0.1:8080/serving-endpoints/m/invocations/", 0.5) == (
        "http://127.0.0.1:8080/mlops/days-ahead/0.5/serving-endpoints/m/invocations")
    assert days_ahead_url("http://127.0.0.1:8080", 0) == "http://127.0.0.1:8080"


def test_the_days_ahead_route_moves_only_its_own_requests_and_refuses_bad_days(server, serving_settings, spec,
                                                                               holdout):
    body = {"dataframe_records": holdout[spec.feature_names].head(2).to_dict(orient="records")}
    plain = f"{server.url}/serving-endpoints/{spec.endpoint_name}/invocations"
    later = f"{days_ahead_url(server.url, 3)}/serving-endpoints/{spec.endpoint_name}/invocations"
    mlflow_route = f"{days_ahead_url(server.url, 1.5)}/invocations"
    before = datetime.now(UTC)
    with httpx.Client(timeout=30) as client:
        answers = {name: client.post(url, json={**body, "client_request_id": name})
                   for name, url in (("today", plain), ("in-3-days", later), ("in-36-hours", mlflow_route))}
        refused = client.post(f"{server.url}/mlops/days-ahead/soon/invocations",
                              json={**body, "client_request_id": "bad-days"})
        negative = client.post(f"{server.url}/mlops/days-ahead/-1.0/invocations", json=body)
        wrong_endpoint = client.post(f"{days_ahead_url(server.url, 1)}/serving-endpoints/other/invocations", json=body)
    after = datetime.now(UTC)
    assert {name: r.status_code for name, r in answers.items()} == {"today": 200, "in-3-days": 200, "in-36-hours": 200}
    assert answers["today"].json() == answers["in-3-days"].json()  # scored the same
    assert refused.status_code == 400 and refused.json() == {
        "error_code": "INVALID_PARAMETER_VALUE", "message": "days ahead must be a number from 0 to 3660, got 'soon'"}
    assert negative.status_code == 400 and wrong_endpoint.status_code == 404
    server.flush()

    logged = _payload(serving_settings, spec).set_index("client_request_id")
    times = pd.to_datetime(logged["request_time"], utc=True)
    assert before <= times["today"] <= after
    assert before + timedelta(days=3) <= times["in-3-days"] <= after + timedelta(days=3)
    assert before + timedelta(hours=36) <= times["in-36-hours"] <= after + timedelta(hours=36)
    # A refused request is logged like every other, at the endpoint's own time.
    assert logged.loc["bad-days", "status_code"] == 400 and before <= times["bad-days"] <= after


def test_the_days_ahead_route_refuses_a_client_that_is_not_loopback(serving_settings, spec, holdout):
    from workloads.serving.server import _components

    champion, logger, app = _components(serving_settings, spec, lambda: datetime.now(UTC), 60.0, 60.0, False,
                                        1 << 20)
    try:
        body = {"dataframe_records": holdout[spec.feature_names].head(1).to_dict(orient="records")}
        with TestClient(app, client=("10.1.2.3", 50000)) as remote:
            answer = remote.post(f"/mlops/days-ahead/1/serving-endpoints/{spec.endpoint_name}/invocations",
                                 json={**body, "client_request_id": "remote"})
            ordinary = remote.post(f"/serving-endpoints/{spec.endpoint_name}/invocations", json=body)
    finally:
        champion.stop()
        logger.close()
    assert answer.status_code == 403
    assert answer.json() == {"error_code": "PERMISSION_DENIED", "message": "/mlops/days-ahead/... is accepted only "
                             "from 127.0.0.1 or ::1 (this request came from 10.1.2.3)"}
    assert ordinary.status_code == 200  # the usual routes serve any client
    logged = _payload(serving_settings, spec)
    assert logged.loc[logged["client_request_id"] == "remote", "status_code"].tolist() == [403]


@pytest.mark.parametrize("kind", ["covariate", "concept"])
def test_drift_simulate_days_ahead_on_the_running_serve_lands_later_and_reset_removes_exactly_it(
        server, serving_settings, spec, holdout, capsys, kind):
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse
    from workloads.traffic import send_traffic

    home = str(serving_settings.home)
    write_bakehouse(serving_settings, generate(seed=42))  # the spec's source: the simulation sends its serving pool
    record_running(serving_settings, spec.name, server.url)  # as `mlops serve` does when it is ready
    ordinary = send_traffic(server.url, spec, holdout, n=4, batch_size=2, seed=1, settings=serving_settings)
    assert ordinary.ok == 4
    before = datetime.now(UTC)

    assert main(["--home", home, "drift", "simulate", "-m", spec.name, "--kind", kind, "--days-ahead", "2",
                 "--requests", "6", "--batch-size", "3"]) == 0
    after = datetime.now(UTC)
    out = " ".join(capsys.readouterr().out.split())
    assert f"sending to the running `mlops serve` at {server.url}" in out
    assert "6 requests, 18 rows, 0 failed" in out and "(2 days ahead)" in out
    server.flush()

    payload = _payload(serving_settings, spec)
    simulated = payload["client_request_id"].fillna("").str.startswith(PREFIX)
    times = pd.to_datetime(payload["request_time"], utc=True)
    assert simulated.sum() == 6 and (payload.loc[simulated, "status_code"] == 200).all()
    assert times[simulated].between(before + timedelta(days=2), after + timedelta(days=2)).all()
    assert times[~simulated].max() <= after  # the endpoint's other traffic keeps its own time
    pending = get_tables(serving_settings).read(settings_table := serving_settings.table(pending_labels_table(spec)))
    assert pending[REQUEST_ID_COLUMN].str.startswith(PREFIX).sum() == 18  # its labels, recorded

    kept_payload = payload[~simulated].sort_values("databricks_request_id").reset_index(drop=True)
    kept_pending = pending[~pending[REQUEST_ID_COLUMN].str.startswith(PREFIX)].sort_values(REQUEST_ID_COLUMN)
    assert main(["--home", home, "drift", "reset", "-m", spec.name]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{serving_settings.table(spec.payload_table)}: 6 simulated rows deleted" in out
    assert f"{settings_table}: 18 simulated rows deleted" in out and "1 simulation runs deleted" in out
    after_reset = _payload(serving_settings, spec).sort_values("databricks_request_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after_reset, kept_payload, check_dtype=False)
    left = get_tables(serving_settings).read(settings_table).sort_values(REQUEST_ID_COLUMN)
    pd.testing.assert_frame_equal(left.reset_index(drop=True), kept_pending.reset_index(drop=True), check_dtype=False)


def test_drift_simulate_refuses_options_its_kind_ignores(serving_settings, spec, capsys):
    assert main(["--home", str(serving_settings.home), "drift", "simulate", "-m", spec.name, "--kind", "covariate",
                 "--scale", "2"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err == (f"error: scale (--scale) do not apply to covariate drift ({spec.name}); it reads category_mass "
                   "(--category-mass), category_share (--category-share), features (--feature), shift (--shift)")


def test_drift_simulate_sends_the_default_size_and_days_ahead_0_is_now(server, serving_settings, spec):
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse
    from workloads.drift import default_requests, drifted_frame, rows_to_judge, simulate

    write_bakehouse(serving_settings, generate(seed=42))  # the spec's source
    frame = drifted_frame(serving_settings, spec, "covariate", seed=7)
    # The widest categorical feature is the franchise (47 or 48 of them in the serving pool), 5 rows per category each.
    assert rows_to_judge(spec, frame) == 5 * frame["franchise_name"].nunique() > 200
    before = datetime.now(UTC)

    result = simulate(serving_settings, spec, kind="covariate", url=server.url, days_ahead=0)

    assert result.requests == default_requests(spec, frame) and result.rows >= rows_to_judge(spec, frame)
    assert result.failed == 0 and result.days_ahead == 0
    server.flush()
    payload = _payload(serving_settings, spec)
    simulated = payload[payload["client_request_id"].str.startswith(f"{PREFIX}{result.simulation_id}-")]
    assert len(simulated) == result.requests
    assert pd.to_datetime(simulated["request_time"], utc=True).between(before, datetime.now(UTC)).all()
