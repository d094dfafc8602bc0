"""Contract test: Google's official Python SDK (google-api-python-client 2.202.0 with its bundled
Calendar v3 discovery document, google-auth 2.63.0) against the Google Calendar simulator
(`tests/google-sim`).

The SDK is the ground truth for the token request (its own RS256 assertion), URLs, query
spelling, JSON bodies and error handling: every Google call goes through
`service_account.Credentials` and the `calendar` v3 service; plain `requests` is used only for
the simulator's `/sim/` control surface. Wiring and fixtures: `google_conftest.py`.

Each test uses its own fresh domain user (so its own calendar), except the auth tests that only
need a seed user.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError

from google_conftest import (
    AGENT1,
    CALENDAR_FULL,
    CALENDAR_READONLY,
    FIXTURES,
    SERVICE_ACCOUNT,
)

MAX_PAGES = 20  # a bound for every paging loop
# A fixed window far from the sim clock: events are placed by the test, not by "now".
WINDOW = ("2030-01-14T00:00:00Z", "2030-01-21T00:00:00Z")
NOTIFICATION_HEADERS = {
    "x-goog-channel-id", "x-goog-channel-token", "x-goog-channel-expiration",
    "x-goog-message-number", "x-goog-resource-id", "x-goog-resource-state",
    "x-goog-resource-uri",
}


def list_all(service, **params) -> list[dict]:
    """Every page of events.list, through the SDK's own `list_next`."""
    pages = []
    request = service.events().list(**params)
    while request is not None:
        assert len(pages) < MAX_PAGES, "nextPageToken never ended"
        pages.append(request.execute())
        request = service.events().list_next(request, pages[-1])
    return pages


def http_error(call) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call.execute()
    return caught.value


def paths(log: list[dict], fragment: str) -> list[tuple[str, int]]:
    return [(r["path"], r["status"]) for r in log if fragment in r["path"]]


def hourly(sim, email: str, day: int, hours: range) -> list[dict]:
    return [sim.create_event(email, summary=f"h{h}", start=f"2030-01-{day}T{h:02}:00:00Z",
                             end=f"2030-01-{day}T{h:02}:30:00Z") for h in hours]


# ------------------------------------------------------------------ token endpoint


def test_sdk_assertion_is_accepted_and_a_token_granted(google_sim, google):
    before = len(google_sim.requests_log())
    grants_before = google_sim.control("GET", "/sim/tokens").json()["grants"].get(AGENT1, 0)
    service = google.service(AGENT1)
    page = service.events().list(calendarId="primary", maxResults=1).execute()
    assert page["kind"] == "calendar#events" and page["summary"] == AGENT1
    log = google_sim.requests_log()[before:]
    assert [(r["method"], r["path"], r["status"], r["sub"]) for r in log] == [
        ("POST", "/token", 200, AGENT1),
        ("GET", "/calendar/v3/calendars/primary/events", 200, AGENT1),
    ]
    assert "alt=json" in log[1]["query"]  # the SDK's own system parameter
    grants = google_sim.control("GET", "/sim/tokens").json()["grants"]
    assert grants[AGENT1] == grants_before + 1
    credentials = service._http.credentials
    assert credentials.token.startswith("ya29.") and credentials.valid
    assert credentials.service_account_email == SERVICE_ACCOUNT


def test_forged_assertion_is_refused_with_invalid_grant(google):
    forged = (FIXTURES / "unauthorized-key.pem").read_text()
    service = google.service(AGENT1, private_key=forged)
    with pytest.raises(RefreshError) as caught:
        service.events().list(calendarId="primary").execute()
    message, body = caught.value.args[0], caught.value.args[1]
    assert message == "invalid_grant: Invalid JWT Signature."
    assert body == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    assert caught.value.retryable is False


def test_scope_not_authorised_is_unauthorized_client(google):
    service = google.service(AGENT1, scopes=[CALENDAR_FULL])
    with pytest.raises(RefreshError) as caught:
        service.events().list(calendarId="primary").execute()
    assert caught.value.args[1]["error"] == "unauthorized_client"
    assert "not authorized for any of the scopes" in caught.value.args[0]


