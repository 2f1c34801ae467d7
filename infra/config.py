"""Settings, read once from the environment into a typed object that fails loudly."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ON = ("on", "true", "1")
OFF = ("off", "false", "0")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from error
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _switch(env: Mapping[str, str], name: str) -> bool | None:
    """``on``/``off`` (or true/false, 1/0); None when unset."""
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw not in ON + OFF:
        raise ConfigError(f"{name} must be on or off, got {raw!r}")
    return raw in ON


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything Ledger reads from its environment. Durations are milliseconds."""

    database_url: str = "sqlite:///ledger.db"
    host: str = "127.0.0.1"
    port: int = 8080
    workspace: Path = Path(".")
    max_body_bytes: int = 1_048_576
    max_page_size: int = 1000
    policy_interval_ms: int = 1000
    executor_lease_ms: int = 30_000
    ack_timeout_ms: int = 30_000
    worker_launch_timeout_ms: int = 60_000
    stale_run_after_ms: int = 600_000
    stale_gate_after_ms: int = 86_400_000
    auto_resume_window_ms: int = 1_200_000
    auto_resume_max: int = 2
    auto_resume: bool = True
    sse_heartbeat_ms: int = 15_000
    sse_max_lag: int = 10_000
    shutdown_grace_ms: int = 5_000
    keep_alive_ms: int = 75_000
    """``LEDGER_KEEP_ALIVE_MS``: how long an idle client connection is kept open. Longer
    than clients keep theirs (httpx 5 s, load balancers about 60 s), so the client closes
    an idle connection first: a server closing it as a request arrives resets it, and the
    client sees a failed request it cannot safely retry (uvicorn's default, 5 s, is
    httpx's own)."""
    snapshot_every: int = 100
    idempotency_ttl_ms: int = 86_400_000
    auth: bool | None = None
    """``LEDGER_AUTH``; None (unset) means: on unless bound to a loopback address."""
    auth_cache_ms: int = 5_000
    projections: bool = True
    """``LEDGER_PROJECTIONS``: whether ``ledger serve`` runs the projections itself; off
    leaves them to a ``ledger project`` process (the command path then has the core)."""

    @property
    def auth_enabled(self) -> bool:
        """Whether requests must carry an API token (``LEDGER_AUTH``, else by the bind host)."""
        return self.auth if self.auth is not None else not is_loopback(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        auto_resume = _switch(env, "LEDGER_AUTO_RESUME")
        projections = _switch(env, "LEDGER_PROJECTIONS")
        return cls(
            database_url=env.get("LEDGER_DATABASE_URL") or defaults.database_url,
            host=env.get("LEDGER_HOST") or defaults.host,
            port=_int(env, "LEDGER_PORT", defaults.port, minimum=0, maximum=65535),
            workspace=Path(env.get("LEDGER_WORKSPACE") or "."),
            max_body_bytes=_int(env, "LEDGER_MAX_BODY_BYTES", defaults.max_body_bytes, 1),
            max_page_size=_int(env, "LEDGER_MAX_PAGE_SIZE", defaults.max_page_size, 1),
            policy_interval_ms=_int(
                env, "LEDGER_POLICY_INTERVAL_MS", defaults.policy_interval_ms, 1
            ),
            executor_lease_ms=_int(env, "LEDGER_EXECUTOR_LEASE_MS", defaults.executor_lease_ms, 1),
            ack_timeout_ms=_int(env, "LEDGER_ACK_TIMEOUT_MS", defaults.ack_timeout_ms, 1),
            worker_launch_timeout_ms=_int(
                env, "LEDGER_WORKER_LAUNCH_TIMEOUT_MS", defaults.worker_launch_timeout_ms, 1
            ),
            stale_run_after_ms=_int(
                env, "LEDGER_STALE_RUN_AFTER_MS", defaults.stale_run_after_ms, 1
            ),
            stale_gate_after_ms=_int(
                env, "LEDGER_STALE_GATE_AFTER_MS", defaults.stale_gate_after_ms, 1
            ),
            auto_resume_window_ms=_int(
                env, "LEDGER_AUTO_RESUME_WINDOW_MS", defaults.auto_resume_window_ms, 1
            ),
            auto_resume_max=_int(env, "LEDGER_AUTO_RESUME_MAX", defaults.auto_resume_max, 0),
            auto_resume=auto_resume is not False,
            sse_heartbeat_ms=_int(env, "LEDGER_SSE_HEARTBEAT_MS", defaults.sse_heartbeat_ms, 1),
            sse_max_lag=_int(env, "LEDGER_SSE_MAX_LAG", defaults.sse_max_lag, 1),
            shutdown_grace_ms=_int(env, "LEDGER_SHUTDOWN_GRACE_MS", defaults.shutdown_grace_ms, 0),
            keep_alive_ms=_int(env, "LEDGER_KEEP_ALIVE_MS", defaults.keep_alive_ms, 1),
            snapshot_every=_int(env, "LEDGER_SNAPSHOT_EVERY", defaults.snapshot_every, 0),
            idempotency_ttl_ms=_int(
                env, "LEDGER_IDEMPOTENCY_TTL_MS", defaults.idempotency_ttl_ms, 1
            ),
            auth=_switch(env, "LEDGER_AUTH"),
            auth_cache_ms=_int(env, "LEDGER_AUTH_CACHE_MS", defaults.auth_cache_ms, 0),
            projections=projections is not False,
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced (command-line flags win over the environment)."""
        present = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **present)  # type: ignore[arg-type]
