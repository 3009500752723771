"""Deliver an alert to every destination; a failing destination is reported, never raised."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from workloads.alerts.alert import Alert, DeliveryResult
from workloads.alerts.config import AlertConfigError, AlertsConfig, load_alerts_config
from workloads.alerts.email import EmailDestination
from workloads.alerts.outbox import OutboxDestination, outbox_path
from workloads.alerts.sns import SnsDestination
from workloads.alerts.webhook import WebhookDestination
from workloads.settings import Settings

log = logging.getLogger("workloads.alerts")


class Destination(Protocol):
    """Somewhere an alert can go. ``deliver`` returns a short detail or raises."""

    kind: str

    @property
    def target(self) -> str: ...

    def deliver(self, alert: Alert) -> str: ...


def destinations_from_config(config: AlertsConfig, settings: Settings) -> list[Destination]:
    """Destinations for a configuration: outbox (if on), email, each webhook, SNS."""
    destinations: list[Destination] = []
    outbox = config.outbox if config.outbox is not None else settings.backend == "local"
    if outbox:
        destinations.append(OutboxDestination(outbox_path(settings.home)))
    if config.email:
        destinations.append(EmailDestination(config.email))
    destinations.extend(WebhookDestination(hook) for hook in config.webhooks)
    if config.sns:
        destinations.append(SnsDestination(config.sns))
    return destinations


def destinations_from_settings(settings: Settings, config: AlertsConfig | None = None) -> list[Destination]:
    """The configured destinations (from ``MLOPS_ALERTS_CONFIG`` / ``MLOPS_ALERT*`` unless ``config`` given).

    Raises:
        AlertConfigError: The configuration is invalid.
    """
    return destinations_from_config(config or load_alerts_config(), settings)


def send_alert(alert: Alert, destinations: Sequence[Destination]) -> list[DeliveryResult]:
    """Try every destination in turn; never raises.

    Args:
        alert: What to send.
        destinations: Where to send it.

    Returns:
        One ``DeliveryResult`` per destination, in order; failures have ``ok=False`` and the error as detail
        (and are logged as a warning).
    """
    results = []
    for destination in destinations:
        kind = getattr(destination, "kind", type(destination).__name__)
        try:
            target = str(destination.target)
        except Exception as exc:  # noqa: BLE001 - a broken destination must not stop the others
            target = f"<{type(exc).__name__}>"
        began = time.perf_counter()
        try:
            detail = destination.deliver(alert)
            ok = True
        except Exception as exc:  # noqa: BLE001 - delivery failures are reported, not raised
            ok, detail = False, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        elapsed = (time.perf_counter() - began) * 1000
        results.append(DeliveryResult(kind, target, ok, str(detail), round(elapsed, 1)))
        if ok:
            log.info("alert %s (%s %s) delivered to %s %s", alert.id, alert.kind, alert.model, kind, target)
        else:
            log.warning("alert %s (%s %s) NOT delivered to %s %s: %s",
                        alert.id, alert.kind, alert.model, kind, target, detail)
    return results


def notify(settings: Settings, kind: str, model: str, summary: str, details: dict[str, Any] | None = None,
           env: str | None = None) -> list[DeliveryResult]:
    """Build an alert and send it to the configured destinations; never raises.

    A bad alerts configuration is itself reported as a failed ``config`` result (and logged), while the
    alert still goes to the local outbox when that is on by default.

    Args:
        settings: Runtime settings (backend, home, env).
        kind: ``breach``, ``validation_failed``, ``promotion``, ``rollback``, ``failure`` or ``test``.
        model: Model spec name.
        summary: One line saying what happened and why.
        details: Metrics, versions, reasons.
        env: Environment; default ``settings.env``.

    Returns:
        One ``DeliveryResult`` per destination tried.
    """
    alert = Alert(kind=kind, model=model, env=env or settings.env, summary=summary, details=details or {})
    try:
        destinations = destinations_from_settings(settings)
    except AlertConfigError as exc:
        log.warning("alerts config invalid, only the default outbox is used: %s", exc)
        fallback = destinations_from_config(AlertsConfig(), settings)
        return [DeliveryResult("config", "MLOPS_ALERTS_CONFIG / MLOPS_ALERT*", False, str(exc))] + send_alert(
            alert, fallback
        )
    return send_alert(alert, destinations)
