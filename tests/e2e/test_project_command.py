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
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [ledger_executable(), "project", "--database-url", database_url],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=server_env(tmp_path),
        )
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
