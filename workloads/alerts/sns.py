"""AWS SNS destination: ``sns.publish`` of the alert as JSON to a topic (boto3)."""

from __future__ import annotations

import json
import re

from workloads.alerts.alert import Alert
from workloads.alerts.config import SnsConfig

_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]")


def sns_subject(alert: Alert) -> str:
    """SNS subjects must be printable ASCII, one line, under 100 characters."""
    text = _NOT_SUBJECT.sub("?", alert.subject()).strip()
    return text if len(text) < 100 else text[:96] + "..."


class SnsDestination:
    """Publishes the alert payload (JSON) with ``kind``/``model``/``env`` message attributes for filters."""

    kind = "sns"

    def __init__(self, config: SnsConfig, client=None):
        self.config = config
        self._client = client

    @property
    def target(self) -> str:
        return self.config.topic_arn

    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "sns",
                region_name=self.config.effective_region,
                config=Config(
                    connect_timeout=self.config.timeout,
                    read_timeout=self.config.timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return self._client

    def deliver(self, alert: Alert) -> str:
        """Publish; raises on any AWS or connection error."""
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in (("kind", alert.kind), ("model", alert.model), ("env", alert.env))
        }
        kwargs = {
            "TopicArn": self.config.topic_arn,
            "Subject": sns_subject(alert),
            "Message": json.dumps(alert.payload()),
            "MessageAttributes": attributes,
        }
        if self.config.topic_arn.endswith(".fifo"):
            kwargs.update(MessageGroupId=alert.model, MessageDeduplicationId=alert.id)
        response = self.client().publish(**kwargs)
        return f"MessageId {response['MessageId']}"
