"""Alerts: breach, failed validation, promotion, rollback and failure, sent to configured destinations.

Use ``notify(settings, kind, model, summary, details)`` from the watcher (never raises), or build an
``Alert`` and call ``send_alert(alert, destinations_from_settings(settings))``. Every destination is tried;
a failing one gives a ``DeliveryResult(ok=False)`` and a warning log line, and the others still deliver.

Destinations
------------
- **outbox**: one JSON line per alert in ``<home>/alerts.jsonl``; on by default for the local backend,
  off on Databricks (``MLOPS_ALERT_OUTBOX=true|false`` overrides). ``mlops alerts list`` reads it.
- **email**: SMTP (smtplib), plain-text body, ``X-Mlops-Kind/Model/Env`` headers.
- **webhook**: HTTP POST of ``{"text": subject, kind, model, env, summary, details, time, id}`` (httpx),
  per-attempt timeout, retries on connection errors, timeouts and 408/425/429/5xx with doubling backoff.
- **sns**: AWS SNS ``publish`` (boto3, usual credential chain) of the JSON payload, with ``kind``/``model``/
  ``env`` message attributes for subscription filter policies; region defaults to the ARN's.

Configuration
-------------
Environment variables (each wins over the file):

====================================  ===================================================================
``MLOPS_ALERTS_CONFIG``               path of a YAML or JSON file (below)
``MLOPS_ALERT_EMAILS``                recipients, comma separated; turns email on
``MLOPS_SMTP_HOST`` / ``_PORT``       SMTP server (default ``localhost:25``)
``MLOPS_SMTP_FROM``                   From address (default ``mlops@localhost``)
``MLOPS_SMTP_USER`` / ``_PASSWORD``   SMTP login
``MLOPS_SMTP_STARTTLS`` / ``_SSL``    ``true``/``false``: STARTTLS upgrade / implicit TLS (port 465)
``MLOPS_SMTP_TIMEOUT``                seconds (default 10)
``MLOPS_ALERT_WEBHOOK``               URL(s), comma separated; replaces the file's webhooks
``MLOPS_ALERT_WEBHOOK_TIMEOUT``       seconds per attempt (default 5)
``MLOPS_ALERT_WEBHOOK_RETRIES``       extra attempts (default 2, at most 5)
``MLOPS_ALERT_SNS_TOPIC``             topic ARN ``arn:aws:sns:<region>:<account>:<topic>``
``MLOPS_ALERT_SNS_REGION``            region (default: the ARN's)
``MLOPS_ALERT_OUTBOX``                ``true``/``false``
====================================  ===================================================================

File (every key optional; may also be nested under a top-level ``alerts:``)::

    email:
      to: [ml-team@example.com]
      host: smtp.example.com
      port: 587
      from: mlops@example.com
      starttls: true
      username: mlops
      password: ...            # prefer MLOPS_SMTP_PASSWORD
    webhook: https://hooks.example.com/T000/B000/XXXX   # or {url, timeout, retries, backoff, headers}, or a list
    sns:
      topic_arn: arn:aws:sns:eu-west-1:123456789012:mlops-alerts
    outbox: true

Unknown keys and bad values fail with one ``AlertConfigError`` naming every bad key.
"""

from workloads.alerts.alert import KIND_TITLES, Alert, AlertKind, DeliveryResult
from workloads.alerts.config import (
    AlertConfigError,
    AlertsConfig,
    EmailConfig,
    SnsConfig,
    WebhookConfig,
    load_alerts_config,
)
from workloads.alerts.email import EmailDestination
from workloads.alerts.outbox import OutboxDestination, outbox_path, read_outbox
from workloads.alerts.send import (
    Destination,
    destinations_from_config,
    destinations_from_settings,
    notify,
    send_alert,
)
from workloads.alerts.sns import SnsDestination
from workloads.alerts.webhook import WebhookDestination

__all__ = [
    "KIND_TITLES",
    "Alert",
    "AlertConfigError",
    "AlertKind",
    "AlertsConfig",
    "DeliveryResult",
    "Destination",
    "EmailConfig",
    "EmailDestination",
    "OutboxDestination",
    "SnsConfig",
    "SnsDestination",
    "WebhookConfig",
    "WebhookDestination",
    "destinations_from_config",
    "destinations_from_settings",
    "load_alerts_config",
    "notify",
    "outbox_path",
    "read_outbox",
    "send_alert",
]
