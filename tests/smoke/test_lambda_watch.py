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


@pytest.fixture(scope="module")
def env():
    with LocalEnv() as local:
        local.start_functions()
        yield local


def presence(env: LocalEnv, user: str) -> dict:
    # The simulator's control surface needs no token; read the presence as Genesys holds it.
    mutations = json.load(urllib.request.urlopen(f"{env.sim_url}/sim/mutations"))
    return [m for m in mutations if m["userId"] == user]


def test_fixture_event_is_handled_by_the_real_binary(env):
    fixture = json.loads((ROOT / "tests/fixtures/calendar-event-started.json").read_text())

    outcome = env.invoke("transition", fixture)

    # The fixture's meeting is in the past: the function says so rather than acting on it.
    assert outcome["decision"] == "skipped", outcome
    assert outcome["reason"] == "the event had already ended"


def test_live_meeting_start_sets_meeting(env):
    now = dt.datetime.now(dt.timezone.utc)
    event = json.loads((ROOT / "tests/fixtures/calendar-event-started.json").read_text())
    event["id"] = "smoke-live-start"
    event["detail"]["calendarEventId"] = "smoke-meeting"
    event["detail"]["start"] = (now - dt.timedelta(minutes=1)).isoformat()
    event["detail"]["end"] = (now + dt.timedelta(minutes=30)).isoformat()

    outcome = env.invoke("transition", event)

    assert outcome["decision"] == "applied", outcome
    changes = presence(env, ADA)
    assert changes and changes[-1]["caller"] == "demo-client"


def test_malformed_event_is_rejected_with_the_field(env):
    fixture = json.loads((ROOT / "tests/fixtures/malformed-missing-end.json").read_text())

    outcome = env.invoke("transition", fixture)

    assert outcome["decision"] == "rejected"
    assert "detail.end" in outcome["reason"]


def test_sqs_batch_reports_only_the_malformed_record(env):
    batch = json.loads((ROOT / "tests/fixtures/sqs-batch.json").read_text())

    response = env.invoke("transition", batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][1]["messageId"]}]}
