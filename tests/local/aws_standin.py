"""The project's one local AWS: moto's own server application behind a middleware that makes every
request atomic, injects faults on demand and honours DynamoDB's `ClientRequestToken`.

Why not plain `moto_server`: it serves requests on several threads, and moto's DynamoDB
`TransactWriteItems` takes no lock (moto 5.2.5, `moto/dynamodb/models/__init__.py`,
`DynamoDBBackend.transact_write_items`). It deep-copies each table it touches, checks and writes
item by item, and on a failed condition puts the whole copied table back. Two concurrent
transactions can therefore both pass `attribute_not_exists` on one key, and one's rollback can
erase the other's committed write. Real DynamoDB runs each request atomically and serializably, so
our race tests flaked on moto for moto's reasons. Here ONE global lock covers the whole handling of
each request, response body included. Do not "simplify" this back to `moto_server`.

One more correction: moto backs a transaction up by deep-copying each table it touches, so its
cost grew with the table (140 ms for one item on a 3,370-item table). Under the one lock an
item-level backup gives the same all-or-nothing result; `install_item_level_rollback` swaps it in.

Also added, because moto has none of them:
- An IAM gate (`iam_gate.py`): every call signed with an assumed role's credentials is authorised
  against that role's policies by action and resource before moto runs it; `GET /_standin/iam`
  lists what was allowed and denied (docs/local-aws.md, "Every function under its own role").
- Call counting: `POST /_standin/calls {"body_contains": X}` counts, by operation, the requests
  whose body contains X (a test's own table name or queue URL); `GET`/`DELETE /_standin/calls/ID`.
- Fault injection (moto never throttles nor loses a response): `POST /_standin/faults` arms an
  AWS JSON-protocol error for requests whose `X-Amz-Target` matches, either instead of running the
  request (`"when": "before"`) or after it took effect (`"when": "after"`, a lost response).
  `GET` lists the faults with how often each fired, `DELETE` clears them (`?body_contains=X`
  only those with that scope, `/_standin/faults/ID` one). `"when": "unprocessed"` (BatchGetItem
  only) answers as a throttled DynamoDB does: nothing read, every requested key in
  `UnprocessedKeys`.
- `TransactWriteItems` idempotency: a repeated `ClientRequestToken` with identical parameters gets
  the remembered answer without running again; with other parameters,
  `IdempotentParameterMismatchException`. Tokens are remembered for 10 minutes, successes only.

Run: `.venv/bin/python tests/local/aws_standin.py --host 127.0.0.1 --port 0 [--parent-pid PID]`.
Once listening it prints one line `http://HOST:PORT` to stdout; logs go to stderr (`--verbose`
for one line per request). It exits on SIGTERM/SIGINT, and when PID is gone. See docs/local-aws.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from iam_gate import IamGate  # beside this file

CONTROL_PATH = "/_standin/faults"
CALLS_PATH = "/_standin/calls"
IAM_PATH = "/_standin/iam"
TRANSACT_WRITE = "DynamoDB_20120810.TransactWriteItems"
BATCH_GET = "DynamoDB_20120810.BatchGetItem"
TOKEN_TTL_SECONDS = 600  # DynamoDB's idempotency window for ClientRequestToken

# (status line, headers, body): a response fully materialised, so the lock can be released.
Answer = tuple[str, list[tuple[str, str]], bytes]


def status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def aws_error(target: str, code: str, message: str, status: int = 400) -> Answer:
    """The error as the service's AWS JSON protocol spells it, so the SDKs parse `code`."""
    service = target.split(".", 1)[0]
    headers = [("x-amzn-ErrorType", code), ("x-amzn-RequestId", str(uuid.uuid4()))]
    if service == "DynamoDB_20120810":
        content_type = "application/x-amz-json-1.0"
        body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
    elif service == "AmazonSQS":
        content_type = "application/x-amz-json-1.0"
        body = {"__type": f"com.amazonaws.sqs#{code}", "message": message}
        # SQS is query-compatible: SDKs take the code from this header when present.
        headers.append(("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}"))
    elif service == "secretsmanager":
        content_type = "application/x-amz-json-1.1"
        body = {"__type": code, "Message": message}
    else:
        content_type = "application/x-amz-json-1.1"
        body = {"__type": code, "message": message}
    return json_answer(status, body, content_type, headers)


