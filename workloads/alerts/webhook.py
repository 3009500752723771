"""Webhook destination: the alert POSTed as JSON (httpx), with a timeout and a bounded retry."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx

from workloads.alerts.alert import Alert
from workloads.alerts.config import WebhookConfig

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class WebhookError(Exception):
    """The webhook did not accept the alert."""


class WebhookDestination:
    """POSTs ``{"text": <subject>, **alert.payload()}``; ``text`` makes Slack-style hooks show a line."""

    kind = "webhook"

    def __init__(self, config: WebhookConfig):
        self.config = config

    @property
    def target(self) -> str:
        # Webhook paths often embed a secret token: show only scheme, host and port.
        parts = urlsplit(self.config.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/…" if parts.path.strip("/") else f"{parts.scheme}://{host}{port}"

    def body(self, alert: Alert) -> dict:
        return {"text": alert.subject(), **alert.payload()}

    def deliver(self, alert: Alert) -> str:
        """POST the alert; retries connection errors, timeouts and 408/425/429/5xx, then raises."""
        cfg = self.config
        headers = {"User-Agent": "lakehouse-mlops-alerts", **cfg.headers}
        attempts = cfg.retries + 1
        last = ""
        with httpx.Client(timeout=cfg.timeout, headers=headers, follow_redirects=False) as client:
            for attempt in range(1, attempts + 1):
                try:
                    response = client.post(cfg.url, json=self.body(alert))
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if response.is_success:
                        return f"HTTP {response.status_code} (attempt {attempt}/{attempts})"
                    last = f"HTTP {response.status_code}"
                    if response.status_code not in _RETRY_STATUS:
                        raise WebhookError(f"{last} (not retried): {response.text[:200]}")
                if attempt < attempts:
                    time.sleep(cfg.backoff * 2 ** (attempt - 1))
        raise WebhookError(f"gave up after {attempts} attempt(s): {last}")
