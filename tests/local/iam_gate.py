"""Every call made with an assumed role's credentials is authorised against that role's policies, by
action AND resource, before moto runs it; calls with the stand-in's own key ("test") pass unchecked
(the deploy step and the tests' own inspection).

moto checks only the action and always with resource "*" (moto/core/authorization.py), and of the
condition operators only StringEquals (moto/iam/policy_conditions.py). So this gate works out each
request's IAM actions and resource ARNs itself (it knows the table, queue, secret, bus or schedule
of every operation our code and the runner make), matches action and resource with moto's own
statement evaluator (`moto/iam/access_control.py`, `IAMPolicyStatement`), and evaluates the
conditions the template uses itself (StringEquals, StringLike, ArnEquals, ArnLike and their
ForAllValues:/ForAnyValue: forms; a key the request does not carry makes the condition false, as in
AWS). Condition keys it supplies: `iam:PassedToService` (PassRole) and `dynamodb:LeadingKeys` (item
reads and writes). An operation it cannot map is denied, naming it: nothing passes by default.

Every decision is kept: `GET /_standin/iam` lists the allowed (role, action, resource) triples with
their counts and every denial; the local environment fails its run on a denial and writes the
triples to the least-privilege report (scripts/privilege_report.py)."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")


class Unmapped(ValueError):
    """An operation whose IAM action or resource the gate does not know."""


@dataclass
class Call:
    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict)


def caller_key(environ: dict) -> tuple[str, str, str] | None:
    """(access key id, region, service) from a SigV4 Authorization header."""
    found = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return (found.group(1), found.group(2), found.group(3)) if found else None


def table_arn(region: str, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"


def queue_arn(region: str, url: str) -> str:
    if url.startswith("arn:"):
        return url
    path = urllib.parse.urlparse(url).path.strip("/").split("/")
    return f"arn:aws:sqs:{region}:{path[-2] if len(path) > 1 else ACCOUNT}:{path[-1]}"


def secret_arn(region: str, secret_id: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[ACCOUNT][region]
    for secret in backend.secrets.values():
        if getattr(secret, "name", None) == secret_id:
            return secret.arn
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{secret_id}"


def partition_values(region: str, table: str, keys: list[dict]) -> list[str]:
    """The partition key values of the items a DynamoDB request names (dynamodb:LeadingKeys)."""
    from moto.dynamodb.models import dynamodb_backends

    try:
        hash_key = dynamodb_backends[ACCOUNT][region].get_table(table.rsplit("/", 1)[-1]).hash_key_attr
    except Exception:  # an unknown table: moto answers ResourceNotFound itself
        return []
    values = []
    for key in keys:
        attribute = key.get(hash_key, {})
        values.extend(str(v) for v in attribute.values())
    return values


def dynamodb_calls(region: str, operation: str, request: dict) -> list[Call]:
    def item_call(action: str, table: str, key: dict | None) -> Call:
        arn = table_arn(region, table)
        leading = partition_values(region, arn, [key] if key else [])
        return Call(f"dynamodb:{action}", arn, {"dynamodb:LeadingKeys": leading} if leading else {})

    if operation == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
        calls = []
        for entry in request.get("TransactItems", []):
            for kind, action in kinds.items():
                if kind in entry:
                    part = entry[kind]
                    calls.append(item_call(action, part["TableName"], part.get("Key") or part.get("Item")))
        return calls
    if operation == "TransactGetItems":
        return [item_call("GetItem", e["Get"]["TableName"], e["Get"].get("Key")) for e in request.get("TransactItems", [])]
    if operation == "BatchGetItem":
        calls = []
        for table, wanted in request.get("RequestItems", {}).items():
            arn = table_arn(region, table)
            leading = partition_values(region, arn, wanted.get("Keys", []))
            calls.append(Call("dynamodb:BatchGetItem", arn, {"dynamodb:LeadingKeys": leading}))
        return calls
    if operation == "BatchWriteItem":
        calls = []
        for table, writes in request.get("RequestItems", {}).items():
            arn = table_arn(region, table)
            keys = [w.get("PutRequest", {}).get("Item") or w.get("DeleteRequest", {}).get("Key") or {} for w in writes]
            calls.append(Call("dynamodb:BatchWriteItem", arn, {"dynamodb:LeadingKeys": partition_values(region, arn, keys)}))
        return calls
    if "TableName" not in request:
        raise Unmapped(f"dynamodb:{operation} without TableName")
    arn = table_arn(region, request["TableName"])
    if operation in ("Query", "Scan") and request.get("IndexName"):
        arn = f"{arn}/index/{request['IndexName']}"
    if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        return [item_call(operation, request["TableName"], request.get("Key") or request.get("Item"))]
    return [Call(f"dynamodb:{operation}", arn)]


SQS_BATCHES = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def json_protocol_calls(region: str, target: str, request: dict) -> list[Call]:
    prefix, _, operation = target.partition(".")
    if prefix == "DynamoDB_20120810":
        return dynamodb_calls(region, operation, request)
    if prefix == "DynamoDBStreams_20120810":
        if operation == "ListStreams":
            return [Call("dynamodb:ListStreams", "*")]
        if operation == "GetRecords":  # the iterator names its stream: "<stream arn>|1|<id>"
            return [Call("dynamodb:GetRecords", request["ShardIterator"].split("|", 1)[0])]
        return [Call(f"dynamodb:{operation}", request["StreamArn"])]
    if prefix == "AmazonSQS":
        if operation == "GetQueueUrl":
            return [Call("sqs:GetQueueUrl", queue_arn(region, f"/{ACCOUNT}/{request['QueueName']}"))]
        return [Call(f"sqs:{SQS_BATCHES.get(operation, operation)}", queue_arn(region, request["QueueUrl"]))]
    if prefix == "secretsmanager":
        return [Call(f"secretsmanager:{operation}", secret_arn(region, request["SecretId"]))]
    if prefix == "AmazonSSM" and operation in ("GetParameter", "PutParameter"):
        name = request["Name"]
        arn = name if name.startswith("arn:") else f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{name.lstrip('/')}"
        return [Call(f"ssm:{operation}", arn)]
    if prefix == "AWSEvents" and operation == "PutEvents":
        buses = {e.get("EventBusName") or "default" for e in request.get("Entries", [])}
        return [
            Call("events:PutEvents", b if b.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{b}")
            for b in sorted(buses)
        ]
    raise Unmapped(target)


def scheduler_calls(region: str, method: str, path: str, query: str, body: bytes) -> list[Call]:
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    params = urllib.parse.parse_qs(query)
    if parts == ["schedules"] and method == "GET":
        return [Call("scheduler:ListSchedules", "*")]
    if len(parts) != 2 or parts[0] != "schedules":
        raise Unmapped(f"scheduler {method} {path}")
    request = json.loads(body or b"{}") if method in ("POST", "PUT") else {}
    group = request.get("GroupName") or params.get("groupName", ["default"])[0]
    action = {"POST": "CreateSchedule", "PUT": "UpdateSchedule", "GET": "GetSchedule", "DELETE": "DeleteSchedule"}[method]
    calls = [Call(f"scheduler:{action}", f"arn:aws:scheduler:{region}:{ACCOUNT}:schedule/{group}/{parts[1]}")]
    role = request.get("Target", {}).get("RoleArn")
    if role:
        calls.append(Call("iam:PassRole", role, {"iam:PassedToService": ["scheduler.amazonaws.com"]}))
    return calls


def lambda_calls(region: str, method: str, path: str) -> list[Call]:
    """Only Invoke: what EventBridge Scheduler does with a schedule's role (the runner asks)."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if method == "POST" and len(parts) == 4 and parts[1] == "functions" and parts[3] == "invocations":
        name = parts[2]
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        return [Call("lambda:InvokeFunction", arn)]
    raise Unmapped(f"lambda {method} {path}")


