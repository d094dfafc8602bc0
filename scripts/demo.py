#!/usr/bin/env python3
"""`make demo`: a scripted day of Presence Autopilot against local stand-ins, narrated.

Starts (on loopback) moto, the Genesys simulator, a webhook receiver that verifies Standard
Webhooks signatures, provisions what infra/template.yaml names, runs every function under one
`cargo lambda watch`, and plays the day. The demo is the glue AWS would be: it puts events on the
bus, drains the queues and invokes the functions with the SQS batch (the Lambda poller), and fires
Scheduler schedules (moto never does). Every process it started is stopped on exit, Ctrl-C or
failure; function logs go to the log dir (printed on failure). See docs/demo.md."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "local"))
from local_env import ROOT, TARGET, LocalEnv  # noqa: E402

from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # noqa: E402

ADA = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
ADA_EMAIL = "ada@example.com"
# The genesys-sim default seed's roster group: Ada, Ben, Cy and Dee (tests/genesys-sim/src/seed.rs).
DEMO_AGENT_IDS = [
    ADA,
    "3ce84f47-4e65-4756-a815-67a2b32e58b8",
    "d2dab52a-8588-4942-8d44-fd8a2aa5d4a2",
    "5b1e8f7a-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
]
# An agent of the Workspace domain (GOOGLE_WORKSPACE_DOMAINS in local_env.py): their calendar is Google's.
GWEN = "6f1d2c3b-4a5e-4f60-9a7b-8c9d0e1f2a3b"
GWEN_EMAIL = "gwen@workspace.example.com"
LOG_DIR = Path(os.environ.get("DEMO_LOG_DIR", TARGET / "demo-logs"))
HAS_SCHEDULE_CHECK = (ROOT / "functions" / "schedule-check" / "Cargo.toml").exists()
TTY = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def style(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if TTY else text


def bold(text: str) -> str:
    return style("1", text)


def dim(text: str) -> str:
    return style("2", text)


def ok(text: str) -> str:
    return style("32", text)


class DemoFailure(Exception):
    """Something the day should have shown did not happen."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------
