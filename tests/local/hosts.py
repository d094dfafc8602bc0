"""A function as the runner hosts it (its own `cargo lambda watch`, environment and role's
credentials), and the boto3 clients the runner uses, with the stand-in's key or a role's."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack import REGION


@dataclass
class FunctionHost:
    """One function: its `cargo lambda watch`, its environment, its role's credentials."""

    logical_id: str
    binary: str
    name: str
    arn: str
    port: int
    environment: dict[str, str]
    timeout: int
    log: Path
    process: subprocess.Popen | None = None
    invocations: int = 0
    errors: list[str] = field(default_factory=list)

    def invoke(self, payload: Any, timeout: float | None = None) -> tuple[bool, Any]:
        """(succeeded, answer). A function error, a timeout or a process that exits (a failed
        cold start: Lambda's Runtime.ExitError) is (False, what it said)."""
        self.invocations += 1
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/{self.binary}/invocations",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        offset = self.log.stat().st_size if self.log.exists() else 0
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                with urllib.request.urlopen(request, timeout=wait) as answer:
                    outcome["body"], outcome["failed"] = answer.read(), answer.headers.get("X-Amz-Function-Error")
            except urllib.error.HTTPError as err:
                outcome["body"], outcome["failed"] = err.read(), f"HTTP {err.code}"
            except (OSError, http.client.HTTPException) as err:  # timeouts, refused, the process gone
                outcome["body"], outcome["failed"] = str(err).encode(), "no answer"

        # The first call starts the process (make built it already): allow for that.
        wait = timeout if timeout is not None else max(self.timeout, 60) + 240
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        while caller.is_alive():
            caller.join(0.1)
            if caller.is_alive() and "command exited" in self._log_since(offset):
                self.errors.append(f"Runtime.ExitError: {self._log_since(offset)[-1500:]}")
                return False, {"errorType": "Runtime.ExitError", "errorMessage": self._log_since(offset)[-1500:]}
        body, failed = outcome["body"], outcome["failed"]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        if failed or (isinstance(parsed, dict) and "errorType" in parsed and "errorMessage" in parsed):
            self.errors.append(f"{failed or 'error'}: {str(parsed)[:500]}")
            return False, parsed
        return True, parsed

    def _log_since(self, offset: int) -> str:
        if not self.log.exists():
            return ""
        with open(self.log, errors="replace") as log:
            log.seek(offset)
            return log.read()


class Clients:
    """boto3 clients for the stand-in, with the stand-in's own key or with a role's credentials."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.admin_session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        self.made: dict[tuple[str, str], Any] = {}
        self.credentials: dict[str, dict] = {}

    def admin(self, service: str) -> Any:
        return self._client("", service)

    def assume(self, role_arn: str, session: str) -> dict:
        if role_arn not in self.credentials:
            self.credentials[role_arn] = self.admin("sts").assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=43200)["Credentials"]
        return self.credentials[role_arn]

    def queue_url(self, arn: str) -> str:
        """A queue's URL from its ARN: AWS's services address queues by ARN, so the lookup is the
        runner's, made with the stand-in's key, not a call of the role."""
        return self.admin("sqs").get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]

    def as_role(self, role_arn: str, service: str) -> Any:
        return self._client(role_arn, service)

    def _client(self, role_arn: str, service: str) -> Any:
        import boto3

        key = (role_arn, service)
        if key not in self.made:
            if role_arn:
                c = self.assume(role_arn, "runner")
                session = boto3.session.Session(
                    aws_access_key_id=c["AccessKeyId"],
                    aws_secret_access_key=c["SecretAccessKey"],
                    aws_session_token=c["SessionToken"],
                    region_name=REGION,
                )
            else:
                session = self.admin_session
            self.made[key] = session.client(service, endpoint_url=self.endpoint)
        return self.made[key]
