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
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from hosts import Clients, FunctionHost
from pollers import RuleTap, SqsMapping, StreamMapping, invoke_async, lambda_event_pattern
from stack import ACCOUNT, REGION, Resource, Stack

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# What the local run may add to a function's environment: where the stand-ins are, nothing else.
ENDPOINT_OVERRIDES = ("AWS_ENDPOINT_URL", "NOTIFICATION_BASE_URL", "ALLOW_LOOPBACK_HTTP", "AWS_LAMBDA_LOG_LEVEL")


class RunFailure(RuntimeError):
    """The stack's wiring failed the run (a denied call, a function error, a lost message)."""


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
        # `cargo lambda watch` sets AWS_LAMBDA_MAX_CONCURRENCY (Lambda Managed Instances' setting,
        # never set for these functions on Lambda), and lambda_runtime warns about it on every
        # start: cargo's runner for the host removes it, so the functions see Lambda's environment.
        inherited[f"CARGO_TARGET_{host_triple().upper().replace('-', '_')}_RUNNER"] = "env -u AWS_LAMBDA_MAX_CONCURRENCY"
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

    def fire_schedule(self, logical_id: str) -> Any:
        """A recurring schedule's tick (a template `AWS::Scheduler::Schedule`, which moto never
        fires): Scheduler invokes the target with the schedule's role, so the runner first asks
        the stand-in to invoke it with that role's credentials — the IAM gate decides, and a
        missing `lambda:InvokeFunction` raises AccessDenied here. moto then answers "no such
        function" (ours run as local processes), and the function gets the schedule's Input."""
        target = self.stack.resources[logical_id].properties["Target"]
        host = next(h for h in self.hosts.values() if target["Arn"] in (h.arn, h.name))
        payload = target.get("Input", "{}")
        invoker = self.clients.as_role(target["RoleArn"], "lambda")
        try:
            invoker.invoke(FunctionName=target["Arn"], InvocationType="Event", Payload=payload.encode())
        except invoker.exceptions.ResourceNotFoundException:
            pass  # authorised; the function is not moto's
        with self._lock:
            return invoke_async(host, json.loads(payload), self._async_retries(host), self.lost)

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


def host_triple() -> str:
    version = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split(": ", 1)[1] for line in version.splitlines() if line.startswith("host: "))


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
