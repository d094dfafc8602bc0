"""Fixtures for the Microsoft Graph official-SDK contract test (`test_graph_contract.py`):
the `graph-sim` process, the SDK client pointed at it, a local webhook receiver, and the
change-notification models the Python SDK does not ship.

Imported by `conftest.py` (fixtures must be visible there); the Genesys fixtures stay in
`conftest.py`. The SDK is async (kiota + httpx): every test runs its own `asyncio.run(...)` and
builds its `GraphServiceClient` inside that loop with `GraphSdk.client()`, because an
`httpx.AsyncClient` must not outlive the event loop it first ran on.
"""

from __future__ import annotations

import asyncio
import enum
import queue
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, AsyncIterator, Awaitable, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.serialization import (
    AdditionalDataHolder,
    Parsable,
    ParseNode,
    ParseNodeFactoryRegistry,
    SerializationWriter,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph import graph_request_adapter
from msgraph.generated.models.entity import Entity
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core import GraphClientFactory
from simulators import ControlSurface, running


# The default seed (tests/graph-sim/src/seed.rs).
TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
CLIENT_ID = "graph-client"
CLIENT_SECRET = "graph-secret"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
AGENT1 = ("00000000-0000-0000-0000-00000000a001", "agent1@contoso.example")


# ------------------------------------------------------------------ simulator process


class GraphSimulator(ControlSurface):
    """A running `graph-sim` process and its `/sim/` control surface (plain `requests`)."""

    control_timeout_s = 15

    def now(self) -> datetime:
        """The simulator's clock (subscription lifetimes are checked against it)."""
        return datetime.fromisoformat(
            self.control("GET", "/sim/clock").json()["now"].replace("Z", "+00:00")
        )

    def new_user(self) -> str:
        """A fresh mailbox (inside the access policy), so each test owns its calendar."""
        upn = f"contract-{uuid.uuid4().hex[:12]}@contoso.example"
        return self.control("POST", "/sim/users", {"user_principal_name": upn}).json()["id"]

    def create_event(self, user_id: str, **fields: Any) -> dict:
        return self.control("POST", f"/sim/users/{user_id}/events", fields).json()


@pytest.fixture(scope="session")
def graph_sim() -> GraphSimulator:
    with running("graph-sim") as (base_url, process):
        yield GraphSimulator(base_url, process)


# ------------------------------------------------------------------ SDK client


class SimTokenProvider(AccessTokenProvider):
    """Client-credentials token from the simulator's real `POST /{tenant}/oauth2/v2.0/token`.

    azure-identity's `ClientSecretCredential` cannot be used: it refuses any authority that is
    not https (`test_azure_identity_refuses_an_http_authority`). This provider plays its part
    for kiota's `BaseBearerTokenAuthenticationProvider`: it posts the same form (client id,
    secret, `https://graph.microsoft.com/.default`, `client_credentials`) and caches the token
    until shortly before `expires_in`.
    """

    def __init__(self, base_url: str, client_id: str = CLIENT_ID,
                 client_secret: str = CLIENT_SECRET, tenant_id: str = TENANT_ID):
        self.token_url = f"{base_url}/{tenant_id}/oauth2/v2.0/token"
        self.client_id = client_id
        self.client_secret = client_secret
        self.host = urlsplit(base_url).hostname
        self.fetched: list[dict] = []  # every token response body, newest last
        self._token: str | None = None
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> str:
        with self._lock:
            if self._token and time.monotonic() < self._valid_until:
                return self._token
            response = requests.post(
                self.token_url,
                data={
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "scope": GRAPH_SCOPE,
                    "grant_type": "client_credentials",
                },
                timeout=10,
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"token endpoint answered {response.status_code}: {response.text}"
                )
            body = response.json()
            assert body["token_type"] == "Bearer" and body["access_token"], body
            self.fetched.append(body)
            self._token = body["access_token"]
            self._valid_until = time.monotonic() + int(body["expires_in"]) - 60
            return self._token

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] = {}
    ) -> str:
        if not self.get_allowed_hosts_validator().is_url_host_valid(uri):
            return ""
        return await asyncio.to_thread(self._fetch)

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([self.host])