def test_unknown_subject_is_invalid_grant(google):
    service = google.service("nobody@example.com")
    with pytest.raises(RefreshError) as caught:
        service.events().list(calendarId="primary").execute()
    assert caught.value.args[1] == {"error": "invalid_grant",
                                    "error_description": "Invalid email or User ID"}


def test_revoked_token_is_refreshed_by_the_sdk_after_401(google_sim, google):
    service = google.service(AGENT1)
    service.events().list(calendarId="primary", maxResults=1).execute()
    google_sim.control("DELETE", "/sim/tokens")
    before = len(google_sim.requests_log())
    service.events().list(calendarId="primary", maxResults=1).execute()
    log = google_sim.requests_log()[before:]
    assert [(r["path"].rsplit("/", 1)[-1], r["status"]) for r in log] == [
        ("events", 401), ("token", 200), ("events", 200)]


# ------------------------------------------------------------------ calendars.get, wiring


def test_calendars_get_needs_a_calendar_scope(google_sim, google):
    email = google_sim.new_user()
    calendar = google.service(email, scopes=[CALENDAR_READONLY]).calendars().get(
        calendarId="primary").execute()
    assert calendar == {"kind": "calendar#calendar", "etag": calendar["etag"], "id": email,
                        "summary": email, "timeZone": "UTC",
                        "conferenceProperties": {"allowedConferenceSolutionTypes":
                                                 ["hangoutsMeet"]}}
    error = http_error(google.service(email).calendars().get(calendarId=email))
    assert error.status_code == 403
    assert error.error_details[0]["reason"] == "insufficientPermissions"
    # Another user's calendar is not visible to this user's token.
    other = http_error(google.service(email).events().list(calendarId=AGENT1))
    assert other.status_code == 404 and other.error_details[0]["reason"] == "notFound"


def test_api_endpoint_replaces_root_url_and_service_path(google_sim, google):
    bare = google.service(AGENT1, api_endpoint=google_sim.base_url)
    request = bare.events().list(calendarId=AGENT1)
    assert request.uri.startswith(f"{google_sim.base_url}/calendars/agent.one%40example.com/")
    error = http_error(request)
    assert error.status_code == 404 and error.error_details[0]["reason"] == "notFound"
    right = google.service(AGENT1).events().list(calendarId=AGENT1)
    assert right.uri.startswith(
        f"{google_sim.base_url}/calendar/v3/calendars/agent.one%40example.com/events?")


# ------------------------------------------------------------------ events.list and sync


def test_full_sync_pages_with_next_sync_token_only_on_the_last_page(google_sim, google):
    email = google_sim.new_user()
    created = hourly(google_sim, email, 15, range(9, 14))
    pages = list_all(google.service(email), calendarId="primary", maxResults=2)
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all("nextPageToken" in p and "nextSyncToken" not in p for p in pages[:-1])
    assert "nextPageToken" not in pages[-1] and pages[-1]["nextSyncToken"]
    items = [item for page in pages for item in page["items"]]
    assert [i["id"] for i in items] == [e["id"] for e in created]
    first = items[0]
    assert first["kind"] == "calendar#event" and first["status"] == "confirmed"
    assert first["start"] == {"dateTime": "2030-01-15T09:00:00Z", "timeZone": "UTC"}
    assert first["eventType"] == "default" and first["etag"].startswith('"')
    assert first["organizer"] == {"email": email, "self": True}
    assert "attendees" not in first  # an event without guests has none
    for page in pages:
        assert page["kind"] == "calendar#events" and page["timeZone"] == "UTC"


