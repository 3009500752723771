"""Webhook destination against a local HTTP server."""

from workloads.alerts import WebhookConfig, WebhookDestination, send_alert


def test_webhook_receives_the_alert_as_json(webhook_server, alert):
    config = WebhookConfig(url=webhook_server.url, headers={"Authorization": "Bearer t0ken"}, timeout=2)
    [result] = send_alert(alert, [WebhookDestination(config)])

    assert result.ok, result.detail
    assert result.detail == "HTTP 200 (attempt 1/3)"
    assert result.target.endswith("/…") and "secret-token" not in result.target
    [request] = webhook_server.requests
    assert request["path"] == "/hooks/T000/secret-token"
    assert request["headers"]["Authorization"] == "Bearer t0ken"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["json"]
    assert body["kind"] == "breach"
    assert body["model"] == "bakehouse_autolog"
    assert body["env"] == "dev"
    assert body["summary"] == alert.summary
    assert body["details"] == {"rmse": 3.41, "threshold": 2.5, "direction": "max", "champion_version": 3}
    assert body["id"] == alert.id
    assert body["time"] == alert.time.isoformat()
    assert body["text"] == alert.subject()


def test_webhook_retries_transient_errors_then_delivers(webhook_server, alert):
    webhook_server.statuses = [503, 429]
    config = WebhookConfig(url=webhook_server.url, retries=2, backoff=0.01, timeout=2)
    [result] = send_alert(alert, [WebhookDestination(config)])
    assert result.ok, result.detail
    assert result.detail == "HTTP 200 (attempt 3/3)"
    assert len(webhook_server.requests) == 3
    assert {r["json"]["id"] for r in webhook_server.requests} == {alert.id}


def test_webhook_retry_is_bounded(webhook_server, alert):
    webhook_server.statuses = [500] * 10
    config = WebhookConfig(url=webhook_server.url, retries=1, backoff=0.01, timeout=2)
    [result] = send_alert(alert, [WebhookDestination(config)])
    assert not result.ok
    assert result.detail == "WebhookError: gave up after 2 attempt(s): HTTP 500"
    assert len(webhook_server.requests) == 2


def test_webhook_client_error_is_not_retried(webhook_server, alert):
    webhook_server.statuses = [404]
    config = WebhookConfig(url=webhook_server.url, retries=3, backoff=0.01, timeout=2)
    [result] = send_alert(alert, [WebhookDestination(config)])
    assert not result.ok
    assert result.detail.startswith("WebhookError: HTTP 404 (not retried)")
    assert len(webhook_server.requests) == 1


def test_webhook_closed_port_reported_after_retries(closed_port, alert):
    config = WebhookConfig(url=f"http://127.0.0.1:{closed_port}/hook", retries=1, backoff=0.01, timeout=1)
    [result] = send_alert(alert, [WebhookDestination(config)])
    assert not result.ok
    assert "gave up after 2 attempt(s): ConnectError" in result.detail
