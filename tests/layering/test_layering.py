"""The layering rules of scripts/code_shape.py: the real tree keeps them, and a deliberately wrong
import in a copy of it is caught (so the check can fail)."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("code_shape", ROOT / "scripts" / "code_shape.py")
code_shape = importlib.util.module_from_spec(spec)
sys.modules["code_shape"] = code_shape
spec.loader.exec_module(code_shape)


@pytest.fixture
def tree(tmp_path):
    """A copy of the production sources the rules read."""
    for part in ("shared/src", "functions"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("target"))
    return tmp_path


def test_the_tree_keeps_the_rules():
    assert code_shape.layering_violations(ROOT) == []


def test_imports_are_read_in_every_form():
    text = """
        use crate::ports::{AuditLog, StateStore};
        use crate::{aws::sqs::SqsQueue, model};
        use crate::delivery::{retry::RetrySchedule, slack::{SlackClient, SlackError}};
        let x = crate::tls::aws_config();
    """
    paths = ["::".join(p) for p in code_shape.imported_paths(text, "crate")]
    assert paths == [
        "ports::AuditLog",
        "ports::StateStore",
        "aws::sqs::SqsQueue",
        "model",
        "delivery::retry::RetrySchedule",
        "delivery::slack::SlackClient",
        "delivery::slack::SlackError",
        "tls::aws_config",
    ]


@pytest.mark.parametrize(
    ("file", "line", "expected"),
    [
        # A use case reaching for an adapter.
        ("shared/src/service/outbox_relay.rs", "use crate::aws::sqs::SqsQueue;", "crate::aws::sqs::SqsQueue"),
        # A use case naming a concrete sender inside a group.
        ("shared/src/service/schedule_check/mod.rs", "use crate::{model, delivery::slack::SlackClient};", "crate::delivery::slack::SlackClient"),
        # A function bypassing compose.
        ("functions/transition/src/main.rs", "use presence_autopilot::aws::dynamo::DynamoStore;", "presence_autopilot::aws::dynamo::DynamoStore"),
    ],
)
def test_a_wrong_import_is_caught(tree, file, line, expected):
    path = tree / file
    path.write_text(line + "\n" + path.read_text())
    assert (file, expected) in code_shape.layering_violations(tree)


def test_test_modules_may_use_fakes(tree):
    path = tree / "shared/src/service/outbox_relay.rs"
    path.write_text(path.read_text() + "\n#[cfg(test)]\nmod more {\n    use crate::fakes::FakeQueue;\n}\n")
    assert code_shape.layering_violations(tree) == []
