"""Fixtures for the Google Calendar official-SDK contract test (`test_google_contract.py`): the
`google-sim` process, SDK clients (google-auth service-account credentials with domain-wide
delegation + google-api-python-client's `calendar` v3 service) pointed at it, and a local
receiver for push notifications.

Imported by `conftest.py` (fixtures must be visible there).

Wiring, as the SDK combines it:

* `service_account.Credentials.from_service_account_info(info, scopes=..., subject=user)` signs
  an RS256 assertion with `aud = info["token_uri"]` and posts it to that URL; the test sets
  `token_uri` to `<sim>/token` (the simulator accepts that audience as well as Google's).
* `build("calendar", "v3", static_discovery=True, client_options={"api_endpoint": ...})`: the
  endpoint **replaces** the discovery document's `rootUrl` + `servicePath`
  (`https://www.googleapis.com/` + `calendar/v3/`), and method paths (`calendars/{calendarId}/
  events`) are joined to it with `urljoin`. So the endpoint must be `<sim>/calendar/v3/`, with
  the trailing slash (`test_api_endpoint_replaces_root_url_and_service_path`).
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from google.oauth2 import service_account
from googleapiclient.discovery import build
from simulators import REPO_ROOT, ControlSurface, running

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "google"

# The default seed (tests/google-sim/src/seed.rs).
SERVICE_ACCOUNT = "autopilot@presence-autopilot-test.iam.gserviceaccount.com"
AGENT1 = "agent.one@example.com"
EVENTS_READONLY = "https://www.googleapis.com/auth/calendar.events.readonly"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
CALENDAR_FULL = "https://www.googleapis.com/auth/calendar"  # not authorised in the seed


def service_account_info() -> dict:
    return json.loads((FIXTURES / "test-service-account.json").read_text())


# ------------------------------------------------------------------ simulator process


class GoogleSimulator(ControlSurface):
    """A running `google-sim` process and its `/sim/` control surface (plain `requests`)."""

    control_timeout_s = 15

    def deliveries(self) -> list[dict]:
        return self.control("GET", "/sim/deliveries").json()

    def wait_deliveries(self, count: int, timeout_ms: int = 5000) -> list[dict]:
        return self.control("POST", "/sim/deliveries/wait",
                            {"count": count, "timeoutMs": timeout_ms}).json()

    def now(self) -> datetime:
        """The simulator's clock (token and channel lifetimes are checked against it)."""
        return datetime.fromisoformat(
            self.control("GET", "/sim/clock").json()["now"].replace("Z", "+00:00"))

    def new_user(self) -> str:
        """A fresh domain user with an empty calendar, so each test owns its calendar."""
        email = f"contract-{uuid.uuid4().hex[:12]}@example.com"
        return self.control("POST", "/sim/users", {"email": email}).json()["email"]

    def create_event(self, email: str, **fields: Any) -> dict:
        return self.control("POST", f"/sim/calendars/{email}/events", fields).json()

    def change_event(self, email: str, event_id: str, **fields: Any) -> dict:
        return self.control("PATCH", f"/sim/calendars/{email}/events/{event_id}", fields).json()

    def cancel_event(self, email: str, event_id: str) -> dict:
        return self.control("POST", f"/sim/calendars/{email}/events/{event_id}/cancel").json()


@pytest.fixture(scope="session")
def google_sim() -> GoogleSimulator:
    with running("google-sim") as (base_url, process):
        yield GoogleSimulator(base_url, process)


# ------------------------------------------------------------------ SDK clients


class GoogleSdk:
    """Builds google-auth credentials and `calendar` v3 services on the simulator."""

    def __init__(self, sim: GoogleSimulator):
        self.sim = sim

    def credentials(self, subject: str, scopes: list[str] | None = None,
                    private_key: str | None = None) -> service_account.Credentials:
        """The service-account key file with `token_uri` pointed at the simulator; optionally
        signed with another key (`private_key`, PEM) to forge an assertion."""
        info = copy.deepcopy(service_account_info())
        info["token_uri"] = f"{self.sim.base_url}/token"
        if private_key is not None:
            info["private_key"] = private_key
        return service_account.Credentials.from_service_account_info(
            info, scopes=scopes or [EVENTS_READONLY], subject=subject)

    def service(self, subject: str, scopes: list[str] | None = None,
                private_key: str | None = None, api_endpoint: str | None = None):
        """`build("calendar", "v3", ...)` with the bundled discovery document."""
        return build(
            "calendar", "v3",
            credentials=self.credentials(subject, scopes, private_key),
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": api_endpoint or f"{self.sim.base_url}/calendar/v3/"},
        )


@pytest.fixture(scope="session")
def google(google_sim: GoogleSimulator) -> GoogleSdk:
    return GoogleSdk(google_sim)


# ------------------------------------------------------------------ push receiver


@dataclass
class Push:
    path: str
    # Header names exactly as they arrived, then a lower-cased lookup.
    raw_headers: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


class PushReceiver:
    """A notification endpoint on 127.0.0.1:0 (stdlib `http.server` in a thread): records every
    POST and answers `status` (200 unless changed)."""

    def __init__(self) -> None:
        self.status = 200
        self.received: queue.Queue[Push] = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                raw = list(self.headers.items())
                receiver.received.put(Push(self.path, raw, {k.lower(): v for k, v in raw}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep pytest output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def next(self, timeout: float = 5) -> Push:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def push_receiver() -> PushReceiver:
    receiver = PushReceiver()
    yield receiver
    receiver.close()


__all__ = [
    "AGENT1", "CALENDAR_FULL", "CALENDAR_READONLY", "EVENTS_READONLY", "FIXTURES", "GoogleSdk",
    "GoogleSimulator", "Push", "PushReceiver", "SERVICE_ACCOUNT", "google", "google_sim",
    "push_receiver", "service_account_info",
]
