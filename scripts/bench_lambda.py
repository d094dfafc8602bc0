#!/usr/bin/env python3
"""`make bench`, Lambda part: the release `transition` binary, a minimal Rust Lambda (the
yardstick, `tests/yardstick`) and one that builds transition's SDK and HTTP clients and does
nothing else (`tests/sdk-yardstick`) under one Lambda Runtime API emulator, against the local stand-ins
(moto behind tests/local/aws_standin.py, the Genesys simulator), in the same run.

For each binary, COLD_STARTS fresh processes; for each process:
- init: process start -> its first poll of `/runtime/invocation/next`;
- first invoke: the first event handed over -> its response (a cold container's first event);
- then WARM events one after another: their latency, and the process's own CPU time
  (utime + stime from /proc/PID/stat) per event — the whole process, signing, HTTP, JSON and
  logging included, not the stand-ins' CPU;
- peak RSS: the process's own VmHWM when it is stopped.
`transition` handles calendar starts and ends of one agent, alternately, so every warm event is a
full transition (apply or restore: the Genesys reads and write, the DynamoDB read, claim and
commit). Prints a Markdown table of medians (and p90 for warm latency), then where a transition's
first and warm invokes spent their time (from the EMF line each event prints). `BENCH_COMPARE=name=path,…` adds other transition builds,
interleaved in the same run."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "local"))
from local_env import ROOT, TARGET, LocalEnv  # noqa: E402

COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "10"))
WARM = int(os.environ.get("BENCH_WARM_EVENTS", "40"))
ADA = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
TICKS = os.sysconf("SC_CLK_TCK")
PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    """The Lambda Runtime API for one process: hands over queued events, records answers."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.answers: dict[str, tuple[float, str, bytes]] = {}
        self.answered = threading.Condition()
        self.first_poll: float | None = None
        self.init_error: bytes | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle + delayed ACK
            # add ~40 ms to every answer, which would be measured as the function's.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != f"{PREFIX}/invocation/next":
                    return self._answer(404)
                if api.first_poll is None:
                    api.first_poll = time.monotonic()
                request_id, body = api.events.get()
                deadline_ms = int((time.time() + 60) * 1000)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.monotonic()
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_error = body
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with api.answered:
                        api.answers[parts[1]] = (at, parts[2], body)
                        api.answered.notify_all()
                else:
                    return self._answer(404)
                self._answer(202)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a process stopped mid-poll resets its connection; nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, payload: dict, timeout: float = 60.0) -> tuple[float, str, bytes]:
        """Hands one event over; returns (seconds to the answer, "response"|"error", body)."""
        request_id = str(uuid.uuid4())
        submitted = time.monotonic()
        self.events.put((request_id, json.dumps(payload).encode()))
        with self.answered:
            if not self.answered.wait_for(lambda: request_id in self.answers, timeout=timeout):
                raise RuntimeError(f"no answer within {timeout} s (init error: {self.init_error!r})")
            at, kind, body = self.answers.pop(request_id)
        return at - submitted, kind, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def calendar_event(detail_type: str, trigger: str) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    iso = lambda moment: moment.isoformat().replace("+00:00", "Z")  # noqa: E731
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
        "source": "presence-autopilot.bench", "account": "123456789012", "time": iso(now),
        "region": "us-east-1", "resources": [],
        "detail": {
            "userId": ADA, "calendarEventId": trigger,
            "start": iso(now - dt.timedelta(minutes=1)), "end": iso(now + dt.timedelta(minutes=30)),
            "showAs": "busy", "responseStatus": "accepted", "subject": "Bench",
        },
    }


def sqs_batch(event: dict) -> dict:
    """One burst-queue record carrying `event`, as the SQS event source mapping hands it over."""
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": f"bench-{uuid.uuid4().hex}",
        "body": json.dumps(event), "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-burst", "awsRegion": "us-east-1",
    }]}