def calls_of(environ: dict, service: str, region: str, body: bytes) -> list[Call]:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return json_protocol_calls(region, target, json.loads(body or b"{}"))
    if service == "lambda":
        return lambda_calls(region, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))
    if service == "scheduler":
        return scheduler_calls(
            region, environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), body
        )
    raise Unmapped(f"{service} {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}")


# ---- policy conditions --------------------------------------------------------------------------


def _like(pattern: str, value: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), value) is not None


OPERATORS = {
    "StringEquals": lambda expected, value: value == expected,
    "StringLike": _like,
    "ArnEquals": lambda expected, value: value == expected,
    "ArnLike": _like,
}


def condition_holds(conditions: dict, context: dict[str, list[str]]) -> bool:
    for operator, keys in conditions.items():
        qualifier, _, base = operator.rpartition(":")
        test = OPERATORS.get(base)
        if test is None:
            raise Unmapped(f"condition operator {operator} is not evaluated locally")
        for key, expected in keys.items():
            expected_values = expected if isinstance(expected, list) else [expected]
            values = context.get(key)
            if values is None:
                return False  # the request does not carry the key: AWS evaluates the condition false
            matches = [any(test(e, v) for e in expected_values) for v in values]
            if qualifier == "ForAllValues":
                ok = all(matches)
            elif qualifier == "ForAnyValue":
                ok = any(matches)
            else:
                ok = bool(values) and all(matches)
            if not ok:
                return False
    return True


