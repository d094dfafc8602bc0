"""The local stack, started by the project itself on loopback: the AWS stand-in (moto behind
`aws_standin.py`, every request atomic, every assumed-role call authorised by action and resource),
the Genesys, Graph and Google simulators, `infra/template.yaml` deployed on the stand-in
(`stack.py`), and the functions run by `runner.py` from that stack, each under its own
`cargo lambda watch` and role. Used by `make demo`, the smoke and stack tests and the README's local
walk (`python tests/local/local_env.py`); every process is stopped on exit (also on SIGTERM when run
as a script). docs/local-aws.md says what is emulated and how."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aws_standin  # beside this file; importers put tests/local on sys.path for all three
import runner
import stack

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# A relative CARGO_TARGET_DIR is relative to the repository root, where make runs cargo.
TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
# Each run's allowed calls, read by scripts/privilege_report.py after the test run.
PRIVILEGE_LOG = Path(os.environ.get("PRIVILEGE_LOG_DIR", str(TARGET / "privilege-log")))
STACK_NAME = "presence-autopilot"
RUNS = itertools.count(1)  # one log dir per environment in a process
# The functions the template declares (Metadata.BuildProperties.Binary), each built by make.
FUNCTION_BINARIES = ("transition", "outbox-relay", "webhook-dispatch", "schedule-check", "calendar-notify",
                     "calendar-sync", "calendar-upkeep", "lookahead")
# The local deploy's parameters: the calendar connector on, for the simulators' roster and domain.
LOCAL_PARAMETERS = {
    "RosterGroupId": "9c2f4e1a-7b3d-4c5e-8f6a-1b2c3d4e5f60",  # genesys-sim's default roster group
    "GoogleWorkspaceDomains": "workspace.example.com",  # google-sim's domain
}


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
    """Starts everything on enter, stops everything on exit (also on errors and Ctrl-C).

    The AWS side is the stack deployed from `template` (`stack.py`); `start_functions` hands it to
    the runner (`runner.py`), which plays the Lambda service from the stack. On exit, a call the
    stack's roles did not allow fails the run, naming role, action and resource, and the calls that
    were allowed are written for the least-privilege report (scripts/privilege_report.py)."""

    def __init__(self, log_dir: Path | None = None, subscribers: dict | None = None, template: Path = stack.TEMPLATE,
                 parameters: dict[str, str] | None = None, expect_denials: bool = False) -> None:
        """`subscribers`: the subscriber document (docs/delivery.md) stored in the subscribers
        secret; none by default. `parameters` add to or override the local deploy's."""
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"presence-autopilot-{os.getpid()}-{next(RUNS)}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.subscribers = subscribers if subscribers is not None else {"webhooks": []}
        self.template = template
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self.expect_denials = expect_denials
        self.aws_env: dict[str, str] = {}
        self.sim_url = ""
        self.graph_url = ""
        self.google_url = ""
        self.stack: stack.Stack | None = None
        self.runner: runner.Runner | None = None
        self.ports: dict[str, int] = {}

    def __enter__(self) -> "LocalEnv":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        denied = self.denials() if self.aws_env else []
        self.close()
        if exc_type is None and denied and not self.expect_denials:
            raise runner.RunFailure("calls the stack's roles do not allow:\n" + "\n".join(
                f"  {d['role']}: {d['action']} on {d['resource']} ({d['why']})" for d in denied))

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

    def _simulator(self, name: str) -> str:
        process = self._spawn(name, [str(TARGET / "debug" / name), "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE)
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"{name} did not print its URL (got {url!r}); see {self.log_dir}")
        return url

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
        self.sim_url = self._simulator("genesys-sim")
        self.graph_url = self._simulator("graph-sim")
        self.google_url = self._simulator("google-sim")
        self.ports = {binary: free_port() for binary in FUNCTION_BINARIES}
        urls = {f"{STACK_NAME}-{b}": f"http://127.0.0.1:{p}/lambda-url/{b}/" for b, p in self.ports.items()}
        self.stack = stack.deploy(stack.boto_clients(moto_url), self.parameters, STACK_NAME, self.template, urls)
        (self.log_dir / "stack.json").write_text(json.dumps(self.stack.to_json(), indent=1, default=str))
        self._put_secret_values()

    def _put_secret_values(self) -> None:
        """What the operator does after `sam deploy` (docs/deploy.md): the secrets' real values,
        here pointing at the simulators. The Graph secret keeps its generated clientStateKey."""
        secrets = self.client("secretsmanager")

        def put(output: str, value: dict) -> None:
            secrets.put_secret_value(SecretId=self.output(output), SecretString=json.dumps(value))

        put("GenesysOAuthSecretArn", {"clientId": "demo-client", "clientSecret": "demo-secret", "region": "mypurecloud.com",
                                      "apiBaseUrl": self.sim_url})
        put("SubscribersSecretArn", self.subscribers)
        graph = json.loads(secrets.get_secret_value(SecretId=self.output("GraphSecretArn"))["SecretString"])
        put("GraphSecretArn", {**graph, "tenantId": "00000000-0000-0000-0000-0000000000aa", "clientId": "graph-client",
                               "clientSecret": "graph-secret", "graphBaseUrl": self.graph_url, "loginBaseUrl": self.graph_url})
        key_file = json.loads((ROOT / "tests" / "fixtures" / "google" / "test-service-account.json").read_text())
        put("GoogleSecretArn", {**key_file, "token_uri": f"{self.google_url}/token", "apiBaseUrl": self.google_url})

    def output(self, name: str) -> str:
        assert self.stack is not None
        if name not in self.stack.outputs:
            raise KeyError(f"the stack has no output {name} (infra/template.yaml, Outputs)")
        return self.stack.outputs[name]

    @property
    def resources(self) -> dict[str, str]:
        """The names the demo and the local walk print, read from the stack's outputs."""
        return {
            "TABLE_NAME": self.output("TableName"),
            "EVENT_BUS_NAME": self.output("EventBusName"),
            "BURST_QUEUE_URL": self.output("BurstQueueUrl"),
            "NOTIFICATIONS_QUEUE_URL": self.output("NotificationsQueueUrl"),
            "SYNC_QUEUE_URL": self.output("SyncQueueUrl"),
            "SCHEDULE_GROUP_NAME": self.output("ScheduleGroupName"),
            "GENESYS_SECRET_ID": self.output("GenesysOAuthSecretArn"),
            "POLICY_PARAMETER": self.output("PolicyParameterName"),
            "ROSTER_GROUP_ID": self.parameters["RosterGroupId"],
        }

    def client(self, service: str):
        """A boto3 client for the stand-in with its own key (not a role: inspection only)."""
        import boto3  # the project venv has it; imported late so `--help`-style use stays light

        return boto3.client(
            service,
            endpoint_url=self.aws_env["AWS_ENDPOINT_URL"],
            region_name=self.aws_env["AWS_REGION"],
            aws_access_key_id=self.aws_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.aws_env["AWS_SECRET_ACCESS_KEY"],
        )

    def function_env(self, binary: str, extra_env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment the runner gives `binary`: the stack's, its role's credentials and the
        local endpoint overrides (for running a binary outside the runner, as `make bench` does)."""
        if self.runner is None:
            self.runner = self._runner(extra_env)
        return dict(self.runner.host(binary).environment)

    def function_url(self, binary: str) -> str:
        return f"http://127.0.0.1:{self.ports[binary]}/lambda-url/{binary}"

    def start_functions(self, extra_env: dict[str, str] | None = None) -> None:
        """The runner: each function under its own `cargo lambda watch`, its role and the stack's
        environment. `extra_env` may only set local endpoint overrides (runner.ENDPOINT_OVERRIDES),
        e.g. ALLOW_LOOPBACK_HTTP for a local receiver."""
        self.runner = self._runner(extra_env)
        self.runner.start()
        for binary, process in self.runner.processes():
            self.processes.append((f"watch-{binary}", process))
        for binary, process in self.runner.processes():
            wait_for_port(self.ports[binary], process, f"cargo lambda watch -p {binary}", timeout=600)

    def _runner(self, extra_env: dict[str, str] | None) -> runner.Runner:
        assert self.stack is not None
        extra = dict(extra_env or {})
        extra.setdefault("AWS_LAMBDA_LOG_LEVEL", os.environ.get("AWS_LAMBDA_LOG_LEVEL", "info"))

        def overrides(binary: str, declared: dict[str, str]) -> dict[str, str]:
            local = dict(extra)
            if "NOTIFICATION_BASE_URL" in declared:  # Graph posts to calendar-notify's local URL
                local["NOTIFICATION_BASE_URL"] = self.function_url("calendar-notify")
            return local

        return runner.Runner(self.stack, self.aws_env["AWS_ENDPOINT_URL"], self.log_dir, overrides, self.ports)

    def invoke(self, binary: str, payload: dict | str, timeout: float | None = None) -> dict:
        """A direct invoke of one function (what `cargo lambda invoke` does); a function error
        raises with what the function said."""
        assert self.runner is not None, "start_functions() first"
        ok, answer = self.runner.host(binary).invoke(json.loads(payload) if isinstance(payload, str) else payload, timeout)
        if not ok:
            raise RuntimeError(f"invoke {binary} failed: {answer}")
        return answer

    def denials(self) -> list[dict]:
        with urllib.request.urlopen(self.aws_env["AWS_ENDPOINT_URL"] + "/_standin/iam", timeout=30) as answer:
            return json.load(answer)["denied"]

    def record_privileges(self) -> None:
        """The calls each role made, for scripts/privilege_report.py (one file per run)."""
        with urllib.request.urlopen(self.aws_env["AWS_ENDPOINT_URL"] + "/_standin/iam", timeout=30) as answer:
            seen = json.load(answer)
        assert self.stack is not None
        roles = {r.physical_id: r.logical_id for r in self.stack.of_type("AWS::IAM::Role")}
        calls = [{**c, "role": roles.get(c["role"], c["role"])} for c in seen["allowed"]]
        PRIVILEGE_LOG.mkdir(parents=True, exist_ok=True)
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0] or Path(sys.argv[0]).name
        (PRIVILEGE_LOG / f"{os.getpid()}-{time.monotonic_ns()}.json").write_text(json.dumps({"run": test, "calls": calls}))

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            if not self.expect_denials and self.template == stack.TEMPLATE:  # what we ship only
                with contextlib.suppress(Exception):
                    self.record_privileges()
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


def connect_one_agent(env: LocalEnv) -> None:
    """Gives Ada a Microsoft 365 mailbox in the Graph simulator, then runs the CalendarUpkeepRule
    once: of the roster group's members, those with a mailbox (or a Google Workspace domain) are
    connected; the others are reported `unmatched`."""
    request = urllib.request.Request(
        f"{env.graph_url}/sim/users",
        data=json.dumps({"user_principal_name": "ada@example.com", "mail": "ada@example.com", "display_name": "Ada Agent"}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
    assert env.runner is not None
    answer = env.runner.fire_rule("CalendarUpkeepRule")[0]
    env.runner.settle()
    print(f"# CalendarUpkeepRule → calendar-upkeep: {json.dumps(answer)}")
    print("#   connected: ada@example.com (a Graph mailbox); unmatched: roster members with no mailbox in the Graph"
          " simulator and no Google Workspace domain; add one with POST $GRAPH_SIM_URL/sim/users")


if __name__ == "__main__":
    # The README's local walk: the stack stays up with Lambda's pollers, the scheduled rules and the
    # Scheduler running in the background, until Ctrl-C or SIGTERM.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with LocalEnv() as env:
            print(f"# infra/template.yaml deployed on the stand-in in {env.stack.seconds:.1f} s; outputs:")
            for name, value in env.stack.outputs.items():
                print(f"#   {name} = {value}")
            print("# starting each function under its own cargo lambda watch and role (the first call of each starts it;"
                  " after a code change it also compiles it)", flush=True)
            env.start_functions({"ALLOW_LOOPBACK_HTTP": "true"})
            connect_one_agent(env)
            env.runner.run_in_background()
            exports = {**env.aws_env, "GENESYS_SIM_URL": env.sim_url, "GRAPH_SIM_URL": env.graph_url,
                       "GOOGLE_SIM_URL": env.google_url, "EVENT_BUS_NAME": env.output("EventBusName"),
                       "TABLE_NAME": env.output("TableName")}
            exports.update({f"{b.upper().replace('-', '_')}_PORT": str(p) for b, p in env.ports.items()})
            print("# paste these into another shell (AWS_* is the stand-in's own key: for looking, not a function's role):")
            for name, value in exports.items():
                print(f"export {name}={value}")
            print("# stack running (pollers every 0.5 s, SweepRule every minute, schedules at their time); Ctrl-C stops it",
                  flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
