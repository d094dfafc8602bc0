"""The whole flow on the stack deployed from infra/template.yaml, every function under its own
role: what the template wires is what runs (tests/local/runner.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

import subprocess

import pytest

from flows import (
    Receiver,
    lookahead_runs,
    meeting_reaches_presence_and_webhook,
    refused_delivery_waits_for_its_retry,
    reported_failure_stays_queued,
    started,
)
from local_env import ROOT


@pytest.fixture(scope="module")
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def env(receiver):
    with started(receiver=receiver) as local:
        local.start_functions({"ALLOW_LOOPBACK_HTTP": "true"})
        yield local


def test_a_meeting_on_the_bus_reaches_presence_and_the_webhook(env, receiver):
    assert meeting_reaches_presence_and_webhook(env, receiver.deliveries) == []


def test_a_reported_batch_failure_stays_on_the_queue_and_the_rest_is_consumed(env):
    assert reported_failure_stays_queued(env) == []


def test_a_refused_webhook_delivery_waits_for_its_retry(env, receiver):
    assert refused_delivery_waits_for_its_retry(env, receiver) == []


def test_the_daily_look_ahead_starts_under_its_schedules_role(env):
    assert lookahead_runs(env) == []


def test_each_function_gets_only_the_stacks_environment_and_its_role(env):
    for host in env.runner.hosts.values():
        declared = env.stack.resources[host.logical_id].properties["Environment"]["Variables"]
        for name, value in declared.items():
            if name not in ("NOTIFICATION_BASE_URL", "ALLOW_LOOPBACK_HTTP"):  # the local overrides (docs/local-aws.md)
                assert host.environment[name] == str(value), (host.binary, name)
        assert host.environment["AWS_SESSION_TOKEN"], host.binary  # assumed-role credentials
        assert host.environment["AWS_ACCESS_KEY_ID"] != "test", host.binary


def test_the_demo_day_runs_on_the_deployed_stack():
    """The scripted day (make demo): Outlook, Google, Scheduler, the sweep, on-call commands."""
    day = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert day.returncode == 0, day.stdout[-4000:] + day.stderr[-4000:]
