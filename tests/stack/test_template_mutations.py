"""The checks can fail: each test breaks one thing in a copy of infra/template.yaml that cfn-lint,
checkov and `sam validate` all accept, deploys the copy, and expects the whole-flow check that
passes on the real template (test_whole_flow.py) to fail, for that reason."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

from flows import Receiver, lookahead_runs, meeting_reaches_presence_and_webhook, reported_failure_stays_queued, started
from stack import TEMPLATE


def mutated(tmp_path: Path, old: str, new: str) -> Path:
    text = TEMPLATE.read_text()
    assert text.count(old) == 1, f"the mutation's anchor must occur once in the template: {old!r}"
    copy = tmp_path / "template.yaml"
    copy.write_text(text.replace(old, new))
    return copy


def meeting_problems(template: Path) -> list[str]:
    receiver = Receiver()
    try:
        with started(template, receiver, expect_denials=True) as env:
            env.start_functions({"ALLOW_LOOPBACK_HTTP": "true"})
            return meeting_reaches_presence_and_webhook(env, receiver.deliveries)
    finally:
        receiver.close()


def test_the_relay_role_without_send_message_fails_the_run(tmp_path):
    template = mutated(
        tmp_path,
        "              - Sid: SendNotificationsAndFailedBatches\n                Effect: Allow\n                Action: sqs:SendMessage",
        "              - Sid: SendNotificationsAndFailedBatches\n                Effect: Allow\n                Action: sqs:GetQueueAttributes",
    )
    problems = meeting_problems(template)
    assert any("denied: " in p and "OutboxRelayRole" in p and "sqs:SendMessage" in p for p in problems), problems


def test_a_trigger_rule_with_a_wrong_detail_type_fails_the_run(tmp_path):
    template = mutated(tmp_path, "          - Calendar Event Started\n", "          - Calendar Event Begun\n")
    problems = meeting_problems(template)
    assert any("no `applied` audit record" in p for p in problems), problems


def test_a_stream_filter_that_drops_the_user_state_fails_the_run(tmp_path):
    template = mutated(tmp_path, '"sk": {"S": ["STATE"]}', '"sk": {"S": ["STATUS"]}')
    problems = meeting_problems(template)
    assert problems == ["no webhook reached the receiver"], problems


def test_a_wrong_environment_variable_name_fails_the_run(tmp_path):
    template = mutated(tmp_path, "          BURST_QUEUE_URL: !Ref BurstQueue\n", "          BURST_QUEUE: !Ref BurstQueue\n")
    problems = meeting_problems(template)
    assert any("function failure: transition" in p for p in problems), problems


def test_a_batch_mapping_without_report_batch_item_failures_loses_the_failed_item(tmp_path):
    anchor = "      BatchSize: 100\n      MaximumBatchingWindowInSeconds: 1\n      FunctionResponseTypes: [ReportBatchItemFailures]\n"
    template = mutated(tmp_path, anchor, "      BatchSize: 100\n      MaximumBatchingWindowInSeconds: 1\n")
    with started(template, expect_denials=True) as env:
        env.start_functions()
        problems = reported_failure_stays_queued(env)
    assert problems == ["0 message(s) left on the burst queue after the batch; expected the 1 reported failure"], problems




def test_a_look_ahead_schedule_role_without_invoke_fails_the_run(tmp_path):
    anchor = "                Action: lambda:InvokeFunction\n                Resource: !GetAtt LookaheadFunction.Arn\n"
    template = mutated(tmp_path, anchor, anchor.replace("lambda:InvokeFunction", "lambda:GetFunction"))
    with started(template, expect_denials=True) as env:
        env.start_functions()
        problems = lookahead_runs(env)
    assert any("could not start lookahead" in p and "AccessDenied" in p for p in problems), problems
    assert any("denied: " in p and "LookaheadScheduleRole" in p and "lambda:InvokeFunction" in p for p in problems), problems
