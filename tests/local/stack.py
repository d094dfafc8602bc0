"""The local deploy: `infra/template.yaml` → the official SAM translator → every resource created on
the local AWS stand-in through its service's API, with the template's own properties.

Why not moto's `CreateStack`: moto 5.2.5 skips five of our resource types (`AWS::Lambda::Url`,
`AWS::SNS::TopicPolicy`, `AWS::SecretsManager::Secret`, `AWS::SQS::QueuePolicy`,
`AWS::Scheduler::ScheduleGroup`), refuses any `Fn::GetAtt` on them, and crashes on a KMS key with
tags and on a rule whose `EventBusName` is a `Ref` (../shared/reference/toolchain.md). Creating
through each API from one generic walk over the translated template is one place instead of a
CreateStack plus a patch pass, and it deploys in about a second. The template stays the only input:
names, properties, patterns, targets, policies and environments all come from it.

What cannot run here (alarms, the dashboard, log-group retention, KMS key policies, Lambda
permissions, async invoke settings) is recorded in the stack, not created; docs/deploy.md lists it
as "checked by lint only". The Lambda functions are recorded with their resolved configuration: the
runner (`runner.py`) starts them under `cargo lambda watch` with exactly that configuration.

`python tests/local/stack.py --endpoint URL [--parameter K=V ...] [--template PATH]` deploys and
prints the stack description as JSON."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
NO_VALUE = object()  # AWS::NoValue: the key or list item disappears

# Recorded, not created: what the local stand-in does not run (docs/deploy.md, "checked by lint only").
LINT_ONLY = {
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::SNS::Subscription",
}
# Recorded for the runner, which plays the Lambda service: functions, their triggers, their URL.
RUNNER_TYPES = {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Url"}


class DeployError(RuntimeError):
    """A resource the template declares could not be created: names the resource and the cause."""


def translate(template_path: Path, parameters: dict[str, str]) -> dict:
    """The SAM transform, offline, as `sam deploy` would run it (what `sam package` writes as each
    function's code location is a placeholder here: the runner builds the code itself)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(template_path.read_text())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://local-deploy/code.zip"
    globals_ = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_:
        globals_["CodeUri"] = "s3://local-deploy/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    return transform(template, parameters, NoManagedPolicies())


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict = field(default_factory=dict)  # resolved
    physical_id: str = ""
    attributes: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    created: bool = False  # False: recorded only (lint-only or played by the runner)


class Intrinsics:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, Fn::Select, Fn::Split,
    Fn::Equals/And/Or/Not and AWS::NoValue against the parameters and the resources made so far."""

    def __init__(self, stack_name: str, parameters: dict[str, str], conditions: dict, resources: dict[str, Resource]):
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/local",
        }
        self.parameters = parameters
        self.condition_defs = conditions
        self.condition_values: dict[str, bool] = {}
        self.resources = resources

    def condition(self, name: str) -> bool:
        if name not in self.condition_values:
            self.condition_values[name] = bool(self.resolve(self.condition_defs[name]))
        return self.condition_values[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.resources.get(name)
        if resource is None or not resource.physical_id:
            raise DeployError(f"Ref {name}: not a parameter nor a resource created before this one")
        return resource.physical_id

    def get_att(self, name: str, attribute: str) -> Any:
        resource = self.resources.get(name)
        if resource is None or attribute not in resource.attributes:
            raise DeployError(f"Fn::GetAtt {name}.{attribute}: not available locally")
        return resource.attributes[attribute]

    def sub(self, text: str, local: dict[str, Any]) -> str:
        def one(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, local = arg
                return self.sub(text, {k: self.resolve(v) for k, v in local.items()})
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(v) for v in self.resolve(items))
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Not":
                return not self.resolve(arg)[0]
            if key == "Condition":
                return self.condition(arg)
        out = {}
        for k, v in value.items():
            resolved = self.resolve(v)
            if resolved is not NO_VALUE:
                out[k] = resolved
        return out


def dependencies(body: Any) -> set[str]:
    """The logical ids a resource's definition refers to (Ref, GetAtt, ${...} in Sub, DependsOn)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k == "Ref" and isinstance(v, str):
                    found.add(v)
                elif k == "Fn::GetAtt":
                    found.add(v[0] if isinstance(v, list) else v.split(".", 1)[0])
                elif k == "Fn::Sub":
                    text = v if isinstance(v, str) else v[0]
                    for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                        found.add(name.split(".", 1)[0])
                    walk(v if isinstance(v, str) else v[1])
                elif k == "DependsOn":
                    found.update([v] if isinstance(v, str) else v)
                else:
                    walk(v)

    walk(body)
    return found


def order(resources: dict[str, dict]) -> list[str]:
    done: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise DeployError(f"circular reference: {' → '.join(path + [name])}")
        state[name] = "visiting"
        for dep in sorted(dependencies(resources[name]) & resources.keys()):
            visit(dep, path + [name])
        state[name] = "done"
        done.append(name)

    for name in resources:
        visit(name, [])
    return done


def tags(properties: dict) -> list[dict]:
    raw = properties.get("Tags") or []
    if isinstance(raw, dict):
        return [{"Key": k, "Value": str(v)} for k, v in raw.items()]
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in raw]


