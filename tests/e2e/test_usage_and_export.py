"""The live log for consumers over HTTP and the CLI: usage grouped, the export streamed, and an
export imported into a fresh store with every hash intact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from infra.http.usage_routes import UsageReport
from tests.e2e.conftest import ServerLauncher, run_ledger
from tests.e2e.helpers import assert_error, exactly, ok
from tests.e2e.run_helpers import claim, start_run, task


def _usage(client: httpx.Client, thread_id: str, turn_id: str, body: dict[str, Any]) -> int:
    path = f"/v1/threads/{thread_id}/turns/{turn_id}/usage"
    return int(ok(client.post(path, json=body), 200)["position"])


def _thread_with_turns(client: httpx.Client, thread_id: str, *turns: str) -> None:
    ok(client.post("/v1/threads", json={"thread_id": thread_id}), 201)
    for turn_id in turns:
        ok(client.post(f"/v1/threads/{thread_id}/turns", json={"turn_id": turn_id}), 201)
        ok(client.post(f"/v1/threads/{thread_id}/turns/{turn_id}/complete", json={}), 200)


def _record_usage(client: httpx.Client) -> int:
    """thr_u1: t1 (m-a, replaced), t2 (m-b); thr_u2: t1 (m-a); all recorded after the fact."""
    _thread_with_turns(client, "thr_u1", "t1", "t2")
    _thread_with_turns(client, "thr_u2", "t1")
    late = {"after_the_fact": True}
    first = {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5, "model": "m-a", **late}
    _usage(client, "thr_u1", "t1", first)
    replaced = {
        "input_tokens": 20,
        "output_tokens": 10,
        "reasoning_tokens": 2,
        "reasoning_replay_tokens": 1,
        "cost_usd": 0.75,
        "model": "m-a",
        **late,
    }
    _usage(client, "thr_u1", "t1", replaced)
    other = {"input_tokens": 100, "output_tokens": 50, "cost_usd": 0.25, "model": "m-b", **late}
    _usage(client, "thr_u1", "t2", other)
    return _usage(client, "thr_u2", "t1", {"input_tokens": 1, "output_tokens": 2, **late})


def _usage_report(client: httpx.Client, **params: Any) -> UsageReport:
    return exactly(UsageReport, ok(client.get("/v1/usage", params=params), 200))


def test_usage_is_grouped_by_model_thread_and_day_after_usage_commands(
    client: httpx.Client,
) -> None:
    last = _record_usage(client)
    by_model = _usage_report(client, group_by="model", min_position=last)
    assert by_model.group_by == "model"
    assert [
        (g.key, g.input_tokens, g.output_tokens, g.total_tokens, g.cost_usd, g.turns)
        for g in by_model.items
    ] == [("m-a", 20, 10, 33, 0.75, 1), ("m-b", 100, 50, 150, 0.25, 1), (None, 1, 2, 3, 0.0, 1)]

    by_thread = _usage_report(client, group_by="thread", min_position=last)
    assert [(g.key, g.total_tokens, g.cost_usd, g.turns) for g in by_thread.items] == [
        ("thr_u1", 183, 1.0, 2),
        ("thr_u2", 3, 0.0, 1),
    ]
    today = datetime.now(UTC).date().isoformat()
    by_day = _usage_report(client, group_by="day", to=today, min_position=last)
    assert sum(g.total_tokens for g in by_day.items) == 186  # one day, two if midnight passed
    assert sum(g.turns for g in by_day.items) == 3
    assert all(g.key is not None and g.key <= today for g in by_day.items)
    assert _usage_report(client, group_by="day", **{"from": "1999-01-01", "to": "1999-12-31"}) == (
        UsageReport(group_by="day", items=[])
    )
    assert _usage_report(client, group_by="run").items == []


def test_bad_usage_queries_answer_400(client: httpx.Client) -> None:
    for params in (
        {"group_by": "week"},
        {"from": "2024-13-01"},
        {"to": "01/02/2024"},
        {"from": "2024-03-02", "to": "2024-03-01"},
    ):
        assert_error(client.get("/v1/usage", params=params), 400, "invalid_query")


def _feed(client: httpx.Client, after: int = 0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        page = ok(client.get("/v1/events", params={"after": after, "limit": 1000}), 200)
        if not page["events"]:
            return events
        events.extend(page["events"])
        after = page["next_after"]


def _export(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    with client.stream("GET", "/v1/export", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert all(line.pop("tenant") == "default" for line in lines)
    return lines


def test_the_export_streams_json_lines_equal_to_the_feed(client: httpx.Client) -> None:
    last = _record_usage(client)
    feed = _feed(client)
    assert feed[-1]["position"] == last
    assert _export(client) == feed
    assert _export(client, after=3) == feed[3:]
    assert _export(client, after=2, limit=4) == feed[2:6]
    resumed = _export(client, after=_export(client, limit=5)[-1]["position"])
    assert resumed == feed[5:]
    assert _export(client, after=last) == []
    assert_error(client.get("/v1/export", params={"after": "x"}), 400, "invalid_query")


def test_an_exported_log_imports_into_a_fresh_store_with_the_same_hashes(
    client: httpx.Client, launcher: ServerLauncher, tmp_path: Path, database_url: str
) -> None:
    _record_usage(client)
    out = tmp_path / "log.jsonl"
    exported = run_ledger(
        "export", "--out", str(out), "--database-url", database_url, workdir=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    assert "continue with --after" in exported.stdout

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    imported = run_ledger("import", "--in", str(out), "--database-url", fresh, workdir=tmp_path)
    assert imported.returncode == 0, imported.stderr
    verified = run_ledger("verify", "--database-url", fresh, workdir=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    copy = launcher.start(fresh)
    with httpx.Client(base_url=copy.base_url, timeout=30.0) as other:
        assert _feed(other) == _feed(client)
        last = _feed(other)[-1]["position"]
        assert _usage_report(other, group_by="thread", min_position=last) == _usage_report(
            client, group_by="thread", min_position=last
        )

    lines = out.read_bytes().splitlines()
    tampered = orjson.loads(lines[-1])
    tampered["data"]["input_tokens"] = 999
    lines[-1] = orjson.dumps(tampered)
    out.write_bytes(b"\n".join(lines) + b"\n")
    again = f"sqlite:///{tmp_path / 'again.db'}"
    refused = run_ledger("import", "--in", str(out), "--database-url", again, workdir=tmp_path)
    assert refused.returncode == 1
    assert f"import refused at line {len(lines)}" in refused.stderr
    assert "nothing was imported" in refused.stderr


def test_cost_totals_are_the_decimal_sums_of_the_recorded_costs(client: httpx.Client) -> None:
    # as doubles, 0.1 + 0.2 is 0.30000000000000004 and 0.1 + 0.2 + 0.7 is 0.9999999999999999
    _thread_with_turns(client, "thr_c", "t1", "t2", "t3")
    late = {"input_tokens": 1, "output_tokens": 1, "model": "m-c", "after_the_fact": True}
    for turn_id, cost in (("t1", 0.1), ("t2", 0.2)):
        last = _usage(client, "thr_c", turn_id, {**late, "cost_usd": cost})
    assert ok(client.get("/v1/threads/thr_c"), 200)["usage"]["cost_usd"] == 0.3
    listed = ok(client.get("/v1/threads", params={"min_position": last}), 200)["items"]
    assert [t["cost_usd"] for t in listed if t["thread_id"] == "thr_c"] == [0.3]
    by_thread = _usage_report(client, group_by="thread", min_position=last)
    assert [(g.key, g.cost_usd) for g in by_thread.items] == [("thr_c", 0.3)]
    last = _usage(client, "thr_c", "t3", {**late, "cost_usd": 0.7})
    by_model = _usage_report(client, group_by="model", min_position=last)
    assert [(g.key, g.cost_usd) for g in by_model.items] == [("m-c", 1.0)]

    start_run(client, "run_c", {"id": "wf", "nodes": [task(n) for n in "abc"], "edges": []})
    for dispatch, cost in zip(claim(client, "w", limit=3), (0.1, 0.2, 0.7), strict=True):
        result = {
            "dispatch_id": dispatch["dispatch_id"],
            "status": "succeeded",
            "usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": cost},
        }
        path = f"/v1/runs/run_c/nodes/{dispatch['node_id']}/result"
        ok(client.post(path, json=result), 200)
    assert ok(client.get("/v1/runs/run_c"), 200)["usage"]["cost_usd"] == 1.0
