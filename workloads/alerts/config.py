"""Alert destinations configuration: a YAML/JSON file and/or ``MLOPS_ALERT*`` / ``MLOPS_SMTP_*`` variables.

See the ``workloads.alerts`` package docstring for every key and variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from workloads.errors import MlopsError

CONFIG_ENV = "MLOPS_ALERTS_CONFIG"
_ARN = re.compile(r"^arn:aws[a-z\-]*:sns:([a-z0-9\-]+):\d{12}:[A-Za-z0-9_\-]{1,256}(\.fifo)?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class AlertConfigError(MlopsError):
    """The alert destinations configuration is invalid; the message names every bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EmailConfig(_Strict):
    """SMTP delivery to a list of recipients."""

    to: list[str] = Field(min_length=1, description="Recipients.")
    host: str = Field("localhost", description="SMTP server host.")
    port: int = Field(25, ge=1, le=65535, description="SMTP server port.")
    sender: str = Field("mlops@localhost", alias="from", description="From address.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS before sending.")
    ssl: bool = Field(False, description="Connect with implicit TLS (SMTPS, usually port 465).")
    username: str | None = Field(None, description="SMTP login user (with password).")
    password: SecretStr | None = Field(None, description="SMTP login password.")
    timeout: float = Field(10.0, gt=0, le=120, description="Seconds per SMTP operation.")

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_list(value) if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if "@" not in a]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return value


class WebhookConfig(_Strict):
    """HTTP POST of the alert as JSON."""

    url: str = Field(description="http(s) URL receiving the POST.")
    timeout: float = Field(5.0, gt=0, le=60, description="Seconds per attempt.")
    retries: int = Field(2, ge=0, le=5, description="Extra attempts on connection errors, timeouts, 408/429/5xx.")
    backoff: float = Field(0.5, ge=0, le=10, description="Seconds before the first retry; doubles each retry.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (e.g. auth).")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value


class SnsConfig(_Strict):
    """AWS SNS ``publish`` to a topic (credentials from the usual boto3 chain)."""

    topic_arn: str = Field(description="arn:aws:sns:<region>:<account>:<topic>")
    region: str | None = Field(None, description="AWS region; default: the topic ARN's region.")
    timeout: float = Field(10.0, gt=0, le=60, description="Seconds for connect and for read.")

    @field_validator("topic_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _ARN.match(value):
            raise ValueError(f"must look like arn:aws:sns:<region>:<12-digit account>:<topic>, got {value!r}")
        return value

    @property
    def effective_region(self) -> str:
        return self.region or self.topic_arn.split(":")[3]


class AlertsConfig(_Strict):
    """Where alerts go. ``outbox=None`` means: on for the local backend, off on Databricks."""

    email: EmailConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list, alias="webhook")
    sns: SnsConfig | None = None
    outbox: bool | None = None

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhook_forms(cls, value: Any) -> Any:
        # Accept a URL, a mapping, or a list of either, so the simple case stays one line.
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return [{"url": item} if isinstance(item, str) else item for item in items]


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;\s]+", text) if part.strip()]


def _parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AlertConfigError(f"{name} must be true or false, got {text!r}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertConfigError(f"cannot read alerts config {path} ({exc.strerror}); fix {CONFIG_ENV}")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise AlertConfigError(f"alerts config {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AlertConfigError(f"alerts config {path} must be a mapping of destinations, got {type(data).__name__}")
    # Allow the file to nest everything under a top-level `alerts:` key (as in a stack config).
    if set(data) == {"alerts"} and isinstance(data["alerts"], dict):
        data = data["alerts"]
    return dict(data)


def _overlay_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Environment variables on top of the file: each set variable wins over the file's key."""
    smtp = {
        "host": env.get("MLOPS_SMTP_HOST"),
        "port": env.get("MLOPS_SMTP_PORT"),
        "username": env.get("MLOPS_SMTP_USER"),
        "password": env.get("MLOPS_SMTP_PASSWORD"),
        "from": env.get("MLOPS_SMTP_FROM"),
        "timeout": env.get("MLOPS_SMTP_TIMEOUT"),
    }
    smtp = {k: v for k, v in smtp.items() if v}
    for flag in ("starttls", "ssl"):
        name = f"MLOPS_SMTP_{flag.upper()}"
        if env.get(name):
            smtp[flag] = _parse_bool(name, env[name])
    recipients = env.get("MLOPS_ALERT_EMAILS")
    if recipients or (smtp and data.get("email")):
        email = dict(data.get("email") or {})
        if recipients:
            email["to"] = _split_list(recipients)
        email.update(smtp)
        data["email"] = email
    elif smtp:
        raise AlertConfigError("MLOPS_SMTP_* is set but there are no recipients; set MLOPS_ALERT_EMAILS=a@x,b@y")

    if env.get("MLOPS_ALERT_WEBHOOK"):
        hook: dict[str, Any] = {}
        if env.get("MLOPS_ALERT_WEBHOOK_TIMEOUT"):
            hook["timeout"] = env["MLOPS_ALERT_WEBHOOK_TIMEOUT"]
        if env.get("MLOPS_ALERT_WEBHOOK_RETRIES"):
            hook["retries"] = env["MLOPS_ALERT_WEBHOOK_RETRIES"]
        data.pop("webhooks", None)
        data["webhook"] = [{"url": url, **hook} for url in _split_list(env["MLOPS_ALERT_WEBHOOK"])]

    if env.get("MLOPS_ALERT_SNS_TOPIC"):
        sns = dict(data.get("sns") or {}) if isinstance(data.get("sns"), dict) else {}
        sns["topic_arn"] = env["MLOPS_ALERT_SNS_TOPIC"]
        if env.get("MLOPS_ALERT_SNS_REGION"):
            sns["region"] = env["MLOPS_ALERT_SNS_REGION"]
        data["sns"] = sns

    if env.get("MLOPS_ALERT_OUTBOX"):
        data["outbox"] = _parse_bool("MLOPS_ALERT_OUTBOX", env["MLOPS_ALERT_OUTBOX"])
    return data


def load_alerts_config(environ: Mapping[str, str] | None = None) -> AlertsConfig:
    """The alerts configuration: the ``MLOPS_ALERTS_CONFIG`` file (if set), overlaid by environment variables.

    Args:
        environ: Variables to read instead of ``os.environ`` (tests).

    Returns:
        The validated configuration (empty when nothing is configured).

    Raises:
        AlertConfigError: The file is missing or unreadable, or any key is invalid (all named at once).
    """
    env = os.environ if environ is None else environ
    source = "environment"
    data: dict[str, Any] = {}
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV]).expanduser()
        data = _read_file(path)
        source = f"{path} + environment"
    data = _overlay_env(data, env)
    try:
        return AlertsConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{key}: {message.removeprefix('Value error, ')}")
        raise AlertConfigError(f"invalid alerts config ({source}): " + "; ".join(problems)) from None
