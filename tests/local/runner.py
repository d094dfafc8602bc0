"""The local runner plays the Lambda service and the AWS pieces moto does not run, from the deployed
stack (`stack.py`), never from a copy of its settings:

- each function runs under its own `cargo lambda watch` with exactly the environment the stack gives
  it, plus only the local endpoint overrides, and with credentials from assuming its own role in the
  stack (STS on the stand-in; the stand-in's IAM gate authorises each call against that role);
- each SQS event source mapping polls as Lambda does, with the role's credentials: batch size,
  batching window, filter criteria (non-matching messages are deleted), `ReportBatchItemFailures`
  (only the reported items stay; without the setting a successful invoke deletes the whole batch);
  what is not deleted comes back after the queue's visibility timeout and moto redrives it;
- the table stream mapping reads from its starting position with its filter, batch size and
  `ReportBatchItemFailures` (checkpoint at the first failed record), retries up to
  `MaximumRetryAttempts`, then sends the documented on-failure record to its destination;
- bus rules with SQS targets are moto's own; a rule's Lambda target is tapped through a queue the
  runner adds as the rule's target (moto matches the template's pattern) and invoked asynchronously;
  scheduled rules fire on request (`fire_rule`) or at their rate in background mode;
- EventBridge Scheduler schedules fire at their time: the target input is sent with the schedule's
  own role's credentials, and `ActionAfterCompletion: DELETE` deletes it;
- the Function URL is `cargo lambda watch`'s Function URL emulation on the function's port.
Where this differs from AWS is listed in docs/local-aws.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stack import ACCOUNT, REGION, Resource, Stack

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# What the local run may add to a function's environment: where the stand-ins are, nothing else.
ENDPOINT_OVERRIDES = ("AWS_ENDPOINT_URL", "NOTIFICATION_BASE_URL", "ALLOW_LOOPBACK_HTTP", "AWS_LAMBDA_LOG_LEVEL")


class RunFailure(RuntimeError):
    """The stack's wiring failed the run (a denied call, a function error, a lost message)."""


def lambda_event_pattern(filters: dict | None) -> list[Any]:
    from moto.events.models import EventPattern

    return [EventPattern.load(f["Pattern"]) for f in (filters or {}).get("Filters", [])]


def matches(patterns: list[Any], record: dict) -> bool:
    return not patterns or any(p.matches_event(record) for p in patterns)


@dataclass
class FunctionHost:
    """One function: its `cargo lambda watch`, its environment, its role's credentials."""

    logical_id: str
    binary: str
    name: str
    arn: str
    port: int
    environment: dict[str, str]
    timeout: int
    log: Path
    process: subprocess.Popen | None = None
    invocations: int = 0
    errors: list[str] = field(default_factory=list)

    def invoke(self, payload: Any, timeout: float | None = None) -> tuple[bool, Any]:
        """(succeeded, answer). A function error, a timeout or a process that exits (a failed
        cold start: Lambda's Runtime.ExitError) is (False, what it said)."""
        self.invocations += 1
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/{self.binary}/invocations",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        offset = self.log.stat().st_size if self.log.exists() else 0
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                with urllib.request.urlopen(request, timeout=wait) as answer:
                    outcome["body"], outcome["failed"] = answer.read(), answer.headers.get("X-Amz-Function-Error")
            except urllib.error.HTTPError as err:
                outcome["body"], outcome["failed"] = err.read(), f"HTTP {err.code}"
            except (OSError, http.client.HTTPException) as err:  # timeouts, refused, the process gone
                outcome["body"], outcome["failed"] = str(err).encode(), "no answer"

        # The first call starts the process (make built it already): allow for that.
        wait = timeout if timeout is not None else max(self.timeout, 60) + 240
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        while caller.is_alive():
            caller.join(0.1)
            if caller.is_alive() and "command exited" in self._log_since(offset):
                self.errors.append(f"Runtime.ExitError: {self._log_since(offset)[-1500:]}")
                return False, {"errorType": "Runtime.ExitError", "errorMessage": self._log_since(offset)[-1500:]}
        body, failed = outcome["body"], outcome["failed"]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        if failed or (isinstance(parsed, dict) and "errorType" in parsed and "errorMessage" in parsed):
            self.errors.append(f"{failed or 'error'}: {str(parsed)[:500]}")
            return False, parsed
        return True, parsed

    def _log_since(self, offset: int) -> str:
        if not self.log.exists():
            return ""
        with open(self.log, errors="replace") as log:
            log.seek(offset)
            return log.read()


