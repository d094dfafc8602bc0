"""`make flake-check`: runs every concurrency test N times and prints `passed X/N` per test.

A concurrency test is one whose name says so (`concurrent`, `race`, `parallel`) or one listed in
EXTRA below (tests that spawn parallel writers without saying it in their name). Each round is
one run of the integration test binary filtered to those tests, so each round also starts a
fresh local AWS stand-in. Exit status 1 if any test failed in any round."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
NAME_PATTERN = re.compile(r"concurrent|rac(e|ing)|parallel")
# Tests that race writers without saying so in their name.
EXTRA: list[str] = [
    "google::two_workers_on_one_google_agent_run_one_round_each_and_never_regress_the_sync_token",
    # 50 concurrent takes of a staffing-guard slot against a cap of 10.
    "contracts::dynamodb_keeps_the_staffing_guard_contract",
]


def test_binaries() -> list[str]:
    """Builds the integration tests once and returns their executables."""
    out = subprocess.run(
        ["cargo", "test", "--locked", "-p", "integration-tests", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    binaries = []
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable") and message["profile"]["test"]:
            binaries.append(message["executable"])
    return binaries


def concurrency_tests(binary: str) -> list[str]:
    listed = subprocess.run([binary, "--list", "--format", "terse"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    names = [line.rsplit(": ", 1)[0] for line in listed.splitlines() if line.endswith(": test")]
    return [name for name in names if NAME_PATTERN.search(name.rsplit("::", 1)[-1]) or name in EXTRA]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=int(os.environ.get("N", "20")))
    args = parser.parse_args()
    passed: Counter[str] = Counter()
    failed_any = False
    for binary in test_binaries():
        tests = concurrency_tests(binary)
        if not tests:
            continue
        print(f"{Path(binary).name}: {len(tests)} concurrency tests x {args.runs} runs", flush=True)
        for round_no in range(1, args.runs + 1):
            run = subprocess.run(
                [binary, "--exact", "--test-threads", "4", *tests], cwd=ROOT, capture_output=True, text=True
            )
            for name in tests:
                if re.search(rf"^test {re.escape(name)} \.\.\. ok$", run.stdout, re.MULTILINE):
                    passed[name] += 1
                else:
                    failed_any = True
                    print(f"  round {round_no}: {name} FAILED", flush=True)
                    TARGET.mkdir(parents=True, exist_ok=True)
                    log = TARGET / f"flake-{name.replace('::', '.')}-{round_no}.log"
                    log.write_text(run.stdout + run.stderr)
                    print(f"    output: {log}", flush=True)
        for name in tests:
            print(f"{name}: passed {passed[name]}/{args.runs}")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
