"""Alerts configuration from environment variables and a YAML/JSON file."""

import json

import pytest

from workloads.alerts import AlertConfigError, load_alerts_config


def test_nothing_configured_is_empty():
    config = load_alerts_config({})
    assert config.email is None and config.webhooks == [] and config.sns is None and config.outbox is None


def test_environment_variables():
    config = load_alerts_config({
        "MLOPS_ALERT_EMAILS": "a@example.com;b@example.com",
        "MLOPS_SMTP_HOST": "smtp.example.com",
        "MLOPS_SMTP_PORT": "465",
        "MLOPS_SMTP_SSL": "yes",
        "MLOPS_SMTP_USER": "mlops",
        "MLOPS_SMTP_PASSWORD": "pw",
        "MLOPS_SMTP_FROM": "noreply@example.com",
        "MLOPS_ALERT_WEBHOOK": "https://hooks.example.com/x",
        "MLOPS_ALERT_WEBHOOK_RETRIES": "4",
        "MLOPS_ALERT_SNS_TOPIC": "arn:aws:sns:eu-west-1:123456789012:alerts",
        "MLOPS_ALERT_OUTBOX": "off",
    })
    assert config.email.to == ["a@example.com", "b@example.com"]
    assert (config.email.host, config.email.port, config.email.ssl, config.email.starttls) == (
        "smtp.example.com", 465, True, False)
    assert config.email.sender == "noreply@example.com"
    assert config.email.password.get_secret_value() == "pw"
    assert "pw" not in repr(config)
    assert [(w.url, w.retries) for w in config.webhooks] == [("https://hooks.example.com/x", 4)]
    assert config.sns.topic_arn.endswith(":alerts")
    assert config.outbox is False


def test_yaml_file_with_environment_overrides(tmp_path):
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "alerts:\n"
        "  email:\n"
        "    to: [team@example.com]\n"
        "    host: smtp.internal\n"
        "    port: 587\n"
        "    from: mlops@example.com\n"
        "    starttls: true\n"
        "  webhook: https://hooks.example.com/from-file\n"
        "  sns:\n"
        "    topic_arn: arn:aws:sns:us-east-1:123456789012:file-topic\n"
        "    region: us-east-1\n"
    )
    config = load_alerts_config({
        "MLOPS_ALERTS_CONFIG": str(path),
        "MLOPS_SMTP_PASSWORD": "from-env",
        "MLOPS_SMTP_USER": "mlops",
        "MLOPS_ALERT_SNS_TOPIC": "arn:aws:sns:us-east-1:123456789012:env-topic",
    })
    assert config.email.to == ["team@example.com"]
    assert config.email.starttls is True and config.email.port == 587
    assert config.email.username == "mlops" and config.email.password.get_secret_value() == "from-env"
    assert [w.url for w in config.webhooks] == ["https://hooks.example.com/from-file"]
    assert config.sns.topic_arn.endswith(":env-topic") and config.sns.region == "us-east-1"


def test_json_file(tmp_path):
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps({"webhooks": [{"url": "http://127.0.0.1:9/x", "timeout": 1}], "outbox": True}))
    config = load_alerts_config({"MLOPS_ALERTS_CONFIG": str(path)})
    assert config.webhooks[0].timeout == 1 and config.outbox is True


def test_every_bad_key_is_named_at_once(tmp_path):
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "email: {to: [not-an-address], port: 0}\n"
        "webhook: ftp://example.com\n"
        "sns: {topic_arn: arn:aws:sns:eu-west-1:1:bad}\n"
        "slack: yes\n"
    )
    with pytest.raises(AlertConfigError) as info:
        load_alerts_config({"MLOPS_ALERTS_CONFIG": str(path)})
    message = str(info.value)
    for key in ("email.to: not an email", "email.port", "webhook.0.url", "sns.topic_arn", "slack: unknown key"):
        assert key in message, key
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MLOPS_ALERTS_CONFIG": "/nonexistent/alerts.yaml"}, "cannot read alerts config"),
        ({"MLOPS_SMTP_HOST": "smtp.example.com"}, "set MLOPS_ALERT_EMAILS"),
        ({"MLOPS_ALERT_EMAILS": "a@example.com", "MLOPS_SMTP_STARTTLS": "maybe"}, "MLOPS_SMTP_STARTTLS"),
        ({"MLOPS_ALERT_EMAILS": "a@example.com", "MLOPS_SMTP_PORT": "smtp"}, "email.port"),
        ({"MLOPS_ALERT_WEBHOOK_RETRIES": "2", "MLOPS_ALERT_WEBHOOK": "https://x.example.com/h"}, None),
    ],
)
def test_environment_errors(env, expected):
    if expected is None:
        assert load_alerts_config(env).webhooks[0].retries == 2
        return
    with pytest.raises(AlertConfigError, match=expected):
        load_alerts_config(env)


def test_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "alerts.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(AlertConfigError, match="must be a mapping"):
        load_alerts_config({"MLOPS_ALERTS_CONFIG": str(path)})
