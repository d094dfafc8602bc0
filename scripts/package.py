#!/usr/bin/env python3
"""`make package`: docs/deploy.md's build, verbatim (`sam build --template-file infra/template.yaml
--beta-features`, which runs `cargo lambda build --release --arm64` per function), then each
function's deployment zip as `sam deploy` uploads it (the `bootstrap` alone), with its size and the
build's time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}  # deploy.md: unset CARGO_TARGET_DIR
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{ROOT / '.venv-sam' / 'bin'}:{env.get('PATH', '')}"
    env["SAM_CLI_TELEMETRY"] = "0"
    started = time.monotonic()
    build = subprocess.run(["sam", "build", "--template-file", "infra/template.yaml", "--beta-features"], cwd=ROOT, env=env)
    took = time.monotonic() - started
    if build.returncode != 0:
        return build.returncode
    print(f"\nsam build (arm64, cargo-lambda) took {took:.0f} s")
    print(f"{'function':<28} {'bootstrap':>12} {'zip':>12}")
    for directory in sorted((ROOT / ".aws-sam" / "build").glob("*Function")):
        bootstrap = directory / "bootstrap"
        archive = directory.with_suffix(".zip")
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as out:
            out.write(bootstrap, "bootstrap")
        print(f"{directory.name:<28} {bootstrap.stat().st_size:>10} B {archive.stat().st_size:>10} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