def test_incremental_sync_returns_created_moved_and_cancelled(google_sim, google):
    email = google_sim.new_user()
    service = google.service(email)
    moved, cancelled, untouched = hourly(google_sim, email, 16, range(9, 12))
    token = list_all(service, calendarId="primary")[-1]["nextSyncToken"]

    created = google_sim.create_event(email, summary="new", start="2030-01-16T14:00:00Z",
                                      end="2030-01-16T15:00:00Z", attendees=["peer@example.com"],
                                      organizer="boss@example.com")
    google_sim.change_event(email, moved["id"], start="2030-01-16T16:00:00Z")
    google_sim.cancel_event(email, cancelled["id"])

    pages = list_all(service, calendarId="primary", syncToken=token, maxResults=2)
    assert "nextSyncToken" in pages[-1] and all("nextSyncToken" not in p for p in pages[:-1])
    items = {i["id"]: i for page in pages for i in page["items"]}
    assert set(items) == {created["id"], moved["id"], cancelled["id"]}
    assert untouched["id"] not in items
    assert items[moved["id"]]["start"]["dateTime"] == "2030-01-16T16:00:00Z"
    assert items[moved["id"]]["end"]["dateTime"] == "2030-01-16T16:30:00Z"
    assert items[moved["id"]]["etag"] != moved["etag"]
    assert items[cancelled["id"]] == {"kind": "calendar#event", "etag": items[cancelled["id"]]
                                      ["etag"], "id": cancelled["id"], "status": "cancelled"}
    invited = items[created["id"]]
    assert invited["organizer"] == {"email": "boss@example.com"}
    me = [a for a in invited["attendees"] if a.get("self")]
    assert me == [{"email": email, "self": True, "responseStatus": "needsAction"}]

    again = list_all(service, calendarId="primary", syncToken=pages[-1]["nextSyncToken"])
    assert again[-1]["items"] == [] and again[-1]["nextSyncToken"]
    # A full sync without showDeleted leaves the cancelled event out.
    full = [i["id"] for p in list_all(service, calendarId="primary") for i in p["items"]]
    assert cancelled["id"] not in full and moved["id"] in full


def test_sync_token_with_time_min_is_400(google_sim, google):
    email = google_sim.new_user()
    service = google.service(email)
    token = list_all(service, calendarId="primary")[-1]["nextSyncToken"]
    error = http_error(service.events().list(calendarId="primary", syncToken=token,
                                             timeMin=WINDOW[0]))
    assert error.status_code == 400
    assert error.error_details[0]["reason"] == "invalid"
    assert "timeMin" in error.reason


def test_expired_sync_token_is_410_full_sync_required(google_sim, google):
    email = google_sim.new_user()
    service = google.service(email)
    token = list_all(service, calendarId="primary")[-1]["nextSyncToken"]
    google_sim.control("POST", "/sim/sync-tokens/expire", {"email": email})
    error = http_error(service.events().list(calendarId="primary", syncToken=token))
    assert error.status_code == 410
    assert error.error_details == [{
        "domain": "global", "reason": "fullSyncRequired",
        "message": "Sync token is no longer valid, a full sync is required."}]
    assert error.reason == "Sync token is no longer valid, a full sync is required."


def test_single_events_expands_a_series_with_an_edited_and_a_cancelled_occurrence(
        google_sim, google):
    email = google_sim.new_user()
    service = google.service(email)
    series = google_sim.create_event(email, summary="daily", start="2030-01-15T09:00:00Z",
                                     end="2030-01-15T09:15:00Z",
                                     recurrence={"freq": "DAILY", "count": 4})
    assert series["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=4"]
    sid = series["id"]
    google_sim.change_event(email, f"{sid}_20300116T090000Z", summary="moved daily",
                            start="2030-01-16T11:00:00Z")
    google_sim.cancel_event(email, f"{sid}_20300117T090000Z")

    window = dict(calendarId="primary", timeMin=WINDOW[0], timeMax=WINDOW[1])
    expanded = [i for p in list_all(service, singleEvents=True, orderBy="startTime", **window)
                for i in p["items"]]
    assert [i["id"] for i in expanded] == [
        f"{sid}_20300115T090000Z", f"{sid}_20300116T090000Z", f"{sid}_20300118T090000Z"]
    edited = expanded[1]
    assert edited["summary"] == "moved daily" and edited["recurringEventId"] == sid
    assert edited["start"]["dateTime"] == "2030-01-16T11:00:00Z"
    assert edited["end"]["dateTime"] == "2030-01-16T11:15:00Z"
    assert edited["originalStartTime"] == {"dateTime": "2030-01-16T09:00:00Z",
                                           "timeZone": "UTC"}
    assert all("recurrence" not in i for i in expanded)

    with_deleted = [i for p in list_all(service, singleEvents=True, showDeleted=True, **window)
                    for i in p["items"]]
    gone = [i for i in with_deleted if i["status"] == "cancelled"]
    assert gone == [{"kind": "calendar#event", "etag": gone[0]["etag"],
                     "id": f"{sid}_20300117T090000Z", "status": "cancelled",
                     "recurringEventId": sid,
                     "originalStartTime": {"dateTime": "2030-01-17T09:00:00Z",
                                           "timeZone": "UTC"}}]

    masters = [i for p in list_all(service, singleEvents=False, **window) for i in p["items"]]
    assert [i["id"] for i in masters][0] == sid and masters[0]["recurrence"]
    assert {i["id"] for i in masters[1:]} == {f"{sid}_20300116T090000Z",
                                              f"{sid}_20300117T090000Z"}
    error = http_error(service.events().list(orderBy="startTime", **window))
    assert error.status_code == 400  # startTime ordering needs singleEvents


