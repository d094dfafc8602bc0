"""The local AWS launcher (tests/local/aws_standin.py), with boto3 against a real process: every
request is atomic (plain moto_server lets racing transactions both commit or erase each other),
faults fire as armed and parse as the service's own errors, `ClientRequestToken` makes a repeated
TransactWriteItems a no-op, and the launcher ends with its parent or on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
import aws_standin  # noqa: E402

RACERS = 32
# One attempt per call: a fault must reach the test, and a racer must run its transaction once.
# botocore counts `max_attempts` as retries after the first attempt (1 would allow a retry);
# `total_max_attempts` counts them all.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=RACERS + 8)
TRANSACT = "DynamoDB_20120810.TransactWriteItems"


def launch(parent_pid: int | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        aws_standin.command(parent_pid=parent_pid), stdout=subprocess.PIPE, text=True
    )
    try:
        return process, aws_standin.read_url(process, timeout=30)
    except BaseException:
        process.kill()
        process.wait()
        raise


@pytest.fixture(scope="module")
def standin() -> str:
    process, url = launch(parent_pid=os.getpid())
    yield url
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


@pytest.fixture(scope="module")
def client(standin: str) -> Callable:
    def make(service: str, config: Config = NO_RETRIES):
        return boto3.client(
            service,
            endpoint_url=standin,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=config,
        )

    return make


@pytest.fixture(scope="module")
def ddb(client: Callable):
    return client("dynamodb")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_table(ddb, **extra) -> str:
    name = unique("standin")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    return name


def items(ddb, table: str) -> dict[str, dict]:
    found = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["pk"]["S"]: item for item in found}


def arm(url: str, **spec) -> dict:
    response = requests.post(f"{url}/_standin/faults", json=spec, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def faults(url: str) -> dict[str, dict]:
    return {f["id"]: f for f in requests.get(f"{url}/_standin/faults", timeout=10).json()["faults"]}


def error_code(call: Callable, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def put_if_absent(table: str, pk: str, **attrs) -> dict:
    return {
        "Put": {
            "TableName": table,
            "Item": {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def add_one(table: str, pk: str) -> dict:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def race(workers: int, work: Callable[[int], object]) -> list:
    """Runs `work(i)` on `workers` threads released together."""
    start = threading.Barrier(workers)

    def run(i: int):
        start.wait()
        return work(i)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(workers)))


# ------------------------------------------------------------------ atomicity


@pytest.mark.parametrize("round_", range(4))
def test_racing_transactions_on_one_key_commit_exactly_one(ddb, round_: int) -> None:
    table = new_table(ddb)

    def attempt(i: int) -> int | None:
        try:
            ddb.transact_write_items(
                TransactItems=[
                    put_if_absent(table, "race", owner=str(i)),
                    put_if_absent(table, f"second-{i}", owner=str(i)),
                ]
            )
            return i
        except ClientError as err:
            assert err.response["Error"]["Code"] == "TransactionCanceledException", err.response
            return None

    winners = [i for i in race(RACERS, attempt) if i is not None]

    assert len(winners) == 1, winners
    (winner,) = winners
    stored = items(ddb, table)
    assert set(stored) == {"race", f"second-{winner}"}, sorted(stored)
    assert stored["race"]["owner"]["S"] == str(winner)


def test_racing_conditional_increments_lose_no_update(ddb) -> None:
    table = new_table(ddb)
    key = {"pk": {"S": "counter"}}
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "0"}, "version": {"N": "0"}})

    def increment(_: int) -> int:
        succeeded = 0
        for _attempt in range(4):
            seen = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["version"]["N"]
            try:
                ddb.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET n = n + :one, version = :next",
                    ConditionExpression="version = :seen",
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":seen": {"N": seen},
                        ":next": {"N": str(int(seen) + 1)},
                    },
                )
                succeeded += 1
            except ClientError as err:
                assert err.response["Error"]["Code"] == "ConditionalCheckFailedException", err.response
        return succeeded

    successes = sum(race(16, increment))

    final = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert successes >= 1
    assert int(final["n"]["N"]) == successes
    assert int(final["version"]["N"]) == successes


def test_a_cancelled_transaction_puts_back_exactly_the_items_it_named(ddb) -> None:
    # The stand-in rolls back item by item (moto would copy the whole table): writes made before
    # the failing condition are undone, new items removed, and items it did not name untouched.
    table = new_table(ddb)
    ddb.put_item(TableName=table, Item={"pk": {"S": "kept"}, "v": {"S": "before"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "counted"}, "n": {"N": "5"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "blocker"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "bystander"}, "v": {"S": "as is"}})
    before = items(ddb, table)

    code, _ = error_code(
        ddb.transact_write_items,
        TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "kept"}, "v": {"S": "after"}}}},
            add_one(table, "counted"),
            put_if_absent(table, "brand-new"),
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "bystander-2"}}}},
            put_if_absent(table, "blocker"),
        ],
    )

    assert code == "TransactionCanceledException"
    assert items(ddb, table) == before


def test_a_cancelled_transaction_leaves_no_stream_record(ddb, client) -> None:
    # The outbox relay reads the table's stream: a record of a write that was rolled back would
    # announce a change that never happened.
    table = new_table(ddb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName=table, Item={"pk": {"S": "blocker"}})
    code, _ = error_code(
        ddb.transact_write_items,
        TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "written-then-undone"}}}},
            put_if_absent(table, "blocker"),
        ],
    )
    assert code == "TransactionCanceledException"
    ddb.put_item(TableName=table, Item={"pk": {"S": "after"}})

    streams = client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    written = [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
    assert written == ["blocker", "after"]
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequences == sorted(sequences) and len(set(sequences)) == 2


def test_a_cancelled_transaction_on_a_table_with_a_sort_key_leaves_the_partition_as_it_was(ddb) -> None:
    table = unique("standin-sorted")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    state = {"pk": {"S": "USER#1"}, "sk": {"S": "STATE"}, "version": {"N": "3"}}
    head = {"pk": {"S": "USER#1"}, "sk": {"S": "HEAD"}, "seq": {"N": "7"}}
    ddb.put_item(TableName=table, Item=state)
    ddb.put_item(TableName=table, Item=head)

    code, _ = error_code(
        ddb.transact_write_items,
        TransactItems=[
            {"Put": {"TableName": table, "Item": {**state, "version": {"N": "4"}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": "USER#1"}, "sk": {"S": "AUDIT#1"}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": "USER#2"}, "sk": {"S": "AUDIT#1"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "USER#1"}, "sk": {"S": "HEAD"}},
                                "ConditionExpression": "seq = :seen",
                                "ExpressionAttributeValues": {":seen": {"N": "6"}}}},
        ],
    )

    assert code == "TransactionCanceledException"
    stored = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    assert sorted(stored, key=lambda item: item["sk"]["S"]) == [head, state]


def test_a_query_reads_its_partition_as_moto_would_the_whole_table(ddb) -> None:
    """The launcher's partition query (install_partition_query): key conditions, order, both
    directions, a limit with its resume key, a filter and an empty partition answer exactly as
    DynamoDB documents, with other partitions' items all around."""
    table = unique("standin-query")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for user in ("A", "B", "C"):
        for n in (3, 1, 2, 10):
            ddb.put_item(TableName=table, Item={"pk": {"S": f"CONN#{user}"}, "sk": {"S": f"EVENT#{n:02}"}, "n": {"N": str(n)}})
        ddb.put_item(TableName=table, Item={"pk": {"S": f"CONN#{user}"}, "sk": {"S": "CONNECTION"}})

    def sks(**kwargs) -> list[str]:
        answer = ddb.query(TableName=table, **kwargs)
        return [item["sk"]["S"] for item in answer["Items"]]

    of_b = {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":pk": {"S": "CONN#B"}, ":p": {"S": "EVENT#"}}}
    assert sks(**of_b) == ["EVENT#01", "EVENT#02", "EVENT#03", "EVENT#10"]
    assert sks(**of_b, ScanIndexForward=False) == ["EVENT#10", "EVENT#03", "EVENT#02", "EVENT#01"]
    first = ddb.query(TableName=table, **of_b, Limit=2)
    assert [i["sk"]["S"] for i in first["Items"]] == ["EVENT#01", "EVENT#02"]
    rest = sks(**of_b, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert rest == ["EVENT#03", "EVENT#10"]
    filtered = {**of_b, "FilterExpression": "n > :two",
                "ExpressionAttributeValues": {**of_b["ExpressionAttributeValues"], ":two": {"N": "2"}}}
    assert sks(**filtered) == ["EVENT#03", "EVENT#10"]
    assert sks(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "CONN#Z"}}) == []
    assert len(sks(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "CONN#C"}})) == 5


