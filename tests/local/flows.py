"""Whole-flow checks on the deployed stack, shared by the stack tests and the template mutation
tests: the same check passes on infra/template.yaml and must fail on each broken copy."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from pathlib import Path

from local_env import ROOT, LocalEnv

ADA = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
BEN = "3ce84f47-4e65-4756-a815-67a2b32e58b8"  # genesys-sim's second demo agent


def live_meeting(trigger: str) -> dict:
    """A calendar start whose meeting is on now, as the calendar connectors put it on the bus."""
    now = dt.datetime.now(dt.timezone.utc)
    detail = json.loads((ROOT / "tests/fixtures/calendar-event-started.json").read_text())["detail"]
    detail["calendarEventId"] = trigger
    detail["start"] = (now - dt.timedelta(minutes=1)).isoformat()
    detail["end"] = (now + dt.timedelta(minutes=30)).isoformat()
    return detail


def put_on_bus(env: LocalEnv, detail_type: str, detail: dict) -> None:
    answer = env.client("events").put_events(
        Entries=[{"EventBusName": env.output("EventBusName"), "Source": "presence-autopilot.calendar",
                  "DetailType": detail_type, "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0, answer


def presence_changes(env: LocalEnv, user: str) -> list[dict]:
    mutations = json.load(urllib.request.urlopen(f"{env.sim_url}/sim/mutations", timeout=10))
    return [m for m in mutations if m["userId"] == user]


def audit_kinds(env: LocalEnv, user: str) -> list[str]:
    page = env.client("dynamodb").query(
        TableName=env.output("TableName"),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :audit)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user}"}, ":audit": {"S": "AUDIT#"}},
        ConsistentRead=True,
    )
    return [item["kind"]["S"] for item in page["Items"]]


def meeting_reaches_presence_and_webhook(env: LocalEnv, deliveries: list) -> list[str]:
    """Bus → TriggerRule → burst queue → transition → presence Meeting, audit `applied` → table
    stream → outbox-relay → notifications queue → webhook-dispatch → the receiver. Returns what
    went wrong, in words; empty when the whole path held."""
    put_on_bus(env, "Calendar Event Started", live_meeting("flow-check"))
    problems = []
    try:
        env.runner.settle()
    except Exception as err:  # noqa: BLE001 - a denied call surfaces here first
        problems.append(f"the runner stopped: {err}")
    problems += [f"function failure: {f}" for f in env.runner.failures()]
    problems += [f"denied: {d['role']} {d['action']} on {d['resource']}" for d in env.denials()]
    if "applied" not in audit_kinds(env, ADA):
        problems.append(f"no `applied` audit record for Ada (audit: {audit_kinds(env, ADA)})")
    if not presence_changes(env, ADA):
        problems.append("Genesys never saw a presence change for Ada")
    if not deliveries:
        problems.append("no webhook reached the receiver")
    return problems


def reported_failure_stays_queued(env: LocalEnv) -> list[str]:
    """The `sqs-batch.json` fixture on the burst queue: its second record lacks `end`, transition
    reports it failed, so the mapping must leave it on the queue (to come back, then go to the
    DLQ); the other two are consumed."""
    batch = json.loads((ROOT / "tests/fixtures/sqs-batch.json").read_text())
    sqs = env.client("sqs")
    url = env.output("BurstQueueUrl")
    for record in batch["Records"]:
        sqs.send_message(QueueUrl=url, MessageBody=record["body"])
    env.runner.settle()
    problems = [f"function failure: {f}" for f in env.runner.failures()]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                    "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    left = int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"])
    if left != 1:
        problems.append(f"{left} message(s) left on the burst queue after the batch; expected the 1 reported failure")
    return problems


def refused_delivery_waits_for_its_retry(env: LocalEnv, receiver: "Receiver") -> list[str]:
    """The meeting of `meeting_reaches_presence_and_webhook` ends while the subscriber answers
    503: webhook-dispatch keeps the notification and sets when it comes back (its retry
    schedule, through the message's visibility), so it is neither lost nor retried at once."""
    receiver.status = 503
    before = len(receiver.deliveries)
    detail = live_meeting("flow-check")
    put_on_bus(env, "Calendar Event Ended", detail)
    env.runner.settle()
    problems = [f"function failure: {f}" for f in env.runner.failures()]
    if len(receiver.deliveries) == before:
        problems.append("webhook-dispatch never tried the refused delivery")
    counts = env.client("sqs").get_queue_attributes(
        QueueUrl=env.output("NotificationsQueueUrl"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    if counts != {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "1"}:
        problems.append(f"expected the refused notification in flight, waiting for its retry: {counts}")
    return problems


def lookahead_runs(env: LocalEnv) -> list[str]:
    """LookaheadSchedule's tick: EventBridge Scheduler invokes lookahead with the schedule's role
    (the IAM gate decides), and lookahead reads the policy parameter, the connections, WFM and the
    team's group under its own role. A team of Ben alone (capped, no calendar) is looked at and
    has nothing over its cap. The stack's policy is put back afterwards."""
    ssm = env.client("ssm")
    name = env.resources["POLICY_PARAMETER"]
    before = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    team = f'\n[[profiles]]\nname = "flow-team"\nusers = ["{BEN}"]\n\n[profiles.guard]\nmax_off_queue = 5\n'
    ssm.put_parameter(Name=name, Value=before + team, Type="String", Overwrite=True)
    problems = []
    try:
        answer = env.runner.fire_schedule("LookaheadSchedule")
        teams = [(t["team"], t["members"], t["intervalsOverCap"]) for t in (answer or {}).get("teams", [])]
        if teams != [("flow-team", 1, 0)]:
            problems.append(f"lookahead did not look at the capped team: {answer}")
    except Exception as err:  # noqa: BLE001 - a denied invoke surfaces here
        problems.append(f"the schedule could not start lookahead: {err}")
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="String", Overwrite=True)
    problems += [f"function failure: {f}" for f in env.runner.failures()]
    problems += [f"denied: {d['role']} {d['action']} on {d['resource']}" for d in env.denials()]
    return problems


class Receiver:
    """A loopback webhook receiver that records every POST (no signature check: the demo's does)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.deliveries: list[bytes] = []
        self.status = 204  # what the receiver answers; a test sets 503 to refuse deliveries
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                outer.deliveries.append(self.rfile.read(int(self.headers.get("content-length", 0))))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def subscribers(self) -> dict:
        import base64
        import secrets

        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        return {"webhooks": [{"id": "flow-check", "url": self.url, "secrets": [secret]}]}

    def close(self) -> None:
        self.server.shutdown()


def started(template: Path | None = None, receiver: Receiver | None = None, expect_denials: bool = False) -> LocalEnv:
    kwargs = {"template": template} if template is not None else {}
    return LocalEnv(subscribers=receiver.subscribers() if receiver else None, expect_denials=expect_denials, **kwargs)
