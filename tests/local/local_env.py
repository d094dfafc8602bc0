"""Local stand-ins for the cloud, started by the project itself on loopback: the moto server
(DynamoDB, SQS, Secrets Manager, EventBridge), the Genesys simulator, and the functions under
`cargo lambda watch`. Used by `make demo` and the smoke test; every process is stopped on exit."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


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

    def __init__(self, log_dir: Path | None = None) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"presence-autopilot-{os.getpid()}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.aws_env: dict[str, str] = {}
        self.resources: dict[str, str] = {}
        self.sim_url = ""
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
        moto_port = free_port()
        moto = self._spawn("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)])
        wait_for_port(moto_port, moto, "moto_server")
        self.aws_env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
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

    def function_env(self) -> dict[str, str]:
        """The functions' configuration: the names `infra/template.yaml` sets."""
        return {
            **self.aws_env,
            "TABLE_NAME": self.resources["TABLE_NAME"],
            "NOTIFICATIONS_QUEUE_URL": self.resources["NOTIFICATIONS_QUEUE_URL"],
            "GENESYS_SECRET_ID": self.resources["GENESYS_SECRET_ID"],
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": os.environ.get("AWS_LAMBDA_LOG_LEVEL", "info"),
        }

    def start_functions(self) -> None:
        """`cargo lambda watch` serving every function of the workspace."""
        self.invoke_port = free_port()
        env = {**os.environ, **self.function_env(), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        watch = self._spawn(
            "cargo-lambda-watch",
            ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-port", str(self.invoke_port)],
            env=env,
        )
        wait_for_port(self.invoke_port, watch, "cargo lambda watch", timeout=600)

    def invoke(self, function: str, payload: dict | str) -> dict:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        result = subprocess.run(
            ["cargo", "lambda", "invoke", function, "--invoke-port", str(self.invoke_port), "--data-ascii", data],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"invoke {function} failed: {result.stdout}{result.stderr}")
        return json.loads(result.stdout)

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


if __name__ == "__main__":
    with LocalEnv() as env:
        print(json.dumps({"sim": env.sim_url, **env.resources}, indent=2))
        sys.exit(0)
