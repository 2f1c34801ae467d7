"""The ``ledger`` command: ``serve``, ``migrate``, ``verify``."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from infra.bootstrap import all_projections
from infra.config import ConfigError, Settings
from infra.projection_runner import ProjectionFailed, ProjectionRunner
from infra.store.backend import Backend
from infra.store.errors import StoreUnavailable
from infra.store.eventstore import open_backend
from infra.store.verify import verify_store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="Ledger: agent and workflow history"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to bind (default LEDGER_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default LEDGER_PORT or 8080)")
    serve.add_argument("--database-url", help="sqlite:///PATH (default) or postgresql://…")
    projections = sub.add_parser("projections", help="read models: status, rebuild")
    projections.add_argument("action", choices=["status", "rebuild"])
    projections.add_argument("name", nargs="?", help="projection to rebuild (rebuild only)")
    projections.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")
    for name, text in (
        ("migrate", "create or upgrade the schema"),
        ("verify", "check every hash chain and that positions are contiguous"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.from_env().with_overrides(database_url=args.database_url)
        if args.command == "serve":
            return _serve(settings.with_overrides(host=args.host, port=args.port))
        backend = open_backend(settings.database_url)
        backend.migrate()
        if args.command == "migrate":
            print(f"schema is current on {settings.database_url}")
            return 0
        if args.command == "projections":
            return _projections(backend, args.action, args.name)
        report = verify_store(backend)
        backend.close()
        for problem in report.problems:
            print(problem)
        verdict = "ok" if report.ok else "BROKEN"
        print(
            f"{verdict}: {report.events} events in {report.streams} streams, "
            f"positions 1..{report.max_position}"
        )
        return 0 if report.ok else 1
    except (ConfigError, ValueError, StoreUnavailable) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2


def _projections(backend: Backend, action: str, name: str | None) -> int:
    runners = {p.name: ProjectionRunner(backend, p) for p in all_projections()}
    try:
        if action == "status":
            for runner in runners.values():
                runner.ensure_tables()
                print(orjson.dumps(runner.status().as_dict()).decode())
            return 0
        if name not in runners:
            known = ", ".join(sorted(runners))
            print(f"ledger: name a projection to rebuild: {known}", file=sys.stderr)
            return 2
        applied = runners[name].rebuild()
        print(f"rebuilt {name}: {applied} events applied")
        return 0
    except ProjectionFailed as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 1
    finally:
        backend.close()


def _serve(settings: Settings) -> int:
    import uvicorn

    from infra.http.app import create_app

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
