"""The SAM template's alarms reach someone: every alarm notifies the alarm topic (the stack's own
unless `AlarmTopicArn` names one), for ALARM and for OK, and the topic exists whenever it is used;
the operations dashboard is valid JSON and shows every dead-letter queue."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
TOPIC = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (`!Ref X`, `!If [...]`) as their long forms."""


def _tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # noqa: S506 — SafeLoader subclass


def test_every_alarm_notifies_the_alarm_topic_on_alarm_and_on_ok() -> None:
    resources = template()["Resources"]
    alarms = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) >= 20
    for name, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties.get("AlarmActions") == [TOPIC], f"{name}: AlarmActions"
        assert properties.get("OKActions") == [TOPIC], f"{name}: OKActions"


def test_the_stack_creates_an_encrypted_topic_when_none_is_given() -> None:
    doc = template()
    topic = doc["Resources"]["AlarmTopic"]
    assert topic["Condition"] == "CreateAlarmTopic"
    assert doc["Conditions"]["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
    email = doc["Resources"]["AlarmEmailSubscription"]
    assert email["Properties"]["Protocol"] == "email"
    assert doc["Outputs"]["AlarmTopicArn"]["Value"] == TOPIC


def test_the_dashboard_is_json_and_shows_every_dead_letter_queue() -> None:
    doc = template()
    body, variables = doc["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    rendered = re.sub(r"\$\{[^}]+\}", "x", body)
    widgets = json.loads(rendered)["widgets"]
    titles = [w["properties"]["title"] for w in widgets]
    assert any("Decisions" in t for t in titles) and any("Deliveries" in t for t in titles)
    queues = {name for name, r in doc["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    dlqs = {name for name in queues if name.endswith("DLQ")}
    # Burst, Notifications, OutboxRelay, Events, Scheduler, ScheduleCheckAsync, LookaheadAsync
    # (transition has no asynchronous invoke: schedules send to the burst queue).
    assert len(dlqs) == 7 and "SyncDeadLetterQueue" in queues
    assert "TransitionAsyncDLQ" not in queues
    # The calendar connector's queues exist only with the connector: named through a variable.
    conditional = {"SyncDeadLetterQueue": "SyncDlqName", "LookaheadAsyncDLQ": "LookaheadDlqName"}
    for name in dlqs - conditional.keys():
        assert f"${{{name}.QueueName}}" in body, name
    for queue, variable in conditional.items():
        assert doc["Resources"][queue]["Condition"] == "HasCalendarConnector"
        assert f"${{{variable}}}" in body, variable
        assert variables[variable]["Fn::If"][1] == {"Fn::GetAtt": [queue, "QueueName"]}


def test_the_stacks_policy_parameter_starts_as_the_built_in_policy_and_every_decider_reads_it():
    """A fresh stack decides as the built-in policy documents until `policy push`: the
    parameter's value is the built-in text, byte for byte; the deciding functions (and the
    calendar functions that read the policy at cold start) are told its name and may read it."""
    t = template()
    parameter = t["Resources"]["PolicyParameter"]["Properties"]
    builtin = (TEMPLATE.parents[1] / "shared" / "src" / "default-policy.toml").read_text()
    assert parameter["Value"] == builtin
    assert parameter["Tier"] == "Intelligent-Tiering", "a policy past 4 KB still fits"
    readers = {
        name: r for name, r in t["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
        and "POLICY_PARAMETER" in r["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert sorted(readers) == [
        "CalendarSyncFunction", "CalendarUpkeepFunction", "LookaheadFunction", "ScheduleCheckFunction",
        "TransitionFunction",
    ]
    for name, function in readers.items():
        role = t["Resources"][function["Properties"]["Role"]["Fn::GetAtt"][0]]
        statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
        reads = [s for s in statements if s.get("Action") == "ssm:GetParameter"]
        assert len(reads) == 1 and "${PolicyParameter}" in reads[0]["Resource"]["Fn::Sub"], name