class GraphSdk:
    """Builds `GraphServiceClient`s on the simulator, sharing one token provider."""

    def __init__(self, sim: GraphSimulator):
        self.sim = sim
        self.tokens = SimTokenProvider(sim.base_url)
        self.auth_provider = BaseBearerTokenAuthenticationProvider(self.tokens)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[GraphServiceClient]:
        """`GraphRequestAdapter(auth_provider)` with `base_url = sim + "/v1.0"`. The httpx client
        is built exactly as `GraphRequestAdapter` builds its default one (the SDK's default
        middleware: retry, redirect, URL replace, parameter-name decoding, headers inspection,
        telemetry) and is passed in only so it can be closed inside this event loop."""
        http_client = GraphClientFactory.create_with_default_middleware(
            options=graph_request_adapter.options
        )
        adapter = GraphRequestAdapter(self.auth_provider, client=http_client)
        adapter.base_url = self.sim.base_url + "/v1.0"
        try:
            yield GraphServiceClient(request_adapter=adapter)
        finally:
            await http_client.aclose()

    def run(self, scenario: Callable[[GraphServiceClient], Awaitable[Any]]) -> Any:
        """Runs `scenario(client)` in a fresh event loop with a fresh client."""

        async def main() -> Any:
            async with self.client() as client:
                return await scenario(client)

        return asyncio.run(main())


@pytest.fixture(scope="session")
def graph(graph_sim: GraphSimulator) -> GraphSdk:
    return GraphSdk(graph_sim)


async def expect_odata_error(call: Awaitable[Any], status: int,
                             code: str | None = None) -> ODataError:
    """Awaits an SDK call that must fail with the SDK's `ODataError` of `status` (and `code`)."""
    try:
        result = await call
    except ODataError as error:
        assert error.response_status_code == status, (
            f"expected HTTP {status}, got {error.response_status_code}: "
            f"{error.error.code if error.error else None} {error.error.message if error.error else ''}"
        )
        assert error.error is not None, "ODataError without a parsed `error` object"
        if code is not None:
            assert error.error.code == code, (error.error.code, error.error.message)
        assert error.error.message, "Graph errors carry a message"
        return error
    raise AssertionError(f"expected ODataError {status}, the SDK returned {result!r}")