def test_calls_are_counted_by_operation_within_their_scope_only(standin, ddb) -> None:
    mine, theirs = new_table(ddb), new_table(ddb)
    started = requests.post(f"{standin}/_standin/calls", json={"body_contains": mine}, timeout=10)
    assert started.status_code == 201, started.text
    counter = started.json()["id"]

    for table in (mine, theirs):
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}})
    ddb.get_item(TableName=mine, Key={"pk": {"S": "a"}})
    ddb.get_item(TableName=mine, Key={"pk": {"S": "b"}})

    read = requests.get(f"{standin}/_standin/calls/{counter}", timeout=10).json()["calls"]
    assert read == {"DynamoDB_20120810.PutItem": 1, "DynamoDB_20120810.GetItem": 2}
    stopped = requests.delete(f"{standin}/_standin/calls/{counter}", timeout=10)
    assert stopped.json()["calls"] == read
    assert requests.get(f"{standin}/_standin/calls/{counter}", timeout=10).status_code == 404
    assert requests.post(f"{standin}/_standin/calls", json={}, timeout=10).status_code == 400


# ------------------------------------------------------------------ faults


def test_before_fault_answers_without_running_scoped_by_body_and_disarms_after_count(standin, ddb) -> None:
    table, other = new_table(ddb), new_table(ddb)
    fault = arm(standin, target=TRANSACT, code="ThrottlingException", count=2, body_contains=table)

    ddb.transact_write_items(TransactItems=[put_if_absent(other, "unaffected")])  # not this fault's table
    for pk in ("a", "b"):
        assert error_code(ddb.transact_write_items, TransactItems=[put_if_absent(table, pk)]) == (
            "ThrottlingException",
            400,
        )
    assert items(ddb, table) == {}  # "before": nothing ran
    ddb.transact_write_items(TransactItems=[put_if_absent(table, "c")])  # disarmed after 2

    assert set(items(ddb, table)) == {"c"}
    assert set(items(ddb, other)) == {"unaffected"}
    listed = faults(standin)[fault["id"]]
    assert (listed["fired"], listed["remaining"], listed["armed"]) == (2, 0, False)


