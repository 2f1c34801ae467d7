"""The database goes away mid-traffic and comes back: commands answer 503 with Retry-After,
/readyz turns not-ready, nothing acknowledged is lost, and the service recovers by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.conftest import ServerLauncher, run_ledger
from tests.e2e.helpers import ok
from tests.e2e.tcp_proxy import TcpProxy


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(pg_url)
    tcp = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield tcp
    tcp.close()


def _through(pg_url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(pg_url)
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urlunsplit(parts._replace(netloc=netloc))


def test_database_outage_answers_503_loses_nothing_and_recovers(
    launcher: ServerLauncher, pg_url: str, proxy: TcpProxy
) -> None:
    server = launcher.start(_through(pg_url, proxy))
    acked: list[tuple[str, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def traffic(worker: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            n = 0
            while not stop.is_set():
                thread_id = f"thr_{worker}_{n}"
                response = client.post("/v1/threads", json={"thread_id": thread_id})
                if response.status_code == 201:
                    acked.append((thread_id, response.json()["position"]))
                elif response.status_code == 503:
                    if not response.headers.get("retry-after"):
                        failures.append(f"503 without Retry-After: {response.text}")
                    body = response.json()
                    if "error" not in body:
                        failures.append(f"503 body is not the error shape: {response.text}")
                    time.sleep(0.05)
                elif response.status_code == 409 and thread_id in dict(acked):
                    pass
                else:
                    failures.append(f"{response.status_code} {response.text}")
                n += 1

    workers = [threading.Thread(target=traffic, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        time.sleep(1.0)
        before_cut = len(acked)
        assert before_cut > 0
        proxy.cut()
        deadline = time.monotonic() + 15
        saw_unavailable = False
        while time.monotonic() < deadline:
            probe = client.post("/v1/threads", json={})
            if probe.status_code == 503:
                assert probe.headers["retry-after"]
                saw_unavailable = True
                break
        assert saw_unavailable, "commands kept succeeding with the database cut off"
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["code"] == "not_ready"
        time.sleep(1.0)
        proxy.restore()
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "/readyz did not recover"
            time.sleep(0.2)
        recovered_at = len(acked)
        deadline = time.monotonic() + 30
        while len(acked) < recovered_at + 20:
            assert time.monotonic() < deadline, "commands did not recover"
            time.sleep(0.1)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures, failures[:5]
    assert server.running()

    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        for thread_id, position in acked:
            events = ok(client.get(f"/v1/threads/{thread_id}/events"), 200)["events"]
            assert [(e["seq"], e["position"]) for e in events] == [(1, position)], thread_id
    result = run_ledger("verify", "--database-url", pg_url, workdir=server.stderr_path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