# ------------------------------------------------------------------ webhook receiver


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A notification / lifecycle endpoint on 127.0.0.1:0 (stdlib `http.server` in a thread).

    A POST with `validationToken` in the query is the subscription handshake: in mode `"echo"`
    it answers 200 `text/plain` with the token decoded as a form value (`+` is a space), in mode
    `"wrong"` with other text. Any other POST is a notification: recorded, answered 202.
    """

    def __init__(self) -> None:
        self.mode = "echo"
        self.validations: queue.Queue[Received] = queue.Queue()
        self.notifications: queue.Queue[Received] = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                query = parse_qs(url.query, keep_blank_values=True)
                received = Received(url.path, query, {k.lower(): v for k, v in
                                                      self.headers.items()}, body)
                if "validationToken" in query:
                    receiver.validations.put(received)
                    token = query["validationToken"][0]
                    answer = token if receiver.mode == "echo" else "not-the-token"
                    self._reply(200, answer.encode(), "text/plain; charset=utf-8")
                else:
                    receiver.notifications.put(received)
                    self._reply(202, b"", None)

            def _reply(self, status: int, payload: bytes, content_type: str | None) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:  # keep pytest output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook_receiver() -> WebhookReceiver:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# ------------------------------------------------------------------ change-notification models
#
# msgraph-sdk (Python, 1.65.0) does not ship `ChangeNotificationCollection` /
# `ChangeNotification` / `ResourceData`: they are referenced by no Graph endpoint, so the
# generator drops them (microsoftgraph/msgraph-sdk-python#1322, open). The Java SDK added
# hand-written kiota models for them (msgraph-sdk-java#2298); these are the same shape as kiota
# Python `Parsable`s, parsed by the SDK's own JSON parse node (`ParseNodeFactoryRegistry`).
# `resourceData` is read through the SDK's `Entity` discriminator, so `#Microsoft.Graph.Event`
# must resolve to the SDK's `Event` model.


class ChangeType(str, enum.Enum):
    Created = "created"
    Updated = "updated"
    Deleted = "deleted"


class LifecycleEventType(str, enum.Enum):
    Missed = "missed"
    SubscriptionRemoved = "subscriptionRemoved"
    ReauthorizationRequired = "reauthorizationRequired"


@dataclass
class ChangeNotification(AdditionalDataHolder, Parsable):
    additional_data: dict[str, Any] = field(default_factory=dict)
    change_type: Optional[ChangeType] = None
    client_state: Optional[str] = None
    id: Optional[str] = None
    lifecycle_event: Optional[LifecycleEventType] = None
    odata_type: Optional[str] = None
    resource: Optional[str] = None
    resource_data: Optional[Entity] = None
    subscription_expiration_date_time: Optional[datetime] = None
    subscription_id: Optional[str] = None
    tenant_id: Optional[str] = None

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> "ChangeNotification":
        return ChangeNotification()

    def get_field_deserializers(self) -> dict[str, Callable[[ParseNode], None]]:
        return {
            "changeType": lambda n: setattr(self, "change_type", n.get_enum_value(ChangeType)),
            "clientState": lambda n: setattr(self, "client_state", n.get_str_value()),
            "id": lambda n: setattr(self, "id", n.get_str_value()),
            "lifecycleEvent": lambda n: setattr(
                self, "lifecycle_event", n.get_enum_value(LifecycleEventType)),
            "@odata.type": lambda n: setattr(self, "odata_type", n.get_str_value()),
            "resource": lambda n: setattr(self, "resource", n.get_str_value()),
            "resourceData": lambda n: setattr(
                self, "resource_data", n.get_object_value(Entity)),
            "subscriptionExpirationDateTime": lambda n: setattr(
                self, "subscription_expiration_date_time", n.get_datetime_value()),
            "subscriptionId": lambda n: setattr(self, "subscription_id", n.get_str_value()),
            "tenantId": lambda n: setattr(self, "tenant_id", n.get_str_value()),
        }

    def serialize(self, writer: SerializationWriter) -> None:
        writer.write_enum_value("changeType", self.change_type)
        writer.write_str_value("clientState", self.client_state)
        writer.write_str_value("id", self.id)
        writer.write_enum_value("lifecycleEvent", self.lifecycle_event)
        writer.write_str_value("@odata.type", self.odata_type)
        writer.write_str_value("resource", self.resource)
        writer.write_object_value("resourceData", self.resource_data)
        writer.write_datetime_value("subscriptionExpirationDateTime",
                                    self.subscription_expiration_date_time)
        writer.write_str_value("subscriptionId", self.subscription_id)
        writer.write_str_value("tenantId", self.tenant_id)
        writer.write_additional_data_value(self.additional_data)


@dataclass
class ChangeNotificationCollection(AdditionalDataHolder, Parsable):
    additional_data: dict[str, Any] = field(default_factory=dict)
    odata_type: Optional[str] = None
    validation_tokens: Optional[list[str]] = None
    value: Optional[list[ChangeNotification]] = None

    @staticmethod
    def create_from_discriminator_value(parse_node: ParseNode) -> "ChangeNotificationCollection":
        return ChangeNotificationCollection()

    def get_field_deserializers(self) -> dict[str, Callable[[ParseNode], None]]:
        return {
            "@odata.type": lambda n: setattr(self, "odata_type", n.get_str_value()),
            "validationTokens": lambda n: setattr(
                self, "validation_tokens", n.get_collection_of_primitive_values(str)),
            "value": lambda n: setattr(
                self, "value", n.get_collection_of_object_values(ChangeNotification)),
        }

    def serialize(self, writer: SerializationWriter) -> None:
        writer.write_str_value("@odata.type", self.odata_type)
        writer.write_collection_of_primitive_values("validationTokens", self.validation_tokens)
        writer.write_collection_of_object_values("value", self.value)
        writer.write_additional_data_value(self.additional_data)


def parse_with_sdk(content_type: str, body: bytes, model: type[Parsable]) -> Any:
    """Deserialises a body as the SDK deserialises responses: the content type picks the factory
    in kiota's `ParseNodeFactoryRegistry` (filled by `GraphServiceClient`)."""
    node = ParseNodeFactoryRegistry().get_root_parse_node(content_type, body)
    return node.get_object_value(model)


# ------------------------------------------------------------------ model checks


def unknown_fields(model: Any, path: str = "$") -> list[str]:
    """What the SDK silently tolerates: JSON keys its model does not know land in
    `additional_data`. Returns the path of each one that is not an OData annotation (`@…`)."""
    found: list[str] = []
    if isinstance(model, list):
        for index, item in enumerate(model):
            found += unknown_fields(item, f"{path}[{index}]")
        return found
    if not isinstance(model, Parsable):
        return found
    for key in getattr(model, "additional_data", None) or {}:
        if not key.startswith("@"):
            found.append(f"{path}.{key}")
    for name in getattr(model, "__dataclass_fields__", {}):
        if name in ("additional_data", "backing_store"):
            continue
        value = getattr(model, name, None)
        if isinstance(value, (Parsable, list)):
            found += unknown_fields(value, f"{path}.{name}")
    return found


__all__ = [
    "AGENT1", "CLIENT_ID", "CLIENT_SECRET", "ChangeNotification",
    "ChangeNotificationCollection", "ChangeType", "GraphSdk", "GraphSimulator", "TENANT_ID",
    "WebhookReceiver", "expect_odata_error", "graph", "graph_sim", "parse_with_sdk",
    "unknown_fields", "webhook_receiver",
]