def json_answer(status: int, body: Any, content_type: str = "application/json",
                headers: list[tuple[str, str]] | None = None) -> Answer:
    return status_line(status), [("Content-Type", content_type), *(headers or [])], json.dumps(body).encode()


@dataclass
class Fault:
    id: str
    target: str
    code: str
    status: int = 400
    count: int = 1
    when: str = "before"
    body_contains: str | None = None
    message: str = ""
    # A second text the body must hold too: one step of a test's own requests (its table name
    # in `body_contains`, say, and an item key that only that step writes).
    also_contains: str | None = None
    fired: int = 0

    FIELDS = ("target", "code", "status", "count", "when", "body_contains", "message", "also_contains")

    @classmethod
    def parse(cls, fault_id: str, spec: Any) -> "Fault":
        """Strict: an unknown or mistyped field is an error, not a fault that silently never fires."""
        if not isinstance(spec, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(spec) - set(cls.FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; known: {list(cls.FIELDS)}")
        for name in ("target", "code"):
            if not isinstance(spec.get(name), str) or not spec[name]:
                raise ValueError(f"{name!r} must be a non-empty string")
        status, count = spec.get("status", 400), spec.get("count", 1)
        if type(status) is not int or not 400 <= status <= 599:
            raise ValueError("'status' must be an integer from 400 to 599")
        if type(count) is not int or count < 1:
            raise ValueError("'count' must be a positive integer")
        when = spec.get("when", "before")
        if when not in ("before", "after", "unprocessed"):
            raise ValueError("'when' must be 'before', 'after' or 'unprocessed'")
        if when == "unprocessed" and spec["target"] != BATCH_GET:
            raise ValueError(f"'unprocessed' applies to {BATCH_GET} only")
        body_contains = spec.get("body_contains")
        if body_contains is not None and (not isinstance(body_contains, str) or not body_contains):
            raise ValueError("'body_contains' must be a non-empty string")
        message = spec.get("message", f"injected by aws_standin: {spec['code']}")
        if not isinstance(message, str):
            raise ValueError("'message' must be a string")
        also_contains = spec.get("also_contains")
        if also_contains is not None and (not isinstance(also_contains, str) or not also_contains):
            raise ValueError("'also_contains' must be a non-empty string")
        if also_contains is not None and body_contains is None:
            raise ValueError("'also_contains' narrows 'body_contains', which is missing")
        return cls(fault_id, spec["target"], spec["code"], status, count, when, body_contains, message, also_contains)

    @property
    def remaining(self) -> int:
        return self.count - self.fired

    def matches(self, target: str, body: bytes) -> bool:
        return (
            self.remaining > 0
            and target == self.target
            and (self.body_contains is None or self.body_contains.encode() in body)
            and (self.also_contains is None or self.also_contains.encode() in body)
        )

    def answer(self, body: bytes) -> Answer:
        if self.when == "unprocessed":
            try:
                requested = json.loads(body).get("RequestItems", {})
            except (ValueError, AttributeError):
                requested = {}
            return json_answer(200, {"Responses": {}, "UnprocessedKeys": requested}, "application/x-amz-json-1.0")
        return aws_error(self.target, self.code, self.message, self.status)

    def view(self) -> dict:
        return {
            "id": self.id,
            "target": self.target,
            "code": self.code,
            "status": self.status,
            "count": self.count,
            "when": self.when,
            "body_contains": self.body_contains,
            "also_contains": self.also_contains,
            "message": self.message,
            "fired": self.fired,
            "remaining": self.remaining,
            "armed": self.remaining > 0,
        }


@dataclass
class Remembered:
    digest: str
    expires: float
    answer: Answer


@dataclass
class CallCounter:
    """Requests whose body contains `scope`, counted by `X-Amz-Target` (the operation)."""

    scope: bytes
    calls: dict[str, int] = field(default_factory=dict)

    def count(self, target: str, body: bytes) -> None:
        if target and self.scope in body:
            self.calls[target] = self.calls.get(target, 0) + 1


class StandIn:
    """WSGI middleware around moto's application: one lock per request, faults, idempotency."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.tokens: dict[str, Remembered] = {}  # insertion order is expiry order
        self.ids = itertools.count(1)
        self.counters: dict[str, CallCounter] = {}
        self.gate = IamGate()

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        body = take_body(environ)  # read outside the lock: a slow client must not stall others
        with self.lock:
            status, headers, payload = self.handle(environ, body)
        headers = list(headers)  # a remembered answer's list stays as moto gave it
        if environ.get("REQUEST_METHOD") != "HEAD" and not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(payload))))  # the body is whole: no chunking
        start_response(status, headers)
        return [payload]

    def handle(self, environ: dict, body: bytes) -> Answer:
        path = environ.get("PATH_INFO", "")
        if path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/"):
            return self.control(environ.get("REQUEST_METHOD", "GET"), path, environ.get("QUERY_STRING", ""), body)
        if path == CALLS_PATH or path.startswith(CALLS_PATH + "/"):
            return self.calls(environ.get("REQUEST_METHOD", "GET"), path[len(CALLS_PATH) + 1:], body)
        if path == IAM_PATH:
            return json_answer(200, self.gate.view())
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        denial = self.gate.check(environ, body)
        if denial is not None:
            if target:
                return aws_error(target, "AccessDeniedException", denial)
            return json_answer(403, {"Message": denial}, headers=[("x-amzn-ErrorType", "AccessDeniedException")])
        for counter in self.counters.values():
            counter.count(target, body)
        fault = next((f for f in self.faults if f.matches(target, body)), None) if target else None
        if fault is not None:
            fault.fired += 1
            if fault.when in ("before", "unprocessed"):
                return fault.answer(body)
        answer = self.run(environ, target, body)
        return fault.answer(body) if fault is not None else answer

    def run(self, environ: dict, target: str, body: bytes) -> Answer:
        if target != TRANSACT_WRITE:
            return self.moto(environ)
        try:
            request = json.loads(body)
            token = request.get("ClientRequestToken")
        except (ValueError, AttributeError):
            token = None
        if not token:
            return self.moto(environ)
        now = time.monotonic()
        while self.tokens:
            oldest = next(iter(self.tokens))
            if self.tokens[oldest].expires > now:
                break
            del self.tokens[oldest]
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        seen = self.tokens.get(token)
        if seen is not None:
            if seen.digest != digest:
                return aws_error(
                    target,
                    "IdempotentParameterMismatchException",
                    "The request uses the same client token as a previous, but non-identical request.",
                )
            return seen.answer  # DynamoDB: same token, same parameters = done, not run again
        answer = self.moto(environ)
        if answer[0].startswith("2"):
            self.tokens[token] = Remembered(digest, now + TOKEN_TTL_SECONDS, answer)
        return answer

    def moto(self, environ: dict) -> Answer:
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, list(headers)
            return chunks.append  # the legacy write() callable

        result = self.app(environ, start_response)
        try:
            chunks.extend(result)  # materialised under the lock: moto may build the body lazily
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], b"".join(chunks)

    def calls(self, method: str, counter_id: str, body: bytes) -> Answer:
        """`POST {"body_contains": X}` starts counting the requests whose body contains X, by
        `X-Amz-Target`; `GET /ID` reads the counts, `DELETE /ID` stops. Scoped by body so tests
        sharing one server (each with its own table and queue) count only their own calls."""
        if method == "POST" and not counter_id:
            try:
                scope = json.loads(body or b"null")["body_contains"]
                if not isinstance(scope, str) or not scope:
                    raise ValueError
            except (ValueError, TypeError, KeyError):
                return json_answer(400, {"error": "body_contains: a non-empty string is required"})
            counter_id = f"calls-{next(self.ids)}"
            self.counters[counter_id] = CallCounter(scope.encode())
            return json_answer(201, {"id": counter_id})
        counter = self.counters.get(counter_id)
        if counter is None:
            return json_answer(404, {"error": f"no counter {counter_id!r}"})
        if method == "GET":
            return json_answer(200, {"calls": dict(counter.calls)})
        if method == "DELETE":
            del self.counters[counter_id]
            return json_answer(200, {"calls": dict(counter.calls)})
        return json_answer(405, {"error": f"{method} is not part of the calls API"})

    def control(self, method: str, path: str, query: str, body: bytes) -> Answer:
        fault_id = path[len(CONTROL_PATH) + 1:]
        if method == "POST" and not fault_id:
            try:
                fault = Fault.parse(f"fault-{next(self.ids)}", json.loads(body or b"null"))
            except ValueError as err:
                return json_answer(400, {"error": str(err)})
            self.faults.append(fault)
            return json_answer(201, fault.view())
        if method in ("GET", "DELETE") and not fault_id:
            # `?body_contains=X&target=Y` narrows both to matching faults: tests sharing one
            # server clear only their own.
            filters = urllib.parse.parse_qs(query, keep_blank_values=True)
            unknown = set(filters) - {"body_contains", "target"}
            if unknown:  # a typo must not clear everyone's faults
                return json_answer(400, {"error": f"unknown filters {sorted(unknown)}; known: body_contains, target"})
            selected = [
                f for f in self.faults if all(getattr(f, name) == values[-1] for name, values in filters.items())
            ]
            if method == "GET":
                return json_answer(200, {"faults": [f.view() for f in selected]})
            chosen = {f.id for f in selected}
            self.faults = [f for f in self.faults if f.id not in chosen]
            return json_answer(200, {"cleared": len(selected)})
        if method == "DELETE":
            kept = [f for f in self.faults if f.id != fault_id]
            if len(kept) == len(self.faults):
                return json_answer(404, {"error": f"no fault {fault_id!r}"})
            self.faults = kept
            return json_answer(200, {"cleared": 1})
        return json_answer(405, {"error": f"{method} {path} is not part of the control API"})


def take_body(environ: dict) -> bytes:
    """Reads the request body and puts it back as a plain buffer moto can read again."""
    from werkzeug.wsgi import get_input_stream

    body = get_input_stream(environ).read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)  # chunked input is now de-chunked
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


# ---------------------------------------------------------------- item-level transaction rollback


class _TablesKeptInPlace:
    """Stands in for the `copy` module inside moto's `transact_write_items` only: the whole-table
    backup it would take becomes the table itself (the rollback is ours, item by item); every other
    deep copy is a real one."""

    def __init__(self, real_copy: Any, table_type: type) -> None:
        self.real_copy = real_copy
        self.table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self.table_type):
            return value
        return self.real_copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real_copy, name)


def install_item_level_rollback() -> None:
    """moto backs a transaction up by deep-copying every table it touches, so one transaction on
    a 3,000-item table cost 140 ms and every figure on a grown table measured moto. Under the
    stand-in's one lock nothing else runs meanwhile, so backing up the items the transaction names
    and putting just those back on failure gives the same all-or-nothing result at a cost that
    does not grow with the table."""
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "item_level_rollback", False):
        return
    original = backend.transact_write_items
    kept_in_place = _TablesKeptInPlace(copy, Table)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            backups = [_backup(self, entry) for entry in transact_items]
        except Exception:  # a malformed request: moto's own checks answer it, its own way
            return original(self, transact_items)
        # moto writes item by item, and each write appends to the table's stream: a rolled-back
        # transaction must leave no stream record either, as none is ever read from DynamoDB's.
        streams = {id(t.stream_shard): (t.stream_shard, len(t.stream_shard.items)) for t, *_ in backups if t.stream_shard}
        models.copy = kept_in_place
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(backups):
                _restore(table, hash_key, range_key, item)
            for shard, length in streams.values():
                del shard.items[length:]
            raise
        finally:
            models.copy = copy

    transact_write_items.item_level_rollback = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items


def _backup(backend: Any, entry: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    import copy

    _, op = next(iter(entry.items()))
    table = backend.get_table(op["TableName"])
    hash_key, range_key = backend.get_keys_value(table, op["Item"] if "Item" in op else op["Key"])
    return table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


def install_partition_query() -> None:
    """moto answers a query on the table's own key by sorting every item of the table
    (`Table.all_items`) and keeping the partition's: 90 ms per query on a 9,000-item table, so a
    forecast's 1,000 mirror queries measured moto, not us. A query on the table's key (no index)
    now reads only its partition; moto sorts and filters those as before. Indexes and scans keep
    moto's own path. `tests/contract/test_aws_standin.py` checks the answers are unchanged."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "partition_query", False):
        return
    original = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or not self.range_key_attr or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        partition = list(self.items[hash_key].values()) if hash_key in self.items else []
        self.all_items = lambda: partition  # an instance attribute shadows the method
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    query.partition_query = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


def make_app() -> StandIn:
    # The application `moto_server` itself serves (moto/server.py, main).
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # AWS_STANDIN_TABLE_COPY=1 keeps moto's whole-table backup (for scripts/bench_standin.py only).
    if os.environ.get("AWS_STANDIN_TABLE_COPY") != "1":
        install_item_level_rollback()
        install_partition_query()
    return StandIn(DomainDispatcherApplication(create_backend_app))


def exit_when_gone(pid: int) -> None:
    """Polls for `pid`; ends this process when it is gone. A dead parent that is not reaped yet
    still answers kill(0), so for our own parent a change of parent counts as gone too."""
    ours = pid == os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # alive, owned by someone else
            if ours and os.getppid() != pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(host: str = "127.0.0.1", port: int = 0, parent_pid: int | None = None, verbose: bool = False) -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    logging.basicConfig(stream=sys.stderr, level=logging.INFO if verbose else logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)
    if parent_pid is not None:
        exit_when_gone(parent_pid)
    server = make_server(host, port, make_app(), threaded=True, request_handler=MotoRequestHandler)
    # moto builds some URLs from MOTO_PORT, as moto_server sets it; port 0 is only known now.
    os.environ["MOTO_PORT"] = str(server.server_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    shown_host = f"[{host}]" if ":" in host else host
    print(f"http://{shown_host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()  # closes the listening socket on the way out
    except SystemExit:
        pass
    logging.shutdown()
    # Skip interpreter teardown: freeing moto's state takes seconds once tables are large.
    os._exit(0)


# ---- for Python callers that start the launcher as a child process -------------------------------


def command(python: str | os.PathLike = sys.executable, host: str = "127.0.0.1", port: int = 0,
            parent_pid: int | None = None) -> list[str]:
    args = [str(python), str(Path(__file__).resolve()), "--host", host, "--port", str(port)]
    return args + (["--parent-pid", str(parent_pid)] if parent_pid is not None else [])


def read_url(process: subprocess.Popen, timeout: float = 60.0) -> str:
    """The first stdout line of a launcher started with `stdout=PIPE, text=True`."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout).strip()
    except queue.Empty:
        line = ""
    if not line.startswith("http://"):
        raise RuntimeError(
            f"aws_standin printed no URL within {timeout:.0f} s (got {line!r}, exit code {process.poll()})"
        )
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--parent-pid", type=int, help="exit once this process is gone")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.parent_pid, args.verbose)


if __name__ == "__main__":
    main()
