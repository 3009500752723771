"""SNS destination with moto: the published message arrives at an SQS subscriber."""

import json

import boto3
import pytest
from moto import mock_aws

from workloads.alerts import SnsConfig, SnsDestination, send_alert
from workloads.alerts.sns import sns_subject

REGION = "eu-west-1"


@pytest.fixture
def topic_and_queue(aws):
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name="mlops-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield topic_arn, sqs, queue_url


def _received(sqs, queue_url):
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_sns_publishes_the_alert(topic_and_queue, alert):
    topic_arn, sqs, queue_url = topic_and_queue
    [result] = send_alert(alert, [SnsDestination(SnsConfig(topic_arn=topic_arn))])

    assert result.ok, result.detail
    assert result.detail.startswith("MessageId ")
    assert result.target == topic_arn
    [envelope] = _received(sqs, queue_url)
    assert envelope["TopicArn"] == topic_arn
    assert envelope["MessageId"] == result.detail.removeprefix("MessageId ")
    assert envelope["Subject"] == sns_subject(alert)
    message = json.loads(envelope["Message"])
    assert message["kind"] == "breach"
    assert message["model"] == "bakehouse_autolog"
    assert message["details"]["rmse"] == 3.41
    assert message["id"] == alert.id
    assert envelope["MessageAttributes"]["kind"] == {"Type": "String", "Value": "breach"}
    assert envelope["MessageAttributes"]["env"] == {"Type": "String", "Value": "dev"}


def test_sns_missing_topic_reported_not_raised(topic_and_queue, alert):
    _, sqs, queue_url = topic_and_queue
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic"
    [result] = send_alert(alert, [SnsDestination(SnsConfig(topic_arn=missing))])
    assert not result.ok
    assert "NotFound" in result.detail
    assert _received(sqs, queue_url) == []


def test_sns_subject_is_ascii_one_line_under_100(alert):
    long = alert.model_copy(update={"summary": "drift ✓ " + "x" * 200})
    subject = sns_subject(long)
    assert len(subject) < 100
    assert subject.isascii() and "\n" not in subject
    assert subject.startswith("[mlops dev] threshold breach: bakehouse_autolog - drift ? x")


def test_sns_region_defaults_to_the_arn_region():
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-2:123456789012:t")
    assert config.effective_region == "us-east-2"
    assert SnsConfig(topic_arn=config.topic_arn, region="eu-central-1").effective_region == "eu-central-1"
