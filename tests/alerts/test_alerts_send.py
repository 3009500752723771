"""send_alert / notify: every destination tried, dead channels reported, never raised; the outbox."""

import json
import logging

import boto3
from moto import mock_aws

from workloads.alerts import (
    Alert,
    AlertsConfig,
    EmailDestination,
    OutboxDestination,
    SnsDestination,
    WebhookDestination,
    destinations_from_settings,
    notify,
    outbox_path,
    read_outbox,
    send_alert,
)
from workloads.settings import load_settings


def test_dead_channels_are_reported_and_the_others_still_deliver(
    settings, smtp_server, webhook_server, closed_port, aws, alert, caplog, monkeypatch
):
    with mock_aws():
        topic_arn = boto3.client("sns", region_name="eu-west-1").create_topic(Name="alerts")["TopicArn"]
        config = AlertsConfig.model_validate({
            "email": {"to": ["a@example.com"], "host": "127.0.0.1", "port": smtp_server.port, "timeout": 5},
            "webhook": [
                {"url": f"http://127.0.0.1:{closed_port}/dead", "retries": 1, "backoff": 0.01, "timeout": 1},
                {"url": webhook_server.url, "timeout": 2},
            ],
            "sns": {"topic_arn": topic_arn.replace(":alerts", ":deleted-topic")},
        })
        destinations = destinations_from_settings(settings, config)
        dead_email = EmailDestination(config.email.model_copy(update={"port": closed_port, "timeout": 1}))
        live_sns = SnsDestination(config.sns.model_copy(update={"topic_arn": topic_arn}))
        with caplog.at_level(logging.WARNING, logger="workloads.alerts"):
            results = send_alert(alert, [dead_email, *destinations, live_sns])

    assert [(r.destination, r.ok) for r in results] == [
        ("email", False),
        ("outbox", True),
        ("email", True),
        ("webhook", False),
        ("webhook", True),
        ("sns", False),
        ("sns", True),
    ]
    assert len(smtp_server.messages) == 1
    assert len(webhook_server.requests) == 1
    assert [a.id for a in read_outbox(settings.home)] == [alert.id]
    failures = [r for r in caplog.records if "NOT delivered" in r.getMessage()]
    assert len(failures) == 3
    assert all(alert.id in r.getMessage() for r in failures)


def test_a_destination_raising_anything_does_not_stop_the_rest(settings, alert):
    class Broken:
        kind = "broken"

        @property
        def target(self):
            raise RuntimeError("no target")

        def deliver(self, alert):
            raise KeyboardInterruptLike("boom")

    class KeyboardInterruptLike(Exception):
        pass

    outbox = OutboxDestination(outbox_path(settings.home))
    results = send_alert(alert, [Broken(), outbox])
    assert [(r.destination, r.ok) for r in results] == [("broken", False), ("outbox", True)]
    assert results[0].detail == "KeyboardInterruptLike: boom"
    assert results[0].target == "<RuntimeError>"


def test_outbox_is_on_for_local_and_off_for_databricks(home, monkeypatch):
    local = load_settings(home=home)
    assert [d.kind for d in destinations_from_settings(local)] == ["outbox"]
    remote = load_settings(home=home, backend="databricks")
    assert destinations_from_settings(remote) == []
    monkeypatch.setenv("MLOPS_ALERT_OUTBOX", "true")
    assert [d.kind for d in destinations_from_settings(remote)] == ["outbox"]
    monkeypatch.setenv("MLOPS_ALERT_OUTBOX", "false")
    assert destinations_from_settings(local) == []


def test_destinations_from_environment(settings, monkeypatch):
    monkeypatch.setenv("MLOPS_ALERT_EMAILS", "a@example.com, b@example.com")
    monkeypatch.setenv("MLOPS_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("MLOPS_SMTP_PORT", "587")
    monkeypatch.setenv("MLOPS_SMTP_STARTTLS", "true")
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", "https://hooks.example.com/a,https://hooks.example.com/b")
    monkeypatch.setenv("MLOPS_ALERT_SNS_TOPIC", "arn:aws:sns:eu-west-1:123456789012:alerts")
    kinds = [(d.kind, d.target) for d in destinations_from_settings(settings)]
    assert kinds == [
        ("outbox", str(settings.home / "alerts.jsonl")),
        ("email", "smtp://smtp.example.com:587 -> a@example.com, b@example.com"),
        ("webhook", "https://hooks.example.com/…"),
        ("webhook", "https://hooks.example.com/…"),
        ("sns", "arn:aws:sns:eu-west-1:123456789012:alerts"),
    ]


def test_notify_writes_the_outbox_and_reads_back(settings):
    results = notify(settings, "promotion", "bakehouse_autolog", "v4 replaces v3: rmse 2.1 < 3.4",
                     {"from_version": 3, "to_version": 4})
    notify(settings, "rollback", "other_model", "champion back to v2")
    notify(settings, "breach", "bakehouse_autolog", "r2 0.41 below min 0.6", env="prod")

    assert [(r.destination, r.ok) for r in results] == [("outbox", True)]
    lines = outbox_path(settings.home).read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["kind"] == "promotion" and first["details"] == {"from_version": 3, "to_version": 4}
    assert [a.kind for a in read_outbox(settings.home)] == ["promotion", "rollback", "breach"]
    assert [a.kind for a in read_outbox(settings.home, n=2)] == ["rollback", "breach"]
    assert [a.env for a in read_outbox(settings.home, model="bakehouse_autolog")] == ["dev", "prod"]
    assert [a.model for a in read_outbox(settings.home, kind="rollback")] == ["other_model"]
    assert read_outbox(settings.home, n=0) == []


def test_notify_with_bad_config_reports_it_and_still_uses_the_outbox(settings, monkeypatch, caplog):
    monkeypatch.setenv("MLOPS_ALERT_SNS_TOPIC", "not-an-arn")
    with caplog.at_level(logging.WARNING, logger="workloads.alerts"):
        results = notify(settings, "failure", "m", "evaluate step crashed")
    assert [(r.destination, r.ok) for r in results] == [("config", False), ("outbox", True)]
    assert "sns.topic_arn" in results[0].detail
    assert len(read_outbox(settings.home)) == 1
    assert any("alerts config invalid" in r.getMessage() for r in caplog.records)


def test_outbox_skips_torn_lines(settings, alert, caplog):
    outbox = OutboxDestination(outbox_path(settings.home))
    outbox.deliver(alert)
    with outbox_path(settings.home).open("a") as handle:
        handle.write('{"kind": "breach", "mod\n')
    outbox.deliver(alert.model_copy(update={"id": "second"}))
    with caplog.at_level(logging.WARNING, logger="workloads.alerts"):
        assert [a.id for a in read_outbox(settings.home)] == [alert.id, "second"]
    assert any("line 2" in r.getMessage() for r in caplog.records)


def test_alert_payload_is_plain_json():
    import numpy as np

    alert = Alert(kind="validation_failed", model="m", env="dev", summary="challenger\nworse",
                  details={"rmse": np.float64(2.5), "n": np.int64(3), "nan": float("nan"), "v": {1, 2}})
    payload = alert.payload()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert payload["details"] == {"rmse": 2.5, "n": 3, "nan": None, "v": [1, 2]}
    assert alert.summary == "challenger worse"
    assert alert.subject() == "[mlops dev] challenger failed validation: m - challenger worse"
    assert Alert.from_payload(payload).id == alert.id


def test_webhook_destination_target_without_path():
    from workloads.alerts import WebhookConfig

    assert WebhookDestination(WebhookConfig(url="http://127.0.0.1:8080")).target == "http://127.0.0.1:8080"
