"""What the three contract suites share: where cargo put a simulator binary, one simulator
process on 127.0.0.1:0 (its first stdout line is its base URL), and the `/sim/` control surface
every simulator serves (plain `requests`)."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
# As cargo places it: CARGO_TARGET_DIR if set (relative to the repository root, where make runs cargo).
TARGET_DIR = REPO_ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
STARTUP_TIMEOUT_S = 20


def binary(crate: str) -> Path:
    return TARGET_DIR / "debug" / crate


class ControlSurface:
    """A running simulator process and its `/sim/` control surface."""

    control_timeout_s = 10

    def __init__(self, base_url: str, process: subprocess.Popen):
        self.base_url = base_url
        self.process = process
        self.http = requests.Session()

    def control(self, method: str, path: str, body: Any = None) -> requests.Response:
        response = self.http.request(method, self.base_url + path, json=body, timeout=self.control_timeout_s)
        assert response.status_code < 300, (
            f"control {method} {path} failed: {response.status_code} {response.text}"
        )
        return response

    def requests_log(self) -> list[dict]:
        return self.control("GET", "/sim/requests").json()


def _read_first_line(process: subprocess.Popen, timeout: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


@contextlib.contextmanager
def running(crate: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """Starts `crate`'s simulator binary; yields its base URL and process; stops it after. A
    missing binary or a silent start fails the test with what to do or what it printed."""
    path = binary(crate)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"{crate} binary not found at {path}; build it first with "
            f"`cargo build -p {crate}` (or run `make test-contract`)",
            pytrace=False,
        )
    stderr_log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(path), "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=stderr_log,
        text=True,
    )
    try:
        line = _read_first_line(process, STARTUP_TIMEOUT_S)
        if not line or not line.strip().startswith("http://"):
            stderr_log.seek(0)
            pytest.fail(
                f"{crate} did not print its base URL within {STARTUP_TIMEOUT_S}s "
                f"(first line {line!r}, exit code {process.poll()}); stderr:\n"
                + stderr_log.read().decode(errors="replace"),
                pytrace=False,
            )
        yield line.strip(), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()
        stderr_log.close()