def generated_name(stack_name: str, logical_id: str, limit: int = 80) -> str:
    """CloudFormation's shape for an unnamed resource: stack-Logical-RANDOM."""
    suffix = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(12))
    return f"{stack_name}-{logical_id}"[: limit - 13] + f"-{suffix}"


class Deployer:
    """Creates each resource type through its service's API. One method per type; a type the
    template gains without a method here fails the deploy, naming it."""

    def __init__(self, clients: Callable[[str], Any], stack_name: str, function_urls: dict[str, str]):
        self.client = clients
        self.stack_name = stack_name
        self.function_urls = function_urls

    def create(self, resource: Resource) -> None:
        if resource.type in LINT_ONLY:
            resource.physical_id = f"{self.stack_name}-{resource.logical_id}"
            return
        method = getattr(self, "_" + resource.type.replace("::", "_"), None)
        if method is None:
            raise DeployError(f"{resource.logical_id}: no local deploy for {resource.type} (tests/local/stack.py)")
        method(resource)
        resource.created = resource.type not in RUNNER_TYPES

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"

    def _AWS_KMS_Key(self, r: Resource) -> None:
        p = r.properties
        args: dict[str, Any] = {"Description": p.get("Description", "")}
        if "KeyPolicy" in p:
            args["Policy"] = json.dumps(p["KeyPolicy"])
        if tags(p):
            args["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags(p)]
        key = self.client("kms").create_key(**args)
        r.physical_id = key["KeyMetadata"]["KeyId"]
        r.attributes = {"Arn": key["KeyMetadata"]["Arn"], "KeyId": r.physical_id}

    def _AWS_KMS_Alias(self, r: Resource) -> None:
        self.client("kms").create_alias(AliasName=r.properties["AliasName"], TargetKeyId=r.properties["TargetKeyId"])
        r.physical_id = r.properties["AliasName"]

    def _AWS_SNS_Topic(self, r: Resource) -> None:
        p = r.properties
        name = p.get("TopicName") or generated_name(self.stack_name, r.logical_id, 256)
        attributes = {k: str(p[v]) for k, v in (("DisplayName", "DisplayName"), ("KmsMasterKeyId", "KmsMasterKeyId")) if v in p}
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes, Tags=tags(p))["TopicArn"]
        r.physical_id = arn
        r.attributes = {"TopicArn": arn, "TopicName": name}

    def _AWS_SNS_TopicPolicy(self, r: Resource) -> None:
        for topic in r.properties["Topics"]:
            self.client("sns").set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(r.properties["PolicyDocument"])
            )
        r.physical_id = f"{self.stack_name}-{r.logical_id}"

    def _AWS_DynamoDB_Table(self, r: Resource) -> None:
        p = r.properties
        name = p.get("TableName") or generated_name(self.stack_name, r.logical_id, 255)
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification", "ProvisionedThroughput"):
            if key in p:
                args[key] = copy.deepcopy(p[key])
        if "StreamSpecification" in args:
            args["StreamSpecification"]["StreamEnabled"] = True
        if p.get("SSESpecification", {}).get("SSEEnabled"):
            sse = p["SSESpecification"]
            args["SSESpecification"] = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
            if "KMSMasterKeyId" in sse:
                args["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
        if "DeletionProtectionEnabled" in p:
            args["DeletionProtectionEnabled"] = bool(p["DeletionProtectionEnabled"])
        if tags(p):
            args["Tags"] = tags(p)
        dynamodb = self.client("dynamodb")
        table = dynamodb.create_table(**args)["TableDescription"]
        if "TimeToLiveSpecification" in p:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
        r.physical_id = name
        r.attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            r.attributes["StreamArn"] = table["LatestStreamArn"]

    def _AWS_SQS_Queue(self, r: Resource) -> None:
        p = r.properties
        name = p.get("QueueName") or generated_name(self.stack_name, r.logical_id)
        attributes = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
        ):
            if key in p:
                value = p[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if "RedrivePolicy" in p:
            redrive = dict(p["RedrivePolicy"])
            redrive["maxReceiveCount"] = int(redrive["maxReceiveCount"])
            attributes["RedrivePolicy"] = json.dumps(redrive)
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags={t["Key"]: t["Value"] for t in tags(p)})["QueueUrl"]
        r.physical_id = url
        r.attributes = {"Arn": self._arn("sqs", name), "QueueName": name, "QueueUrl": url}

    def _AWS_SQS_QueuePolicy(self, r: Resource) -> None:
        for url in r.properties["Queues"]:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(r.properties["PolicyDocument"])}
            )
        r.physical_id = f"{self.stack_name}-{r.logical_id}"

    def _AWS_SecretsManager_Secret(self, r: Resource) -> None:
        p = r.properties
        name = p.get("Name") or generated_name(self.stack_name, r.logical_id)
        if "SecretString" in p:
            value = p["SecretString"]
        elif "GenerateSecretString" in p:
            spec = p["GenerateSecretString"]
            alphabet = string.ascii_letters + string.digits
            if not spec.get("ExcludePunctuation"):
                alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
            generated = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
            if "SecretStringTemplate" in spec:
                document = json.loads(spec["SecretStringTemplate"])
                document[spec["GenerateStringKey"]] = generated
                value = json.dumps(document)
            else:
                value = generated
        else:
            value = ""
        args: dict[str, Any] = {"Name": name, "SecretString": value, "Tags": tags(p)}
        if "Description" in p:
            args["Description"] = p["Description"]
        if "KmsKeyId" in p:
            args["KmsKeyId"] = p["KmsKeyId"]
        arn = self.client("secretsmanager").create_secret(**args)["ARN"]
        r.physical_id = arn
        r.attributes = {"Id": arn}

    def _AWS_SSM_Parameter(self, r: Resource) -> None:
        p = r.properties
        name = p.get("Name") or f"/{generated_name(self.stack_name, r.logical_id)}"
        args: dict[str, Any] = {"Name": name, "Value": p["Value"], "Type": p.get("Type", "String")}
        for key in ("Description", "Tier"):
            if key in p:
                args[key] = p[key]
        self.client("ssm").put_parameter(**args)
        r.physical_id = name
        r.attributes = {"Type": args["Type"], "Value": p["Value"]}

    def _AWS_IAM_Role(self, r: Resource) -> None:
        p = r.properties
        name = p.get("RoleName") or generated_name(self.stack_name, r.logical_id, 64)
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=name, Path=p.get("Path", "/"), AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]), Tags=tags(p)
        )["Role"]
        for policy in p.get("Policies", []):
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"]))
        for arn in p.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        r.physical_id = name
        r.attributes = {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _AWS_Logs_LogGroup(self, r: Resource) -> None:
        p = r.properties
        name = p.get("LogGroupName") or generated_name(self.stack_name, r.logical_id, 512)
        self.client("logs").create_log_group(logGroupName=name)
        r.physical_id = name
        r.attributes = {"Arn": self._arn("logs", f"log-group:{name}:*")}

    def _AWS_Events_EventBus(self, r: Resource) -> None:
        name = r.properties["Name"]
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        r.physical_id = name
        r.attributes = {"Arn": arn, "Name": name}

    def _AWS_Events_Rule(self, r: Resource) -> None:
        """moto matches the pattern and delivers to SQS targets itself. A Lambda target is
        recorded for the runner; a scheduled rule is recorded too (moto never fires one)."""
        p = r.properties
        name = p.get("Name") or generated_name(self.stack_name, r.logical_id, 64)
        bus = p.get("EventBusName", "default")
        bus_name = bus.rsplit("/", 1)[-1] if bus.startswith("arn:") else bus
        args: dict[str, Any] = {"Name": name, "EventBusName": bus_name, "State": p.get("State", "ENABLED")}
        if "EventPattern" in p:
            args["EventPattern"] = json.dumps(p["EventPattern"])
        if "ScheduleExpression" in p:
            args["ScheduleExpression"] = p["ScheduleExpression"]
        events = self.client("events")
        arn = events.put_rule(**args)["RuleArn"]
        queue_targets = [t for t in p.get("Targets", []) if t["Arn"].startswith("arn:aws:sqs:")]
        if queue_targets:
            events.put_targets(Rule=name, EventBusName=bus_name, Targets=queue_targets)
        r.physical_id = name
        r.attributes = {"Arn": arn}

    def _AWS_Scheduler_ScheduleGroup(self, r: Resource) -> None:
        name = r.properties.get("Name") or generated_name(self.stack_name, r.logical_id, 64)
        arn = self.client("scheduler").create_schedule_group(Name=name, Tags=tags(r.properties))["ScheduleGroupArn"]
        r.physical_id = name
        r.attributes = {"Arn": arn}

    def _AWS_Scheduler_Schedule(self, r: Resource) -> None:
        """A recurring schedule (the daily look-ahead): created in moto as declared; moto never
        fires one, the runner does (`Runner.fire_schedule`), with the schedule's role."""
        p = r.properties
        name = p.get("Name") or generated_name(self.stack_name, r.logical_id, 64)
        args: dict[str, Any] = {
            "Name": name,
            "ScheduleExpression": p["ScheduleExpression"],
            "FlexibleTimeWindow": p["FlexibleTimeWindow"],
            "Target": p["Target"],
            "State": p.get("State", "ENABLED"),
        }
        for key in ("GroupName", "ScheduleExpressionTimezone", "Description"):
            if key in p:
                args[key] = p[key]
        arn = self.client("scheduler").create_schedule(**args)["ScheduleArn"]
        r.physical_id = name
        r.attributes = {"Arn": arn}

    def _AWS_Lambda_Function(self, r: Resource) -> None:
        name = r.properties.get("FunctionName") or generated_name(self.stack_name, r.logical_id, 64)
        r.physical_id = name
        r.attributes = {"Arn": self._arn("lambda", f"function:{name}")}

    def _AWS_Lambda_EventSourceMapping(self, r: Resource) -> None:
        r.physical_id = f"{self.stack_name}-{r.logical_id}"

    def _AWS_Lambda_Url(self, r: Resource) -> None:
        # The runner serves it: `cargo lambda watch`'s Function URL emulation on the function's port.
        function = r.properties["TargetFunctionArn"].rsplit(":", 1)[-1]
        url = self.function_urls.get(function)
        if url is None:
            raise DeployError(f"no local address for the Function URL of {function}")
        r.physical_id = f"{self.stack_name}-{r.logical_id}"
        r.attributes = {"FunctionUrl": url, "FunctionArn": r.properties["TargetFunctionArn"]}


@dataclass
class Stack:
    """The deployed stack: what the runner and the tests read (never the template directly)."""

    name: str
    parameters: dict[str, str]
    resources: dict[str, Resource]
    outputs: dict[str, Any]
    seconds: float = 0.0

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == type_]

    def function_named(self, arn_or_name: str) -> Resource:
        for r in self.of_type("AWS::Lambda::Function"):
            if arn_or_name in (r.physical_id, r.attributes["Arn"]):
                return r
        raise KeyError(f"no function {arn_or_name} in the stack")

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "parameters": self.parameters,
            "outputs": self.outputs,
            "seconds": self.seconds,
            "resources": {
                k: {
                    "type": r.type,
                    "physical_id": r.physical_id,
                    "attributes": r.attributes,
                    "properties": r.properties,
                    "metadata": r.metadata,
                    "created": r.created,
                }
                for k, r in self.resources.items()
            },
        }


