"""Concurrent commands on one thread: the service decides each again on a version conflict."""

from __future__ import annotations

import asyncio

import httpx

from tests.e2e.conftest import LedgerServer
from tests.e2e.helpers import all_events, assert_chain, thread_view

CONCURRENT_ITEMS = 20


async def _add_items_at_once(base_url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENT_ITEMS)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        (await client.post("/v1/threads", json={"thread_id": "thr_busy"})).raise_for_status()
        (await client.post("/v1/threads/thr_busy/turns", json={"turn_id": "t1"})).raise_for_status()
        tools = ["exec_shell", "apply_patch", "web_search", None]
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        "/v1/threads/thr_busy/turns/t1/items",
                        json={"item_id": f"i{n:02d}", "tool_name": tools[n % 4]}
                        if tools[n % 4]
                        else {"item_id": f"i{n:02d}", "kind": "message"},
                    )
                    for n in range(CONCURRENT_ITEMS)
                )
            )
        )


def test_twenty_concurrent_items_on_one_turn_all_land_with_contiguous_seqs(
    ledger_server: LedgerServer,
) -> None:
    answers = asyncio.run(_add_items_at_once(ledger_server.base_url))
    accepted = [a.json() for a in answers if a.status_code == 201]
    refused = [f"{a.status_code} {a.text}" for a in answers if a.status_code != 201]

    with httpx.Client(base_url=ledger_server.base_url, timeout=30.0) as client:
        events = all_events(client, "thr_busy")
        items = thread_view(client, "thr_busy")["turns"][0]["items"]
    # whatever was refused appended nothing, and what was accepted is where it was acknowledged
    assert_chain(events, "thr_busy")
    assert len(events) == 2 + len(accepted)
    assert [e["position"] for e in events] == [e["seq"] for e in events]  # one stream
    by_seq = {e["seq"]: e for e in events}
    for body in accepted:
        event = by_seq[body["seq"]]
        assert event["type"] == "ItemAdded"
        assert event["data"]["item_id"] == body["item_id"]
        assert event["position"] == body["position"]
    assert [i["item_id"] for i in items] == [
        by_seq[s]["data"]["item_id"] for s in range(3, len(events) + 1)
    ]

    assert not refused, f"{len(refused)} of {CONCURRENT_ITEMS} concurrent items refused: {refused}"
    assert sorted(b["seq"] for b in accepted) == list(range(3, 3 + CONCURRENT_ITEMS))
    assert sorted(i["item_id"] for i in items) == [f"i{n:02d}" for n in range(CONCURRENT_ITEMS)]