def test_focus_time_and_out_of_office_carry_their_event_type(google_sim, google):
    email = google_sim.new_user()
    service = google.service(email)
    google_sim.create_event(email, summary="meeting", start="2030-01-17T08:00:00Z",
                            end="2030-01-17T09:00:00Z", attendees=["peer@example.com"])
    focus = google_sim.create_event(email, eventType="focusTime", start="2030-01-17T09:00:00Z",
                                    end="2030-01-17T11:00:00Z")
    away = google_sim.create_event(email, eventType="outOfOffice", start="2030-01-18",
                                   end="2030-01-19")
    items = [i for p in list_all(service, calendarId="primary",
                                 eventTypes=["focusTime", "outOfOffice"]) for i in p["items"]]
    assert [(i["id"], i["eventType"]) for i in items] == [
        (focus["id"], "focusTime"), (away["id"], "outOfOffice")]
    assert items[0]["focusTimeProperties"]["chatStatus"] == "doNotDisturb"
    assert items[1]["outOfOfficeProperties"]["autoDeclineMode"]
    assert items[1]["start"] == {"date": "2030-01-18"} and items[1]["end"] == {"date": "2030-01-19"}
    assert all("attendees" not in i for i in items)
    everything = [i for p in list_all(service, calendarId="primary") for i in p["items"]]
    assert len(everything) == 3
    # The SDK checks eventTypes against the discovery document's enum, the simulator's list.
    with pytest.raises(TypeError, match="birthday.*default.*focusTime.*fromGmail"):
        service.events().list(calendarId="primary", eventTypes="holiday")


# ------------------------------------------------------------------ push channels


def watch_body(receiver, token: str | None = "tenant=t1&v=1", ttl: str = "3600") -> dict:
    body = {"id": str(uuid.uuid4()), "type": "web_hook",
            "address": f"{receiver.url}/google/notify", "params": {"ttl": ttl}}
    if token is not None:
        body["token"] = token
    return body


def test_watch_then_sync_and_exists_notifications(google_sim, google, push_receiver):
    email = google_sim.new_user()
    service = google.service(email)
    body = watch_body(push_receiver)
    now_ms = int(google_sim.now().timestamp() * 1000)
    channel = service.events().watch(calendarId="primary", body=body).execute()
    assert channel["kind"] == "api#channel" and channel["id"] == body["id"]
    assert channel["resourceId"] and channel["token"] == body["token"]
    assert channel["resourceUri"] == (
        "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json")
    assert isinstance(channel["expiration"], str)  # int64 travels as a string
    assert abs(int(channel["expiration"]) - (now_ms + 3_600_000)) < 5_000

    sync = push_receiver.next()
    google_sim.create_event(email, summary="pushed", start="2030-01-17T09:00:00Z",
                            end="2030-01-17T10:00:00Z")
    exists = push_receiver.next()
    for push in (sync, exists):
        assert push.path == "/google/notify" and push.body == b""
        assert push.headers["content-length"] == "0"
        assert push.headers["user-agent"].startswith("APIs-Google")
        assert NOTIFICATION_HEADERS <= set(push.headers)
        assert push.headers["x-goog-channel-id"] == channel["id"]
        assert push.headers["x-goog-channel-token"] == "tenant=t1&v=1"
        assert push.headers["x-goog-resource-id"] == channel["resourceId"]
        assert push.headers["x-goog-resource-uri"] == channel["resourceUri"]
        assert push.headers["x-goog-channel-expiration"].endswith(" GMT")
    assert sync.headers["x-goog-resource-state"] == "sync"
    assert sync.headers["x-goog-message-number"] == "1"
    assert exists.headers["x-goog-resource-state"] == "exists"
    assert int(exists.headers["x-goog-message-number"]) > 1
    raw_names = {name for name, _ in exists.raw_headers}
    assert "X-Goog-Channel-Id" in raw_names or "X-Goog-Channel-ID" in raw_names
    listed = [c for c in google_sim.control("GET", "/sim/channels").json()
              if c["id"] == channel["id"]]
    assert listed[0]["calendar"] == email and listed[0]["stopped"] is False