class TransitionEvents:
    """Start, end, start, end, … of one agent, each a one-record burst-queue batch: each a whole
    transition."""

    def __init__(self) -> None:
        self.open: str | None = None

    def __next__(self) -> dict:
        if self.open is None:
            self.open = f"bench-{uuid.uuid4().hex[:8]}"
            return sqs_batch(calendar_event("Calendar Event Started", self.open))
        trigger, self.open = self.open, None
        return sqs_batch(calendar_event("Calendar Event Ended", trigger))

    def closing(self) -> dict | None:
        """The end of a meeting still open, so the next process starts from a restored agent."""
        return self.__next__() if self.open is not None else None


class Echoes:
    def __next__(self) -> dict:
        return {"ping": 1}

    def closing(self) -> None:
        return None


def cold_start(binary: Path, env: dict[str, str], events, check) -> dict:
    api = RuntimeApi()
    process_env = {
        **env,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": binary.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "RUST_LOG": "warn",
    }
    started = time.monotonic()
    process = subprocess.Popen([str(binary)], env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = MetricLines(process.stdout)
    measured = isinstance(events, TransitionEvents)
    try:
        first, kind, body = api.invoke(next(events))
        line = metrics.next(measured)
        check(kind, body, line)
        first_stages = stages(line)
        if api.first_poll is None:
            raise RuntimeError("answered without polling")
        warm, warm_stages = [], []
        cpu_before = cpu_seconds(process.pid)
        for _ in range(WARM):
            seconds, kind, body = api.invoke(next(events))
            line = metrics.next(measured)
            check(kind, body, line)
            warm.append(seconds)
            warm_stages.append(stages(line))
        cpu_after = cpu_seconds(process.pid)
        closing = events.closing()
        if closing is not None:
            check(*api.invoke(closing)[1:], metrics.next(measured))
        return {
            "init": api.first_poll - started,
            "first": first,
            "start_to_first": api.first_poll - started + first,
            "warm": warm,
            "cpu": (cpu_after - cpu_before) / WARM,
            "rss": peak_rss_kib(process.pid),
            "first_stages": first_stages,
            "warm_stages": warm_stages,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stderr = process.stderr.read()  # stdout is the metric reader's
        api.close()
        if process.returncode not in (0, -15):
            print(stderr.decode(errors="replace")[-2000:], file=sys.stderr)


def check_transition(kind: str, body: bytes, metrics: dict | None) -> None:
    """The batch answer names no failed record, and the event's metric line says it applied or
    restored."""
    if kind != "response" or json.loads(body).get("batchItemFailures") != []:
        raise RuntimeError(f"transition answered {kind}: {body[:500]!r}")
    decision = (metrics or {}).get("Decision")
    if decision not in ("applied", "restored"):
        raise RuntimeError(f"transition decided {decision!r}: {metrics!r}")


def check_echo(kind: str, body: bytes, _metrics: dict | None) -> None:
    if kind != "response" or json.loads(body) != {"ping": 1}:
        raise RuntimeError(f"yardstick answered {kind} {body[:200]!r}")


STAGES = ("secretMs", "tokenMs", "targetsMs", "stateReadMs", "genesysReadMs", "genesysWriteMs", "storeMs")


def stages(metrics: dict | None) -> dict[str, int] | None:
    """The stage timings of a transition's metric line (`SecretMs`, …); None for others."""
    if not metrics:
        return None
    return {name: metrics.get(name[0].upper() + name[1:], 0) for name in STAGES}


class MetricLines:
    """The EMF lines a process prints on stdout, read as they come (a thread keeps the pipe
    drained); the transition prints one per event before it answers."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and "Decision" in line:
                self.lines.put(line)

    def next(self, expected: bool) -> dict | None:
        """The next event's metric line (None for a process that prints none)."""
        return self.lines.get(timeout=10) if expected else None


def stage_row(label: str, total: float, samples: list[dict[str, int]]) -> str:
    median = {name: statistics.median(s[name] for s in samples) for name in STAGES}
    # The targets (secret and token included) and the state read run side by side.
    after_read = median["genesysReadMs"] + median["genesysWriteMs"] + median["storeMs"]
    rest = total * 1000 - max(median["targetsMs"], median["stateReadMs"]) - after_read
    cells = " | ".join(f"{median[name]:.0f} ms" for name in STAGES)
    return f"| {label} | {total * 1000:.1f} ms | {cells} | {rest:.1f} ms |"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    release = TARGET / "release"
    binaries = {
        "transition": release / "transition",
        "yardstick": release / "yardstick",
        "sdk-yardstick": release / "sdk-yardstick",
    }
    # BENCH_COMPARE="before=/path/to/an/older/transition,…": more transition builds, interleaved
    # with these in the same run (the fair way to compare two builds on a shared machine).
    for spec in filter(None, os.environ.get("BENCH_COMPARE", "").split(",")):
        name, _, path = spec.partition("=")
        binaries[name] = Path(path)
    missing = [str(path) for path in binaries.values() if not path.exists()]
    if missing:
        print(f"build first: cargo build --release -p transition -p yardstick -p sdk-yardstick (missing {missing})", file=sys.stderr)
        return 1
    with LocalEnv() as env:
        # transition's environment and role from the stack deployed from infra/template.yaml
        function_env = env.function_env("transition", {"ALLOW_LOOPBACK_HTTP": "true"})
        runs: dict[str, list[dict]] = {name: [] for name in binaries}
        # Interleaved, so both see the same machine load.
        for _ in range(COLD_STARTS):
            for name, binary in binaries.items():
                echo = name in ("yardstick", "sdk-yardstick")
                events, check = (Echoes(), check_echo) if echo else (TransitionEvents(), check_transition)
                runs[name].append(cold_start(binary, function_env, events, check))
    median = statistics.median
    print(f"\n{COLD_STARTS} cold starts each, {WARM} warm events per process, "
          f"{dt.date.today().isoformat()}, {os.cpu_count()} cores (`make bench`, scripts/bench_lambda.py)\n")
    print("| binary | init (start → first poll) | first invoke | start → first answer | warm invoke p50 / p90 | CPU per warm event | peak RSS | file size |")
    print("|---|---|---|---|---|---|---|---|")
    for name, results in runs.items():
        warm = sorted(s for r in results for s in r["warm"])
        p90 = warm[int(len(warm) * 0.9)]
        print(
            f"| `{name}` | {ms(median(r['init'] for r in results))} | {ms(median(r['first'] for r in results))} "
            f"| {ms(median(r['start_to_first'] for r in results))} | {ms(median(warm))} / {ms(p90)} "
            f"| {ms(median(r['cpu'] for r in results))} | {max(r['rss'] for r in results) / 1024:.1f} MiB "
            f"| {binaries[name].stat().st_size / 1_048_576:.2f} MiB |"
        )
    transition = runs["transition"]
    print("\nWhere a `transition` invoke's time went (medians of the stage timings of its EMF line"
          "; \"rest\" is the remainder: the runtime's hand-over, parsing, the decision, logging):\n")
    print("| invoke | total | secret | token | targets (incl. secret, token; overlaps the state read) "
          "| state read | Genesys read | Genesys write | claim + commit | rest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(stage_row("first", median(r["first"] for r in transition), [r["first_stages"] for r in transition]))
    print(stage_row("warm", median(s for r in transition for s in r["warm"]),
                    [s for r in transition for s in r["warm_stages"]]))
    init = {name: median(r["init"] for r in results) for name, results in runs.items()}
    print(f"\ninit of `transition` ÷ init of the minimal echo: {init['transition'] / init['yardstick']:.2f}")
    print(f"init of `transition` ÷ init of the SDK yardstick (the same clients, nothing else): "
          f"{init['transition'] / init['sdk-yardstick']:.2f} (target ≤ 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
