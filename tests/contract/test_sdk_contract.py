"""Contract test: the official Genesys Cloud Python SDK (PureCloudPlatformClientV2 269.0.0)
against the simulator.

The SDK is the ground truth for paths, models, field names and enum values. It never fails on
what it does not know (unknown JSON keys are dropped, unknown enum values become
"outdated_sdk_version", `systemPresence` is not checked at all), so every call goes through
`Sdk.call`, which also compares the wire JSON with the model the SDK built, and the tests assert
the seeded values themselves.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

import PureCloudPlatformClientV2 as gc
from PureCloudPlatformClientV2.rest import ApiException

from conftest import (
    CODE_GRANT_CLIENT,
    DEMO_CLIENT,
    READONLY_CLIENT,
    Sdk,
    assert_error_body,
    expect_api_error,
    find_outdated,
    wire_vs_model,
)

# ------------------------------------------------------------------ seeded values (default seed)

ADA = ("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f", "Ada Agent", "ada@example.com")
BEN = ("3ce84f47-4e65-4756-a815-67a2b32e58b8", "Ben Agent", "ben@example.com")
CY = ("d2dab52a-8588-4942-8d44-fd8a2aa5d4a2", "Cy Agent", "cy@example.com")
DEE = ("5b1e8f7a-2c3d-4e5f-8a9b-0c1d2e3f4a5b", "Dee Supervisor", "dee@example.com")
USERS = [ADA, BEN, CY, DEE]
AGENTS = [ADA, BEN, CY]  # the three in the demo management unit, with a published shift

BUSINESS_UNIT = "b1a7e0c2-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
MANAGEMENT_UNIT = "a2b8f1d3-4e5f-4a6b-9c7d-8e9f0a1b2c3d"

# The real primary definition ids (reference §3) with their REST / v2 spellings.
PRIMARY = {
    "6a3af858-942f-489d-9700-5f9bcdcdae9b": ("Available", "Available"),
    "31fe3bac-dea6-44b7-bed7-47f91660a1a0": ("Busy", "Busy"),
    "7ffa01cd-7866-4ad7-8faa-31e11b42f51f": ("Idle", "Idle"),
    "5e5c5c66-ea97-4e7f-ac41-6424784829f2": ("Away", "Away"),
    "bbdff279-7ae1-48ea-bade-7831d7234c64": ("Meeting", "Meeting"),
    "3fd96123-badb-4f69-bc03-1b1ccc6d8014": ("Meal", "Meal"),
    "d2390a99-8546-bad9-8f0a-219548e8aeb0": ("Training", "Training"),
    "e08eaf1b-ee47-4fa9-a231-1200e284798f": ("On Queue", "OnQueue"),
    "227b37e2-f1d0-4dd0-8f50-badd7cf6d158": ("Break", "Break"),
    "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5": ("Offline", "Offline"),
}
AVAILABLE = "6a3af858-942f-489d-9700-5f9bcdcdae9b"
BUSY = "31fe3bac-dea6-44b7-bed7-47f91660a1a0"
ON_QUEUE = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
MEETING = "bbdff279-7ae1-48ea-bade-7831d7234c64"
# Org secondary presences of the default seed: id -> (label, REST systemPresence).
SECONDARY = {
    "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a": ("Focus Time", "Busy"),
    "2fa68d50-5edb-4e01-9390-522615f12243": ("Away From Keyboard V2", "Away"),
}
FOCUS_TIME = "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a"

ACTIVITY_CATEGORIES = {
    "0": "OnQueueWork", "1": "Break", "2": "Meal", "3": "Meeting",
    "4": "OffQueueWork", "5": "TimeOff", "6": "Training", "7": "Unavailable",
}
# The seeded shift: on-queue work 60 min, a meeting block 180 min, off-queue work 240 min.
SHIFT_ACTIVITIES = [("0", 60, ""), ("3", 180, "Team meeting block"), ("4", 240, "")]

UNKNOWN_USER = "00000000-0000-4000-8000-000000000000"
EDIT_PERMISSION = "presence:userPresence:edit"


def presence_body(definition_id: str | None = None, message: str | None = None) -> gc.UserPresence:
    body = gc.UserPresence()
    if definition_id is not None:
        definition = gc.PresenceDefinition()
        definition.id = definition_id
        body.presence_definition = definition
    if message is not None:
        body.message = message
    return body


def assert_rest_presence(presence, user_id: str, definition_id: str, message: str | None = None):
    assert presence.source == "PURECLOUD"
    assert presence.presence_definition.id == definition_id
    # REST spells it "On Queue" (with a space); the SDK does not check this field at all.
    assert presence.presence_definition.system_presence == PRIMARY.get(
        definition_id, (SECONDARY.get(definition_id, (None, None))[1],)
    )[0]
    assert presence.presence_definition.self_uri == f"/api/v2/presencedefinitions/{definition_id}"
    assert isinstance(presence.modified_date, datetime) and presence.modified_date.tzinfo
    assert presence.self_uri == f"/api/v2/users/{user_id}/presences"
    if message is not None:
        assert presence.message == message


# ------------------------------------------------------------------ login


def test_client_credentials_login(sim, demo):
    token_response = demo.responses[0]
    assert token_response.getheader("inin-correlation-id")
    token = json.loads(token_response.data)
    assert token["token_type"] == "bearer"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert demo.api_client.access_token == token["access_token"]


# ------------------------------------------------------------------ presence


def test_get_user_presence_purecloud_and_by_source(demo):
    for user_id, _, _ in USERS:
        presence = demo.call(demo.presence.get_user_presences_purecloud, user_id)
        assert isinstance(presence, gc.UserPresence)
        assert_rest_presence(presence, user_id, AVAILABLE)
        by_source = demo.call(demo.presence.get_user_presence, user_id, "PURECLOUD")
        assert by_source.presence_definition.id == AVAILABLE
        assert by_source.modified_date == presence.modified_date


def test_patch_user_presence_purecloud(demo):
    user_id = ADA[0]
    before = demo.call(demo.presence.get_user_presences_purecloud, user_id)
    time.sleep(0.01)
    patched = demo.call(demo.presence.patch_user_presences_purecloud, user_id,
                        presence_body(BUSY, "at lunch desk"))
    assert_rest_presence(patched, user_id, BUSY, "at lunch desk")
    assert patched.modified_date > before.modified_date  # set by the server
    again = demo.call(demo.presence.get_user_presences_purecloud, user_id)
    assert again.presence_definition.id == BUSY and again.message == "at lunch desk"

    # message only: definition stays.
    patched = demo.call(demo.presence.patch_user_presences_purecloud, user_id,
                        presence_body(message=""))
    assert_rest_presence(patched, user_id, BUSY, "")

    # a secondary (org) presence reads its system presence.
    patched = demo.call(demo.presence.patch_user_presences_purecloud, user_id,
                        presence_body(FOCUS_TIME))
    assert_rest_presence(patched, user_id, FOCUS_TIME)


def test_patch_user_presence_by_source_and_routing_status_follows(demo):
    user_id = ADA[0]
    patched = demo.call(demo.presence.patch_user_presence, user_id, "PURECLOUD",
                        presence_body(ON_QUEUE, "queue time"))
    assert_rest_presence(patched, user_id, ON_QUEUE, "queue time")
    assert patched.presence_definition.system_presence == "On Queue"
    routing = demo.call(demo.users.get_user_routingstatus, user_id)
    assert isinstance(routing, gc.RoutingStatus)
    assert routing.user_id == user_id and routing.status == "IDLE"
    assert isinstance(routing.start_time, datetime)

    demo.call(demo.presence.patch_user_presence, user_id, "PURECLOUD", presence_body(AVAILABLE))
    routing = demo.call(demo.users.get_user_routingstatus, user_id)
    assert routing.status == "OFF_QUEUE"


def test_routing_status_interacting_via_control(sim, demo):
    user_id = BEN[0]
    assert demo.call(demo.users.get_user_routingstatus, user_id).status == "OFF_QUEUE"
    demo.call(demo.presence.patch_user_presences_purecloud, user_id, presence_body(ON_QUEUE))
    sim.control("PUT", f"/sim/users/{user_id}/routingstatus", {"status": "INTERACTING"})
    try:
        assert demo.call(demo.users.get_user_routingstatus, user_id).status == "INTERACTING"
    finally:
        demo.call(demo.presence.patch_user_presences_purecloud, user_id,
                  presence_body(AVAILABLE))
    assert demo.call(demo.users.get_user_routingstatus, user_id).status == "OFF_QUEUE"


def test_get_users_presences_bulk(demo):
    ids = [CY[0], DEE[0]]
    items = demo.call(demo.presence.get_users_presences_purecloud_bulk, id=ids)
    assert [type(i) for i in items] == [gc.UcUserPresence, gc.UcUserPresence]
    assert sorted(i.user_id for i in items) == sorted(ids)
    for item in items:
        assert_rest_presence(item, item.user_id, AVAILABLE)
    by_source = demo.call(demo.presence.get_users_presence_bulk, "PURECLOUD", id=ids)
    assert sorted(i.user_id for i in by_source) == sorted(ids)

    # 50 ids is the limit, not an error.
    fifty = [CY[0]] + [str(uuid.uuid4()) for _ in range(49)]
    items = demo.call(demo.presence.get_users_presences_purecloud_bulk, id=fifty)
    assert [i.user_id for i in items] == [CY[0]]


def test_put_users_presences_bulk(demo):
    bodies = []
    for user_id, definition_id in ((BEN[0], MEETING), (CY[0], BUSY)):
        item = gc.MutableUserPresence()
        item.id = user_id
        definition = gc.PresenceDefinition()
        definition.id = definition_id
        item.presence_definition = definition
        item.message = "bulk"
        bodies.append(item)
    results = demo.call(demo.presence.put_users_presences_bulk, bodies)
    assert all(isinstance(r, gc.UserPresence) for r in results)
    assert {r.id: r.presence_definition.id for r in results} == {BEN[0]: MEETING, CY[0]: BUSY}
    for result in results:
        assert_rest_presence(result, result.id, result.presence_definition.id, "bulk")
    seen = demo.call(demo.presence.get_users_presences_purecloud_bulk, id=[BEN[0], CY[0]])
    assert {i.user_id: i.presence_definition.id for i in seen} == {BEN[0]: MEETING, CY[0]: BUSY}
    # back to the seed
    for body in bodies:
        body.presence_definition.id = AVAILABLE
        body.message = ""
    demo.call(demo.presence.put_users_presences_bulk, bodies)


# ------------------------------------------------------------------ definitions


def test_legacy_presencedefinitions(demo):
    # The SDK marks the legacy routes deprecated ("migrate to /api/v2/presence/definitions").
    with pytest.warns(DeprecationWarning, match="get_presencedefinitions"):
        listing = demo.call(demo.presence.get_presencedefinitions, page_size=25, page_number=1)
    assert isinstance(listing, gc.OrganizationPresenceEntityListing)
    by_id = {d.id: d for d in listing.entities}
    assert set(by_id) == set(PRIMARY) | set(SECONDARY)
    assert listing.total == len(by_id) and listing.page_number == 1 and listing.page_size == 25
    for definition_id, (rest, _) in PRIMARY.items():
        definition = by_id[definition_id]
        assert definition.system_presence == rest, definition_id  # "On Queue" with a space
        assert definition.primary is True and definition.deactivated is False
        assert definition.language_labels == {"en_US": rest}
    for definition_id, (label, rest) in SECONDARY.items():
        definition = by_id[definition_id]
        assert definition.primary is False and definition.system_presence == rest
        assert definition.language_labels["en_US"] == label

    with pytest.warns(DeprecationWarning, match="get_presencedefinition"):
        one = demo.call(demo.presence.get_presencedefinition, ON_QUEUE)
    assert isinstance(one, gc.OrganizationPresence)
    assert one.id == ON_QUEUE and one.system_presence == "On Queue" and one.primary is True


def test_presence_definitions_v2(demo):
    listing = demo.call(demo.presence.get_presence_definitions)
    assert isinstance(listing, gc.OrganizationPresenceDefinitionEntityListing)
    by_id = {d.id: d for d in listing.entities}
    assert set(by_id) == set(PRIMARY) | set(SECONDARY)
    assert listing.total == len(by_id)
    for definition_id, (_, v2) in PRIMARY.items():
        definition = by_id[definition_id]
        assert definition.system_presence == v2, definition_id  # "OnQueue", no space
        assert definition.type == "System" and definition.deactivated is False
    for definition_id, (label, rest) in SECONDARY.items():
        definition = by_id[definition_id]
        assert definition.type == "User" and definition.system_presence == rest
        assert definition.language_labels["en_US"] == label

    one = demo.call(demo.presence.get_presence_definition, ON_QUEUE)
    assert isinstance(one, gc.OrganizationPresenceDefinition)
    assert one.id == ON_QUEUE and one.system_presence == "OnQueue" and one.type == "System"


def test_systempresences(demo):
    items = demo.call(demo.presence.get_systempresences)
    assert all(isinstance(i, gc.SystemPresence) for i in items)
    # Names are the REST spelling. The ids are inferred (the SDK documents only the shape):
    # the platform's upper-case spelling, as in notifications ("ON_QUEUE").
    assert {i.name: i.id for i in items} == {
        rest: rest.upper().replace(" ", "_") for rest, _ in PRIMARY.values()
    }
    for item in items:
        assert item.self_uri == f"/api/v2/systempresences/{item.id}"


# ------------------------------------------------------------------ users


def test_get_users_paged(demo):
    seen = []
    page_number = 1
    while True:
        listing = demo.call(demo.users.get_users, page_size=2, page_number=page_number)
        assert isinstance(listing, gc.UserEntityListing)
        assert listing.total == 4 and listing.page_count == 2 and listing.page_size == 2
        assert listing.page_number == page_number
        seen += [(u.id, u.name, u.email) for u in listing.entities]
        if listing.next_uri is None:
            break
        assert "pageNumber=2" in listing.next_uri
        page_number += 1
    assert seen == USERS
    assert all(u.state == "active" for u in listing.entities)

    # id=a,b filters (the SDK sends the list as CSV)
    listing = demo.call(demo.users.get_users, id=[CY[0], ADA[0]])
    assert sorted(u.id for u in listing.entities) == sorted([ADA[0], CY[0]])
    assert listing.total == 2


def test_get_user(demo):
    for user_id, name, email in USERS:
        user = demo.call(demo.users.get_user, user_id)
        assert isinstance(user, gc.User)
        assert (user.id, user.name, user.email) == (user_id, name, email)
        assert user.state == "active" and isinstance(user.version, int)
        assert user.self_uri == f"/api/v2/users/{user_id}"


def test_post_users_search_exact_email(demo):
    def search(value: str) -> gc.UsersSearchResponse:
        criterion = gc.UserSearchCriteria()
        criterion.type = "EXACT"
        criterion.fields = ["email"]
        criterion.value = value
        request = gc.UserSearchRequest()
        request.query = [criterion]
        request.page_size = 25
        request.page_number = 1
        return demo.call(demo.users.post_users_search, request)

    found = search(CY[2])
    assert isinstance(found, gc.UsersSearchResponse)
    assert found.total == 1 and found.page_number == 1 and found.types == ["users"]
    assert [(u.id, u.name, u.email) for u in found.results] == [CY]
    # EXACT: a prefix does not match.
    nothing = search("cy@example")
    assert nothing.total == 0 and not nothing.results


# ------------------------------------------------------------------ workforce management


def test_agent_management_unit(demo):
    for user_id, _, _ in AGENTS:
        reference = demo.call(demo.wfm.get_workforcemanagement_agent_managementunit, user_id)
        assert isinstance(reference, gc.AgentManagementUnitReference)
        assert reference.user.id == user_id
        assert reference.management_unit.id == MANAGEMENT_UNIT
        assert reference.business_unit.id == BUSINESS_UNIT


def test_business_units_are_listed(demo):
    listing = demo.call(demo.wfm.get_workforcemanagement_businessunits)
    assert isinstance(listing, gc.BusinessUnitListing)
    assert [(bu.id, bu.name) for bu in listing.entities] == [(BUSINESS_UNIT, "Demo Contact Centre")]
    assert all(isinstance(bu, gc.BusinessUnitListItem) for bu in listing.entities)


def _schedule_request() -> gc.BuSearchAgentSchedulesRequest:
    now = datetime.now(timezone.utc)
    request = gc.BuSearchAgentSchedulesRequest()
    request.start_date = now - timedelta(days=1)
    request.end_date = now + timedelta(days=1)
    request.user_ids = [u[0] for u in AGENTS]
    return request


def test_agent_schedules_search_complete(demo):
    response = demo.call(demo.wfm.post_workforcemanagement_businessunit_agentschedules_search,
                         BUSINESS_UNIT, _schedule_request())
    assert isinstance(response, gc.BuAsyncAgentSchedulesSearchResponse)
    assert response.status == "Complete" and response.operation_id
    result = response.result
    assert result.business_unit_time_zone == "America/New_York"
    assert result.published_schedules and all(
        isinstance(s.week_date, date) for s in result.published_schedules
    )
    assert sorted(s.user.id for s in result.agent_schedules) == sorted(u[0] for u in AGENTS)
    for schedule in result.agent_schedules:
        assert len(schedule.shifts) == 1
        shift = schedule.shifts[0]
        assert isinstance(shift.start_date, datetime) and shift.length_minutes == 480
        assert isinstance(shift.schedule.week_date, date)
        assert [(a.activity_code_id, a.length_minutes, a.description)
                for a in shift.activities] == SHIFT_ACTIVITIES
        assert shift.activities[0].start_date == shift.start_date
        assert schedule.full_day_time_off_markers == []


def test_agent_schedules_search_processing(sim, demo):
    sim.control("PUT", f"/sim/businessunits/{BUSINESS_UNIT}/schedulesearch", {"mode": "processing"})
    try:
        response = demo.call(
            demo.wfm.post_workforcemanagement_businessunit_agentschedules_search,
            BUSINESS_UNIT, _schedule_request())
    finally:
        sim.control("PUT", f"/sim/businessunits/{BUSINESS_UNIT}/schedulesearch",
                    {"mode": "complete"})
    assert response.status == "Processing" and response.operation_id
    assert response.result is None

    # forceAsync=true answers Processing whatever the seed says.
    response = demo.call(demo.wfm.post_workforcemanagement_businessunit_agentschedules_search,
                         BUSINESS_UNIT, _schedule_request(), force_async=True)
    assert response.status == "Processing" and response.result is None


def test_activity_codes(demo):
    listing = demo.call(demo.wfm.get_workforcemanagement_businessunit_activitycodes,
                        BUSINESS_UNIT)
    assert isinstance(listing, gc.BusinessUnitActivityCodeListing)
    assert {c.id: c.category for c in listing.entities} == ACTIVITY_CATEGORIES
    assert all(c.name and c.active is True and c.default_code is True for c in listing.entities)


# ------------------------------------------------------------------ error paths


def test_401_bad_credentials(sim):
    bogus = Sdk(sim.base_url)
    bogus.api_client.access_token = "not-a-token"
    _, body = expect_api_error(bogus.presence.get_user_presences_purecloud, ADA[0], status=401)
    assert_error_body(body, 401, "bad.credentials")


def test_403_missing_permission_on_patch(readonly):
    error, body = expect_api_error(readonly.presence.patch_user_presences_purecloud, ADA[0],
                                   presence_body(BUSY), status=403)
    assert_error_body(body, 403, "missing.permissions")
    assert EDIT_PERMISSION in error.body
    # reading needs no permission
    assert readonly.call(readonly.presence.get_user_presences_purecloud, ADA[0])


def test_404s(demo):
    _, body = expect_api_error(demo.presence.get_user_presences_purecloud, UNKNOWN_USER,
                               status=404)
    assert_error_body(body, 404, "not.found")
    _, body = expect_api_error(demo.presence.patch_user_presences_purecloud, UNKNOWN_USER,
                               presence_body(BUSY), status=404)
    assert_error_body(body, 404, "not.found")
    _, body = expect_api_error(demo.users.get_user, UNKNOWN_USER, status=404)
    assert_error_body(body, 404, "general.resource.not.found")
    _, body = expect_api_error(demo.presence.get_presence_definition, str(uuid.uuid4()),
                               status=404)
    assert_error_body(body, 404, "not.found")
    # Dee is in no management unit.
    _, body = expect_api_error(demo.wfm.get_workforcemanagement_agent_managementunit, DEE[0],
                               status=404)
    assert_error_body(body, 404, "not.found")


def test_400_bulk_get_over_50_ids(demo):
    ids = [str(uuid.uuid4()) for _ in range(51)]
    _, body = expect_api_error(demo.presence.get_users_presences_purecloud_bulk, id=ids,
                               status=400)
    assert_error_body(body, 400, "bad.request")
    assert "50" in body["message"]


def test_400_invalid_query_is_an_error_body(demo):
    # The SDK does not type-check parameters; a malformed query still gets an ErrorBody.
    _, body = expect_api_error(demo.users.get_users, page_size="abc", status=400)
    assert_error_body(body, 400, "bad.request")
    _, body = expect_api_error(demo.users.get_users, page_size=0, status=400)
    assert_error_body(body, 400, "invalid.value")


def test_400_unknown_presence_definition(demo):
    unknown = str(uuid.uuid4())
    _, body = expect_api_error(demo.presence.patch_user_presences_purecloud, ADA[0],
                               presence_body(unknown), status=400)
    # The real code for this case is unverified (reference §9.3); invalid.value is the
    # documented code for a value that is not valid for its field.
    assert_error_body(body, 400, "invalid.value")
    assert unknown in body["message"]


@pytest.mark.parametrize(
    ("client_id", "secret", "error", "description"),
    [
        (DEMO_CLIENT[0], "wrong-secret", "invalid_client", "authentication failed"),
        ("no-such-client", "whatever", "invalid_client", "client not found"),
        (*CODE_GRANT_CLIENT, "unauthorized_client",
         "client is not authorized to use the client_credential grant type"),
    ],
    ids=["wrong-secret", "unknown-client", "code-grant-client"],
)
def test_token_errors(sim, client_id, secret, error, description):
    client = Sdk(sim.base_url)
    with pytest.raises(ApiException) as caught:
        client.api_client.get_client_credentials_token(client_id, secret)
    assert caught.value.status == 400
    assert caught.value.headers.get("inin-correlation-id")
    assert json.loads(caught.value.body) == {
        "error": error, "description": description, "error_description": description,
    }
    assert client.api_client.access_token == ""


def test_429_raw_with_retries_off(sim):
    limited = Sdk(sim.base_url, *DEMO_CLIENT, retries=False)
    sim.control("PUT", "/sim/ratelimit", {"requestsPerWindow": 3, "windowSeconds": 60})
    try:
        for count in (1, 2, 3):
            limited.call(limited.presence.get_systempresences)
            headers = limited.last.getheaders()
            assert headers["inin-ratelimit-allowed"] == "3"
            assert headers["inin-ratelimit-count"] == str(count)
            assert 1 <= int(headers["inin-ratelimit-reset"]) <= 60
        before = len(sim.requests_log())
        error, body = expect_api_error(limited.presence.get_systempresences, status=429)
        assert len(sim.requests_log()) == before + 1, "the SDK retried although retries are off"
    finally:
        sim.control("PUT", "/sim/ratelimit", {"requestsPerWindow": 300, "windowSeconds": 60})
    retry_after = error.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60
    assert_error_body(body, 429, "too.many.requests")
    assert body["message"] == "Rate limit exceeded the maximum [3] requests within [60] seconds"
    assert error.headers.get("inin-ratelimit-allowed") == "3"
    assert error.headers.get("inin-ratelimit-count") == "3"
    # restored: the same token works again
    assert limited.call(limited.presence.get_systempresences)


def test_sdk_default_transport_retries_429_honouring_retry_after(sim, demo):
    """What the issue says of the SDK, observed: its urllib3 transport retries a 429 after
    `Retry-After` seconds without telling the caller."""
    path = "/api/v2/systempresences"
    sim.control("POST", "/sim/faults", {"method": "GET", "path": path, "count": 1,
                                        "kind": "status", "status": 429,
                                        "retryAfterSeconds": 2})
    before = len(sim.requests_log())
    started = time.monotonic()
    assert demo.call(demo.presence.get_systempresences)
    elapsed = time.monotonic() - started
    statuses = [r["status"] for r in sim.requests_log()[before:] if r["path"] == path]
    assert statuses == [429, 200]
    assert elapsed >= 2.0, f"retried after {elapsed:.2f}s, before Retry-After: 2"


# ------------------------------------------------------------------ the checker itself


def test_wire_checker_flags_what_the_sdk_tolerates():
    """`Sdk.call` relies on `wire_vs_model` and `find_outdated`; prove they catch what the SDK
    silently accepts: an unknown key, a number sent as a string, a zone-less date-time and an
    unknown enum value."""
    client = gc.ApiClient(host="http://127.0.0.1:9")
    raw = {"userId": "u", "status": "ON_BREAK", "startTime": "2024-05-06T13:00:00",
           "extra": 1}
    routing = client._ApiClient__deserialize(raw, "RoutingStatus")
    assert routing.status == "outdated_sdk_version"  # the SDK did not raise
    assert find_outdated(routing) == ["$.status"]
    problems = wire_vs_model(raw, routing)
    assert "$.extra: not a field of RoutingStatus" in problems
    assert any(p.startswith("$.startTime") for p in problems)
    code = client._ApiClient__deserialize({"id": "0", "lengthInMinutes": "30"},
                                          "BusinessUnitActivityCode")
    assert wire_vs_model({"id": "0", "lengthInMinutes": "30"}, code) == [
        "$.lengthInMinutes: '30' is not a valid int"
    ]
