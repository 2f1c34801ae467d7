"""Scenarios 4, 7 and 9: one ``ledger serve`` process on PostgreSQL, driven over HTTP.

The server runs as its own process (the ``ledger`` command of the venv); load
comes from another process: ``wrk`` when it is installed, else the httpx load
generator of :mod:`benchlib.loadgen`. Memory is the server's VmRSS from
``/proc/PID/status``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchlib.common import Deadline, percentile, progress, rss_kib

ITEM_BODY = (
    '{"tool_name":"exec_shell","status":"completed",'
    '"payload":{"command":"pytest -q tests/unit","exit_code":0,"output":"42 passed in 0.84s"}}'
)

WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
    .. '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
    .. '"timeouts":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ledger_executable() -> str:
    """The ``ledger`` command of this environment (the venv's, when not on PATH)."""
    return shutil.which("ledger") or str(Path(sys.executable).with_name("ledger"))


class Server:
    """``ledger serve`` on a database URL, started and stopped by the bench."""

    def __init__(self, database_url: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.extra_env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until ``/readyz`` answers; returns the seconds it took."""
        ledger = _ledger_executable()
        env = {
            **os.environ,
            "LEDGER_AUTH": "off",
            "LEDGER_WORKSPACE": str(self.workdir),
            "LEDGER_DATABASE_URL": self.database_url,
            **self.extra_env,
        }
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [ledger, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ledger serve exited: {self.tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ledger serve did not become ready in {timeout}s: {self.tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mib(self) -> float:
        return rss_kib(self.pid) / 1024

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        _terminate(self.process, "ledger serve")


class Projector:
    """``ledger project`` on a database URL: the read models of a server started with
    ``LEDGER_PROJECTIONS=off``."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.database_url = database_url
        self.log = workdir / "project.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until it says it is projecting."""
        ledger = _ledger_executable()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [ledger, "project", "--database-url", self.database_url],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while "projecting" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ledger project did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        _terminate(self.process, "ledger project")


def _terminate(process: subprocess.Popen[bytes] | None, name: str) -> None:
    """SIGTERM, and SIGKILL if it has not stopped within 20 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        progress(f"{name} did not stop on SIGTERM; killing it")
        process.kill()
        process.wait()


# scenario 9 and 7 ---------------------------------------------------------------


def warm_requests(client: httpx.Client, long_streams: list[tuple[str, int]]) -> None:
    """A few ordinary requests before memory is read (``long_streams``: path, events)."""
    paths = ["/v1/threads?limit=50"]
    for stream, count in long_streams:
        paths += [stream, f"{stream}/at/{count // 2}", f"{stream}/events?since_seq=10"]
    for _ in range(3):
        _expect(client.post("/v1/threads", content=b"{}"), 201)
    for path in paths:
        _expect(client.get(path), 200)


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered"
            f" {response.status_code}, expected {status}: {response.text[:200]}"
        )


@dataclass
class AtResult:
    samples: list[float]
    last_body_bytes: int

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000


def time_travel(
    client: httpx.Client, stream: str, count: int, requests: int, budget: float
) -> AtResult:
    """GET ``{stream}/at/{seq}`` (``stream`` e.g. ``/v1/runs/run_1``) at random seqs, one
    request at a time; also reports the body size at the last seq."""
    rng = random.Random(7)
    samples: list[float] = []
    deadline = Deadline(budget)
    for _ in range(requests):
        seq = rng.randint(1, count)
        started = time.perf_counter()
        response = client.get(f"{stream}/at/{seq}")
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"/at/{seq} answered {response.status_code}: {response.text[:200]}")
        if deadline.expired and len(samples) >= 20:
            break
    last = client.get(f"{stream}/at/{count}")
    _expect(last, 200)
    return AtResult(samples, len(last.content))


# scenario 4 -------------------------------------------------------------------


@dataclass
class Load:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_preparations = itertools.count(1)


def prepare_turns(client: httpx.Client, count: int) -> list[str]:
    """``count`` new threads, each with an active turn; returns their item paths."""
    paths = []
    batch = next(_preparations)
    for index in range(count):
        thread = f"thr_load_{os.getpid()}_{batch}_{index}"
        _expect(client.post("/v1/threads", json={"thread_id": thread, "title": "load"}), 201)
        _expect(client.post(f"/v1/threads/{thread}/turns", json={"turn_id": "turn_1"}), 201)
        paths.append(f"/v1/threads/{thread}/turns/turn_1/items")
    return paths


def _lua_for(paths: list[str], body: str) -> str:
    quoted = ",\n".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{\n{quoted}\n}}\n"
        f"local body = {json.dumps(body)}\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "local threads = 0\n"
        "function setup(thread)\n"
        "  thread:set('offset', threads * 17)\n"
        "  threads = threads + 1\n"
        "end\n"
        "local counter = 0\n"
        "function request()\n"
        "  counter = counter + 1\n"
        "  local index = ((counter + (offset or 0)) % #paths) + 1\n"
        '  return wrk.format("POST", paths[index], headers, body)\n'
        "end\n" + WRK_DONE
    )


def run_load(
    url: str,
    paths: list[str],
    body: str,
    connections: int,
    duration: float,
    workdir: Path,
    label: str,
) -> Load:
    """``connections`` connections POSTing ``body`` to ``paths`` for ``duration`` seconds."""
    wrk = shutil.which("wrk")
    if wrk:
        script = workdir / f"{label}.lua"
        script.write_text(_lua_for(paths, body))
        threads = max(1, min(2, connections))
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        tool = "wrk"
    else:
        listing = workdir / f"{label}.paths"
        listing.write_text("\n".join(paths) + "\n")
        command = [
            sys.executable,
            str(Path(__file__).with_name("loadgen.py")),
            url,
            "--connections",
            str(connections),
            "--duration",
            str(duration),
            "--paths",
            str(listing),
            "--body",
            body,
        ]
        tool = "httpx load generator (wrk not installed)"
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next(
        (x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")),
        None,
    )
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{command[0]} failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(
        int(figures.get(k, 0))
        for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return Load(
        tool,
        int(figures["requests"]),
        figures["duration_us"] / 1e6,
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        errors,
    )