def deploy(clients: Callable[[str], Any], parameters: dict[str, str], stack_name: str = "presence-autopilot",
           template_path: Path = TEMPLATE, function_urls: dict[str, str] | None = None) -> Stack:
    """Translates the template and creates each resource, in dependency order. `function_urls`:
    function name → where the runner will serve its Function URL."""
    started = time.monotonic()
    translated = translate(template_path, parameters)
    defaults = {k: str(v.get("Default", "")) for k, v in translated.get("Parameters", {}).items()}
    given = {**defaults, **parameters}
    missing = [k for k, v in translated.get("Parameters", {}).items() if "Default" not in v and k not in parameters]
    if missing:
        raise DeployError(f"parameters without a value: {', '.join(missing)}")
    resources: dict[str, Resource] = {}
    intrinsics = Intrinsics(stack_name, given, translated.get("Conditions", {}), resources)
    deployer = Deployer(clients, stack_name, function_urls or {})
    definitions = translated["Resources"]
    for logical_id in order(definitions):
        body = definitions[logical_id]
        if "Condition" in body and not intrinsics.condition(body["Condition"]):
            continue
        resource = Resource(logical_id, body["Type"], metadata=body.get("Metadata", {}))
        try:
            resource.properties = intrinsics.resolve(body.get("Properties", {}))
            deployer.create(resource)
        except DeployError as err:
            raise DeployError(f"{logical_id} ({body['Type']}): {err}") from None
        except Exception as err:  # a service's refusal, with the resource named
            raise DeployError(f"{logical_id} ({body['Type']}): {type(err).__name__}: {err}") from err
        resources[logical_id] = resource
    outputs = {}
    for name, output in translated.get("Outputs", {}).items():
        if "Condition" in output and not intrinsics.condition(output["Condition"]):
            continue
        outputs[name] = intrinsics.resolve(output["Value"])
    register_outputs(clients, stack_name, outputs)
    return Stack(stack_name, given, resources, outputs, seconds=time.monotonic() - started)


def register_outputs(clients: Callable[[str], Any], stack_name: str, outputs: dict[str, Any]) -> None:
    """The stack's record in moto's CloudFormation, so `DescribeStacks` answers with the deployed
    outputs (`autopilot --stack NAME` reads them). The resources above were created one by one,
    so the record holds one placeholder resource, not them."""
    body = {
        "Resources": {"DeployedResourceByResource": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value if isinstance(value, str) else json.dumps(value)} for name, value in outputs.items()},
    }
    clients("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(body))


def boto_clients(endpoint: str) -> Callable[[str], Any]:
    import boto3

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.client(service, endpoint_url=endpoint)
        return made[service]

    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    parameters = dict(p.split("=", 1) for p in args.parameter)
    urls = {f"presence-autopilot-{f}": f"http://127.0.0.1:9000/lambda-url/{f}/" for f in ("calendar-notify",)}
    stack = deploy(boto_clients(args.endpoint), parameters, template_path=args.template, function_urls=urls)
    print(json.dumps(stack.to_json(), indent=1, default=str))


if __name__ == "__main__":
    main()
