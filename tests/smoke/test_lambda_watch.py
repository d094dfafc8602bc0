"""Smoke test: the real `transition` binary under `cargo lambda watch`, invoked with a fixture
and with a live event, against the Genesys simulator and moto."""

import datetime as dt
import json
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
from local_env import ROOT, LocalEnv  # noqa: E402

ADA = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
UNATTRIBUTED = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def env():
    with LocalEnv() as local:
        local.start_functions()
        yield local


def presence(env: LocalEnv, user: str) -> dict:
    # The simulator's control surface needs no token; read the presence as Genesys holds it.
    mutations = json.load(urllib.request.urlopen(f"{env.sim_url}/sim/mutations"))
    return [m for m in mutations if m["userId"] == user]


def as_batch(*events: dict) -> dict:
    """The burst queue's delivery: transition takes SQS batches only (bus rules and schedules
    both send there)."""
    return {
        "Records": [
            {
                "messageId": f"smoke-{index}-{event.get('id', 'no-id')}",
                "receiptHandle": f"handle-{index}",
                "body": json.dumps(event),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            }
            for index, event in enumerate(events)
        ]
    }


def audit_of(env: LocalEnv, user: str, event_id: str) -> dict:
    """The audit record an event left: what the batch answer alone cannot say."""
    page = env.client("dynamodb").query(
        TableName=env.resources["TABLE_NAME"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :audit)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user}"}, ":audit": {"S": "AUDIT#"}},
        ConsistentRead=True,
    )
    records = [item for item in page["Items"] if item.get("eventId", {}).get("S") == event_id]
    assert len(records) == 1, f"expected one audit record of {event_id}, got {records}"
    return records[0]


def test_fixture_event_is_handled_by_the_real_binary(env):
    fixture = json.loads((ROOT / "tests/fixtures/calendar-event-started.json").read_text())

    response = env.invoke("transition", as_batch(fixture))

    # The fixture's meeting is in the past: the function says so rather than acting on it.
    assert response == {"batchItemFailures": []}, response
    record = audit_of(env, ADA, fixture["id"])
    assert record["kind"]["S"] == "skipped", record
    assert record["reason"]["S"] == "the event had already ended"


def test_live_meeting_start_sets_meeting(env):
    now = dt.datetime.now(dt.timezone.utc)
    event = json.loads((ROOT / "tests/fixtures/calendar-event-started.json").read_text())
    event["id"] = "smoke-live-start"
    event["detail"]["calendarEventId"] = "smoke-meeting"
    event["detail"]["start"] = (now - dt.timedelta(minutes=1)).isoformat()
    event["detail"]["end"] = (now + dt.timedelta(minutes=30)).isoformat()

    response = env.invoke("transition", as_batch(event))

    assert response == {"batchItemFailures": []}, response
    assert audit_of(env, ADA, event["id"])["kind"]["S"] == "applied"
    changes = presence(env, ADA)
    assert changes and changes[-1]["caller"] == "demo-client"


def test_malformed_event_is_rejected_with_the_field(env):
    fixture = json.loads((ROOT / "tests/fixtures/malformed-missing-end.json").read_text())
    batch = as_batch(fixture)

    response = env.invoke("transition", batch)

    # A rejection is reported failed, so SQS dead-letters it after its receives.
    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    record = audit_of(env, UNATTRIBUTED, fixture["id"])
    assert record["kind"]["S"] == "rejected"
    assert "detail.end" in record["reason"]["S"]


def test_sqs_batch_reports_only_the_malformed_record(env):
    batch = json.loads((ROOT / "tests/fixtures/sqs-batch.json").read_text())

    response = env.invoke("transition", batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][1]["messageId"]}]}


def test_anything_but_an_sqs_batch_is_refused(env):
    # One way in: a bare EventBridge event is not a batch, so the invocation fails whole
    # (no record is read as handled).
    fixture = json.loads((ROOT / "tests/fixtures/calendar-event-started.json").read_text())
    with pytest.raises(RuntimeError, match="(?i)deserializ|Records"):
        env.invoke("transition", fixture)
