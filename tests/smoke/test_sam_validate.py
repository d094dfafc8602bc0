"""`make lint` runs `sam validate --lint` on the template users deploy: the real template passes,
and a copy with a broken reference (a resource name misspelt in a `!GetAtt`) is refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
TEMPLATE = ROOT / "infra" / "template.yaml"


def validate(template: Path) -> subprocess.CompletedProcess:
    assert SAM.is_file(), f"{SAM} is missing: run `make setup`"
    return subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", str(template), "--region", "us-east-1"],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_template_is_valid_sam():
    result = validate(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_reference_fails_the_lint(tmp_path):
    broken = tmp_path / "template.yaml"
    text = TEMPLATE.read_text()
    assert "!GetAtt BurstQueue.Arn" in text
    broken.write_text(text.replace("!GetAtt BurstQueue.Arn", "!GetAtt BurstQueu.Arn"))
    result = validate(broken)
    assert result.returncode != 0
    assert "BurstQueu" in result.stdout + result.stderr
