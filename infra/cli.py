"""The ``ledger`` command: ``serve``, ``migrate``, ``verify``, ``projections``, ``recover``,
``tokens``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

import orjson
import psycopg

from commands.ports import ReadModelBehind
from infra.auth import SCOPES, new_token, startup_problem, startup_warnings, valid_tenant
from infra.bootstrap import Ledger, all_projections
from infra.commit_listener import CommitListener
from infra.config import ConfigError, Settings, is_loopback
from infra.export_cli import EXPORT_COMMANDS, add_export_parsers, run_export_command
from infra.gc_tuning import tune_for_service
from infra.policies import Recovery
from infra.projection_runner import ProjectionFailed, ProjectionRunner, ProjectionService
from infra.store.backend import Backend
from infra.store.errors import StoreUnavailable
from infra.store.eventstore import open_backend
from infra.store.postgres import PostgresBackend
from infra.store.verify import verify_store
from infra.token_store import TokenNotFound, TokenStore

log = logging.getLogger("ledger")


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
    projections.add_argument(
        "--force", action="store_true", help="switch to the rebuilt tables even if they differ"
    )
    project = sub.add_parser("project", help="run the projection runners only (no HTTP)")
    project.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")
    projections.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")
    for name, text in (
        ("migrate", "create or upgrade the schema"),
        ("verify", "check every hash chain and that positions are contiguous"),
        ("recover", "run the lease-expiry policy once now (no start-up grace)"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")
    _add_token_parsers(sub)
    add_export_parsers(sub)
    return parser


def _add_token_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a token and print it (shown only once)")
    create.add_argument("--tenant", required=True, help="the tenant the token acts for")
    create.add_argument("--scope", choices=SCOPES, default="write", help="default: write")
    listing = actions.add_parser("list", help="every token's id, tenant, scope (no secrets)")
    revoke = actions.add_parser("revoke", help="refuse a token from now on (within seconds)")
    revoke.add_argument("token", metavar="ID", help="the token, its hash, or a hash prefix")
    for action in (create, listing, revoke):
        action.add_argument("--database-url", help="sqlite:///PATH or postgresql://…")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":  # serve tunes once its app is built, to freeze that too
        tune_for_service()
    if args.command in EXPORT_COMMANDS:
        return run_export_command(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.from_env().with_overrides(database_url=args.database_url)
        if args.command == "serve":
            return _serve(settings.with_overrides(host=args.host, port=args.port))
        if args.command == "recover":
            return asyncio.run(_recover(settings))
        backend = open_backend(settings.database_url)
        backend.migrate()
        if args.command == "migrate":
            print(f"schema is current on {settings.database_url}")
            return 0
        if args.command == "projections":
            return _projections(backend, args.action, args.name, args.force)
        if args.command == "tokens":
            return _tokens(backend, args)
        if args.command == "project":
            return _project(backend)
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


def _projections(backend: Backend, action: str, name: str | None, force: bool) -> int:
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
        report = runners[name].rebuild(force=force)
        print(report.describe())
        return 0 if report.switched else 1
    except ProjectionFailed as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 1
    finally:
        backend.close()


async def _recover(settings: Settings) -> int:
    """One pass of every policy; prints what each did (a second run finds nothing to do)."""
    ledger = Ledger(settings)
    await ledger.start(policies=False)
    try:
        recoveries = await ledger.policies.run_now()
    except ReadModelBehind as error:
        print(f"ledger: {error}; try again", file=sys.stderr)
        return 1
    except psycopg.errors.LockNotAvailable:
        print("ledger: another Ledger instance is running the policies; try again", file=sys.stderr)
        return 1
    finally:
        await ledger.stop()
    for recovery in recoveries:
        print(recovery.describe())
    executors = sum(1 for r in recoveries if isinstance(r, Recovery))
    print(f"recovered {executors} executor(s) with expired leases")
    print(f"applied {len(recoveries) - executors} run policy action(s)")
    return 0


def _project(backend: Backend) -> int:
    """Run every projection runner until SIGTERM or SIGINT (one active per projection)."""
    service = ProjectionService(backend, [ProjectionRunner(backend, p) for p in all_projections()])
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # On PostgreSQL each commit wakes the runners (else they find it at their next poll).
    listener = (
        CommitListener(backend.url, service.wake) if isinstance(backend, PostgresBackend) else None
    )
    service.start()
    if listener is not None:
        listener.start()
    print("projecting; stop with SIGTERM", flush=True)
    stopping.wait()
    if listener is not None:
        listener.stop()
    service.stop()
    backend.close()
    return 0


def _tokens(backend: Backend, args: argparse.Namespace) -> int:
    store = TokenStore(backend)
    try:
        if args.action == "create":
            if not valid_tenant(args.tenant):
                print(
                    "ledger: a tenant is 1-128 characters: letters, digits and . _ : - (not first)",
                    file=sys.stderr,
                )
                return 2
            token = new_token()
            record = store.create(token, args.tenant, args.scope)
            print(token)
            print(
                f"token {record.token_id} for tenant {record.tenant}, scope {record.scope}:"
                " keep it now, it is not shown again",
                file=sys.stderr,
            )
        elif args.action == "list":
            for record in store.all():
                print(orjson.dumps(record.as_dict()).decode())
        else:
            record = store.revoke(args.token)
            print(f"revoked token {record.token_id} of tenant {record.tenant}")
        return 0
    except TokenNotFound as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 1
    finally:
        backend.close()


def _auth_gate(settings: Settings) -> str | None:
    """Why serving must not start (None: it may), after logging any loud warning."""
    loopback = is_loopback(settings.host)
    active = 0
    if settings.auth_enabled:
        backend = open_backend(settings.database_url)
        try:
            backend.migrate()
            active = TokenStore(backend).active_count()
        finally:
            backend.close()
    for warning in startup_warnings(
        auth_enabled=settings.auth_enabled, loopback=loopback, active_tokens=active
    ):
        log.warning("*** %s ***", warning)
    return startup_problem(
        auth_enabled=settings.auth_enabled, loopback=loopback, active_tokens=active
    )


def _http_protocol() -> Any:
    """uvicorn's httptools protocol sending each response in one write, if httptools is
    installed (it is a dependency; without it uvicorn picks its own)."""
    try:
        from infra.http.coalescing import CoalescingHttpToolsProtocol
    except ImportError:
        return "auto"
    return CoalescingHttpToolsProtocol


def _serve(settings: Settings) -> int:
    import uvicorn

    from infra.http.app import create_app

    problem = _auth_gate(settings)
    if problem is not None:
        print(f"ledger: {problem}", file=sys.stderr)
        return 2
    app = create_app(settings)
    ledger = app.state.ledger
    tune_for_service()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=_http_protocol(),
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=max(1, settings.shutdown_grace_ms // 1000),
        timeout_keep_alive=settings.keep_alive_ms / 1000,  # type: ignore[arg-type]
    )

    class Server(uvicorn.Server):
        """Tells live tails to finish as soon as a graceful stop begins."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon_threadsafe(ledger.begin_closing)
            super().handle_exit(sig, frame)

    Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
