"""``<workspace>/.ledger/runs/<run_id>/status.json``: seed 002's status file, written atomically.

Writing files from a projection is deliberate: the file follows the log like
any read model, and a rebuild rewrites every file. The projection owns no
tables. Each run event folds the run and, when the run has a workspace (an
absolute path to an existing directory), writes the status document to a
temporary file in the run's directory, fsyncs it, renames it over
``status.json`` and fsyncs the directory, so a reader sees the old document or
the new one, never part of one.

Replays write nothing older over something newer: a file whose ``seq`` is past
the event's is left alone (a file at the same seq is rewritten, so a rebuild
refreshes it). An event that changes nothing but ``seq`` writes nothing. A
write that fails (a workspace made read-only, a full disk) is logged and
skipped: the file is a copy for people and tools in the workspace, while
``GET /v1/runs/{id}/status.json`` stays authoritative, and one bad workspace
must not hold back every other run's file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from domain.run import Run
from projections.base import ProjectedEvent, Session, Table
from projections.run_fold import RUN_STREAM, RunFolder

log = logging.getLogger(__name__)

STATUS_DIR = Path(".ledger") / "runs"
STATUS_FILE = "status.json"
Document = Callable[[Run], dict[str, Any]]


def status_path(workspace: str, run_id: str) -> Path:
    return Path(workspace) / STATUS_DIR / run_id / STATUS_FILE


def render(document: dict[str, Any]) -> bytes:
    """Pretty JSON (2-space indent, sorted keys), as the seed's ``to_string_pretty``."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` all at once (temp file, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def written_seq(path: Path) -> int | None:
    """The ``seq`` of the document at ``path``, or None when there is none readable."""
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) else None


class RunStatusFiles:
    name = "run_status_files"
    tables: tuple[Table, ...] = ()

    def __init__(self, document: Document, folder: RunFolder | None = None) -> None:
        self.document = document
        self.folder = folder or RunFolder()

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        if event.stream_type != RUN_STREAM:
            return
        folded = self.folder.fold(session, event)
        run = folded.run
        workspace = run.workspace
        if not workspace or not os.path.isabs(workspace) or not os.path.isdir(workspace):
            return
        if Path(run.id).name != run.id or run.id in (".", ".."):
            return  # not one path segment (ids are checked at creation; this never writes outside)
        document = self.document(run)
        unchanged = {**document, "seq": None}
        if folded.memo.get("document") == unchanged:
            return
        path = status_path(workspace, run.id)
        try:
            on_disk = written_seq(path)
            if on_disk is None or on_disk <= run.version:
                write_atomically(path, render(document))
        except OSError as error:
            log.warning("status.json of run %s not written to %s: %s", run.id, path, error)
            return
        folded.memo["document"] = unchanged