# The webhook receiver: a subscriber as a customer would write it, with the official library.
# ------------------------------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.deliveries: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                    verified, error = True, None
                except WebhookVerificationError as err:
                    payload, verified, error = None, False, str(err)
                with receiver.lock:
                    receiver.deliveries.append(
                        {"id": headers.get("webhook-id"), "verified": verified, "error": error, "payload": payload}
                    )
                self.send_response(204 if verified else 400)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/presence"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    def subscribers(self) -> dict:
        return {"webhooks": [{"id": "demo-receiver", "url": self.url, "secrets": [self.secret]}]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------
# The day.
# ------------------------------------------------------------------------------------------------


class Day:
    def __init__(self, env: LocalEnv, receiver: Receiver) -> None:
        self.env = env
        self.receiver = receiver
        self.sqs = env.client("sqs")
        self.events = env.client("events")
        self.dynamodb = env.client("dynamodb")
        self.streams = env.client("dynamodbstreams")
        # The last record of the table's stream handed to outbox-relay.
        self.relayed_up_to: str | None = None
        self.scheduler = env.client("scheduler")
        self.audit_seen: dict[str, int] = {}
        # Whose audit trail `show_audit` prints and `expect_audit` checks.
        self.agent = ADA
        self.delivered_seen = 0
        # When Ada changed her presence by hand in step 2: step 4 asks `autopilot why` about it.
        self.changed_by_hand_at: dt.datetime | None = None
        self.token = self._token()
        self.names = {
            d["id"]: d.get("languageLabels", {}).get("en_US") or d.get("name") or d["systemPresence"]
            for d in self._genesys("GET", "/api/v2/presence/definitions")["entities"]
        }

    # ---- the simulator ---------------------------------------------------------------------

    def _http(self, method: str, path: str, body=None, headers=None, form=None):
        data = None
        headers = dict(headers or {})
        if form is not None:
            data = form.encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        request = urllib.request.Request(f"{self.env.sim_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise DemoFailure(f"simulator {method} {path}: HTTP {err.code} {err.read().decode(errors='replace')}")
        return json.loads(raw) if raw else None

    def _token(self) -> str:
        basic = base64.b64encode(b"demo-client:demo-secret").decode()
        answer = self._http(
            "POST", "/oauth/token", headers={"authorization": f"Basic {basic}"}, form="grant_type=client_credentials"
        )
        return answer["access_token"]

    def _genesys(self, method: str, path: str):
        return self._http(method, path, headers={"authorization": f"Bearer {self.token}"})

    def presence(self) -> str:
        live = self._genesys("GET", f"/api/v2/users/{self.agent}/presences/purecloud")
        name = self.names.get(live["presenceDefinition"]["id"], live["presenceDefinition"].get("systemPresence"))
        return f"{name} ({live['message']!r})" if live.get("message") else name

    def routing(self) -> str:
        return self._genesys("GET", f"/api/v2/users/{ADA}/routingstatus")["status"]

    def agent_sets_presence(self, presence: str) -> None:
        self._http("PUT", f"/sim/users/{ADA}/presence", {"presence": presence, "message": "", "by": "agent"})
        say(f"Ada sets her presence by hand: {bold(self.presence())}  (routing {self.routing()})")

    def routing_becomes(self, status: str) -> None:
        self._http("PUT", f"/sim/users/{ADA}/routingstatus", {"status": status})
        say(f"Ada's routing status: {bold(status)}")

    def show_presence(self, label: str, expected: str | None = None) -> None:
        current = self.presence()
        say(f"presence {label}: {bold(current)}")
        if expected is not None:
            expect(current.split(" (")[0] == expected, f"expected the presence {expected}, got {current}")

    # ---- events and queues (the demo plays EventBridge's target and the Lambda poller) -----

    @staticmethod
    def calendar_event(trigger: str, start: dt.datetime, end: dt.datetime, subject: str) -> dict:
        return {
            "userEmail": ADA_EMAIL,
            "calendarEventId": trigger,
            "start": iso(start),
            "end": iso(end),
            "showAs": "busy",
            "responseStatus": "accepted",
            "subject": subject,
        }

    def put_on_bus(self, detail_type: str, detail: dict) -> None:
        answer = self.events.put_events(
            Entries=[
                {
                    "EventBusName": self.env.resources["EVENT_BUS_NAME"],
                    "Source": "presence-autopilot.calendar",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        expect(answer["FailedEntryCount"] == 0, f"PutEvents failed: {answer}")
        say(f"calendar → bus: {bold(detail_type)} {detail['calendarEventId']!r}")

    def drain(self, queue_url: str, at_least: int, wait: float) -> list[dict]:
        messages: list[dict] = []
        deadline = time.monotonic() + wait
        while True:
            got = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if got:
                continue
            if len(messages) >= at_least or time.monotonic() >= deadline:
                return messages
            time.sleep(0.1)

    @staticmethod
    def sqs_event(messages: list[dict], queue_arn: str) -> dict:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {
                        name: {
                            "stringValue": value.get("StringValue"),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": value["DataType"],
                        }
                        for name, value in m.get("MessageAttributes", {}).items()
                    },
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def poll(self, function: str, queue_url: str, at_least: int, wait: float) -> int:
        """One Lambda poller round: receive, invoke with the batch, delete what succeeded."""
        messages = self.drain(queue_url, at_least, wait)
        if not messages:
            return 0
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        answer = self.env.invoke(function, self.sqs_event(messages, arn))
        failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        note = f", {len(failed)} reported failed" if failed else ""
        say(dim(f"{function} ← SQS batch of {len(messages)} message(s){note}"))
        expect(not failed, f"{function} reported batch item failures: {sorted(failed)}")
        return len(messages)

    def transition_from_bus(self) -> None:
        count = self.poll("transition", self.env.resources["EVENTS_QUEUE_URL"], at_least=1, wait=10)
        expect(count >= 1, "the event never reached the events queue (bus rule → SQS)")
        self.show_audit()

    def relay_outbox(self) -> int:
        """The table's stream mapping: the state changes since the last round → outbox-relay
        (with the mapping's filter: user state items, inserted or modified)."""
        table = self.env.resources["TABLE_NAME"]
        arn = self.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        records: list[dict] = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            where = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.relayed_up_to}
                if self.relayed_up_to
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            iterator = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], **where)["ShardIterator"]
            while True:
                page = self.streams.get_records(ShardIterator=iterator)
                if not page["Records"]:
                    break
                records.extend(page["Records"])
                iterator = page["NextShardIterator"]
        if not records:
            return 0
        self.relayed_up_to = records[-1]["dynamodb"]["SequenceNumber"]
        state_changes = [
            r for r in records if r["eventName"] in ("INSERT", "MODIFY") and r["dynamodb"]["Keys"]["sk"]["S"] == "STATE"
        ]
        if not state_changes:
            return 0
        event = {"Records": [self.stream_record(r, arn) for r in state_changes]}
        answer = self.env.invoke("outbox-relay", event)
        failed = (answer or {}).get("batchItemFailures", [])
        expect(not failed, f"outbox-relay reported failed records: {failed}")
        say(dim(f"outbox-relay ← table stream batch of {len(state_changes)} state change(s)"))
        return len(state_changes)

    @staticmethod
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
            "awsRegion": record.get("awsRegion", "us-east-1"),
            "dynamodb": change,
            "eventSourceARN": stream_arn,
        }

    def notify(self, expect_delivery: bool = True) -> None:
        """Relays the committed notifications (table stream → outbox-relay → notifications queue),
        drains that queue into webhook-dispatch and shows what the receiver got."""
        self.relay_outbox()
        count = self.poll("webhook-dispatch", self.env.resources["NOTIFICATIONS_QUEUE_URL"], at_least=0, wait=0.5)
        if count == 0:
            say(dim("no notification was queued"))
        with self.receiver.lock:
            new = self.receiver.deliveries[self.delivered_seen :]
            self.delivered_seen = len(self.receiver.deliveries)
        for delivery in new:
            payload = delivery["payload"] or {}
            if delivery["verified"]:
                presence = (payload.get("payload") or {}).get("presence") or {}
                say(
                    f"webhook delivered: {bold(payload.get('kind', '?'))} sequence {payload.get('sequence')}"
                    f" {presence.get('systemPresence', '')}  webhook-id {delivery['id']}  "
                    + ok("signature verified ✓")
                )
            else:
                say(f"webhook delivered but the signature did NOT verify: {delivery['error']}")
        expect(all(d["verified"] for d in new), "a webhook signature did not verify")
        if expect_delivery:
            expect(new, "no webhook reached the receiver")
        self.show_audit(kinds_prefix="delivery")

    # ---- audit -----------------------------------------------------------------------------

    def audit_records(self) -> list[dict]:
        items: list[dict] = []
        kwargs = {
            "TableName": self.env.resources["TABLE_NAME"],
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :audit)",
            "ExpressionAttributeValues": {":pk": {"S": f"USER#{self.agent}"}, ":audit": {"S": "AUDIT#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.dynamodb.query(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda item: int(item["seq"]["N"]))

    def describe_presence(self, item: dict, field: str) -> str:
        if field not in item:
            return "-"
        value = json.loads(item[field]["S"])
        return self.names.get(value.get("definitionId"), value.get("definitionId", "?"))

    def show_audit(self, kinds_prefix: str | None = None) -> list[dict]:
        records = self.audit_records()
        new = records[self.audit_seen.get(self.agent, 0) :]
        self.audit_seen[self.agent] = len(records)
        for item in new:
            kind = item["kind"]["S"]
            line = f"audit #{item['seq']['N']} {bold(kind)}"
            if "before" in item or "after" in item:
                line += f"  {self.describe_presence(item, 'before')} → {self.describe_presence(item, 'after')}"
            if "reason" in item:
                line += f"  — {item['reason']['S']}"
            say(line)
        self.last_audit = new
        return new

    def expect_audit(self, kind: str, reason_contains: str | None = None) -> None:
        matching = [r for r in self.last_audit if r["kind"]["S"] == kind]
        expect(matching, f"expected a {kind!r} audit record, got {[r['kind']['S'] for r in self.last_audit]}")
        if reason_contains:
            reasons = [r.get("reason", {}).get("S", "") for r in matching]
            expect(
                any(reason_contains in reason for reason in reasons),
                f"expected a {kind!r} record saying {reason_contains!r}, got {reasons}",
            )

    # ---- the scripted day --------------------------------------------------------------------

    def warm_up(self) -> None:
        """Starts each function once with an input that changes nothing, so the day's steps are
        not slowed by cold starts (cargo lambda watch starts a function on its first invoke)."""
        functions = [
            ("transition", {"Records": []}),
            ("webhook-dispatch", {"Records": []}),
            ("calendar-sync", {"Records": []}),
            # Graph validates the endpoint within 10 s: it must be running before the first one.
            (
                "calendar-notify",
                {
                    "rawPath": "/graph/notify",
                    "rawQueryString": "validationToken=warm-up",
                    "requestContext": {"http": {"method": "POST"}, "timeEpoch": 0},
                    "headers": {},
                    "isBase64Encoded": False,
                },
            ),
        ]
        if HAS_SCHEDULE_CHECK:
            functions.append(("schedule-check", self.sweep_event()))
        took = []
        for function, payload in functions:
            began = time.monotonic()
            self.env.invoke(function, payload, timeout=300)
            took.append(f"{function} {time.monotonic() - began:.1f} s")
        say(dim("functions started: " + ", ".join(took)))

    @staticmethod
    def sweep_event() -> dict:
        """What the every-minute EventBridge rule sends to schedule-check."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": iso(now()),
            "region": "us-east-1",
            "resources": [],
            "detail": {},
        }

    # ---- the calendar (the Graph simulator plays Microsoft 365) -------------------------------

    def _graph(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.env.graph_url}{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise DemoFailure(f"graph-sim {method} {path}: HTTP {err.code} {err.read().decode(errors='replace')}")
        return json.loads(raw) if raw else None

    def calendar_to_presence(self) -> None:
        """Graph's notification → calendar-notify (Function URL) → sync queue → calendar-sync →
        bus → schedule-check, which starts or ends the meeting now (transition, in-process)."""
        self.poll("calendar-sync", self.env.resources["SYNC_QUEUE_URL"], at_least=1, wait=15)
        changes = self.env.resources["CALENDAR_CHANGES_QUEUE_URL"]
        messages = self.drain(changes, at_least=1, wait=10)
        expect(messages, "calendar-sync put nothing on the bus (bus rule → calendar changes queue)")
        for message in messages:
            envelope = json.loads(message["Body"])
            detail = envelope["detail"]
            say(f"bus → schedule-check: {bold(envelope['detail-type'])} {detail.get('calendarEventId', '?')[:24]}…")
            answer = self.env.invoke("schedule-check", envelope)
            say(dim(f"schedule-check: action {answer.get('action')!r}, reason {answer.get('reason')!r}"))
            self.sqs.delete_message(QueueUrl=changes, ReceiptHandle=message["ReceiptHandle"])
        self.show_audit()

    def meeting_booked_in_outlook(self) -> None:
        step("0", "A meeting booked in Ada's Outlook calendar: notification → delta → planner → presence")
        self._graph("POST", "/sim/users", {"user_principal_name": ADA_EMAIL, "mail": ADA_EMAIL, "display_name": "Ada Agent"})
        say("Microsoft 365 (the Graph simulator) has a mailbox for ada@example.com; the Genesys roster group holds the demo agents")
        answer = self.env.invoke("calendar-upkeep", {})
        say(dim(f"calendar-upkeep: {json.dumps(answer)}"))
        expect(answer.get("connected") == 1, f"calendar-upkeep did not connect Ada: {answer}")
        self.poll("calendar-sync", self.env.resources["SYNC_QUEUE_URL"], at_least=1, wait=10)
        subscriptions = [s for s in self._graph("GET", "/sim/subscriptions") if not s.get("expired")]
        expect(len(subscriptions) == 1, f"expected one Graph subscription, got {subscriptions}")
        say(
            f"Graph subscription on Ada's events, validated by Graph's handshake against "
            f"{self.env.function_url('calendar-notify')}/graph/notify"
        )
        self.show_presence("before", "Available")
        booked = time.monotonic()
        start, end = now() - dt.timedelta(minutes=1), now() + dt.timedelta(minutes=30)
        event = self._graph(
            "POST",
            f"/sim/users/{ADA_EMAIL}/events",
            {"subject": "Escalation review", "start": iso(start), "end": iso(end), "showAs": "busy", "responseStatus": "accepted"},
        )
        say(f"Ada accepts {bold('Escalation review')} in Outlook, {start:%H:%M}–{end:%H:%M} UTC (already begun)")
        self.calendar_to_presence()
        took = time.monotonic() - booked
        self.expect_audit("applied")
        self.show_presence("after", "Meeting")
        say(ok(f"calendar edit → presence Meeting in {took * 1000:.0f} ms") + dim(" (the demo plays the SQS poller and the bus target)"))
        self.notify()
        cancelled = time.monotonic()
        self._graph("DELETE", f"/sim/users/{ADA_EMAIL}/events/{event['id']}")
        say("the organiser cancels it: the meeting disappears from Ada's calendar")
        self.calendar_to_presence()
        took = time.monotonic() - cancelled
        self.expect_audit("restored")
        self.show_presence("after", "Available")
        say(ok(f"calendar edit → presence restored in {took * 1000:.0f} ms"))
        self.notify()

    def _google(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.env.google_url}{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise DemoFailure(f"google-sim {method} {path}: HTTP {err.code} {err.read().decode(errors='replace')}")
        return json.loads(raw) if raw else None

    def google_deliveries(self, count: int) -> list[dict]:
        """Waits (on the simulator's signal) until Google has pushed `count` notifications."""
        return self._google("POST", "/sim/deliveries/wait", {"count": count, "timeoutMs": 15000})

    def focus_booked_in_google(self) -> None:
        step("0c", "Gwen's focus block booked in Google Calendar: push channel → sync token round → Focus Time")
        self._http("POST", "/sim/users", {"id": GWEN, "name": "Gwen Agent", "email": GWEN_EMAIL})
        self._http("PUT", f"/sim/groups/{self.env.resources['ROSTER_GROUP_ID']}/members", {"memberIds": [*DEMO_AGENT_IDS, GWEN]})
        self._google("POST", "/sim/users", {"email": GWEN_EMAIL})
        say(f"Gwen ({GWEN_EMAIL}) joins the roster group; her domain is on Google Workspace (the Google simulator)")
        answer = self.env.invoke("calendar-upkeep", {})
        say(dim(f"calendar-upkeep: {json.dumps(answer)}"))
        expect(answer.get("connected") == 1, f"calendar-upkeep did not connect Gwen: {answer}")
        self.poll("calendar-sync", self.env.resources["SYNC_QUEUE_URL"], at_least=1, wait=10)
        channels = [c for c in self._google("GET", "/sim/channels") if not c["stopped"] and c["calendar"] == GWEN_EMAIL]
        expect(len(channels) == 1, f"expected one Google channel on Gwen's calendar, got {channels}")
        first = self.google_deliveries(1)[0]
        expect(first["state"] == "sync" and first["status"] == 200, f"Google's sync message was not acknowledged: {first}")
        say(
            f"events.watch channel on Gwen's calendar, address {channels[0]['address']}; "
            f"Google's {bold('sync')} message answered {first['status']} in {first['elapsed_ms']} ms"
        )
        self.agent = GWEN
        self.show_presence("before", "Available")
        booked = time.monotonic()
        start, end = now() - dt.timedelta(minutes=1), now() + dt.timedelta(minutes=45)
        focus = self._google(
            "POST",
            f"/sim/calendars/{GWEN_EMAIL}/events",
            {"summary": "Focus time", "eventType": "focusTime", "start": iso(start), "end": iso(end)},
        )
        say(f"Gwen books {bold('Focus time')} in Google Calendar, {start:%H:%M}–{end:%H:%M} UTC (already begun)")
        pushed = self.google_deliveries(2)[1]
        expect(pushed["state"] == "exists" and pushed["status"] == 200, f"the change notification failed: {pushed}")
        say(f"Google pushes {bold('exists')} (headers only, message {pushed['message_number']}): acknowledged in {pushed['elapsed_ms']} ms")
        self.calendar_to_presence()
        took = time.monotonic() - booked
        self.expect_audit("applied")
        self.show_presence("after", "Focus Time")
        say(ok(f"Google Calendar edit → presence Focus Time in {took * 1000:.0f} ms"))
        self.notify()
        self._google("POST", f"/sim/calendars/{GWEN_EMAIL}/events/{focus['id']}/cancel")
        say("Gwen deletes the focus block")
        self.google_deliveries(3)
        self.calendar_to_presence()
        self.expect_audit("restored")
        self.show_presence("after", "Available")
        self.notify()
        self.agent = ADA

    def meeting_planned(self) -> None:
        step("0b", "A meeting is planned: schedule-check turns it into Scheduler schedules, the start fires")
        trigger = "demo-planned-sync"
        start, end = now() + dt.timedelta(seconds=3), now() + dt.timedelta(minutes=30)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Calendar Event Upserted",
            "source": "presence-autopilot.calendar",
            "account": "123456789012",
            "time": iso(now()),
            "region": "us-east-1",
            "resources": [],
            "detail": self.calendar_event(trigger, start, end, "Weekly sync"),
        }
        self.show_presence("before", "Available")
        say(f"calendar → schedule-check: {bold('Calendar Event Upserted')} {trigger!r} {start:%H:%M:%S}–{end:%H:%M} UTC")
        answer = self.env.invoke("schedule-check", event)
        say(dim(f"schedule-check: action {answer.get('action')!r}, reason {answer.get('reason')!r}"))
        group = self.env.resources["SCHEDULE_GROUP_NAME"]
        schedules = {}
        for summary in self.scheduler.list_schedules(GroupName=group).get("Schedules", []):
            schedule = self.scheduler.get_schedule(GroupName=group, Name=summary["Name"])
            schedules[schedule["Name"]] = schedule
            target = json.loads(schedule["Target"]["Input"])
            say(
                f"Scheduler: {schedule['Name']} {schedule['ScheduleExpression']}"
                f" {schedule.get('ScheduleExpressionTimezone') or 'UTC'} → burst queue"
                f" ({target.get('detail-type', '?')})"
            )
        planned = {s.get("detailType", ""): s for s in answer.get("schedules", [])}
        expect("Calendar Event Started" in planned, f"schedule-check planned no start schedule: {answer}")
        expect("Calendar Event Ended" in planned, f"schedule-check planned no end schedule: {answer}")
        for detail_type, summary in planned.items():
            expect(summary["name"] in schedules, f"{detail_type} schedule {summary['name']} is not in group {group}")

        def fire(detail_type: str, early: bool = False) -> None:
            schedule = schedules[planned[detail_type]["name"]]
            due = dt.datetime.fromisoformat(planned[detail_type]["at"].replace("Z", "+00:00"))
            wait = (due - now()).total_seconds()
            if early:
                say(dim(f"(fast-forward: the demo fires the end schedule, due {due:%H:%M:%S}, now)"))
            elif wait > 0:
                expect(wait < 15, f"the start schedule is due in {wait:.0f} s; the demo waits at most 15 s")
                say(dim(f"(moto never fires schedules: the demo plays the Scheduler and waits {wait:.1f} s)"))
                time.sleep(wait)
            target = schedule["Target"]
            burst = self.env.resources["EVENTS_QUEUE_ARN"]
            expect(target["Arn"] == burst, f"the schedule targets {target['Arn']}, not the burst queue {burst}")
            say(f"Scheduler fires {schedule['Name']} → burst queue → transition")
            self.sqs.send_message(QueueUrl=self.env.resources["EVENTS_QUEUE_URL"], MessageBody=target["Input"])
            self.transition_from_bus()

        fire("Calendar Event Started")
        self.expect_audit("applied")
        self.show_presence("after", "Meeting")
        self.notify()
        fire("Calendar Event Ended", early=True)
        self.expect_audit("restored")
        self.show_presence("after the end", "Available")
        self.notify()

    def meeting(self) -> None:
        step("1", "A meeting starts: presence Meeting, the webhook is delivered and verified; it ends: restored")
        trigger, start, end = "demo-standup", now() - dt.timedelta(seconds=5), now() + dt.timedelta(minutes=15)
        self.show_presence("before", "Available")
        self.put_on_bus("Calendar Event Started", self.calendar_event(trigger, start, end, "Stand-up"))
        self.transition_from_bus()
        self.expect_audit("applied")
        self.show_presence("after", "Meeting")
        self.notify()
        self.put_on_bus("Calendar Event Ended", self.calendar_event(trigger, start, now(), "Stand-up"))
        self.transition_from_bus()
        self.expect_audit("restored")
        self.show_presence("after the end", "Available")
        self.notify()

    def meeting_changed_by_hand(self) -> None:
        step("2", "A meeting during which Ada changes her presence by hand: not restored at the end")
        trigger, start, end = "demo-one-on-one", now() - dt.timedelta(seconds=5), now() + dt.timedelta(minutes=30)
        self.put_on_bus("Calendar Event Started", self.calendar_event(trigger, start, end, "1:1"))
        self.transition_from_bus()
        self.show_presence("after", "Meeting")
        self.notify()
        self.agent_sets_presence("Busy")
        self.put_on_bus("Calendar Event Ended", self.calendar_event(trigger, start, now(), "1:1"))
        self.transition_from_bus()
        self.changed_by_hand_at = now()
        expect(
            any("changed by someone else" in r.get("reason", {}).get("S", "") for r in self.last_audit),
            "expected the end to be audited as 'changed by someone else'",
        )
        self.show_presence("after the end (Ada's choice stands)", "Busy")
        self.notify(expect_delivery=False)

    def meeting_during_call(self) -> None:
        step("3", "Ada is on a call when a meeting starts: deferred, applied by the sweep after the call")
        self.agent_sets_presence("On Queue")
        self.routing_becomes("INTERACTING")
        trigger, start, end = "demo-review", now() - dt.timedelta(seconds=5), now() + dt.timedelta(minutes=30)
        self.put_on_bus("Calendar Event Started", self.calendar_event(trigger, start, end, "Design review"))
        self.transition_from_bus()
        self.expect_audit("deferred")
        self.show_presence("during the call (unchanged)", "On Queue")
        self.notify(expect_delivery=False)
        self.routing_becomes("IDLE")
        if HAS_SCHEDULE_CHECK:
            time.sleep(1.2)  # the demo policy rechecks after 1 s (agents.interaction_recheck_seconds)
            sweep = self.sweep_event()
            say("the every-minute sweep runs: schedule-check ← Scheduled Event")
            answer = self.env.invoke("schedule-check", sweep)
            say(dim(f"schedule-check answered {json.dumps(answer)}"))
            expect(not (answer or {}).get("errors"), f"the sweep reported errors: {answer}")
            self.show_audit()
            self.expect_audit("applied")
            self.show_presence("after the sweep", "Meeting")
            self.notify()
        else:
            say(style("33", "schedule-check not built yet: the sweep that applies the deferral is skipped"))
        self.put_on_bus("Calendar Event Ended", self.calendar_event(trigger, start, now(), "Design review"))
        self.transition_from_bus()
        self.show_presence("after the end", "On Queue")
        self.notify(expect_delivery=HAS_SCHEDULE_CHECK)

    def autopilot(self, *args: str) -> subprocess.CompletedProcess:
        """Runs the on-call command line against the demo's stack, as an engineer would."""
        env = {
            **os.environ,
            **self.env.aws_env,
            "TABLE_NAME": self.env.resources["TABLE_NAME"],
            "GENESYS_SECRET_ID": self.env.resources["GENESYS_SECRET_ID"],
        }
        return subprocess.run(
            [str(TARGET / "debug" / "autopilot"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def on_call(self) -> None:
        step("4", "On call: `autopilot why` tells Ada's day, `audit verify` checks her chain, `day` draws it")
        expect(self.changed_by_hand_at is not None, "step 2 did not run")
        moment = iso(self.changed_by_hand_at)
        say(bold(f"$ autopilot why {ADA_EMAIL} --at {moment} --hours 1") + dim("   # why did Ada's presence not come back after the 1:1?"))
        result = self.autopilot("why", ADA_EMAIL, "--at", moment, "--hours", "1")
        expect(result.returncode == 0, f"autopilot why exited with {result.returncode}: {result.stderr.strip()}")
        for line in result.stdout.splitlines():
            print(f"    {line}")
        in_force = [line for line in result.stdout.splitlines() if line.startswith("▶ ") and not line.startswith("▶ =")]
        expect(
            in_force and "changed by someone else" in in_force[0],
            "`why` did not mark the skipped restore as the decision in force",
        )
        say(bold(f"$ autopilot audit verify {ADA_EMAIL}"))
        result = self.autopilot("audit", "verify", ADA_EMAIL)
        expect(result.returncode == 0, f"autopilot audit verify exited with {result.returncode}: {result.stdout}{result.stderr}")
        for line in result.stdout.splitlines():
            print(f"    {ok(line) if line.startswith('ok') else line}")
        page = LOG_DIR / "ada-day.html"
        say(bold(f"$ autopilot day {ADA_EMAIL} --out {page}"))
        result = self.autopilot("day", ADA_EMAIL, "--out", str(page))
        expect(result.returncode == 0 and page.exists(), f"autopilot day exited with {result.returncode}: {result.stderr.strip()}")
        say(f"Ada's day as a picture: {ok(str(page))} (open it in a browser)")


def step(number: str, title: str) -> None:
    print(f"\n{bold(f'[{number}]')} {bold(title)}")


def say(text: str) -> None:
    print(f"  {text}", flush=True)


def print_logs(log_dir: Path) -> None:
    for log in sorted(log_dir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        if not lines:
            continue
        print(f"\n----- {log} (last {min(len(lines), 60)} of {len(lines)} lines) -----", file=sys.stderr)
        for line in lines[-60:]:
            print(line, file=sys.stderr)


def main() -> int:
    started = time.monotonic()
    # SIGTERM (CI cancelling, `kill`) unwinds like Ctrl-C, so every `finally` below runs.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    LOG_DIR.mkdir(parents=True)
    policy = LOG_DIR / "demo-policy.toml"
    # The default policy, except that a deferral is rechecked after 1 s instead of 60 s.
    default_policy = (ROOT / "shared" / "src" / "default-policy.toml").read_text()
    demo_policy = default_policy.replace("interaction_recheck_seconds = 60", "interaction_recheck_seconds = 1")
    if demo_policy == default_policy:
        print("the default policy no longer says interaction_recheck_seconds = 60", file=sys.stderr)
        return 1
    policy.write_text(demo_policy)

    print(bold("Presence Autopilot — a scripted day on local stand-ins"))
    print(dim(f"logs: {LOG_DIR}"))
    receiver = Receiver()
    failed = True
    try:
        with LocalEnv(log_dir=LOG_DIR, subscribers=receiver.subscribers()) as env:
            say(
                f"moto {env.aws_env['AWS_ENDPOINT_URL']}, Genesys simulator {env.sim_url}, "
                f"Graph simulator {env.graph_url}, Google simulator {env.google_url}, webhook receiver {receiver.url}"
            )
            say(
                "provisioned on moto: table {TABLE_NAME}, bus {EVENT_BUS_NAME} (rule → events queue), "
                "events + notifications queues with DLQs, Genesys and subscribers secrets, "
                "Scheduler group {SCHEDULE_GROUP_NAME}".format(**env.resources)
            )
            env.start_functions({"POLICY_PATH": str(policy), "ALLOW_LOOPBACK_HTTP": "true"})
            say(dim(f"cargo lambda watch serving the functions on 127.0.0.1:{env.invoke_port} (local only: ALLOW_LOOPBACK_HTTP=true)"))
            day = Day(env, receiver)
            day.warm_up()
            if HAS_SCHEDULE_CHECK:
                day.meeting_booked_in_outlook()
                day.focus_booked_in_google()
                day.meeting_planned()
            day.meeting()
            day.meeting_changed_by_hand()
            day.meeting_during_call()
            day.on_call()
            failed = False
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything the demo started", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 — any failure: say what, show the logs, exit 1
        print(f"\nDEMO FAILED: {err}", file=sys.stderr)
        if not isinstance(err, DemoFailure):
            traceback.print_exc()
        if isinstance(err, subprocess.CalledProcessError) and err.stderr:
            print(err.stderr, file=sys.stderr)
        print_logs(LOG_DIR)
        return 1
    finally:
        receiver.close()
        if failed:
            print(dim(f"logs kept in {LOG_DIR}"), file=sys.stderr)
    print(f"\n{ok('demo finished')} in {time.monotonic() - started:.1f} s; every process it started is stopped. Logs: {LOG_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
