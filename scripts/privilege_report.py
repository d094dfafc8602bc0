#!/usr/bin/env python3
"""Least privilege, both ways: each role's granted actions in infra/template.yaml against the calls
the test run made under that role (the stand-in's IAM gate logs every allowed call; LocalEnv writes
one file per run to target/privilege-log/).

A call the role lacks already failed its run (the gate denies it, naming role, action, resource).
This report covers the other way: a grant no run exercised must be removed from the template or
listed, with its reason, in docs/deploy.md under "Grants no local run exercises".

  scripts/privilege_report.py            the table: role → action → exercised by which runs
  scripts/privilege_report.py --check    exit 1 when an unexercised grant is not listed, or a
                                         listed one is exercised (unless its reason starts
                                         "load-dependent:") or no longer granted"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "local"))

DOCS = ROOT / "docs" / "deploy.md"
LISTED_HEADING = "### Grants no local run exercises"
# A listed grant whose reason starts so is taken only when a run is slow (a lease runs out on a
# loaded machine): a run that exercises it is not a stale row.
LOAD_DEPENDENT = "load-dependent:"


def granted(template: Path, parameters: dict[str, str]) -> dict[tuple[str, str], str]:
    """(role logical id, action as granted) → the statement's Sid, from the translated template."""
    import stack

    translated = stack.translate(template, parameters)
    grants = {}
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        properties = resource.get("Properties", {})
        for arn in properties.get("ManagedPolicyArns", []) or []:
            grants[(logical_id, f"managed policy {arn}")] = "ManagedPolicyArns"
        for policy in properties.get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    grants[(logical_id, action)] = statement.get("Sid", policy["PolicyName"])
    return grants


def exercised(log_dir: Path) -> dict[tuple[str, str], set[str]]:
    """(role logical id, action called) → the runs that called it."""
    calls: dict[tuple[str, str], set[str]] = {}
    for path in sorted(log_dir.glob("*.json")):
        run = json.loads(path.read_text())
        for call in run["calls"]:
            calls.setdefault((call["role"], call["action"]), set()).add(run["run"])
    return calls


def matches(granted_action: str, called: str) -> bool:
    pattern = re.escape(granted_action).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(pattern, called, flags=re.IGNORECASE) is not None


EVERY_FUNCTION_ROLE = "every function role"


def listed(docs: Path, grants: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """The documented exceptions, expanded to (role, action): `| roles | actions | why |` rows under
    LISTED_HEADING; a cell may list several, comma-separated; "every function role" is each role
    that has the action, but the Scheduler's."""
    text = docs.read_text()
    if LISTED_HEADING not in text:
        return {}
    section = text.split(LISTED_HEADING, 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0] or set(cells[0]) <= {"-"} or cells[0] == "role":
            continue
        actions = [a.strip().strip("`") for a in cells[1].split(",")]
        if cells[0] == EVERY_FUNCTION_ROLE:
            roles = sorted({r for r, a in grants if a in actions and r != "SchedulerRole"})
        else:
            roles = [r.strip() for r in cells[0].split(",")]
        for role in roles:
            for action in actions:
                rows[(role, action)] = cells[2]
    return rows


def report(grants: dict, calls: dict) -> list[tuple[str, str, str, list[str]]]:
    rows = []
    for (role, action), sid in sorted(grants.items()):
        runs = sorted({r for (called_role, called), by in calls.items() if called_role == role and matches(action, called)
                       for r in by})
        rows.append((role, action, sid, runs))
    return rows


def main() -> int:
    import local_env

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--template", type=Path, default=ROOT / "infra" / "template.yaml")
    parser.add_argument("--logs", type=Path, default=local_env.PRIVILEGE_LOG)
    parser.add_argument("--docs", type=Path, default=DOCS.relative_to(ROOT))
    args = parser.parse_args()
    calls = exercised(args.logs)
    if not calls:
        print(f"no calls logged in {args.logs}: run the stack tests first (make test)", file=sys.stderr)
        return 1
    grants = granted(args.template, local_env.LOCAL_PARAMETERS)
    rows = report(grants, calls)
    exceptions = listed(args.docs, grants)
    print("| role | action | statement | exercised by |")
    print("|---|---|---|---|")
    for role, action, sid, runs in rows:
        by = ", ".join(runs) if runs else f"not exercised: {exceptions.get((role, action), 'NOT LISTED')}"
        print(f"| {role} | `{action}` | {sid} | {by} |")
    if not args.check:
        return 0
    problems = []
    unexercised = {(role, action) for role, action, _, runs in rows if not runs}
    for role, action in sorted(unexercised - exceptions.keys()):
        problems.append(f"{role} is granted {action}, which no run exercised: remove it from infra/template.yaml or "
                        f"list it with its reason in {args.docs} ({LISTED_HEADING[4:]})")
    for role, action in sorted(exceptions.keys() - unexercised):
        if exceptions[(role, action)].startswith(LOAD_DEPENDENT):
            continue  # taken only when a run is slow enough: either answer is right
        state = "exercised now" if any(r == role and a == action for r, a, _, _ in rows) else "no longer granted"
        problems.append(f"{role} {action} is listed as unexercised in {args.docs} but is {state}: drop the row")
    for problem in problems:
        print(f"least privilege: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