def test_channels_stop_ends_notifications(google_sim, google, push_receiver):
    email = google_sim.new_user()
    service = google.service(email)
    stopped = service.events().watch(calendarId="primary", body=watch_body(push_receiver)).execute()
    witness = service.events().watch(calendarId=email,
                                     body=watch_body(push_receiver, token=None)).execute()
    assert witness["resourceId"] == stopped["resourceId"]  # stable per calendar
    syncs = [push_receiver.next(), push_receiver.next()]
    assert {p.headers["x-goog-resource-state"] for p in syncs} == {"sync"}

    answer = service.channels().stop(body={"id": stopped["id"],
                                           "resourceId": stopped["resourceId"]}).execute()
    assert answer == ""  # 204, empty
    google_sim.create_event(email, summary="after stop", start="2030-01-17T09:00:00Z",
                            end="2030-01-17T10:00:00Z")
    after = push_receiver.next()
    assert after.headers["x-goog-channel-id"] == witness["id"]
    assert "x-goog-channel-token" not in after.headers
    time.sleep(0.3)
    assert push_receiver.received.empty(), "the stopped channel was still notified"
    again = http_error(service.channels().stop(body={"id": stopped["id"],
                                                     "resourceId": stopped["resourceId"]}))
    assert again.status_code == 404
    reused = http_error(service.events().watch(
        calendarId="primary", body={**watch_body(push_receiver), "id": witness["id"]}))
    assert reused.status_code == 400
    assert reused.error_details[0]["reason"] == "channelIdNotUnique"


# ------------------------------------------------------------------ quotas


def test_rate_limit_answers_403_rate_limit_exceeded(google_sim, google):
    email = google_sim.new_user()
    service = google.service(email)
    google_sim.control("POST", "/sim/rate-limit", {"perUserPerMinute": 2, "status": 403})
    try:
        for _ in range(2):
            service.events().list(calendarId="primary").execute()
        error = http_error(service.events().list(calendarId="primary"))
    finally:
        google_sim.control("POST", "/sim/rate-limit", {"perUserPerMinute": 600, "status": 403})
    assert error.status_code == 403
    assert error.reason == "Rate Limit Exceeded"
    assert error.error_details == [{"domain": "usageLimits", "reason": "rateLimitExceeded",
                                    "message": "Rate Limit Exceeded"}]
    log = [r for r in google_sim.requests_log() if r["sub"] == email]
    assert [r["status"] for r in log if r["path"].endswith("/events")][-3:] == [200, 200, 403]


def test_an_injected_fault_reaches_the_sdk_as_http_error(google_sim, google):
    email = google_sim.new_user()
    google_sim.control("POST", "/sim/faults", {"pathContains": email, "status": 503,
                                               "reason": "backendError"})
    error = http_error(google.service(email).events().list(calendarId=email))
    assert error.status_code == 503 and error.error_details[0]["reason"] == "backendError"
    assert not google_sim.control("GET", "/sim/faults").json()


def test_channel_expiration_is_capped_by_ttl(google_sim, google, push_receiver):
    email = google_sim.new_user()
    far = google_sim.now() + timedelta(days=30)
    body = {**watch_body(push_receiver, ttl="60"), "expiration": int(far.timestamp() * 1000)}
    channel = google.service(email).events().watch(calendarId="primary", body=body).execute()
    granted = int(channel["expiration"]) / 1000
    assert granted - google_sim.now().timestamp() <= 61
    push_receiver.next()
