"""Authentication and tenants against a real ``ledger serve`` with ``LEDGER_AUTH=on``: 401 and
403, tenant isolation on every view, list, feed, tail, export and usage read, revocation, and the
refusal to serve on a public interface without tokens."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests import pg
from tests.e2e.conftest import (
    LedgerServer,
    ServerLauncher,
    free_port,
    ledger_executable,
    run_ledger,
    server_env,
)
from tests.e2e.helpers import assert_error, ok

AUTH_ENV = {"LEDGER_AUTH": "on", "LEDGER_AUTH_CACHE_MS": "200"}


def create_token(url: str, workdir: Path, tenant: str, scope: str) -> str:
    made = run_ledger(
        "tokens", "create", "--tenant", tenant, "--scope", scope, "--database-url", url,
        workdir=workdir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ldg_") and "\n" not in token
    assert "not shown again" in made.stderr
    return token


@dataclass
class Secured:
    """One server with authentication on, and a client per token."""

    server: LedgerServer
    workdir: Path
    tokens: dict[str, str]

    def client(self, name: str | None) -> httpx.Client:
        headers = {} if name is None else {"Authorization": f"Bearer {self.tokens[name]}"}
        return httpx.Client(base_url=self.server.base_url, headers=headers, timeout=30.0)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    """A server per backend for the module, with tokens of tenants alpha and beta."""
    workdir = tmp_path_factory.mktemp(f"auth-{request.param}")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'ledger.db'}"
    else:
        database = pg.create_database()
        url = pg.url_for(database)
    tokens = {
        name: create_token(url, workdir, tenant, scope)
        for name, tenant, scope in (
            ("alpha", "alpha", "write"),
            ("beta", "beta", "write"),
            ("beta-read", "beta", "read"),
            ("beta-admin", "beta", "admin"),
        )
    }
    servers = ServerLauncher(workdir)
    try:
        yield Secured(servers.start(url, AUTH_ENV), workdir, tokens)
    finally:
        troubled = servers.stop_all()
        if database is not None:
            pg.drop_database(database)
    if troubled:
        pytest.fail("a ledger server logged an unexpected error:\n" + "\n".join(troubled))


def _unauthenticated(response: httpx.Response) -> None:
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_requests_without_a_valid_token_answer_401_with_a_bearer_challenge(
    secured: Secured,
) -> None:
    wrong = {
        "none": {},
        "malformed": {"Authorization": "Bearer nonsense"},
        "unknown": {"Authorization": "Bearer ldg_" + "x" * 43},
        "basic": {"Authorization": "Basic YWxwaGE6cHc="},
        "bare": {"Authorization": secured.tokens["alpha"]},
    }
    with secured.client(None) as client:
        for headers in wrong.values():
            _unauthenticated(client.get("/v1/threads", headers=headers))
            _unauthenticated(client.post("/v1/threads", json={}, headers=headers))
            _unauthenticated(client.get("/v1/events/stream", headers=headers))
            _unauthenticated(client.get("/metrics", headers=headers))
        for public in ("/healthz", "/readyz", "/openapi.json"):
            ok(client.get(public), 200)


def test_a_read_token_reads_but_a_command_answers_403_and_appends_nothing(
    secured: Secured,
) -> None:
    with secured.client("beta-read") as reader, secured.client("beta") as writer:
        error = assert_error(
            reader.post("/v1/threads", json={"thread_id": "thr_read_only"}), 403, "forbidden"
        )
        assert error["details"] == {"scope": "read", "required_scope": "write"}
        assert_error(reader.post("/v1/executors/rt-9/heartbeat", json={}), 403, "forbidden")
        assert_error(writer.get("/v1/threads/thr_read_only"), 404)
        ok(reader.get("/v1/threads"), 200)
        ok(reader.get("/v1/events"), 200)


def test_store_wide_figures_need_an_admin_token(secured: Secured) -> None:
    with secured.client("beta") as writer, secured.client("beta-admin") as admin:
        assert_error(writer.get("/metrics"), 403, "forbidden")
        assert_error(writer.get("/v1/projections"), 403, "forbidden")
        assert "ledger_" in admin.get("/metrics").text
        ok(admin.get("/v1/projections"), 200)
        ok(admin.post("/v1/threads", json={}), 201)  # admin includes write


def _history(client: httpx.Client, thread_id: str, tokens: int) -> list[int]:
    """A thread with a turn, an item, usage and a pending approval; the positions it got."""
    thread = f"/v1/threads/{thread_id}"
    commands: list[tuple[str, dict[str, Any], int]] = [
        ("/v1/threads", {"thread_id": thread_id, "title": f"secret of {thread_id}"}, 201),
        (f"{thread}/turns", {"turn_id": "t1", "input": "private prompt"}, 201),
        (f"{thread}/turns/t1/items", {"item_id": "i1", "tool_name": "exec_shell"}, 201),
        (
            f"{thread}/turns/t1/usage",
            {"input_tokens": tokens, "output_tokens": 1, "model": f"m-{thread_id}"},
            200,
        ),
        (f"{thread}/approvals", {"approval_id": "a1", "turn_id": "t1"}, 201),
    ]
    return [ok(client.post(path, json=body), status)["position"] for path, body, status in commands]


def test_another_tenants_thread_is_404_on_every_view_and_command(secured: Secured) -> None:
    with secured.client("alpha") as alpha, secured.client("beta-admin") as beta:
        _history(alpha, "thr_alpha_only", 11)
        thread = "/v1/threads/thr_alpha_only"
        for path in (
            thread,
            f"{thread}/events",
            f"{thread}/at/1",
            f"{thread}/export",
            f"{thread}/stream",
            "/v1/streams/thr_alpha_only/verify",
        ):
            if not path.endswith("/stream"):  # (a live tail would not end)
                ok(alpha.get(path), 200)
            assert_error(beta.get(path), 404)
        for path, body in (
            (f"{thread}/turns", {"turn_id": "t2"}),
            (f"{thread}/turns/t1/complete", {"status": "completed"}),
            (f"{thread}/approvals/a1/decision", {"turn_id": "t1", "decision": "approve"}),
            (f"{thread}/archive", {}),
        ):
            assert_error(beta.post(path, json=body), 404)
        view = ok(alpha.get(thread), 200)  # beta's commands changed nothing
        assert [(a["approval_id"], a["turn_id"]) for a in view["pending_approvals"]] == [
            ("a1", "t1")
        ]
        assert [t["status"] for t in view["turns"]] == ["in_progress"]


def _sse_positions(client: httpx.Client, path: str, until: int) -> list[dict[str, Any]]:
    """Events of a live tail from its start, read until one at position ``until`` arrives."""
    seen: list[dict[str, Any]] = []
    with client.stream("GET", path, params={"after": 0}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = orjson.loads(line.removeprefix("data: "))
                seen.append(event)
                if event["position"] >= until:
                    return seen
    raise AssertionError(f"the tail ended before position {until}: {seen}")


def test_lists_feed_usage_export_and_tails_show_only_the_callers_events(
    secured: Secured,
) -> None:
    with secured.client("alpha") as alpha, secured.client("beta") as beta:
        a1 = _history(alpha, "thr_iso_a", 1000)
        b1 = _history(beta, "thr_iso_b", 7)
        a2 = _history(alpha, "thr_iso_a2", 2000)
        b2 = _history(beta, "thr_iso_b2", 9)
        alpha_positions, beta_positions = set(a1 + a2), set(b1 + b2)
        last = max(b2)
        assert min(a2) < max(b2)  # beta's feed has alpha's positions to skip

        threads = ok(beta.get("/v1/threads", params={"min_position": last, "limit": 1000}), 200)
        beta_threads = {t["thread_id"] for t in threads["items"]}
        assert {"thr_iso_b", "thr_iso_b2"} <= beta_threads
        assert not beta_threads & {"thr_iso_a", "thr_iso_a2", "thr_alpha_only"}

        approvals = ok(beta.get("/v1/approvals", params={"min_position": last}), 200)
        assert {a["thread_id"] for a in approvals["items"]} >= {"thr_iso_b", "thr_iso_b2"}
        assert all(not a["thread_id"].startswith("thr_iso_a") for a in approvals["items"])

        feed = ok(beta.get("/v1/events", params={"after": 0, "limit": 10_000}), 200)
        positions = [e["position"] for e in feed["events"]]
        assert beta_positions <= set(positions)
        assert not alpha_positions & set(positions)
        assert feed["next_after"] == positions[-1]
        after_first = ok(beta.get("/v1/events", params={"after": min(b2)}), 200)["events"]
        assert after_first[0]["position"] > min(b2)
        assert not alpha_positions & {e["position"] for e in after_first}

        usage = ok(beta.get("/v1/usage", params={"group_by": "thread", "min_position": last}), 200)
        by_thread = {g["key"]: g["input_tokens"] for g in usage["items"]}
        assert by_thread["thr_iso_b"] == 7 and by_thread["thr_iso_b2"] == 9
        assert not {"thr_iso_a", "thr_iso_a2"} & set(by_thread)
        models = ok(beta.get("/v1/usage", params={"group_by": "model"}), 200)["items"]
        assert all(not str(g["key"]).startswith("m-thr_iso_a") for g in models)

        lines = [orjson.loads(line) for line in beta.get("/v1/export").text.splitlines()]
        assert {line["tenant"] for line in lines} == {"beta"}
        assert beta_positions <= {line["position"] for line in lines}

        tailed = _sse_positions(beta, "/v1/events/stream", last)
        assert beta_positions <= {e["position"] for e in tailed}
        assert not alpha_positions & {e["position"] for e in tailed}
        alpha_tailed = _sse_positions(alpha, "/v1/events/stream", max(a2))
        assert not beta_positions & {e["position"] for e in alpha_tailed}


def test_the_same_thread_id_lives_in_each_tenant_independently(secured: Secured) -> None:
    with secured.client("alpha") as alpha, secured.client("beta") as beta:
        key = {"Idempotency-Key": "twin-key"}  # idempotency keys are per tenant too
        alpha_body = {"thread_id": "thr_twin", "title": "alpha's"}
        beta_body = {"thread_id": "thr_twin", "title": "beta's"}
        ok(alpha.post("/v1/threads", json=alpha_body, headers=key), 201)
        ok(beta.post("/v1/threads", json=beta_body, headers=key), 201)
        retried = alpha.post("/v1/threads", json=alpha_body, headers=key)
        assert retried.headers.get("idempotent-replayed") == "true"
        ok(alpha.post("/v1/threads/thr_twin/turns", json={"turn_id": "t1"}), 201)
        assert_error(alpha.post("/v1/threads", json={"thread_id": "thr_twin"}), 409)

        alpha_view = ok(alpha.get("/v1/threads/thr_twin"), 200)
        beta_view = ok(beta.get("/v1/threads/thr_twin"), 200)
        assert (alpha_view["seq"], len(alpha_view["turns"])) == (2, 1)
        assert (beta_view["seq"], beta_view["turns"]) == (1, [])
        alpha_events = ok(alpha.get("/v1/threads/thr_twin/events"), 200)["events"]
        beta_events = ok(beta.get("/v1/threads/thr_twin/events"), 200)["events"]
        assert [e["seq"] for e in alpha_events] == [1, 2]
        assert [e["data"].get("title") for e in beta_events] == ["beta's"]
        assert ok(beta.get("/v1/streams/thr_twin/verify"), 200)["events"] == 1
        tailed = _sse_positions(beta, "/v1/threads/thr_twin/stream", beta_events[-1]["position"])
        assert [e["position"] for e in tailed] == [beta_events[0]["position"]]


def test_a_revoked_token_answers_401(secured: Secured) -> None:
    url = secured.server.database_url
    token = create_token(url, secured.workdir, "beta", "read")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=secured.server.base_url, headers=headers, timeout=30) as client:
        ok(client.get("/v1/threads"), 200)
        listed = run_ledger("tokens", "list", "--database-url", url, workdir=secured.workdir)
        assert listed.returncode == 0, listed.stderr
        assert token not in listed.stdout
        records = [orjson.loads(line) for line in listed.stdout.splitlines()]
        mine = [r for r in records if r["tenant"] == "beta" and r["revoked_at"] is None]
        assert len(mine) >= 2

        revoked = run_ledger(
            "tokens", "revoke", token, "--database-url", url, workdir=secured.workdir
        )
        assert revoked.returncode == 0, revoked.stderr

        deadline = time.monotonic() + 5.0
        while client.get("/v1/threads").status_code == 200:
            assert time.monotonic() < deadline, "a revoked token still works after 5 s"
            time.sleep(0.05)
        _unauthenticated(client.get("/v1/threads"))
    listed = run_ledger("tokens", "list", "--database-url", url, workdir=secured.workdir)
    assert any(orjson.loads(line)["revoked_at"] for line in listed.stdout.splitlines())


def _serve(workdir: Path, url: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``ledger serve`` on every interface (0.0.0.0)."""
    command = [ledger_executable(), "serve", "--host", "0.0.0.0", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--database-url", url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=server_env(workdir, env),
    )


@pytest.mark.parametrize("env", [{}, {"LEDGER_AUTH": "on"}])
def test_serving_on_a_public_interface_without_tokens_exits_2(
    tmp_path: Path, sqlite_url: str, env: dict[str, str]
) -> None:
    process = _serve(tmp_path, sqlite_url, free_port(), env)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode == 2, stderr.decode()
    message = stderr.decode()
    assert "refusing to serve" in message
    assert "ledger tokens create" in message
    assert "Uvicorn running" not in message


def test_auth_off_on_a_public_interface_serves_with_a_loud_warning(
    tmp_path: Path, sqlite_url: str
) -> None:
    port = free_port()
    process = _serve(tmp_path, sqlite_url, port, {"LEDGER_AUTH": "off"})
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            assert process.poll() is None, "ledger serve exited"
            assert time.monotonic() < deadline, "ledger serve did not start"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            ok(client.post("/v1/threads", json={}), 201)  # no token needed
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "AUTHENTICATION IS OFF" in stderr.decode()


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return False
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
