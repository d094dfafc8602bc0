"""Local stand-ins for the cloud, started by the project itself on loopback: moto (DynamoDB, SQS,
Secrets Manager, EventBridge, Scheduler) behind `aws_standin.py`, which makes every request atomic
(docs/local-aws.md), the Genesys simulator, and the functions under `cargo lambda watch`. Used by
`make demo` and the smoke test; every process is stopped on exit (also on SIGTERM when run as a
script).

Provisioning creates what `infra/template.yaml` names, on moto: the `provision` example (Rust SDK)
makes the table, the events (burst) queue and the notifications queue with their DLQs and the
Genesys secret; `_provision_events_and_scheduler` (boto3) adds the subscribers secret, the
`presence-autopilot` bus with the trigger rule routing Calendar/Focus Started/Ended to the events
queue, the rule-target and Scheduler DLQs, and the Scheduler group; `_provision_calendar` adds the
Microsoft 365 connector's side: the Graph simulator, the Graph secret pointing at it, the sync
queue, and a rule copying Calendar Event Upserted/Deleted to a queue (where AWS would invoke
schedule-check, the demo plays that target)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aws_standin  # beside this file; importers put tests/local on sys.path for both

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# A relative CARGO_TARGET_DIR is relative to the repository root, where make runs cargo.
TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it listened on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


class LocalEnv:
    """Starts everything on enter, stops everything on exit (also on errors and Ctrl-C)."""

    def __init__(self, log_dir: Path | None = None, subscribers: dict | None = None) -> None:
        """`subscribers`: the subscriber document (docs/delivery.md) stored in the subscribers
        secret; none by default."""
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"presence-autopilot-{os.getpid()}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.subscribers = subscribers if subscribers is not None else {"webhooks": []}
        self.aws_env: dict[str, str] = {}
        self.resources: dict[str, str] = {}
        self.sim_url = ""
        self.graph_url = ""
        self.google_url = ""
        self.invoke_port = 0

    def __enter__(self) -> "LocalEnv":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None, stdout=None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        self.processes.append((name, process))
        return process

    def _start(self) -> None:
        # --parent-pid: the stand-in ends with this process even if close() never runs (SIGKILL).
        moto = self._spawn(
            "moto", aws_standin.command(VENV_BIN / "python", parent_pid=os.getpid()), stdout=subprocess.PIPE
        )
        try:
            moto_url = aws_standin.read_url(moto, timeout=120)
        except RuntimeError as err:
            raise RuntimeError(f"{err}; see {self.log_dir / 'moto.log'}") from None
        self.aws_env = {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        sim = self._spawn("genesys-sim", [str(TARGET / "debug" / "genesys-sim"), "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
        assert sim.stdout is not None
        self.sim_url = sim.stdout.readline().strip()
        if not self.sim_url.startswith("http://"):
            raise RuntimeError(f"genesys-sim did not print its URL (got {self.sim_url!r}); see {self.log_dir}")
        provisioned = subprocess.run(
            [str(TARGET / "debug" / "examples" / "provision"), "--genesys-base-url", self.sim_url],
            cwd=ROOT,
            env={**os.environ, **self.aws_env},
            capture_output=True,
            text=True,
            check=True,
        )
        self.resources = json.loads(provisioned.stdout)
        self._provision_events_and_scheduler()
        self._provision_calendar()

    def client(self, service: str):
        """A boto3 client for moto."""
        import boto3  # the project venv has it; imported late so `--help`-style use stays light

        return boto3.client(
            service,
            endpoint_url=self.aws_env["AWS_ENDPOINT_URL"],
            region_name=self.aws_env["AWS_REGION"],
            aws_access_key_id=self.aws_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.aws_env["AWS_SECRET_ACCESS_KEY"],
        )

    def _provision_events_and_scheduler(self, prefix: str = "presence-autopilot") -> None:
        sqs = self.client("sqs")
        arn = lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # noqa: E731
        self.resources["EVENTS_QUEUE_ARN"] = arn(self.resources["EVENTS_QUEUE_URL"])
        rule_dlq = sqs.create_queue(QueueName=f"{prefix}-events-rule-dlq")["QueueUrl"]
        scheduler_dlq = sqs.create_queue(QueueName=f"{prefix}-scheduler-dlq")["QueueUrl"]
        self.resources["SCHEDULER_DLQ_ARN"] = arn(scheduler_dlq)

        secret = f"{prefix}/subscribers"
        self.client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(self.subscribers))
        self.resources["SUBSCRIBERS_SECRET_ID"] = secret

        events = self.client("events")
        bus = events.create_event_bus(Name=prefix)["EventBusArn"]
        events.put_rule(
            Name=f"{prefix}-triggers",
            EventBusName=prefix,
            EventPattern=json.dumps(
                {"detail-type": ["Calendar Event Started", "Calendar Event Ended", "Focus Started", "Focus Ended"]}
            ),
            State="ENABLED",
        )
        events.put_targets(
            Rule=f"{prefix}-triggers",
            EventBusName=prefix,
            Targets=[
                {
                    "Id": "burst-queue",
                    "Arn": self.resources["EVENTS_QUEUE_ARN"],
                    "DeadLetterConfig": {"Arn": arn(rule_dlq)},
                }
            ],
        )
        self.resources["EVENT_BUS_NAME"] = prefix
        self.resources["EVENT_BUS_ARN"] = bus

        self.client("scheduler").create_schedule_group(Name=prefix)
        self.resources["SCHEDULE_GROUP_NAME"] = prefix
        # moto checks neither; the names are the template's shape.
        self.resources["SCHEDULER_ROLE_ARN"] = f"arn:aws:iam::123456789012:role/{prefix}-scheduler"
        # Schedules send to the burst queue, as the bus rule does (the template's wiring).
        self.resources["BURST_QUEUE_ARN"] = self.resources["EVENTS_QUEUE_ARN"]

    def _provision_calendar(self, prefix: str = "presence-autopilot") -> None:
        graph = self._spawn("graph-sim", [str(TARGET / "debug" / "graph-sim"), "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
        assert graph.stdout is not None
        self.graph_url = graph.stdout.readline().strip()
        if not self.graph_url.startswith("http://"):
            raise RuntimeError(f"graph-sim did not print its URL (got {self.graph_url!r}); see {self.log_dir}")
        sqs = self.client("sqs")
        self.resources["SYNC_QUEUE_URL"] = sqs.create_queue(QueueName=f"{prefix}-calendar-sync")["QueueUrl"]
        changes = sqs.create_queue(QueueName=f"{prefix}-calendar-changes")["QueueUrl"]
        self.resources["CALENDAR_CHANGES_QUEUE_URL"] = changes
        changes_arn = sqs.get_queue_attributes(QueueUrl=changes, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = self.client("events")
        events.put_rule(
            Name=f"{prefix}-calendar-changes",
            EventBusName=prefix,
            EventPattern=json.dumps({"detail-type": ["Calendar Event Upserted", "Calendar Event Deleted"]}),
            State="ENABLED",
        )
        events.put_targets(
            Rule=f"{prefix}-calendar-changes", EventBusName=prefix, Targets=[{"Id": "schedule-check", "Arn": changes_arn}]
        )
        secret = f"{prefix}/graph"
        self.client("secretsmanager").create_secret(
            Name=secret,
            SecretString=json.dumps(
                {
                    "tenantId": "00000000-0000-0000-0000-0000000000aa",
                    "clientId": "graph-client",
                    "clientSecret": "graph-secret",
                    "clientStateKey": os.urandom(24).hex(),
                    "graphBaseUrl": self.graph_url,
                    "loginBaseUrl": self.graph_url,
                }
            ),
        )
        self.resources["GRAPH_SECRET_ID"] = secret
        self._provision_google(prefix)
        # The genesys-sim default seed's roster group (all demo agents).
        self.resources["ROSTER_GROUP_ID"] = "9c2f4e1a-7b3d-4c5e-8f6a-1b2c3d4e5f60"

    def _provision_google(self, prefix: str) -> None:
        """The Google simulator plays Google Workspace for one domain; the secret is the test
        service account's key file (tests/fixtures/google) pointed at it."""
        google = self._spawn("google-sim", [str(TARGET / "debug" / "google-sim"), "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
        assert google.stdout is not None
        self.google_url = google.stdout.readline().strip()
        if not self.google_url.startswith("http://"):
            raise RuntimeError(f"google-sim did not print its URL (got {self.google_url!r}); see {self.log_dir}")
        key_file = json.loads((ROOT / "tests" / "fixtures" / "google" / "test-service-account.json").read_text())
        key_file["token_uri"] = f"{self.google_url}/token"
        key_file["apiBaseUrl"] = self.google_url
        secret = f"{prefix}/google"
        self.client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(key_file))
        self.resources["GOOGLE_SECRET_ID"] = secret
        self.resources["GOOGLE_WORKSPACE_DOMAINS"] = "workspace.example.com"

    def function_env(self) -> dict[str, str]:
        """The union of the functions' configuration (every workspace binary runs under one
        `cargo lambda watch`): the names `infra/template.yaml` sets."""
        return {
            **self.aws_env,
            # transition, schedule-check; outbox-relay sends to the notifications queue
            "TABLE_NAME": self.resources["TABLE_NAME"],
            "NOTIFICATIONS_QUEUE_URL": self.resources["NOTIFICATIONS_QUEUE_URL"],
            "GENESYS_SECRET_ID": self.resources["GENESYS_SECRET_ID"],
            # webhook-dispatch; MAX_RECEIVE_COUNT equals the notifications queue's redrive (provision.rs)
            "SUBSCRIBERS_SECRET_ID": self.resources["SUBSCRIBERS_SECRET_ID"],
            "MAX_RECEIVE_COUNT": "4",
            # schedule-check
            "SCHEDULE_GROUP_NAME": self.resources["SCHEDULE_GROUP_NAME"],
            "SCHEDULER_ROLE_ARN": self.resources["SCHEDULER_ROLE_ARN"],
            "BURST_QUEUE_ARN": self.resources["BURST_QUEUE_ARN"],
            "SCHEDULER_DLQ_ARN": self.resources["SCHEDULER_DLQ_ARN"],
            # calendar-notify, calendar-sync, calendar-upkeep; Graph posts to cargo lambda
            # watch's Function URL emulation of calendar-notify
            "GRAPH_SECRET_ID": self.resources["GRAPH_SECRET_ID"],
            "GOOGLE_SECRET_ID": self.resources["GOOGLE_SECRET_ID"],
            "GOOGLE_WORKSPACE_DOMAINS": self.resources["GOOGLE_WORKSPACE_DOMAINS"],
            "SYNC_QUEUE_URL": self.resources["SYNC_QUEUE_URL"],
            "EVENT_BUS_NAME": self.resources["EVENT_BUS_NAME"],
            "NOTIFICATION_BASE_URL": self.function_url("calendar-notify"),
            "ROSTER_GROUP_ID": self.resources["ROSTER_GROUP_ID"],
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": os.environ.get("AWS_LAMBDA_LOG_LEVEL", "info"),
        }

    def function_url(self, function: str) -> str:
        """Where `cargo lambda watch` serves a function as its Function URL (its default port
        9000 when the developer starts it by hand)."""
        return f"http://127.0.0.1:{self.invoke_port or 9000}/lambda-url/{function}"

    def start_functions(self, extra_env: dict[str, str] | None = None) -> None:
        """`cargo lambda watch` serving every function of the workspace. `extra_env` adds or
        overrides variables (e.g. POLICY_PATH, or ALLOW_LOOPBACK_HTTP for a local receiver)."""
        self.invoke_port = self.invoke_port or free_port()
        env = {
            **os.environ,
            **self.function_env(),
            **(extra_env or {}),
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        }
        watch = self._spawn(
            "cargo-lambda-watch",
            ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.invoke_port)],
            env=env,
        )
        wait_for_port(self.invoke_port, watch, "cargo lambda watch", timeout=600)

    def invoke(self, function: str, payload: dict | str, timeout: float = 600) -> dict:
        """`cargo lambda invoke`. Fails at once (with the log) if the function process exits
        meanwhile — the emulator would otherwise wait for it until the timeout."""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        watch_log = self.log_dir / "cargo-lambda-watch.log"
        log_offset = watch_log.stat().st_size if watch_log.exists() else 0
        process = subprocess.Popen(
            ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", str(self.invoke_port), "--data-ascii", data],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                crashed = ""
                if watch_log.exists():
                    with open(watch_log, errors="replace") as log:
                        log.seek(log_offset)
                        new = log.read()
                    if "command exited" in new:
                        crashed = new
                if crashed or time.monotonic() > deadline:
                    process.kill()
                    process.communicate()
                    why = f"the function exited:\n{crashed[-3000:]}" if crashed else f"no answer within {timeout:.0f} s"
                    raise RuntimeError(f"invoke {function} failed: {why}") from None
        if process.returncode != 0:
            raise RuntimeError(f"invoke {function} failed: {stdout}{stderr}")
        return json.loads(stdout)

    def close(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 15)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, 9)
                    process.wait()
        self.processes.clear()


def _stop_on_sigterm(*_) -> None:
    # SIGTERM (a supervisor, `kill`) unwinds like Ctrl-C so `close()` stops every child; the
    # children run in their own sessions and would not get the signal themselves.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut close() short
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Local development: the stand-ins stay up, with the functions' environment printed as
    # `export` lines, until Ctrl-C or SIGTERM.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with LocalEnv() as env:
            for name, value in {**env.function_env(), "GENESYS_SIM_URL": env.sim_url, "GRAPH_SIM_URL": env.graph_url}.items():
                print(f"export {name}={value}")
            print("# stand-ins running; Ctrl-C stops them", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
