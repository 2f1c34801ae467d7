"""``ledger project`` runs the projections without HTTP, until SIGTERM.

The database it projects was written by an earlier server and carried over with
``ledger export``/``ledger import`` (which append events and project nothing), so its
read models start behind the log; ``ledger project`` alone brings them to the head.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerLauncher, ledger_executable, run_ledger, server_env
from tests.e2e.helpers import ok

pytestmark = pytest.mark.timeout(60)

THREADS = 4
WAIT_S = 20.0


def projection_status(database_url: str, workdir: Path) -> dict[str, dict[str, Any]]:
    done = run_ledger("projections", "status", "--database-url", database_url, workdir=workdir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {row["name"]: row for row in rows}


def start_project(database_url: str, workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``ledger project`` on ``database_url``, its output in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [ledger_executable(), "project", "--database-url", database_url],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=server_env(workdir),
        )


def test_ledger_project_alone_brings_thread_summaries_to_the_head_and_stops_on_sigterm(
    launcher: ServerLauncher, database_url: str, tmp_path: Path
) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    writer = launcher.start(source_url)
    with httpx.Client(base_url=writer.base_url, timeout=10.0) as client:
        for n in range(THREADS):
            thread = f"/v1/threads/thr_p{n}"
            ok(client.post("/v1/threads", json={"thread_id": f"thr_p{n}", "title": f"t{n}"}), 201)
            ok(client.post(f"{thread}/turns", json={"turn_id": "t1"}), 201)
            ok(client.post(f"{thread}/turns/t1/items", json={"kind": "message"}), 201)
        ok(client.post("/v1/threads/thr_p0/turns/t1/complete", json={"status": "completed"}), 200)
    writer.stop()
    events = THREADS * 3 + 1
    export = tmp_path / "log.jsonl"
    exported = run_ledger(
        "export", "--out", str(export), "--database-url", source_url, workdir=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    imported = run_ledger(
        "import", "--in", str(export), "--database-url", database_url, workdir=tmp_path
    )
    assert imported.returncode == 0, imported.stderr

    before = projection_status(database_url, tmp_path)["thread_summaries"]
    assert before["head"] == events
    assert before["position"] < events, before

    log_path = tmp_path / "project.log"
    process = start_project(database_url, tmp_path, log_path)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            status = projection_status(database_url, tmp_path)["thread_summaries"]
            if status["position"] == status["head"] == events:
                break
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"thread_summaries stayed at {status}"
            time.sleep(0.2)
        assert status["lag_events"] == 0
        assert status["last_error"] is None
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log_path.read_text()
    assert code == 0, output
    assert "projecting" in output
    assert "Traceback" not in output, output

    # the read model it built is the one a server then serves
    reader = launcher.start(database_url)
    with httpx.Client(base_url=reader.base_url, timeout=10.0) as client:
        listed = ok(client.get("/v1/threads", params={"limit": 100}), 200)
    assert sorted(t["thread_id"] for t in listed["items"]) == [f"thr_p{n}" for n in range(THREADS)]


def _listed(client: httpx.Client) -> list[str]:
    listed = ok(client.get("/v1/threads", params={"limit": 100}), 200)
    return sorted(t["thread_id"] for t in listed["items"])


def test_a_server_with_projections_off_leaves_them_to_ledger_project(
    launcher: ServerLauncher, database_url: str, tmp_path: Path
) -> None:
    server = launcher.start(database_url, env={"LEDGER_PROJECTIONS": "off"})
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        assert _listed(client) == []  # the read models' tables exist before any event
        ok(client.post("/v1/threads", json={"thread_id": "thr_a", "title": "a"}), 201)
        time.sleep(1.0)  # in-process projections apply a commit within milliseconds
        assert _listed(client) == []
        assert projection_status(database_url, tmp_path)["thread_summaries"]["lag_events"] == 1

        log_path = tmp_path / "project.log"
        process = start_project(database_url, tmp_path, log_path)
        try:
            for thread_ids in (["thr_a"], ["thr_a", "thr_b"]):
                if "thr_b" in thread_ids:  # a commit made while the worker runs
                    ok(client.post("/v1/threads", json={"thread_id": "thr_b"}), 201)
                deadline = time.monotonic() + WAIT_S
                while _listed(client) != thread_ids:
                    assert process.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, _listed(client)
                    time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()
