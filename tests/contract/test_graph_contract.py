"""Contract test: the official Microsoft Graph Python SDK (msgraph-sdk 1.65.0, kiota 1.16)
against the Graph simulator (`tests/graph-sim`).

The SDK is the ground truth for URLs, query and header spelling, models, enum values and error
handling. Every Graph call goes through the SDK's own request builders and models; plain
`requests` is used only for the simulator's `/sim/` control surface and, inside the token
provider, for the token endpoint.

Pointing the SDK at the simulator: `GraphRequestAdapter(auth_provider)` with
`adapter.base_url = <sim>/v1.0`, wrapped in `GraphServiceClient(request_adapter=adapter)`.

Auth: azure-identity's `ClientSecretCredential` refuses an http authority ("must be a TLS
protected (https) URL", pinned by `test_azure_identity_refuses_an_http_authority`), so the
adapter gets kiota's `BaseBearerTokenAuthenticationProvider` over a small `AccessTokenProvider`
(`graph_conftest.SimTokenProvider`) that obtains the token from the simulator's real
`POST /{tenant}/oauth2/v2.0/token` with the seed's client id and secret (client-credentials
grant, scope `https://graph.microsoft.com/.default`), so the token path is still exercised.

What the SDK does that the simulator does not mirror, found by this test:

* The SDK's URL template for calendarView delta is `.../calendarView/delta()` (OData function
  call syntax); this test found graph-sim routing only `.../delta`, and the simulator now routes
  both, as Graph does (`test_sdk_delta_url_template_is_routed`).
* msgraph-sdk for Python ships no `ChangeNotificationCollection` model
  (microsoftgraph/msgraph-sdk-python#1322); the notification body is parsed by the SDK's kiota
  JSON parse node into hand-written kiota models in `graph_conftest.py`, with `resourceData`
  resolved through the SDK's `Entity` discriminator.

Retries: the SDK's default `RetryHandler` retries a 429 after `Retry-After` and the caller never
sees it (`test_429_default_retry_handler_honours_retry_after`); with retries off it raises
`ODataError` 429 (`test_429_surfaces_as_odata_error_with_retries_off`).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import (
    HeadersInspectionHandlerOption,
    RetryHandlerOption,
)
from msgraph.generated.models.event import Event
from msgraph.generated.models.free_busy_status import FreeBusyStatus
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.response_type import ResponseType
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.models.user import User
from msgraph.generated.users.item.calendar_view.delta.delta_get_response import (
    DeltaGetResponse,
)
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
    DeltaRequestBuilder,
)

from graph_conftest import (
    AGENT1,
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT_ID,
    ChangeNotificationCollection,
    ChangeType,
    expect_odata_error,
    parse_with_sdk,
    unknown_fields,
)

# The generated request builders warn about their own deprecated per-builder configuration
# classes when first imported, although the test uses the generic `RequestConfiguration`.
pytestmark = [
    pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]

# A fixed calendar window far from the sim clock: events are placed by the test, not by "now".
WINDOW = ("2030-01-14T00:00:00Z", "2030-01-21T00:00:00Z")
MAX_PAGES = 20  # a bound for every paging loop

# The SDK sends `.../calendarView/delta()`; graph-sim routes `.../calendarView/delta` only (see
# the module docstring). The SDK's own URL-replace middleware option bridges that one segment.


def delta_config(start_end: tuple[str, str] | None = WINDOW, page_size: int | None = 2,
                 options: list | None = None) -> RequestConfiguration:
    """`Prefer: odata.maxpagesize=N` and `Prefer: outlook.timezone="UTC"` on every page (as
    Graph asks), `startDateTime` / `endDateTime` on the first call only."""
    config = RequestConfiguration()
    if start_end is not None:
        config.query_parameters = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            start_date_time=start_end[0], end_date_time=start_end[1]
        )
    if page_size is not None:
        config.headers.add("Prefer", f"odata.maxpagesize={page_size}")
    config.headers.add("Prefer", 'outlook.timezone="UTC"')
    config.options = list(options or [])
    return config


async def delta_round(client, user_id: str, page_size: int = 2,
                      ) -> tuple[list[DeltaGetResponse], str]:
    """One full round from the first call: every page, then the deltaLink."""
    builder = client.users.by_user_id(user_id).calendar_view.delta
    pages = [await builder.get(request_configuration=delta_config(page_size=page_size))]
    while pages[-1].odata_next_link:
        assert len(pages) < MAX_PAGES, "nextLink never ended"
        pages.append(await builder.with_url(pages[-1].odata_next_link).get(
            request_configuration=delta_config(start_end=None, page_size=page_size)))
    assert pages[-1].odata_delta_link, "the last page carries no deltaLink"
    return pages, pages[-1].odata_delta_link


def statuses(log: list[dict], fragment: str) -> list[int]:
    return [r["status"] for r in log if fragment.lower() in r["path"].lower()]


# ------------------------------------------------------------------ auth


def test_azure_identity_refuses_an_http_authority(graph_sim):
    """Why the token comes from a kiota `AccessTokenProvider` and not azure-identity."""
    with pytest.raises(ValueError, match="https"):
        ClientSecretCredential(TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority=graph_sim.base_url)


# ------------------------------------------------------------------ 1. users


def test_get_user_by_upn_and_unknown_user(graph_sim, graph):
    user_id, upn = AGENT1
    before = len(graph_sim.requests_log())

    async def scenario(client):
        by_upn = await client.users.by_user_id(upn).get()
        by_id = await client.users.by_user_id(user_id).get()
        missing = await expect_odata_error(
            client.users.by_user_id("nobody@contoso.example").get(), 404,
            "Request_ResourceNotFound")
        return by_upn, by_id, missing

    by_upn, by_id, missing = graph.run(scenario)
    for user in (by_upn, by_id):
        assert isinstance(user, User)
        assert (user.id, user.user_principal_name, user.mail) == (user_id, upn, upn)
        assert user.display_name == "Agent 1"
        assert user.business_phones == []
        assert not unknown_fields(user), unknown_fields(user)
    assert "nobody@contoso.example" in missing.error.message
    assert missing.response_headers.get("request-id")
    # The SDK authenticated through the real token endpoint (once per session, then cached).
    assert graph.tokens.fetched and graph.tokens.fetched[0]["expires_in"] == 3599
    log = graph_sim.requests_log()
    assert any(r["path"] == f"/{TENANT_ID}/oauth2/v2.0/token" and r["status"] == 200
               for r in log)
    assert statuses(log[before:], "/v1.0/users/") == [200, 200, 404]


# ------------------------------------------------------------------ 2. calendarView delta

EVENTS = [  # subject, start hour, showAs, responseStatus
    ("standup", 9, FreeBusyStatus.Busy, ResponseType.Organizer),
    ("1:1", 10, FreeBusyStatus.Tentative, ResponseType.TentativelyAccepted),
    ("offsite", 11, FreeBusyStatus.Oof, ResponseType.Accepted),
    ("lunch", 12, FreeBusyStatus.Free, ResponseType.NotResponded),
    ("review", 13, FreeBusyStatus.WorkingElsewhere, ResponseType.Declined),
]


def test_calendar_view_delta_pages_models_and_removed(graph_sim, graph):
    user_id = graph_sim.new_user()
    created = {}
    for subject, hour, show_as, response in EVENTS:
        event = graph_sim.create_event(
            user_id, subject=subject, start=f"2030-01-15T{hour:02}:00:00Z",
            end=f"2030-01-15T{hour:02}:30:00Z", showAs=show_as.value,
            responseStatus=response.value)
        created[event["id"]] = (subject, hour, show_as, response)
    inspect = HeadersInspectionHandlerOption()

    async def scenario(client):
        builder = client.users.by_user_id(user_id).calendar_view.delta
        first = await builder.get(request_configuration=delta_config(options=[inspect]))
        pages = [first]
        while pages[-1].odata_next_link:
            assert len(pages) < MAX_PAGES
            pages.append(await builder.with_url(pages[-1].odata_next_link).get(
                request_configuration=delta_config(start_end=None)))
        delta_link = pages[-1].odata_delta_link
        graph_sim.control("DELETE", f"/sim/users/{user_id}/events/{removed_id}")
        after = await builder.with_url(delta_link).get(
            request_configuration=delta_config(start_end=None))
        return pages, after

    removed_id = next(iter(created))
    pages, after = graph.run(scenario)

    assert all(isinstance(page, DeltaGetResponse) for page in pages)
    assert [len(page.value) for page in pages] == [2, 2, 1]
    assert all(page.odata_delta_link is None for page in pages[:-1])
    assert all("$skiptoken=" in page.odata_next_link for page in pages[:-1])
    assert pages[-1].odata_next_link is None and "$deltatoken=" in pages[-1].odata_delta_link
    # Both preferences reached the server and were honoured. The SDK joins the two `Prefer`
    # values into one header, in no fixed order (kiota keeps header values in a set).
    both = {"odata.maxpagesize=2", 'outlook.timezone="UTC"'}
    (sent,) = inspect.request_headers.get("prefer")
    assert set(sent.split(", ")) == both
    (applied,) = inspect.response_headers.get("preference-applied")
    assert set(applied.split(", ")) == both

    events = [event for page in pages for event in page.value]
    assert [e.id for e in events] == list(created)  # ordered by start
    for event in events:
        subject, hour, show_as, response = created[event.id]
        assert isinstance(event, Event)
        assert event.subject == subject
        assert event.start.date_time == f"2030-01-15T{hour:02}:00:00.0000000"
        assert event.start.time_zone == "UTC"
        assert event.end.date_time == f"2030-01-15T{hour:02}:30:00.0000000"
        assert event.end.time_zone == "UTC"
        assert event.show_as == show_as
        assert event.is_cancelled is False
        assert event.response_status.response == response
        assert event.is_all_day is False and event.type is not None
        assert event.change_key and event.i_cal_u_id
        assert event.organizer.email_address.address
        assert "@odata.etag" in event.additional_data
        assert "@removed" not in event.additional_data
    problems = unknown_fields(events)
    assert not problems, f"fields the SDK's Event model does not know: {problems}"

    assert after.odata_delta_link and after.odata_next_link is None
    assert len(after.value) == 1
    gone = after.value[0]
    assert isinstance(gone, Event) and gone.id == removed_id
    assert gone.additional_data["@removed"] == {"reason": "deleted"}
    assert gone.subject is None and gone.start is None


# ------------------------------------------------------------------ 3. 410


def test_delta_and_skip_tokens_answer_410_after_expiry(graph_sim, graph):
    user_id = graph_sim.new_user()
    for hour in (9, 10):
        graph_sim.create_event(user_id, subject=f"e{hour}", start=f"2030-01-16T{hour:02}:00:00Z",
                               end=f"2030-01-16T{hour:02}:45:00Z")

    async def scenario(client):
        pages, delta_link = await delta_round(client, user_id, page_size=1)
        skip_link = pages[0].odata_next_link
        graph_sim.control("POST", f"/sim/users/{user_id}/delta/expire")
        builder = client.users.by_user_id(user_id).calendar_view.delta
        return [
            await expect_odata_error(builder.with_url(link).get(
                request_configuration=delta_config(start_end=None, page_size=1)),
                410, "SyncStateNotFound")
            for link in (delta_link, skip_link)
        ]

    for error in graph.run(scenario):
        assert isinstance(error, ODataError) and error.response_status_code == 410
        assert error.error.inner_error is not None


# ------------------------------------------------------------------ 4. subscriptions

HANDSHAKE_TOKEN = "Validation: <&%+ contract> token"  # decodes only as a form value


def test_subscription_create_handshake_renew_cap_delete(graph_sim, graph, webhook_receiver):
    user_id = graph_sim.new_user()
    hook = webhook_receiver
    now = graph_sim.now().replace(microsecond=0)
    expiry = now + timedelta(minutes=90)
    renewed = now + timedelta(minutes=3000)
    too_far = now + timedelta(minutes=4230 + 5)

    def new_subscription() -> Subscription:
        return Subscription(
            change_type="created,updated,deleted",
            notification_url=f"{hook.url}/graph/notify?tenant=contract",
            lifecycle_notification_url=f"{hook.url}/graph/lifecycle",
            resource=f"users/{user_id}/events",
            expiration_date_time=expiry,
            client_state="contract-client-state",
            latest_supported_tls_version="v1_2",
        )

    async def scenario(client):
        created = await client.subscriptions.post(new_subscription())
        subscriptions_before = len(graph_sim.control("GET", "/sim/subscriptions").json())
        hook.mode = "wrong"
        refused = await expect_odata_error(client.subscriptions.post(new_subscription()), 400,
                                           "ValidationError")
        hook.mode = "echo"
        subscriptions_after = len(graph_sim.control("GET", "/sim/subscriptions").json())
        item = client.subscriptions.by_subscription_id(created.id)
        read_back = await item.get()
        patched = await item.patch(Subscription(expiration_date_time=renewed))
        capped = await expect_odata_error(
            item.patch(Subscription(expiration_date_time=too_far)), 400, "InvalidRequest")
        deleted = await item.delete()
        gone = await expect_odata_error(item.delete(), 404)
        return (created, refused, subscriptions_before, subscriptions_after, read_back,
                patched, capped, deleted, gone)

    before = len(graph_sim.requests_log())
    graph_sim.control("POST", "/sim/validation-token", {"token": HANDSHAKE_TOKEN})
    try:
        (created, refused, subscriptions_before, subscriptions_after, read_back, patched,
         capped, deleted, gone) = graph.run(scenario)
    finally:
        graph_sim.control("POST", "/sim/validation-token", {"token": None})

    # 201 with the subscription, after a handshake on both URLs answered with the decoded token.
    assert isinstance(created, Subscription) and created.id
    assert created.resource == f"users/{user_id}/events"
    assert created.change_type == "created,updated,deleted"
    assert created.client_state == "contract-client-state"
    assert created.notification_url == f"{hook.url}/graph/notify?tenant=contract"
    assert created.lifecycle_notification_url == f"{hook.url}/graph/lifecycle"
    assert created.expiration_date_time == expiry
    assert created.application_id == CLIENT_ID
    assert created.creator_id and created.include_resource_data is False
    assert created.latest_supported_tls_version == "v1_2"
    assert "@odata.context" in created.additional_data
    assert not unknown_fields(created), unknown_fields(created)
    handshakes = [hook.validations.get(timeout=5) for _ in range(2)]
    assert sorted(h.path for h in handshakes) == ["/graph/lifecycle", "/graph/notify"]
    for handshake in handshakes:
        assert handshake.query["validationToken"] == [HANDSHAKE_TOKEN]
        assert handshake.headers["content-type"].startswith("text/plain")
    notify = next(h for h in handshakes if h.path == "/graph/notify")
    assert notify.query["tenant"] == ["contract"]  # the existing query is kept

    # The echo answered wrongly: 400 ValidationError, no subscription.
    assert "validation request failed" in refused.error.message
    assert subscriptions_after == subscriptions_before
    assert hook.validations.get(timeout=5).query["validationToken"] == [HANDSHAKE_TOKEN]

    assert read_back.id == created.id and read_back.expiration_date_time == expiry
    assert isinstance(patched, Subscription) and patched.id == created.id
    assert patched.expiration_date_time == renewed
    assert "4230" in capped.error.message
    assert deleted is None
    assert gone.response_status_code == 404

    log = graph_sim.requests_log()[before:]
    assert [(r["method"], r["status"]) for r in log if r["path"].startswith(
        "/v1.0/subscriptions")] == [
        ("POST", 201), ("POST", 400), ("GET", 200), ("PATCH", 200), ("PATCH", 400),
        ("DELETE", 204), ("DELETE", 404),
    ]


# ------------------------------------------------------------------ 5. change notifications


def test_change_notification_parses_with_sdk_json_parse_node(graph_sim, graph,
                                                             webhook_receiver):
    user_id = graph_sim.new_user()
    hook = webhook_receiver
    expiry = graph_sim.now().replace(microsecond=0) + timedelta(minutes=60)

    async def subscribe(client):
        return await client.subscriptions.post(Subscription(
            change_type="created",
            notification_url=f"{hook.url}/graph/notify",
            resource=f"users/{user_id}/events",
            expiration_date_time=expiry,
            client_state="notify-state",
        ))

    subscription = graph.run(subscribe)
    hook.validations.get(timeout=5)
    try:
        graph_sim.control("DELETE", "/sim/deliveries")
        event = graph_sim.create_event(user_id, subject="pushed",
                                       start="2030-01-17T09:00:00Z", end="2030-01-17T10:00:00Z")
        attempts = graph_sim.control("POST", "/sim/deliveries/wait",
                                     {"count": 1, "timeout_ms": 5000}).json()
        mine = [a for a in attempts if a["subscription_id"] == subscription.id]
        assert [(a["kind"], a["status"]) for a in mine] == [("notification", 202)]
        received = hook.notifications.get(timeout=5)
        assert hook.notifications.empty()
    finally:
        graph.run(lambda client: client.subscriptions.by_subscription_id(subscription.id)
                  .delete())

    assert received.path == "/graph/notify"
    content_type = received.headers["content-type"]
    assert content_type.startswith("application/json")
    collection = parse_with_sdk(content_type, received.body, ChangeNotificationCollection)
    assert isinstance(collection, ChangeNotificationCollection)
    assert not unknown_fields(collection), unknown_fields(collection)
    assert len(collection.value) == 1
    notification = collection.value[0]
    assert notification.client_state == "notify-state"
    assert notification.subscription_id == subscription.id
    assert notification.change_type is ChangeType.Created
    assert notification.resource == f"Users/{user_id}/Events/{event['id']}"
    assert notification.tenant_id == TENANT_ID
    assert notification.subscription_expiration_date_time == expiry
    assert notification.id
    data = notification.resource_data
    assert isinstance(data, Event), type(data)  # the SDK's discriminator: #Microsoft.Graph.Event
    assert data.id == event["id"] and data.odata_type == "#Microsoft.Graph.Event"
    assert data.additional_data["@odata.id"] == notification.resource
    assert data.additional_data["@odata.etag"]
    assert json.loads(received.body)["value"][0]["resourceData"]["id"] == event["id"]


# ------------------------------------------------------------------ 6. 429


def test_429_default_retry_handler_honours_retry_after(graph_sim, graph):
    user_id = graph_sim.new_user()
    graph_sim.create_event(user_id, subject="one", start="2030-01-18T09:00:00Z",
                           end="2030-01-18T09:30:00Z")
    graph_sim.control("POST", "/sim/faults", {"path_contains": "calendarView", "status": 429,
                                              "retry_after": 1, "count": 1})
    before = len(graph_sim.requests_log())
    started = time.monotonic()
    pages, _ = graph.run(lambda client: delta_round(client, user_id))
    elapsed = time.monotonic() - started
    assert [e.subject for page in pages for e in page.value] == ["one"]
    assert statuses(graph_sim.requests_log()[before:], "/calendarView/delta") == [429, 200]
    assert elapsed >= 1.0, f"retried after {elapsed:.2f}s, before Retry-After: 1"
    assert not graph_sim.control("GET", "/sim/faults").json()


def test_429_surfaces_as_odata_error_with_retries_off(graph_sim, graph):
    user_id = graph_sim.new_user()
    graph_sim.control("POST", "/sim/faults", {"path_contains": "calendarView", "status": 429,
                                              "retry_after": 1, "count": 1})
    no_retry = RetryHandlerOption(max_retries=0, should_retry=False)
    before = len(graph_sim.requests_log())

    async def scenario(client):
        builder = client.users.by_user_id(user_id).calendar_view.delta
        return await expect_odata_error(
            builder.get(request_configuration=delta_config(options=[no_retry])), 429,
            "TooManyRequests")

    error = graph.run(scenario)
    assert error.response_headers.get("retry-after") == "1"
    assert statuses(graph_sim.requests_log()[before:], "/calendarView/delta") == [429]


# ------------------------------------------------------------------ the simulator gap


def test_sdk_delta_url_template_is_routed(graph_sim, graph):
    user_id = graph_sim.new_user()

    async def scenario(client):
        config = RequestConfiguration(
            query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time=WINDOW[0], end_date_time=WINDOW[1]))
        return await client.users.by_user_id(user_id).calendar_view.delta.get(
            request_configuration=config)

    page = graph.run(scenario)
    assert isinstance(page, DeltaGetResponse) and page.odata_delta_link


# ------------------------------------------------------------------ the checker itself


def test_unknown_field_checker_flags_what_the_sdk_tolerates(graph):
    """`unknown_fields` guards the model assertions above; prove it catches what the SDK
    silently accepts: a key its model does not know (kept in `additional_data`), nested or not,
    while OData annotations pass."""
    graph.run(lambda client: _noop())  # a GraphServiceClient fills the parse-node registry
    raw = {"@odata.type": "#microsoft.graph.event", "@odata.etag": 'W/"x"', "id": "e1",
           "subject": "s", "colour": "red", "start": {"dateTime": "2030-01-15T09:00:00.0000000",
                                                      "timeZone": "UTC", "offset": 1}}
    event = parse_with_sdk("application/json", json.dumps(raw).encode(), Event)
    assert isinstance(event, Event) and event.subject == "s"
    assert sorted(unknown_fields(event)) == ["$.colour", "$.start.offset"]


async def _noop() -> None:
    return None
