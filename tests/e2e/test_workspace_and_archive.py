"""Changing a thread's workspace and archiving it over HTTP, on both backends.

The server's LEDGER_WORKSPACE is ``<tmp>/workspace`` (see ``server_env``); the tests add
directories, a file and an escaping symlink to it while the server runs.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from infra.http.schemas import ThreadArchivedResponse, WorkspaceChangedResponse
from tests.e2e.conftest import LedgerServer
from tests.e2e.helpers import appends_nothing, assert_error, exactly, ok, thread_view

THREAD = "/v1/threads/thr_ws"


@pytest.fixture
def workspace_root(ledger_server: LedgerServer) -> Path:
    """The server's workspace root, with proj/a (made by the fixture), proj/b, a file and a
    symlink that points outside the root."""
    root = (ledger_server.stderr_path.parent / "workspace").resolve()
    (root / "proj" / "b").mkdir(parents=True)
    (root / "notes.txt").write_text("not a directory")
    outside = root.parent / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    return root


def move(client: httpx.Client, workspace: str) -> httpx.Response:
    return client.post(f"{THREAD}/workspace", json={"workspace": workspace})


def test_the_workspace_changes_only_to_a_directory_inside_the_root_and_not_mid_turn(
    client: httpx.Client, workspace_root: Path
) -> None:
    ok(client.post("/v1/threads", json={"thread_id": "thr_ws", "workspace": "proj/a"}), 201)

    moved = ok(move(client, " proj/b "), 200)
    exactly(WorkspaceChangedResponse, moved)
    assert moved["seq"] == 2
    assert moved["workspace"] == str(workspace_root / "proj" / "b")
    assert moved["previous_workspace"] == str(workspace_root / "proj" / "a")
    assert thread_view(client, "thr_ws")["workspace"] == str(workspace_root / "proj" / "b")

    with appends_nothing(client, "thr_ws"):
        reasons = {
            raw: assert_error(move(client, raw), 422)["message"]
            for raw in (
                "proj/missing",
                "notes.txt",
                "../outside",
                str(workspace_root.parent),
                "escape",
            )
        }
        assert_error(move(client, "proj/b"), 409)  # already there
        assert_error(client.post(f"{THREAD}/workspace", json={}), 422)
        assert_error(client.post(f"{THREAD}/workspace", json={"workspace": 3}), 422)
        assert_error(client.post("/v1/threads/thr_none/workspace", json={"workspace": ""}), 404)
    assert "does not exist" in reasons["proj/missing"]
    assert "not a directory" in reasons["notes.txt"]
    assert "outside the workspace root" in reasons["../outside"]
    assert "outside the workspace root" in reasons[str(workspace_root.parent)]
    assert "outside the workspace root" in reasons["escape"]  # the link is resolved first

    ok(client.post(f"{THREAD}/turns", json={"turn_id": "t1"}), 201)
    with appends_nothing(client, "thr_ws"):
        busy = assert_error(move(client, "proj/a"), 409)
    assert busy["message"] == (
        "thread has an active turn; finish or interrupt before rebinding workspace"
    )
    ok(client.post(f"{THREAD}/turns/t1/complete", json={}), 200)

    back = ok(move(client, "."), 200)
    assert back["workspace"] == str(workspace_root)


def test_an_archived_thread_takes_no_new_turn(client: httpx.Client, workspace_root: Path) -> None:
    ok(client.post("/v1/threads", json={"thread_id": "thr_ws"}), 201)
    ok(client.post(f"{THREAD}/turns", json={"turn_id": "t1"}), 201)
    with appends_nothing(client, "thr_ws"):
        busy = assert_error(client.post(f"{THREAD}/archive", json={}), 409)
    assert "active turn t1" in busy["message"]
    ok(client.post(f"{THREAD}/turns/t1/complete", json={}), 200)

    archived = ok(client.post(f"{THREAD}/archive"), 200)  # no body at all is an empty one
    exactly(ThreadArchivedResponse, archived)
    assert (archived["status"], archived["seq"]) == ("archived", 4)
    view = thread_view(client, "thr_ws")
    assert (view["status"], view["active_turn_id"]) == ("archived", None)

    with appends_nothing(client, "thr_ws"):
        assert_error(client.post(f"{THREAD}/archive", json={}), 409)
        assert_error(client.post(f"{THREAD}/turns", json={"turn_id": "t2"}), 409)
        assert_error(move(client, "proj/b"), 409)
        assert_error(client.post(f"{THREAD}/archive", json={"reason": "x"}), 422)
        assert_error(client.post("/v1/threads/thr_none/archive", json={}), 404)
    # its history still reads back
    assert [t["turn_id"] for t in thread_view(client, "thr_ws")["turns"]] == ["t1"]
