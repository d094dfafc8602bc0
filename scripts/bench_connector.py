#!/usr/bin/env python3
"""`make bench`, connector part: starts the local AWS stand-in (tests/local/aws_standin.py) and
runs the `connector_bench` example against it (the notification endpoint's answer time, Graph
calls per changed event). Prints the example's Markdown tables; the stand-in ends with us."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "local"))
import aws_standin  # noqa: E402

TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")


def main() -> int:
    standin = subprocess.Popen(
        aws_standin.command(ROOT / ".venv" / "bin" / "python", parent_pid=os.getpid()),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url = aws_standin.read_url(standin, timeout=120)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }
        # BENCH_PROFILE=release for the optimised build (`cargo build --release ...` first).
        example = TARGET / os.environ.get("BENCH_PROFILE", "debug") / "examples" / "connector_bench"
        run = subprocess.run([str(example), *sys.argv[1:]], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        # The handler's metric lines (EMF JSON, as Lambda would ship them) are not the report.
        for line in run.stdout.splitlines():
            if not line.startswith("{"):
                print(line)
        return run.returncode
    finally:
        standin.terminate()
        standin.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
