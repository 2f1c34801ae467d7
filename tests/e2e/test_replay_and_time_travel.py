"""Replay since a seq with paging, and the thread as it was after every seq."""

from __future__ import annotations

import itertools

import httpx

from tests.e2e.helpers import (
    all_events,
    assert_chain,
    assert_error,
    events_page,
    ok,
    scripted_thread,
)


def test_paging_events_two_at_a_time_reads_the_same_history_as_one_read(
    client: httpx.Client,
) -> None:
    steps = scripted_thread(client, "thr_replay")
    # a second stream interleaved, so positions of this thread are not simply its seqs
    client.post("/v1/threads", json={"thread_id": "thr_other"}).raise_for_status()
    client.post("/v1/threads/thr_replay/turns", json={"turn_id": "t4"}).raise_for_status()
    total = len(steps) + 1

    unpaged = events_page(client, "thr_replay", since_seq=0, limit=1000)
    assert unpaged["next_seq"] == total
    paged: list[dict[str, object]] = []
    since = 0
    pages = 0
    while True:
        page = events_page(client, "thr_replay", since_seq=since, limit=2)
        pages += 1
        if not page["events"]:
            assert page["next_seq"] == since  # nothing returned: next_seq is since_seq
            break
        assert len(page["events"]) <= 2
        assert page["events"][0]["seq"] == since + 1
        assert page["next_seq"] == page["events"][-1]["seq"]  # the last seq returned
        paged.extend(page["events"])
        since = page["next_seq"]
    assert pages == (total + 1) // 2 + 1
    assert paged == unpaged["events"]
    assert_chain(unpaged["events"], "thr_replay")
    assert [e["seq"] for e in paged] == list(range(1, total + 1))
    positions = [e["position"] for e in paged]
    assert all(a < b for a, b in itertools.pairwise(positions))
    assert positions[-1] == positions[-2] + 2  # thr_other's event sits in between


def test_replay_since_a_seq_returns_only_later_events(client: httpx.Client) -> None:
    scripted_thread(client, "thr_since")
    everything = all_events(client, "thr_since")
    for since in (0, 1, 5, len(everything) - 1, len(everything), len(everything) + 10):
        page = events_page(client, "thr_since", since_seq=since, limit=3)
        assert page["events"] == everything[since : since + 3]
        expected_next = page["events"][-1]["seq"] if page["events"] else since
        assert page["next_seq"] == expected_next


def test_the_thread_at_each_seq_is_the_thread_as_it_was_right_after_that_command(
    client: httpx.Client,
) -> None:
    steps = scripted_thread(client, "thr_tt")
    for step in steps:
        seq = step.body["seq"]
        assert ok(client.get(f"/v1/threads/thr_tt/at/{seq}"), 200) == step.view_after, seq
    last = len(steps)
    assert ok(client.get(f"/v1/threads/thr_tt/at/{last}"), 200) == ok(
        client.get("/v1/threads/thr_tt"), 200
    )


def test_time_travel_outside_the_history_is_not_found_and_a_bad_seq_is_a_bad_request(
    client: httpx.Client,
) -> None:
    steps = scripted_thread(client, "thr_edges")
    last = len(steps)
    assert_error(client.get("/v1/threads/thr_edges/at/0"), 404)
    assert_error(client.get(f"/v1/threads/thr_edges/at/{last + 1}"), 404)
    assert_error(client.get("/v1/threads/thr_missing/at/1"), 404)
    for bad in ("abc", "-1", "1.5", "99999999999999999999999"):
        assert_error(client.get(f"/v1/threads/thr_edges/at/{bad}"), 400)
    # time travel is a pure read: nothing was appended by any of it
    assert events_page(client, "thr_edges")["next_seq"] == last
