"""End-to-end fixtures: a real ``ledger serve`` subprocess on a free port, and HTTP clients.

Every server writes its stderr to a file under the test's temporary directory
(``ledger-<n>.stderr.log``); a failing test prints the end of each log. At teardown
each server still running gets SIGTERM, then SIGKILL after a timeout, and its log
is checked for unexpected tracebacks; a server that exited without being told to
(a crash) fails the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import pg

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0

STOP_TIMEOUT_S = 10.0
START_ATTEMPTS = 3


def ledger_executable() -> str:
    """The ``ledger`` console script of the venv running the tests."""
    for candidate in (REPO / ".venv" / "bin" / "ledger", Path(sys.executable).with_name("ledger")):
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("the ledger console script is not installed in this venv")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: ours without LEDGER_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    workspace = workdir / "workspace"
    (workspace / "proj" / "a").mkdir(parents=True, exist_ok=True)
    env["LEDGER_WORKSPACE"] = str(workspace)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class LedgerServer:
    """One ``ledger serve`` process."""

    database_url: str
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    signalled: bool = False
    """Whether the test stopped it (an exit without that is a crash)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        self.signalled = True
        self.process.send_signal(signum)

    def exited_unasked(self) -> bool:
        return not self.signalled and not self.running()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.running():
            self.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited in time; returns the exit code."""
        if self.running():
            self.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        return self.process.returncode


@dataclass
class ServerLauncher:
    """Starts servers on demand and stops every one of them at teardown."""

    workdir: Path
    servers: list[LedgerServer] = field(default_factory=list)

    def start(self, database_url: str, env: dict[str, str] | None = None) -> LedgerServer:
        problems: list[str] = []
        for _ in range(START_ATTEMPTS):  # a port picked free may be taken before we bind it
            server = self._spawn(database_url, env)
            failure = _wait_ready(server)
            if failure is None:
                return server
            server.stop()
            problems.append(f"{failure}\n--- {server.stderr_path} ---\n{server.log()[-4000:]}")
        raise RuntimeError("ledger serve did not become ready:\n" + "\n".join(problems))

    def _spawn(self, database_url: str, env: dict[str, str] | None) -> LedgerServer:
        port = free_port()
        stderr_path = self.workdir / f"ledger-{len(self.servers) + 1}.stderr.log"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [
                    ledger_executable(),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--database-url",
                    database_url,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self.workdir,
                env=server_env(self.workdir, env),
            )
        server = LedgerServer(database_url, f"http://127.0.0.1:{port}", port, process, stderr_path)
        self.servers.append(server)
        return server

    def stop_all(self) -> list[str]:
        """Stop every server; returns the logs that show an unexpected server error or exit."""
        troubled = []
        for server in self.servers:
            crashed = server.exited_unasked()
            code = server.stop()
            text = server.log()
            if crashed:
                troubled.append(
                    f"--- {server.stderr_path}: exited unasked with {code} ---\n{text[-6000:]}"
                )
            elif "Traceback" in text or "unexpected error" in text:
                troubled.append(f"--- {server.stderr_path} ---\n{text[-6000:]}")
        return troubled

    def print_logs(self) -> None:
        """The end of every server's log, for a failing test's report."""
        for server in self.servers:
            state = "running" if server.running() else f"exited {server.process.returncode}"
            print(f"--- {server.stderr_path} ({state}) ---\n{server.log()[-3000:]}")


def _wait_ready(server: LedgerServer) -> str | None:
    """None once ``/readyz`` answers 200, else why not."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not server.running():
                return f"ledger serve exited with {server.process.returncode}"
            try:
                if client.get("/readyz").status_code == 200:
                    return None
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    return f"/readyz did not answer 200 within {STARTUP_TIMEOUT_S} s"


def run_ledger(
    *args: str, workdir: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a ``ledger`` CLI command to completion (e.g. ``verify``)."""
    return subprocess.run(
        [ledger_executable(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
        env=server_env(workdir),
        check=False,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the item, so a fixture can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    reports = (getattr(request.node, f"report_{when}", None) for when in ("setup", "call"))
    return any(report is not None and report.failed for report in reports)


@pytest.fixture
def launcher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerLauncher]:
    """Start ``ledger serve`` processes at will (e.g. to restart one on the same database)."""
    servers = ServerLauncher(tmp_path)
    yield servers
    if failed(request):
        servers.print_logs()
    troubled = servers.stop_all()
    if troubled:
        pytest.fail(
            "a ledger server logged an unexpected error or exited unasked:\n" + "\n".join(troubled)
        )


@pytest.fixture
def ledger_server(launcher: ServerLauncher, database_url: str) -> LedgerServer:
    """A running server on a fresh database, once on SQLite and once on PostgreSQL."""
    return launcher.start(database_url)


@pytest.fixture
def sqlite_server(launcher: ServerLauncher, sqlite_url: str) -> LedgerServer:
    """A running server on a fresh SQLite file."""
    return launcher.start(sqlite_url)


@pytest.fixture
def client(ledger_server: LedgerServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ledger_server.base_url, timeout=30.0) as http:
        yield http


LIMITED_BODY_BYTES = 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def limited_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerServer]:
    """One server per module and backend, with LEDGER_MAX_BODY_BYTES=1024, for many small tests
    that each work on their own thread."""
    workdir = tmp_path_factory.mktemp(f"limited-{request.param}")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'ledger.db'}"
    else:
        database = pg.create_database()
        url = pg.url_for(database)
    servers = ServerLauncher(workdir)
    try:
        yield servers.start(url, {"LEDGER_MAX_BODY_BYTES": str(LIMITED_BODY_BYTES)})
    finally:
        troubled = servers.stop_all()
        if database is not None:
            pg.drop_database(database)
    if troubled:
        pytest.fail(
            "a ledger server logged an unexpected error or exited unasked:\n" + "\n".join(troubled)
        )
