#!/usr/bin/env python3
"""`make demo`: a scripted day of Presence Autopilot against local stand-ins, narrated.

Starts (on loopback) the AWS stand-in, the Genesys, Graph and Google simulators and a webhook
receiver that verifies Standard Webhooks signatures; deploys infra/template.yaml on the stand-in;
runs each function under its own `cargo lambda watch` with its own role, and plays the day. The
stack's own wiring carries every step (tests/local/runner.py plays the Lambda service from it): the
demo only puts events on the bus, edits calendars, and tells the runner's clock when a scheduled
rule or a Scheduler schedule is due. Every process it started is stopped on exit, Ctrl-C or
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
BEN = "3ce84f47-4e65-4756-a815-67a2b32e58b8"
BEN_EMAIL = "ben@example.com"
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
        # The receiver also takes the demo team's daily look-ahead (step 7).
        return {"webhooks": [{"id": "demo-receiver", "url": self.url, "secrets": [self.secret], "teams": ["demo-floor"]}]}

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
        self.events = env.client("events")
        self.dynamodb = env.client("dynamodb")
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
    def calendar_event(trigger: str, start: dt.datetime, end: dt.datetime, subject: str, email: str = ADA_EMAIL) -> dict:
        return {
            "userEmail": email,
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

    def settle(self, until=None, what: str = "", wait: float = 15.0) -> int:
        """The runner plays Lambda from the deployed stack until nothing moves: the bus rules'
        targets, the queues' event source mappings, the table stream's mapping. `until`: a signal
        to wait for first (an HTTP push that has not arrived yet)."""
        runner = self.env.runner
        deadline = time.monotonic() + wait
        moved = 0
        while until is not None and not until():
            expect(time.monotonic() < deadline, f"{what} did not happen within {wait:.0f} s")
            moved += runner.pump()
            time.sleep(0.05)
        moved += runner.settle()
        expect(not runner.failures(), f"a function failed: {runner.failures()}")
        return moved

    def transition_from_bus(self) -> None:
        before = self.mapping("TransitionBurstQueueMapping").delivered
        self.settle()
        expect(self.mapping("TransitionBurstQueueMapping").delivered > before,
               "the event never reached transition (bus rule → burst queue → event source mapping)")
        self.show_audit()

    def mapping(self, logical_id: str):
        return next(m for m in self.env.runner.sqs_mappings + self.env.runner.stream_mappings if m.logical_id == logical_id)

    def notify(self, expect_delivery: bool = True) -> None:
        """The committed notifications went table stream → outbox-relay → notifications queue →
        webhook-dispatch (the stack's mappings); shows what the receiver got."""
        self.settle()
        with self.receiver.lock:
            new = self.receiver.deliveries[self.delivered_seen :]
            self.delivered_seen = len(self.receiver.deliveries)
        if not new:
            say(dim("no webhook was sent"))
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
        took = []
        for function, payload in functions:
            began = time.monotonic()
            self.env.invoke(function, payload, timeout=300)
            took.append(f"{function} {time.monotonic() - began:.1f} s")
        if HAS_SCHEDULE_CHECK:
            began = time.monotonic()
            self.env.runner.fire_rule("SweepRule")
            took.append(f"schedule-check {time.monotonic() - began:.1f} s")
        say(dim("functions started: " + ", ".join(took)))

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
        sync = self.mapping("CalendarSyncQueueMapping")
        before, tapped = sync.delivered, sum(h.invocations for h in self.schedule_check_hosts())
        self.settle(until=lambda: sync.delivered > before, what="a sync request from calendar-notify")
        after = sum(h.invocations for h in self.schedule_check_hosts())
        expect(after > tapped, "calendar-sync put nothing on the bus that reached schedule-check (CalendarChangeRule)")
        say(f"sync queue → calendar-sync → bus → {bold('CalendarChangeRule')} → schedule-check ({after - tapped} event(s))")
        self.show_audit()

    def schedule_check_hosts(self):
        return [self.env.runner.host("schedule-check")]

    def upkeep(self) -> dict:
        """The CalendarUpkeepRule's tick (its rate, fast-forwarded): calendar-upkeep connects the roster."""
        answer = self.env.runner.fire_rule("CalendarUpkeepRule")[0] or {}
        say(dim(f"CalendarUpkeepRule → calendar-upkeep: {json.dumps(answer)}"))
        return answer

    def meeting_booked_in_outlook(self) -> None:
        step("0", "A meeting booked in Ada's Outlook calendar: notification → delta → planner → presence")
        self._graph("POST", "/sim/users", {"user_principal_name": ADA_EMAIL, "mail": ADA_EMAIL, "display_name": "Ada Agent"})
        say("Microsoft 365 (the Graph simulator) has a mailbox for ada@example.com; the Genesys roster group holds the demo agents")
        answer = self.upkeep()
        expect(answer.get("connected") == 1, f"calendar-upkeep did not connect Ada: {answer}")
        self.settle()
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
        say(ok(f"calendar edit → presence Meeting in {took * 1000:.0f} ms") + dim(" (the stack's mappings and rules, played by the runner)"))
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
        answer = self.upkeep()
        expect(answer.get("connected") == 1, f"calendar-upkeep did not connect Gwen: {answer}")
        self.settle()
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
        self.show_presence("before", "Available")
        self.put_on_bus("Calendar Event Upserted", self.calendar_event(trigger, start, end, "Weekly sync"))
        self.settle()
        say(f"bus → {bold('CalendarChangeRule')} → schedule-check: {start:%H:%M:%S}–{end:%H:%M} UTC planned")
        burst = self.env.stack.resources["BurstQueue"].attributes["Arn"]
        planned = {}
        for schedule in self.env.runner.schedules():
            target = schedule["Target"]
            detail_type = json.loads(target["Input"]).get("detail-type", "?")
            say(
                f"Scheduler: {schedule['Name']} {schedule['ScheduleExpression']}"
                f" {schedule.get('ScheduleExpressionTimezone') or 'UTC'} → burst queue ({detail_type})"
            )
            expect(target["Arn"] == burst, f"the schedule targets {target['Arn']}, not the burst queue {burst}")
            planned[detail_type] = schedule
        expect("Calendar Event Started" in planned, f"schedule-check planned no start schedule: {planned}")
        expect("Calendar Event Ended" in planned, f"schedule-check planned no end schedule: {planned}")

        def fire(detail_type: str, early: bool = False) -> None:
            schedule = planned[detail_type]
            due = dt.datetime.fromisoformat(schedule["ScheduleExpression"][3:-1]).replace(tzinfo=dt.timezone.utc)
            wait = (due - now()).total_seconds()
            if early:
                say(dim(f"(fast-forward: the runner's Scheduler is told it is {due:%H:%M:%S}, the end's time)"))
            elif wait > 0:
                expect(wait < 15, f"the start schedule is due in {wait:.0f} s; the demo waits at most 15 s")
                say(dim(f"(the runner's Scheduler fires at the schedule's time: {wait:.1f} s from now)"))
                time.sleep(wait)
            fired = self.env.runner.fire_schedules(now=max(due, now()))
            expect(fired >= 1, f"the {detail_type} schedule did not fire")
            say(f"Scheduler fires {schedule['Name']} with SchedulerRole → burst queue → transition")
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
            say("the every-minute sweep runs: SweepRule → schedule-check (Scheduled Event)")
            answer = self.env.runner.fire_rule("SweepRule")[0]
            say(dim(f"schedule-check answered {json.dumps(answer)}"))
            self.settle()
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

    def staffing_guard(self) -> None:
        step("5", "The team's staffing guard (one of Ada and Ben off queue at a time): Ben's meeting waits, he is "
                  "told why; Ada's ends, the sweep applies Ben's")
        start, end = now() - dt.timedelta(seconds=5), now() + dt.timedelta(minutes=30)
        self.agent = ADA
        self.put_on_bus("Calendar Event Started", self.calendar_event("demo-huddle-ada", start, end, "Huddle"))
        self.transition_from_bus()
        self.expect_audit("applied")
        self.show_presence("Ada, in her huddle (the team's one slot)", "Meeting")
        self.notify()
        self.agent = BEN
        self.show_audit()
        self.show_presence("Ben, before")
        ben_before = self.presence().split(" (")[0]
        with self.receiver.lock:
            seen = len(self.receiver.deliveries)
        self.put_on_bus("Calendar Event Started", self.calendar_event("demo-huddle-ben", start, end, "Huddle", BEN_EMAIL))
        self.transition_from_bus()
        self.expect_audit("deferred", reason_contains="is at its cap")
        self.show_presence("Ben, kept on queue", ben_before)
        self.notify()
        with self.receiver.lock:
            kinds = [(d["payload"] or {}).get("kind") for d in self.receiver.deliveries[seen:]]
        expect("changeHeld" in kinds, f"Ben's subscribers were not told why: {kinds}")
        self.agent = ADA
        self.put_on_bus("Calendar Event Ended", self.calendar_event("demo-huddle-ada", start, now(), "Huddle"))
        self.transition_from_bus()
        self.expect_audit("restored")
        self.notify()
        self.agent = BEN
        time.sleep(1.2)  # the demo policy looks again after 1 s (agents.interaction_recheck_seconds)
        say("a slot is free; the every-minute sweep runs: SweepRule → schedule-check")
        answer = self.env.runner.fire_rule("SweepRule")[0]
        say(dim(f"schedule-check answered {json.dumps(answer)}"))
        self.settle()
        expect(not (answer or {}).get("errors"), f"the sweep reported errors: {answer}")
        self.show_audit()
        self.expect_audit("applied")
        self.show_presence("Ben, after the sweep", "Meeting")
        self.notify()
        self.put_on_bus("Calendar Event Ended", self.calendar_event("demo-huddle-ben", start, now(), "Huddle", BEN_EMAIL))
        self.transition_from_bus()
        self.show_presence("Ben, after his huddle", ben_before)
        self.notify()
        self.agent = ADA

    def forecast(self) -> None:
        step("6", "See ahead: the demo team's load per quarter hour over the next day, and its page")
        page = LOG_DIR / "forecast.html"
        args = ["forecast", "--team", "demo-floor", "--days", "1", "--out", str(page)]
        say(bold("$ autopilot " + " ".join(args)))
        result = self.autopilot(*args)
        # Exit 1 means an interval is over the cap: an answer, not a failure.
        expect(result.returncode in (0, 1), f"autopilot forecast exited with {result.returncode}: {result.stderr.strip()}")
        for line in result.stdout.splitlines():
            print(f"    {line}")
        expect("team demo-floor: 2 members" in result.stdout, "the forecast did not count Ada and Ben")
        expect(page.exists() and "Content-Security-Policy" in page.read_text(), "no forecast page")
        say(f"the team's forecast as a picture: {page} (open it in a browser)")

    def look_ahead(self) -> None:
        step("7", "The daily look-ahead: tomorrow Ada and Ben both have a 10:00 meeting, the team's cap is one; "
                  "LookaheadSchedule tells the team's webhook which quarter hours are over it")
        self._graph("POST", "/sim/users", {"user_principal_name": BEN_EMAIL, "mail": BEN_EMAIL, "display_name": "Ben Agent"})
        answer = self.upkeep()
        expect(answer.get("connected") == 1, f"calendar-upkeep did not connect Ben: {answer}")
        self.settle()
        # "Tomorrow" in LookaheadTimeZone (UTC here); a run across midnight would look a day later.
        start = dt.datetime.combine((now() + dt.timedelta(days=1)).date(), dt.time(10, 0), dt.timezone.utc)
        end = start + dt.timedelta(minutes=30)
        sync = self.mapping("CalendarSyncQueueMapping")
        for email in (ADA_EMAIL, BEN_EMAIL):
            before = sync.delivered
            self._graph("POST", f"/sim/users/{email}/events", {"subject": "Quarterly planning", "start": iso(start),
                                                               "end": iso(end), "showAs": "busy", "responseStatus": "accepted"})
            self.settle(until=lambda: sync.delivered > before, what=f"the sync of {email}'s calendar")
        say(f"Ada and Ben accept {bold('Quarterly planning')} in Outlook, tomorrow {start:%H:%M}–{end:%H:%M} UTC: "
            "mirrored by calendar-sync, planned by schedule-check")
        with self.receiver.lock:
            seen = len(self.receiver.deliveries)
        schedule = self.env.stack.resources["LookaheadSchedule"].properties
        say(f"LookaheadSchedule's tick ({schedule['ScheduleExpression']} {schedule['ScheduleExpressionTimezone']}, "
            "fast-forwarded) → lookahead, invoked with LookaheadScheduleRole")
        answer = self.env.runner.fire_schedule("LookaheadSchedule")
        say(dim(f"lookahead answered {json.dumps(answer)}"))
        self.settle()
        with self.receiver.lock:
            new = self.receiver.deliveries[seen:]
        notices = [d for d in new if (d["payload"] or {}).get("kind") == "lookahead"]
        expect(len(notices) == 1, f"expected one look-ahead notice, the receiver got {new}")
        expect(notices[0]["verified"], f"the look-ahead's signature did NOT verify: {notices[0]['error']}")
        notice = notices[0]["payload"]["payload"]
        expect(notice["team"] == "demo-floor", f"the notice names team {notice['team']}")
        found = [(dt.datetime.fromisoformat(i["start"].replace("Z", "+00:00")), i["offQueue"], i["cap"],
                  sorted(m["agent"] for m in i["meetings"])) for i in notice["intervals"]]
        quarter = dt.timedelta(minutes=15)
        wanted = [(start, 2, 1, sorted([ADA_EMAIL, BEN_EMAIL])), (start + quarter, 2, 1, sorted([ADA_EMAIL, BEN_EMAIL]))]
        expect(found == wanted, f"the notice's intervals {found} are not the hand-counted {wanted}")
        say(f"webhook delivered: {bold('lookahead')} for team demo-floor, {notice['date']} — signature verified")
        for at, off, cap, agents in found:
            say(f"  {at:%H:%M}–{at + quarter:%H:%M} UTC: {off} off queue for meetings, cap {cap}: {', '.join(agents)}")
        say(ok("a supervisor can move one of the meetings before it drains the queue"))

    def autopilot(self, *args: str) -> subprocess.CompletedProcess:
        """Runs the on-call command line against the demo's stack, as an engineer would."""
        # The stack's name is enough: the table, the Genesys secret, the queues and the policy
        # parameter are read from its outputs (DescribeStacks).
        env = {**os.environ, **self.env.aws_env, "AUTOPILOT_STACK": self.env.stack.name}
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
    # The default policy, except that a deferral is rechecked after 1 s instead of 60 s, and Ada
    # and Ben are a team of whom one at a time may be off queue for the calendar (step 5).
    default_policy = (ROOT / "shared" / "src" / "default-policy.toml").read_text()
    demo_policy = default_policy.replace("interaction_recheck_seconds = 60", "interaction_recheck_seconds = 1") + (
        f'\n[[profiles]]\nname = "demo-floor"\nusers = ["{ADA}", "{BEN}"]\n\n'
        "[profiles.guard]\nmax_off_queue = 1\n"
    )
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
            created = [r for r in env.stack.resources.values() if r.created]
            say(
                f"deployed infra/template.yaml on the stand-in in {env.stack.seconds:.1f} s: {len(created)} resources created "
                f"(table {env.resources['TABLE_NAME']}, bus {env.resources['EVENT_BUS_NAME']}, queues, secrets, roles, rules), "
                f"{len(env.stack.resources) - len(created)} played by the runner or checked by lint only"
            )
            day = Day(env, receiver)
            say(bold(f"$ AUTOPILOT_STACK={env.stack.name} autopilot policy push {policy.name}")
                + dim("   # the demo's policy: a deferral is looked at again after 1 s; the stack's name is "
                      "all the command line needs (its outputs name the parameter, the table, the secrets)"))
            pushed = day.autopilot("policy", "push", str(policy))
            expect(pushed.returncode == 0, f"autopilot policy push exited with {pushed.returncode}: {pushed.stdout}{pushed.stderr}")
            print(f"    {pushed.stdout.strip()}")
            env.start_functions({"ALLOW_LOOPBACK_HTTP": "true"})
            say(dim("each function under its own cargo lambda watch, its own role and the stack's environment "
                    "(local only: ALLOW_LOOPBACK_HTTP=true), reading the policy from the stack's parameter"))
            day.warm_up()
            if HAS_SCHEDULE_CHECK:
                day.meeting_booked_in_outlook()
                day.focus_booked_in_google()
                day.meeting_planned()
            day.meeting()
            day.meeting_changed_by_hand()
            day.meeting_during_call()
            day.on_call()
            if HAS_SCHEDULE_CHECK:
                day.staffing_guard()
            day.forecast()
            if HAS_SCHEDULE_CHECK:
                day.look_ahead()
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
