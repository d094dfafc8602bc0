#!/usr/bin/env python3
"""`make bench`, stand-in part: what one DynamoDB transaction costs on the local AWS stand-in
(tests/local/aws_standin.py) on an empty table and on a 10,000-item table, with the stand-in's
item-level rollback and with moto's own whole-table copy (`AWS_STANDIN_TABLE_COPY=1`). The figure
that must not grow with the table is the first one: every local benchmark of ours runs on it.

    .venv/bin/python scripts/bench_standin.py [--items 10000] [--rounds 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "local"))
import aws_standin  # noqa: E402


def launch(table_copy: bool) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "AWS_STANDIN_TABLE_COPY": "1" if table_copy else "0"}
    process = subprocess.Popen(
        aws_standin.command(sys.executable, parent_pid=os.getpid()),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    return process, aws_standin.read_url(process, timeout=120)


def dynamodb(url: str):
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )


def transaction_ms(ddb, table: str, rounds: int) -> float:
    """Median of `rounds` transactions shaped like our commit: a conditional state put, an audit
    record that must not exist, a chain head update."""
    samples = []
    for _ in range(rounds):
        user = f"USER#{uuid.uuid4()}"
        started = time.perf_counter()
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": user}, "sk": {"S": "STATE"}, "version": {"N": "1"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": user}, "sk": {"S": "AUDIT#000000000001"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": table, "Key": {"pk": {"S": user}, "sk": {"S": "AUDITHEAD"}},
                        "UpdateExpression": "SET seq = :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ])
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def fill(ddb, table: str, items: int) -> None:
    for start in range(0, items, 25):
        ddb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"FILL#{n}"}, "sk": {"S": "STATE"}, "body": {"S": "x" * 200}}}}
            for n in range(start, min(start + 25, items))
        ]})


def measure(table_copy: bool, items: int, rounds: int) -> tuple[float, float]:
    process, url = launch(table_copy)
    try:
        ddb = dynamodb(url)
        table = "bench"
        ddb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        empty = transaction_ms(ddb, table, rounds)
        fill(ddb, table, items)
        full = transaction_ms(ddb, table, max(5, rounds // 6) if table_copy else rounds)
        return empty, full
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    print(f"| TransactWriteItems (3 items), median | empty table | {args.items:,}-item table |")
    print("|---|---|---|")
    for label, table_copy in (("stand-in, item-level rollback", False), ("moto's whole-table copy", True)):
        empty, full = measure(table_copy, args.items, args.rounds)
        print(f"| {label} | {empty:.1f} ms | {full:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
