"""``ledger export`` and ``ledger import``: the log as files for analytics, and back.

``ledger export --after P --format jsonl|parquet --out PATH`` writes every event
with position > P; the summary names the position to continue from.
``ledger import --in PATH`` appends a JSON lines export to a store, refusing it
(exit 1, nothing imported) when any event does not hash to its exported hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.config import ConfigError, Settings
from infra.log_export import PAGE, export_log
from infra.log_import import BATCH, ImportRefused, import_export
from infra.store.backend import Backend
from infra.store.errors import StoreUnavailable
from infra.store.eventstore import open_backend

EXPORT_COMMANDS = frozenset({"export", "import"})


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_export_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export`` and ``import`` to the ``ledger`` command's subcommands."""
    export = sub.add_parser("export", help="write every event after a position to a file")
    export.add_argument(
        "--after", type=_not_negative, default=0, help="last position already exported (0)"
    )
    export.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    export.add_argument("--out", required=True, help="file to write (jsonl: - for stdout)")
    export.add_argument(
        "--page-size", type=_positive, default=PAGE, help=f"events per page ({PAGE})"
    )
    export.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")
    load = sub.add_parser("import", help="append a JSON lines export, verifying every hash")
    load.add_argument("--in", dest="input", required=True, help="the export file (jsonl)")
    load.add_argument(
        "--batch-size", type=_positive, default=BATCH, help=f"events per commit ({BATCH})"
    )
    load.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")


def run_export_command(args: argparse.Namespace) -> int:
    """Run ``export`` or ``import``: 0 done, 1 import refused, 2 bad settings or no database."""
    try:
        settings = Settings.from_env().with_overrides(database_url=args.database_url)
        backend = open_backend(settings.database_url)
        try:
            backend.migrate()
            if args.command == "export":
                return _export(args, backend)
            return _import(args, backend)
        finally:
            backend.close()
    except ImportRefused as refused:
        print(f"ledger: {refused}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError, StoreUnavailable, OSError, ImportError) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace, backend: Backend) -> int:
    to_stdout = args.out == "-"
    summary = export_log(
        backend,
        None if to_stdout else Path(args.out),
        after=args.after,
        fmt=args.format,
        page_size=args.page_size,
        stdout=sys.stdout.buffer,
    )
    print(summary.describe(), file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _import(args: argparse.Namespace, backend: Backend) -> int:
    summary = import_export(backend, Path(args.input), batch=args.batch_size)
    print(summary.describe())
    return 0
