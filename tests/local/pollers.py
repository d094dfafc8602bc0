"""Lambda's pollers, as the runner plays them from the deployed stack (docs/local-aws.md, "The
runner"): an SQS event source mapping, the table stream's mapping, a rule's Lambda target, and
Lambda's asynchronous invoke."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hosts import FunctionHost
from stack import ACCOUNT, REGION


def lambda_event_pattern(filters: dict | None) -> list[Any]:
    """A mapping's FilterCriteria, matched with moto's EventBridge pattern matcher (the syntax
    Lambda's event filtering uses)."""
    from moto.events.models import EventPattern

    return [EventPattern.load(f["Pattern"]) for f in (filters or {}).get("Filters", [])]


def matches(patterns: list[Any], record: dict) -> bool:
    return not patterns or any(p.matches_event(record) for p in patterns)


def sqs_record(message: dict, queue_arn: str) -> dict:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def reported_failures(answer: Any, identifiers: list[str]) -> set[str] | None:
    """The items a `ReportBatchItemFailures` answer names; None when the answer is invalid, which
    Lambda treats as the whole batch failing."""
    if answer is None or answer == "" or (isinstance(answer, dict) and not answer.get("batchItemFailures")):
        return set()
    if not isinstance(answer, dict) or not isinstance(answer.get("batchItemFailures"), list):
        return None
    failed = set()
    for item in answer["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in identifiers:
            return None
        failed.add(identifier)
    return failed


@dataclass
class SqsMapping:
    logical_id: str
    host: FunctionHost
    queue_url: str
    queue_arn: str
    batch_size: int
    window: float
    patterns: list[Any]
    report_failures: bool
    sqs: Any  # with the function role's credentials, as Lambda polls
    delivered: int = 0
    failed_items: int = 0

    def pump(self) -> int:
        """One poller round: gather a batch (size, window), drop what the filter refuses, invoke,
        delete what succeeded. Returns how many messages reached the function."""
        messages: list[dict] = []
        first = None
        while len(messages) < self.batch_size:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if got:
                first = first or time.monotonic()
                messages.extend(got)
                continue
            if not messages or time.monotonic() - first >= self.window:
                break
            time.sleep(0.05)
        if not messages:
            return 0
        wanted = []
        for message in messages:
            try:
                body: Any = json.loads(message["Body"])
            except ValueError:
                body = message["Body"]
            if matches(self.patterns, {"body": body, "attributes": message.get("Attributes", {})}):
                wanted.append(message)
            else:  # Lambda deletes what its filter drops
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not wanted:
            return 0
        ok, answer = self.host.invoke({"Records": [sqs_record(m, self.queue_arn) for m in wanted]})
        identifiers = [m["MessageId"] for m in wanted]
        if not ok:
            failed = set(identifiers)
        elif self.report_failures:
            failed = reported_failures(answer, identifiers)
            failed = set(identifiers) if failed is None else failed
        else:
            failed = set()  # without ReportBatchItemFailures a successful invoke consumes the batch
        for message in wanted:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.delivered += len(wanted)
        self.failed_items += len(failed)
        return len(wanted)


def stream_record(record: dict, stream_arn: str) -> dict:
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        change["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", REGION),
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


@dataclass
class StreamMapping:
    logical_id: str
    host: FunctionHost
    stream_arn: str
    batch_size: int
    starting_position: str
    patterns: list[Any]
    report_failures: bool
    max_retries: int  # -1: until the record expires
    on_failure: str | None  # an SQS queue ARN
    failure_url: str | None  # its URL
    streams: Any  # dynamodbstreams, with the function role's credentials
    sqs: Any  # for the on-failure destination, with the function role's credentials
    positions: dict[str, str | None] = field(default_factory=dict)  # shard → last sequence consumed
    attempts: int = 0
    delivered: int = 0
    sent_to_failure_destination: int = 0

    def _records(self, shard: str, limit: int) -> list[dict]:
        after = self.positions.get(shard)
        where = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
            if after
            else {"ShardIteratorType": self.starting_position}
        )
        iterator = self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard, **where)["ShardIterator"]
        return self.streams.get_records(ShardIterator=iterator, Limit=limit)["Records"]

    def pump(self) -> int:
        delivered = 0
        for shard in self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if self.starting_position == "LATEST" and shard_id not in self.positions:
                self.positions[shard_id] = None
            records = self._records(shard_id, self.batch_size)
            if not records:
                continue
            wanted = [r for r in records if matches(self.patterns, stream_record(r, self.stream_arn))]
            if not wanted:  # filtered out: consumed without an invoke
                self.positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
                continue
            delivered += len(wanted)
            ok, answer = self.host.invoke({"Records": [stream_record(r, self.stream_arn) for r in wanted]})
            sequences = [r["dynamodb"]["SequenceNumber"] for r in wanted]
            failed_from = None
            if not ok:
                failed_from = sequences[0]
            elif self.report_failures:
                failed = reported_failures(answer, sequences)
                failed_from = sequences[0] if failed is None else (min(failed, key=sequences.index) if failed else None)
            if failed_from is None:
                self.attempts = 0
                self.positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
                continue
            # Checkpoint just before the first failed record: it and what follows come again.
            index = sequences.index(failed_from)
            before = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(failed_from)]
            if before:
                self.positions[shard_id] = before[-1]["dynamodb"]["SequenceNumber"]
            self.attempts += 1
            if self.max_retries >= 0 and self.attempts > self.max_retries:
                self._to_failure_destination(shard_id, wanted[index:], answer)
                self.positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
                self.attempts = 0
        self.delivered += delivered
        return delivered

    def _to_failure_destination(self, shard: str, records: list[dict], answer: Any) -> None:
        """The documented on-failure record for a stream batch: where it was, not the records."""
        if not self.on_failure:
            return
        arrival = [r["dynamodb"].get("ApproximateCreationDateTime") for r in records]
        stamp = lambda v: v.isoformat() if isinstance(v, dt.datetime) else str(v)  # noqa: E731
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.host.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": stamp(arrival[0]),
                "approximateArrivalOfLastRecord": stamp(arrival[-1]),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        self.sqs.send_message(QueueUrl=self.failure_url, MessageBody=json.dumps(record))
        self.sent_to_failure_destination += 1


@dataclass
class RuleTap:
    """A rule's Lambda target: moto delivers the matched event to `queue_url`, the runner invokes."""

    rule: str
    host: FunctionHost
    queue_url: str
    input: str | None
    retries: int
    sqs: Any
    lost: list[str] = field(default_factory=list)

    def pump(self) -> int:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in messages:
            event = json.loads(message["Body"])
            event.setdefault("account", ACCOUNT)  # moto's SQS delivery leaves it out
            invoke_async(self.host, json.loads(self.input) if self.input else event, self.retries, self.lost)
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)


def invoke_async(host: FunctionHost, payload: Any, retries: int, lost: list[str]) -> Any:
    """Lambda's asynchronous invoke: the first try and `retries` more (EventInvokeConfig). The
    answer is returned for the local log only: an asynchronous caller never sees it."""
    for _ in range(retries + 1):
        ok, answer = host.invoke(payload)
        if ok:
            return answer
    lost.append(f"{host.binary}: {str(answer)[:300]}")
    return None
