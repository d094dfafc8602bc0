"""Our webhook deliveries verify with the official Standard Webhooks library.

`webhook-sample` (tests/peers) makes one real delivery with the production signer, signed with
two secrets as during a rotation, to a local receiver and prints what arrived. The official
`standardwebhooks` package (pinned in requirements-dev.txt) must accept it with either secret,
reject it when tampered with, and reproduce the spec's test vector with its own `sign`.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_DIR = REPO_ROOT / os.environ.get("CARGO_TARGET_DIR", "target")  # relative: to the root, where cargo runs
SAMPLE = TARGET_DIR / "debug" / "webhook-sample"


@pytest.fixture(scope="module")
def delivery() -> dict:
    subprocess.run(
        ["cargo", "build", "--locked", "--quiet", "-p", "peers", "--bin", "webhook-sample"],
        cwd=REPO_ROOT,
        check=True,
    )
    out = subprocess.run([str(SAMPLE)], check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def test_a_real_delivery_verifies_with_each_rotation_secret(delivery: dict) -> None:
    headers = delivery["headers"]
    assert headers["webhook-id"] == "01KM3E1Q80QZ0YF3E5A4R1B2C3"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in delivery["secrets"]:
        payload = Webhook(secret).verify(delivery["body"], headers)
        assert payload["notificationId"] == headers["webhook-id"]
        assert payload["kind"] == "presenceApplied"
    assert delivery["rustReceiverRejected"] is None


def test_tampered_body_or_foreign_secret_is_rejected(delivery: dict) -> None:
    secret = delivery["secrets"][0]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(delivery["body"].replace("Meeting", "Available"), delivery["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(delivery["body"], delivery["headers"])


def test_library_rejects_our_delivery_when_the_timestamp_is_stale(delivery: dict) -> None:
    timestamp = int(delivery["headers"]["webhook-timestamp"])
    stale = dict(delivery["headers"], **{"webhook-timestamp": str(timestamp - 301)})
    with pytest.raises(WebhookVerificationError, match="timestamp too old"):
        Webhook(delivery["secrets"][0]).verify(delivery["body"], stale)


def test_library_sign_reproduces_the_spec_vector() -> None:
    wh = Webhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
    signature = wh.sign(
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        datetime.fromtimestamp(1649367553, tz=timezone.utc),
        '{"email":"test@example.com","username":"test_user"}',
    )
    assert signature == "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
