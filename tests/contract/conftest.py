"""Fixtures for the official-SDK contract test: the simulator process and SDK clients.

The simulator binary is started once per session on 127.0.0.1:0; its first stdout line is the
base URL. The SDK talks to it exactly as to Genesys Cloud: `ApiClient(host=base_url)` sends the
token request (`POST {host}/oauth/token`) and the API calls to that one address.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Callable

import pytest
import requests
import urllib3

import PureCloudPlatformClientV2 as gc
from PureCloudPlatformClientV2.default_http_client import DefaultHttpClient
from PureCloudPlatformClientV2.rest import ApiException
from simulators import ControlSurface, running


DEMO_CLIENT = ("demo-client", "demo-secret")
READONLY_CLIENT = ("readonly-client", "readonly-secret")
CODE_GRANT_CLIENT = ("code-grant-client", "code-grant-secret")

OUTDATED = "outdated_sdk_version"


# ------------------------------------------------------------------ simulator process


class Simulator(ControlSurface):
    """A running `genesys-sim` process and its `/sim/` control surface (plain `requests`)."""



@pytest.fixture(scope="session")
def sim() -> Simulator:
    with running("genesys-sim") as (base_url, process):
        yield Simulator(base_url, process)


# ------------------------------------------------------------------ SDK clients


class Sdk:
    """One SDK `ApiClient` logged in with client credentials, plus its API classes.

    Every successful response passes the SDK's own post-request hook, which keeps the raw
    response (headers and body) so tests can compare the wire JSON with the SDK models and check
    `inin-correlation-id`.
    """

    def __init__(self, base_url: str, client_id: str | None = None, secret: str | None = None,
                 retries: bool = True):
        self.api_client = gc.ApiClient(host=base_url)
        http_client = DefaultHttpClient()
        if not retries:
            disable_sdk_retries(http_client)
        self.responses: list[Any] = []

        def record(response):  # the SDK insists on a one-argument function
            self.responses.append(response)
            return response

        http_client.set_post_request_hook(record)
        self.api_client.set_http_client(http_client)
        if client_id is not None:
            self.api_client.get_client_credentials_token(client_id, secret)
            assert self.api_client.access_token, "the SDK stored no access token"
            assert self.last.getheader("inin-correlation-id"), "token response: no correlation id"
        self.presence = gc.PresenceApi(self.api_client)
        self.users = gc.UsersApi(self.api_client)
        self.wfm = gc.WorkforceManagementApi(self.api_client)

    @property
    def last(self):
        return self.responses[-1]

    def call(self, fn: Callable, *args, **kwargs):
        """Calls an SDK method; checks the correlation id, the wire JSON against the model the
        SDK deserialised, and that no field reads `outdated_sdk_version`."""
        before = len(self.responses)
        result = fn(*args, **kwargs)
        assert len(self.responses) == before + 1, "the SDK made no (or several) HTTP calls"
        response = self.last
        assert response.getheader("inin-correlation-id"), (
            f"{fn.__name__}: response has no inin-correlation-id"
        )
        raw = json.loads(response.data)
        problems = wire_vs_model(raw, result)
        assert not problems, f"{fn.__name__}: wire JSON differs from the SDK model: {problems}"
        outdated = find_outdated(result)
        assert not outdated, f"{fn.__name__}: fields read {OUTDATED!r}: {outdated}"
        return result


def disable_sdk_retries(http_client: DefaultHttpClient) -> None:
    """SDK 269 has no Configuration switch for retries: `rest.RESTClientObject` builds its
    `urllib3.PoolManager` with `retries=urllib3.util.Retry()` (10 attempts, honours
    `Retry-After` on 413/429/503). Replacing the pool manager's retry setting is the only way to
    see a raw 429; pools are created lazily, so no existing pool needs clearing."""
    pool_manager = http_client.rest_client.pool_manager
    pool_manager.connection_pool_kw["retries"] = urllib3.util.Retry(
        total=0, status=0, redirect=0, respect_retry_after_header=False, raise_on_status=False
    )
    pool_manager.clear()


# ------------------------------------------------------------------ model checks


def find_outdated(model: Any, path: str = "$") -> list[str]:
    """Paths of every value that reads `outdated_sdk_version`, walking `to_dict()`."""
    if hasattr(model, "to_dict"):
        model = model.to_dict()
    found = []
    if isinstance(model, dict):
        for key, value in model.items():
            found += find_outdated(value, f"{path}.{key}")
    elif isinstance(model, list):
        for index, value in enumerate(model):
            found += find_outdated(value, f"{path}[{index}]")
    elif model == OUTDATED:
        found.append(path)
    return found


def _primitive_ok(swagger_type: str, value: Any) -> bool:
    if value is None:
        return True
    if swagger_type == "str":
        return isinstance(value, str)
    if swagger_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if swagger_type == "bool":
        return isinstance(value, bool)
    if swagger_type == "datetime":
        # ISO-8601 with an explicit zone, as the real API ("2024-05-06T13:00:00.000Z").
        return isinstance(value, str) and "T" in value and (
            value.endswith("Z") or value[-6] in "+-"
        ) and _parses(datetime.fromisoformat, value.replace("Z", "+00:00"))
    if swagger_type == "date":
        return isinstance(value, str) and len(value) == 10 and _parses(date.fromisoformat, value)
    return True


def _parses(parse: Callable, value: str) -> bool:
    try:
        parse(value)
        return True
    except ValueError:
        return False


def wire_vs_model(raw: Any, model: Any, swagger_type: str = "", path: str = "$") -> list[str]:
    """What the SDK silently tolerates: JSON keys its model does not know (it drops them) and
    primitive values of the wrong JSON type (it coerces them). Returns one line per problem."""
    problems: list[str] = []
    if hasattr(model, "swagger_types"):
        if not isinstance(raw, dict):
            return [f"{path}: expected an object, got {type(raw).__name__}"]
        by_json_name = {json_name: attr for attr, json_name in model.attribute_map.items()}
        for key, value in raw.items():
            attr = by_json_name.get(key)
            if attr is None:
                problems.append(f"{path}.{key}: not a field of {type(model).__name__}")
                continue
            problems += wire_vs_model(value, getattr(model, attr), model.swagger_types[attr],
                                      f"{path}.{key}")
    elif swagger_type.startswith("list[") or isinstance(model, list):
        if not isinstance(raw, list):
            return [f"{path}: expected an array, got {type(raw).__name__}"]
        inner = swagger_type[5:-1] if swagger_type.startswith("list[") else ""
        for index, (item_raw, item) in enumerate(zip(raw, model or [])):
            problems += wire_vs_model(item_raw, item, inner, f"{path}[{index}]")
    elif swagger_type.startswith("dict("):
        if not isinstance(raw, dict):
            return [f"{path}: expected an object, got {type(raw).__name__}"]
        inner = swagger_type[5:-1].split(", ", 1)[1]
        for key, value in raw.items():
            problems += wire_vs_model(value, (model or {}).get(key), inner, f"{path}.{key}")
    elif not _primitive_ok(swagger_type, raw):
        problems.append(f"{path}: {raw!r} is not a valid {swagger_type}")
    return problems


def expect_api_error(fn: Callable, *args, status: int, **kwargs) -> tuple[ApiException, dict]:
    """Calls an SDK method that must fail; returns the `rest.ApiException` and its JSON body."""
    with pytest.raises(ApiException) as caught:
        fn(*args, **kwargs)
    error = caught.value
    assert error.status == status, f"expected HTTP {status}, got {error.status}: {error.body}"
    assert error.headers is not None and error.headers.get("inin-correlation-id"), (
        f"HTTP {status} response has no inin-correlation-id"
    )
    body = json.loads(error.body)
    return error, body


def assert_error_body(body: dict, status: int, code: str) -> None:
    """The Genesys `ErrorBody` shape, checked through the SDK's own model."""
    assert body.get("status") == status, body
    assert body.get("code") == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    unknown = set(body) - set(gc.ErrorBody().attribute_map.values())
    assert not unknown, f"ErrorBody has fields the SDK model does not know: {unknown}"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def demo(sim: Simulator) -> Sdk:
    """The demo client (all Autopilot permissions), with the SDK's default retries."""
    return Sdk(sim.base_url, *DEMO_CLIENT)


@pytest.fixture(scope="session")
def readonly(sim: Simulator) -> Sdk:
    return Sdk(sim.base_url, *READONLY_CLIENT)


# ------------------------------------------------------------------ Microsoft Graph

# The Graph simulator's fixtures live in graph_conftest.py; importing them here makes pytest see
# them (a non-root conftest may not use `pytest_plugins`).
from graph_conftest import graph, graph_sim, webhook_receiver  # noqa: E402,F401

# ------------------------------------------------------------------ Google Calendar

# The Google simulator's fixtures live in google_conftest.py, imported for the same reason.
from google_conftest import google, google_sim, push_receiver  # noqa: E402,F401
