"""The SAM template's alarms reach someone: every alarm notifies the alarm topic (the stack's own
unless `AlarmTopicArn` names one), for ALARM and for OK, and the topic exists whenever it is used."""

from __future__ import annotations

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
