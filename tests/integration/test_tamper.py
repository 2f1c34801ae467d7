"""Tamper evidence: edits made behind Ledger's back (a superuser disabling the triggers)
are found by ``ledger verify``, which names the stream and seq."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from infra.store.records import IdempotencyKey
from infra.store.verify import verify_store
from tests.integration.store_helpers import event, migrated, opened_store


async def _history(url: str) -> None:
    """Three streams of three events; the last append carried an idempotency key."""
    store = await opened_store(url)
    try:
        for stream in ("thr_1", "thr_2", "thr_3"):
            for version in range(3):
                key = IdempotencyKey(f"{stream}-{version}", "f")
                await store.append("default", "thread", stream, version, [event(n=version)], key)
    finally:
        await store.close()


def _tamper(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        try:
            conn.execute(statement)
        finally:
            conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


def _ledger_verify(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "verify", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_an_untouched_store_verifies(pg_url: str) -> None:
    await _history(pg_url)
    result = _ledger_verify(pg_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 9 events in 3 streams, positions 1..9" in result.stdout


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "UPDATE events SET data = convert_to('{\"n\":99}', 'UTF8')"
            " WHERE stream_id = 'thr_2' AND seq = 2",
            "stream thr_2 seq 2: hash does not match",
        ),
        (
            "DELETE FROM events WHERE stream_id = 'thr_2' AND seq = 2",
            "stream thr_2 seq 3: follows seq 1",
        ),
        (
            "UPDATE events SET recorded_at = recorded_at + interval '1 second'"
            " WHERE stream_id = 'thr_1' AND seq = 1",
            "stream thr_1 seq 1: hash does not match",
        ),
        (
            "DELETE FROM events WHERE stream_id = 'thr_3' AND seq = 3",
            "stream thr_3 seq 3: acknowledged at position 9, but the log ends at 8",
        ),
        (
            "UPDATE events SET seq = 100 WHERE stream_id = 'thr_2' AND seq = 2;"
            " UPDATE events SET seq = 2 WHERE stream_id = 'thr_2' AND seq = 3;"
            " UPDATE events SET seq = 3 WHERE stream_id = 'thr_2' AND seq = 100",
            "stream thr_2 seq 3: follows seq 1",
        ),
    ],
    ids=["edited", "deleted", "re-dated", "deleted-last-of-the-store", "reordered"],
)
async def test_verify_names_the_stream_and_seq_of_a_tampered_event(
    pg_url: str, statement: str, expected: str
) -> None:
    await _history(pg_url)
    _tamper(pg_url, statement)
    backend = migrated(pg_url)
    try:
        report = verify_store(backend)
    finally:
        backend.close()
    assert not report.ok
    assert any(expected in problem for problem in report.problems), report.problems
    result = _ledger_verify(pg_url)
    assert result.returncode == 1
    assert expected in result.stdout