def test_also_contains_narrows_a_fault_to_requests_holding_both_texts(standin, ddb) -> None:
    table = new_table(ddb)
    arm(standin, target=TRANSACT, code="ValidationException", body_contains=table, also_contains="second")

    ddb.transact_write_items(TransactItems=[put_if_absent(table, "first")])  # lacks the second text
    assert error_code(ddb.transact_write_items, TransactItems=[put_if_absent(table, "second")]) == (
        "ValidationException",
        400,
    )
    assert set(items(ddb, table)) == {"first"}


def test_after_fault_runs_the_request_then_answers_the_error(standin, ddb) -> None:
    table = new_table(ddb)
    arm(standin, target="DynamoDB_20120810.PutItem", code="InternalServerError", status=500,
        when="after", body_contains=table, message="lost on the way back")

    with pytest.raises(ClientError) as caught:
        ddb.put_item(TableName=table, Item={"pk": {"S": "written"}})

    assert caught.value.response["Error"] == {"Code": "InternalServerError", "Message": "lost on the way back"}
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert set(items(ddb, table)) == {"written"}  # it took effect


def test_delete_clears_faults_all_by_scope_or_by_id(standin, ddb) -> None:
    table, neighbour = new_table(ddb), new_table(ddb)
    one = arm(standin, target="DynamoDB_20120810.PutItem", code="ThrottlingException", count=5, body_contains=table)
    two = arm(standin, target=TRANSACT, code="ThrottlingException", count=5, body_contains=table)
    theirs = arm(standin, target=TRANSACT, code="ThrottlingException", count=5, body_contains=neighbour)
    ours = {one["id"], two["id"], theirs["id"]}  # earlier tests' spent faults are listed too

    assert requests.delete(f"{standin}/_standin/faults/{one['id']}", timeout=10).json() == {"cleared": 1}
    assert set(faults(standin)) & ours == {two["id"], theirs["id"]}
    scoped = requests.delete(f"{standin}/_standin/faults", params={"body_contains": table}, timeout=10)
    assert scoped.json() == {"cleared": 1}
    assert set(faults(standin)) & ours == {theirs["id"]}  # a neighbour's fault survives
    assert requests.delete(f"{standin}/_standin/faults", params={"scope": table}, timeout=10).status_code == 400
    assert requests.delete(f"{standin}/_standin/faults", timeout=10).status_code == 200

    assert faults(standin) == {}
    ddb.put_item(TableName=table, Item={"pk": {"S": "p"}})
    ddb.transact_write_items(TransactItems=[put_if_absent(table, "t"), put_if_absent(neighbour, "t")])
    assert set(items(ddb, table)) == {"p", "t"}


def test_control_api_rejects_a_malformed_fault(standin) -> None:
    for spec in (
        {"target": TRANSACT, "code": "ThrottlingException", "bodycontains": "typo"},
        {"target": TRANSACT},
        {"target": TRANSACT, "code": "X", "when": "during"},
        {"target": TRANSACT, "code": "X", "count": 0},
        {"target": TRANSACT, "code": "X", "also_contains": "needs body_contains"},
    ):
        response = requests.post(f"{standin}/_standin/faults", json=spec, timeout=10)
        assert response.status_code == 400, (spec, response.text)
        assert "error" in response.json()


def _dynamodb_call(client: Callable, name: str):
    ddb = client("dynamodb")
    table = new_table(ddb)
    return "DynamoDB_20120810.GetItem", table, lambda: ddb.get_item(TableName=table, Key={"pk": {"S": "x"}})