def decide(policies: list[dict], call: Call) -> str:
    """'allow', 'deny' (an explicit Deny) or 'implicit' (no statement allows it)."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    allowed = False
    for policy in policies:
        statements = policy.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            unconditional = {k: v for k, v in statement.items() if k != "Condition"}
            matched = IAMPolicyStatement(unconditional).is_action_permitted(call.action, call.resource)
            if matched == PermissionResult.NEUTRAL:
                continue
            if not condition_holds(statement.get("Condition", {}), call.context):
                continue
            if matched == PermissionResult.DENIED:
                return "deny"
            allowed = True
    return "allow" if allowed else "implicit"


def role_policies(role_arn: str) -> tuple[str, list[dict]]:
    from moto.iam.models import iam_backends

    name = role_arn.rsplit("/", 1)[-1]
    role = iam_backends[ACCOUNT]["aws"].get_role(name)
    documents = [json.loads(d) if isinstance(d, str) else d for d in role.policies.values()]
    for managed in role.managed_policies.values():
        default = next(v for v in managed.versions if v.is_default)
        documents.append(json.loads(default.document) if isinstance(default.document, str) else default.document)
    return name, documents


class IamGate:
    def __init__(self) -> None:
        self.allowed: dict[tuple[str, str, str], int] = {}
        self.denied: list[dict] = []

    def assumed_role(self, access_key: str) -> str | None:
        from moto.sts.models import sts_backends

        found = sts_backends[ACCOUNT]["aws"].get_assumed_role_from_access_key(access_key)
        return found.role_arn if found else None

    def check(self, environ: dict, body: bytes) -> str | None:
        """None when the call may run; otherwise why not (role, action, resource named)."""
        key = caller_key(environ)
        if key is None:
            return None
        access_key, region, service = key
        role_arn = self.assumed_role(access_key)
        if role_arn is None:
            return None  # the stand-in's own key: the deploy step and the tests' inspection
        try:
            role, policies = role_policies(role_arn)
            calls = calls_of(environ, service, region, body)
        except Unmapped as err:
            return self._deny(role_arn.rsplit("/", 1)[-1], str(err), "?", "the gate cannot map this operation")
        except Exception as err:  # noqa: BLE001 - a role deleted meanwhile, a body that is not JSON
            return self._deny(role_arn.rsplit("/", 1)[-1], service, "?", f"{type(err).__name__}: {err}")
        for call in calls:
            try:
                verdict = decide(policies, call)
            except Unmapped as err:
                return self._deny(role, call.action, call.resource, str(err))
            if verdict != "allow":
                why = "explicitly denied" if verdict == "deny" else "no statement allows it"
                return self._deny(role, call.action, call.resource, why)
        for call in calls:
            triple = (role, call.action, call.resource)
            self.allowed[triple] = self.allowed.get(triple, 0) + 1
        return None

    def _deny(self, role: str, action: str, resource: str, why: str) -> str:
        self.denied.append({"role": role, "action": action, "resource": resource, "why": why})
        return f"User: assumed-role/{role} is not authorized to perform: {action} on resource: {resource} ({why})"

    def view(self) -> dict[str, Any]:
        return {
            "allowed": [{"role": r, "action": a, "resource": res, "count": n} for (r, a, res), n in sorted(self.allowed.items())],
            "denied": self.denied,
        }
