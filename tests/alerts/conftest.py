"""Local stand-ins for the alert channels: an SMTP server, an HTTP server, a closed port."""

import threading
from email import message_from_bytes, policy

import pytest

from tests.fakes import free_port, json_server
from workloads.alerts import Alert

ALERT_ENV_VARS = [
    "MLOPS_ALERTS_CONFIG", "MLOPS_ALERT_EMAILS", "MLOPS_SMTP_HOST", "MLOPS_SMTP_PORT", "MLOPS_SMTP_USER",
    "MLOPS_SMTP_PASSWORD", "MLOPS_SMTP_STARTTLS", "MLOPS_SMTP_SSL", "MLOPS_SMTP_FROM", "MLOPS_SMTP_TIMEOUT",
    "MLOPS_ALERT_WEBHOOK", "MLOPS_ALERT_WEBHOOK_TIMEOUT", "MLOPS_ALERT_WEBHOOK_RETRIES",
    "MLOPS_ALERT_SNS_TOPIC", "MLOPS_ALERT_SNS_REGION", "MLOPS_ALERT_OUTBOX",
]


@pytest.fixture(autouse=True)
def clean_alert_env(monkeypatch):
    """No alert configuration leaks in from the machine running the tests."""
    for name in ALERT_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 where nothing listens."""
    return free_port()


@pytest.fixture
def alert():
    return Alert(
        kind="breach",
        model="bakehouse_autolog",
        env="dev",
        summary="rmse 3.41 above max 2.5 on window 2026-11-26 13:00",
        details={"rmse": 3.41, "threshold": 2.5, "direction": "max", "champion_version": 3},
    )


class SmtpRecorder:
    """aiosmtpd handler keeping each received message."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message": message_from_bytes(envelope.original_content, policy=policy.default),
        })
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append((mechanism, auth_data.login.decode(), auth_data.password.decode()))
        ok = auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_factory():
    """Start real SMTP servers on 127.0.0.1: ``smtp_factory(**smtp_kwargs) -> recorder`` (``.port`` set)."""
    from aiosmtpd.controller import Controller

    controllers = []

    def start(**smtp_kwargs):
        recorder = SmtpRecorder()
        smtp_kwargs.setdefault("auth_require_tls", False)
        controller = Controller(recorder, hostname="127.0.0.1", port=free_port(),
                                authenticator=recorder.authenticate, ready_timeout=5, **smtp_kwargs)
        controller.start()
        controllers.append(controller)
        recorder.port = controller.port
        return recorder

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


@pytest.fixture
def smtp_server(smtp_factory):
    """A plain SMTP server (AUTH allowed without TLS, for the test only)."""
    return smtp_factory()


class WebhookRecorder:
    """What the local HTTP server received; ``statuses`` scripts the replies (then 200)."""

    def __init__(self):
        self.requests = []
        self.statuses = []
        self.lock = threading.Lock()


@pytest.fixture
def webhook_server():
    recorder = WebhookRecorder()

    def handle(method, path, query, body, headers):
        with recorder.lock:
            recorder.requests.append({"path": path, "headers": dict(headers), "json": body})
            status = recorder.statuses.pop(0) if recorder.statuses else 200
        return status, {"ok": True} if status < 400 else {"error": "nope"}

    with json_server(handle) as url:
        recorder.url = f"{url}/hooks/T000/secret-token"
        yield recorder


@pytest.fixture
def aws(monkeypatch):
    """Fake AWS credentials and region, so boto3 never reaches a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