class Clients:
    """boto3 clients for the stand-in, with the stand-in's own key or with a role's credentials."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.admin_session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        self.made: dict[tuple[str, str], Any] = {}
        self.credentials: dict[str, dict] = {}

    def admin(self, service: str) -> Any:
        return self._client("", service)

    def assume(self, role_arn: str, session: str) -> dict:
        if role_arn not in self.credentials:
            self.credentials[role_arn] = self.admin("sts").assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=43200)["Credentials"]
        return self.credentials[role_arn]

    def queue_url(self, arn: str) -> str:
        """A queue's URL from its ARN: AWS's services address queues by ARN, so the lookup is the
        runner's, made with the stand-in's key, not a call of the role."""
        return self.admin("sqs").get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]

    def as_role(self, role_arn: str, service: str) -> Any:
        return self._client(role_arn, service)

    def _client(self, role_arn: str, service: str) -> Any:
        import boto3

        key = (role_arn, service)
        if key not in self.made:
            if role_arn:
                c = self.assume(role_arn, "runner")
                session = boto3.session.Session(
                    aws_access_key_id=c["AccessKeyId"],
                    aws_secret_access_key=c["SecretAccessKey"],
                    aws_session_token=c["SessionToken"],
                    region_name=REGION,
                )
            else:
                session = self.admin_session
            self.made[key] = session.client(service, endpoint_url=self.endpoint)
        return self.made[key]


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


class Runner:
    def __init__(self, stack: Stack, endpoint: str, log_dir: Path, overrides: Callable[[str, dict[str, str]], dict[str, str]],
                 ports: dict[str, int]) -> None:
        self.stack = stack
        self.clients = Clients(endpoint)
        self.log_dir = log_dir
        self.hosts: dict[str, FunctionHost] = {}
        self.sqs_mappings: list[SqsMapping] = []
        self.stream_mappings: list[StreamMapping] = []
        self.taps: list[RuleTap] = []
        self.lost: list[str] = []
        self.fired_schedules = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        for function in stack.of_type("AWS::Lambda::Function"):
            self.hosts[function.logical_id] = self._host(function, endpoint, overrides, ports)
        self._wire()

    # ---- functions ------------------------------------------------------------------------------

    def _host(self, function: Resource, endpoint: str, overrides: Callable[[str, dict[str, str]], dict[str, str]],
              ports: dict[str, int]) -> FunctionHost:
        binary = function.metadata.get("BuildProperties", {}).get("Binary")
        if not binary:
            raise RunFailure(f"{function.logical_id}: no Metadata.BuildProperties.Binary (the cargo-lambda build names it)")
        p = function.properties
        environment = {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
        extra = overrides(binary, environment)
        unknown = set(extra) - set(ENDPOINT_OVERRIDES)
        if unknown:
            raise RunFailure(f"{binary}: only local endpoint overrides may be added, not {sorted(unknown)}")
        credentials = self.clients.assume(p["Role"], function.physical_id)
        environment.update(
            {
                **extra,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
                "AWS_LAMBDA_FUNCTION_NAME": function.physical_id,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(p.get("MemorySize", 128)),
            }
        )
        return FunctionHost(
            function.logical_id, binary, function.physical_id, function.attributes["Arn"], ports[binary], environment,
            int(p.get("Timeout", 3)), self.log_dir / f"{binary}.log",
        )

    def start(self) -> None:
        """Every function's `cargo lambda watch`, each with only its own environment."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        for host in self.hosts.values():
            env = {**inherited, **host.environment, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
            log = open(host.log, "w")
            host.process = subprocess.Popen(
                ["cargo", "lambda", "watch", "--ignore-changes", "-p", host.binary, "--invoke-address", "127.0.0.1",
                 "--invoke-port", str(host.port)],
                cwd=ROOT, env=env, stdout=log, stderr=log, text=True, start_new_session=True,
            )

    def processes(self) -> list[tuple[str, subprocess.Popen]]:
        return [(h.binary, h.process) for h in self.hosts.values() if h.process is not None]

    def host(self, binary: str) -> FunctionHost:
        for host in self.hosts.values():
            if host.binary == binary:
                return host
        raise KeyError(f"no function built from {binary} in the stack")

    def function_url(self, binary: str) -> str:
        for url in self.stack.of_type("AWS::Lambda::Url"):
            if url.properties["TargetFunctionArn"] == self.host(binary).arn:
                return url.attributes["FunctionUrl"]
        raise KeyError(f"{binary} has no Function URL in the stack")

    # ---- triggers -------------------------------------------------------------------------------

    def _wire(self) -> None:
        for mapping in self.stack.of_type("AWS::Lambda::EventSourceMapping"):
            self._mapping(mapping)
        for rule in self.stack.of_type("AWS::Events::Rule"):
            for target in rule.properties.get("Targets", []):
                if ":lambda:" in target["Arn"] and "EventPattern" in rule.properties:
                    self._tap(rule, target)

    def _mapping(self, mapping: Resource) -> None:
        p = mapping.properties
        if p.get("Enabled") is False:
            return
        host = next(h for h in self.hosts.values() if p["FunctionName"] in (h.name, h.arn))
        role = self.stack.function_named(host.name).properties["Role"]
        source = p["EventSourceArn"]
        reports = "ReportBatchItemFailures" in p.get("FunctionResponseTypes", [])
        patterns = lambda_event_pattern(p.get("FilterCriteria"))
        if source.startswith("arn:aws:sqs:"):
            url = self.clients.queue_url(source)
            sqs = self.clients.as_role(role, "sqs")
            # Lambda reads the queue's settings with the execution role when the mapping starts.
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])
            self.sqs_mappings.append(
                SqsMapping(mapping.logical_id, host, url, source, int(p.get("BatchSize", 10)),
                           float(p.get("MaximumBatchingWindowInSeconds", 0)), patterns, reports, sqs)
            )
        elif ":dynamodb:" in source and "/stream/" in source:
            on_failure = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            self.stream_mappings.append(
                StreamMapping(mapping.logical_id, host, source, int(p.get("BatchSize", 100)), p["StartingPosition"], patterns,
                              reports, int(p.get("MaximumRetryAttempts", -1)),
                              on_failure, on_failure and self.clients.queue_url(on_failure),
                              self.clients.as_role(role, "dynamodbstreams"), self.clients.as_role(role, "sqs"))
            )
        else:
            raise RunFailure(f"{mapping.logical_id}: no local poller for {source}")

    def _async_retries(self, host: FunctionHost) -> int:
        for config in self.stack.of_type("AWS::Lambda::EventInvokeConfig"):
            if config.properties["FunctionName"] in (host.name, host.arn):
                return int(config.properties.get("MaximumRetryAttempts", 2))
        return 2  # Lambda's default

    def _tap(self, rule: Resource, target: dict) -> None:
        host = next(h for h in self.hosts.values() if target["Arn"] in (h.arn, h.name))
        sqs, events = self.clients.admin("sqs"), self.clients.admin("events")
        name = f"{self.stack.name}-runner-tap-{rule.logical_id}-{target['Id']}"[:80]
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = rule.properties.get("EventBusName", "default")
        events.put_targets(Rule=rule.physical_id, EventBusName=bus.rsplit("/", 1)[-1], Targets=[{"Id": f"runner-{target['Id']}"[:64], "Arn": arn}])
        self.taps.append(RuleTap(rule.logical_id, host, url, target.get("Input"), self._async_retries(host), sqs, self.lost))

    def fire_rule(self, logical_id: str, at: dt.datetime | None = None) -> list[Any]:
        """A scheduled rule's tick: each Lambda target gets the Scheduled Event (or its Input)."""
        rule = self.stack.resources[logical_id]
        if "ScheduleExpression" not in rule.properties:
            raise RunFailure(f"{logical_id} is not a scheduled rule")
        moment = (at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": moment,
            "region": REGION,
            "resources": [rule.attributes["Arn"]],
            "detail": {},
        }
        answers = []
        with self._lock:
            for target in rule.properties.get("Targets", []):
                host = next(h for h in self.hosts.values() if target["Arn"] in (h.arn, h.name))
                payload = json.loads(target["Input"]) if "Input" in target else event
                answers.append(invoke_async(host, payload, self._async_retries(host), self.lost))
        return answers

    def fire_schedules(self, now: dt.datetime | None = None) -> int:
        """Sends every due one-time schedule's input to its target with the schedule's role."""
        now = now or dt.datetime.now(dt.timezone.utc)
        scheduler = self.clients.admin("scheduler")
        fired = 0
        for group in self.stack.of_type("AWS::Scheduler::ScheduleGroup"):
            for summary in scheduler.list_schedules(GroupName=group.physical_id).get("Schedules", []):
                schedule = scheduler.get_schedule(GroupName=group.physical_id, Name=summary["Name"])
                if schedule.get("State") == "DISABLED" or not due(schedule, now):
                    continue
                target = schedule["Target"]
                sqs = self.clients.as_role(target["RoleArn"], "sqs")
                try:
                    sqs.send_message(QueueUrl=self.clients.queue_url(target["Arn"]), MessageBody=target.get("Input", ""))
                except Exception as err:  # noqa: BLE001 - Scheduler sends it to the DLQ instead
                    dlq = target.get("DeadLetterConfig", {}).get("Arn")
                    if not dlq:
                        self.lost.append(f"schedule {summary['Name']}: {err}")
                    else:
                        sqs.send_message(QueueUrl=self.clients.queue_url(dlq), MessageBody=target.get("Input", ""))
                if schedule.get("ActionAfterCompletion") == "DELETE":
                    scheduler.delete_schedule(GroupName=group.physical_id, Name=summary["Name"])
                fired += 1
        self.fired_schedules += fired
        return fired

    def schedules(self) -> list[dict]:
        scheduler = self.clients.admin("scheduler")
        found = []
        for group in self.stack.of_type("AWS::Scheduler::ScheduleGroup"):
            for summary in scheduler.list_schedules(GroupName=group.physical_id).get("Schedules", []):
                found.append(scheduler.get_schedule(GroupName=group.physical_id, Name=summary["Name"]))
        return found

    # ---- driving --------------------------------------------------------------------------------

    def pump(self) -> int:
        """One round of every poller and tap; how many items reached a function."""
        with self._lock:
            total = 0
            for poller in [*self.taps, *self.sqs_mappings, *self.stream_mappings]:
                total += poller.pump()
            return total

    def settle(self, rounds: int = 50) -> int:
        """Rounds until one delivers nothing: everything queued, streamed or tapped has been
        handled (what a function failed stays in flight until its visibility timeout)."""
        total = 0
        for _ in range(rounds):
            moved = self.pump()
            total += moved
            if moved == 0:
                return total
        raise RunFailure(f"the stack did not settle within {rounds} rounds (a loop between functions?)")

    def run_in_background(self, interval: float = 0.5) -> None:
        """Lambda's pollers, the scheduled rules at their rate and the schedules at their time."""
        ticks = {r.logical_id: (rate_seconds(r.properties["ScheduleExpression"]), time.monotonic())
                 for r in self.stack.of_type("AWS::Events::Rule") if "ScheduleExpression" in r.properties}

        def loop() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):
                    self.pump()
                    self.fire_schedules()
                    for logical_id, (every, last) in list(ticks.items()):
                        if every and time.monotonic() - last >= every:
                            ticks[logical_id] = (every, time.monotonic())
                            self.fire_rule(logical_id)

        self._thread = threading.Thread(target=loop, name="lambda-pollers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def failures(self) -> list[str]:
        """Function errors and lost async events: a whole-flow run asserts there are none."""
        found = [f"{h.binary}: {e}" for h in self.hosts.values() for e in h.errors]
        return found + self.lost


def rate_seconds(expression: str) -> float | None:
    """rate(N unit) in seconds; None for cron(), which the background mode does not fire."""
    if not expression.startswith("rate("):
        return None
    amount, unit = expression[5:-1].split()
    return int(amount) * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[unit]


def due(schedule: dict, now: dt.datetime) -> bool:
    expression = schedule.get("ScheduleExpression", "")
    if not expression.startswith("at("):
        return False  # rate/cron schedules: ours are one-time only
    moment = dt.datetime.fromisoformat(expression[3:-1])
    zone = schedule.get("ScheduleExpressionTimezone") or "UTC"
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=ZoneInfo(zone)) <= now