def _secretsmanager_call(client: Callable, name: str):
    secrets = client("secretsmanager")
    secrets.create_secret(Name=name, SecretString="{}")
    return "secretsmanager.GetSecretValue", name, lambda: secrets.get_secret_value(SecretId=name)


def _sqs_call(client: Callable, name: str):
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    return "AmazonSQS.SendMessage", name, lambda: sqs.send_message(QueueUrl=queue, MessageBody="hello")


@pytest.mark.parametrize(
    ("setup", "code", "status"),
    [
        (_dynamodb_call, "ProvisionedThroughputExceededException", 400),
        (_dynamodb_call, "InternalServerError", 500),
        (_secretsmanager_call, "ThrottlingException", 400),
        (_secretsmanager_call, "InternalServiceError", 500),
        (_sqs_call, "RequestThrottled", 403),
        (_sqs_call, "KmsThrottled", 400),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else str(value),
)
def test_boto3_reads_the_injected_code(standin, client, setup, code: str, status: int) -> None:
    target, scope, call = setup(client, unique("fault"))
    call()  # works before arming
    arm(standin, target=target, code=code, status=status, body_contains=scope, message="injected")

    with pytest.raises(ClientError) as caught:
        call()

    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["Error"]["Message"] == "injected"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    call()  # count 1: disarmed


# ------------------------------------------------------------------ ClientRequestToken


def test_same_token_and_parameters_is_answered_without_running_again(ddb) -> None:
    table = new_table(ddb)
    transaction = [put_if_absent(table, "once"), add_one(table, "counter")]
    token = str(uuid.uuid4())

    ddb.transact_write_items(TransactItems=transaction, ClientRequestToken=token)
    ddb.transact_write_items(TransactItems=transaction, ClientRequestToken=token)  # a re-run would be cancelled

    assert items(ddb, table)["counter"]["n"]["N"] == "1"
    code, _ = error_code(ddb.transact_write_items, TransactItems=transaction, ClientRequestToken=str(uuid.uuid4()))
    assert code == "TransactionCanceledException"  # proof that running it again fails


def test_same_token_other_parameters_is_a_mismatch(ddb) -> None:
    table = new_table(ddb)
    token = str(uuid.uuid4())
    ddb.transact_write_items(TransactItems=[put_if_absent(table, "first")], ClientRequestToken=token)

    code, status = error_code(
        ddb.transact_write_items, TransactItems=[put_if_absent(table, "second")], ClientRequestToken=token
    )

    assert (code, status) == ("IdempotentParameterMismatchException", 400)
    assert set(items(ddb, table)) == {"first"}


def test_a_failed_transaction_is_not_remembered(ddb) -> None:
    table = new_table(ddb)
    ddb.put_item(TableName=table, Item={"pk": {"S": "taken"}})
    transaction = [put_if_absent(table, "taken"), add_one(table, "counter")]
    token = str(uuid.uuid4())
    assert error_code(ddb.transact_write_items, TransactItems=transaction, ClientRequestToken=token)[0] == (
        "TransactionCanceledException"
    )

    ddb.delete_item(TableName=table, Key={"pk": {"S": "taken"}})
    ddb.transact_write_items(TransactItems=transaction, ClientRequestToken=token)  # runs this time

    assert items(ddb, table)["counter"]["n"]["N"] == "1"


def test_a_response_lost_after_commit_is_recognised_by_the_retry(standin, client) -> None:
    """The case the token exists for: the commit happened, the answer was lost, the SDK retries the
    identical request (same auto-filled token) and must get success, not a cancellation."""
    ddb = client("dynamodb", Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    table = new_table(ddb)
    fault = arm(standin, target=TRANSACT, code="ThrottlingException", when="after", body_contains=table)

    ddb.transact_write_items(TransactItems=[put_if_absent(table, "once"), add_one(table, "counter")])

    assert faults(standin)[fault["id"]]["fired"] == 1
    assert items(ddb, table)["counter"]["n"]["N"] == "1"


# ------------------------------------------------------------------ process


def test_exits_once_the_parent_pid_is_gone() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    standin, _ = launch(parent_pid=parent.pid)
    try:
        parent.kill()
        parent.wait()
        assert standin.wait(timeout=10) == 0
    finally:
        if standin.poll() is None:
            standin.kill()
            standin.wait()
        standin.stdout.close()


def test_exits_cleanly_on_sigterm() -> None:
    standin, url = launch()
    try:
        assert requests.get(f"{url}/_standin/faults", timeout=10).status_code == 200
        standin.send_signal(signal.SIGTERM)
        assert standin.wait(timeout=10) == 0
    finally:
        if standin.poll() is None:
            standin.kill()
            standin.wait()
        standin.stdout.close()
