"""The least-privilege check can fail: an unexercised grant that docs/deploy.md does not list, and a
listed one that is exercised, each fail `scripts/privilege_report.py --check`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

import json
import subprocess

from local_env import LOCAL_PARAMETERS, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import privilege_report  # noqa: E402

TEMPLATE = ROOT / "infra" / "template.yaml"
HEADING = privilege_report.LISTED_HEADING


def check(template: Path, logs: Path, docs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "privilege_report.py"), "--check", "--template", str(template),
         "--logs", str(logs), "--docs", str(docs)],
        capture_output=True, text=True, cwd=ROOT,
    )


def every_grant_called(tmp_path: Path) -> Path:
    """A run log in which each granted action of the real template was called once."""
    grants = privilege_report.granted(TEMPLATE, LOCAL_PARAMETERS)
    logs = tmp_path / "logs"
    logs.mkdir()
    calls = [{"role": role, "action": action.replace("*", ""), "resource": "arn:test", "count": 1} for role, action in grants]
    (logs / "run.json").write_text(json.dumps({"run": "synthetic", "calls": calls}))
    return logs


def docs_listing(tmp_path: Path, rows: str = "") -> Path:
    docs = tmp_path / "deploy.md"
    docs.write_text(f"{HEADING}\n\n| role | action | why it stays |\n|---|---|---|\n{rows}\n## next\n")
    return docs


def test_every_grant_exercised_and_nothing_listed_passes(tmp_path):
    result = check(TEMPLATE, every_grant_called(tmp_path), docs_listing(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_new_grant_no_run_exercises_fails(tmp_path):
    text = TEMPLATE.read_text()
    anchor = "                  - dynamodb:BatchGetItem\n"
    assert anchor in text
    template = tmp_path / "template.yaml"
    template.write_text(text.replace(anchor, anchor + "                  - dynamodb:Scan\n", 1))
    result = check(template, every_grant_called(tmp_path), docs_listing(tmp_path))
    assert result.returncode == 1
    assert "TransitionRole is granted dynamodb:Scan, which no run exercised" in result.stderr


def test_a_listed_grant_that_is_exercised_fails(tmp_path):
    docs = docs_listing(tmp_path, "| TransitionRole | `dynamodb:GetItem` | stale |")
    result = check(TEMPLATE, every_grant_called(tmp_path), docs)
    assert result.returncode == 1
    assert "TransitionRole dynamodb:GetItem is listed as unexercised" in result.stderr
