"""Email destination: the alert as a plain-text message over SMTP (smtplib)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from workloads.alerts.alert import Alert
from workloads.alerts.config import EmailConfig


class EmailDestination:
    """Sends each alert as one email to every configured recipient."""

    kind = "email"

    def __init__(self, config: EmailConfig):
        self.config = config

    @property
    def target(self) -> str:
        return f"smtp://{self.config.host}:{self.config.port} -> {', '.join(self.config.to)}"

    def message(self, alert: Alert) -> EmailMessage:
        """The email for ``alert`` (headers ``X-Mlops-*`` let mail rules filter by kind/model/env)."""
        msg = EmailMessage()
        msg["Subject"] = alert.subject()
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = format_datetime(alert.time)
        msg["Message-ID"] = make_msgid(idstring=alert.id, domain="mlops")
        msg["X-Mlops-Kind"] = alert.kind
        msg["X-Mlops-Model"] = alert.model
        msg["X-Mlops-Env"] = alert.env
        msg["X-Mlops-Alert-Id"] = alert.id
        msg.set_content(alert.text())
        return msg

    def deliver(self, alert: Alert) -> str:
        """Send the email; raises on any SMTP or connection error."""
        cfg = self.config
        context = ssl.create_default_context()
        if cfg.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        with smtp:
            if cfg.starttls and not cfg.ssl:
                smtp.starttls(context=context)
            if cfg.username:
                password = cfg.password.get_secret_value() if cfg.password else ""
                smtp.login(cfg.username, password)
            refused = smtp.send_message(self.message(alert))
        if refused:
            return f"sent; refused by server: {', '.join(sorted(refused))}"
        return f"sent to {len(cfg.to)} recipient(s)"
