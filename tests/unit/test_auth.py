"""API tokens and scopes: token format and hashing, who may do what, the auth switch's default,
the lookup cache, and when ``ledger serve`` refuses to start."""

from __future__ import annotations

import hashlib

import pytest

from infra.auth import (
    LOCAL_ADMIN,
    SCOPES,
    Principal,
    Scope,
    TokenResolver,
    bearer_token,
    hash_token,
    looks_like_token,
    new_token,
    required_scope,
    startup_problem,
    startup_warnings,
    valid_tenant,
)
from infra.config import ConfigError, Settings, is_loopback


def test_a_new_token_is_prefixed_random_and_well_formed() -> None:
    tokens = {new_token() for _ in range(50)}

    assert len(tokens) == 50
    for token in tokens:
        assert token.startswith("ldg_")
        assert len(token) == 4 + 43  # 32 bytes, URL-safe base64 without padding
        assert looks_like_token(token)


def test_only_the_sha256_of_a_token_is_kept() -> None:
    token = "ldg_" + "A" * 43

    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert hash_token(token) == hash_token(token)
    assert hash_token(token) != hash_token(token[:-1] + "B")
    assert token not in hash_token(token)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ldg_",
        "ldg_short",
        "xyz_" + "A" * 43,
        "ldg_" + "A" * 42,
        "ldg_" + "A" * 44,
        "ldg_" + "*" * 43,
    ],
)
def test_malformed_tokens_are_not_tokens(raw: str) -> None:
    assert not looks_like_token(raw)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer", None),
        ("Bearer ", None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/openapi.json", None),
        ("GET", "/metrics", "admin"),
        ("GET", "/v1/projections", "admin"),
        ("GET", "/v1/threads/thr_1", "read"),
        ("HEAD", "/v1/threads/thr_1", "read"),
        ("GET", "/v1/threads/thr_1/stream", "read"),
        ("GET", "/v1/events", "read"),
        ("GET", "/v1/export", "read"),
        ("GET", "/v1/usage", "read"),
        ("GET", "/v1/streams/thr_1/verify", "read"),
        ("POST", "/v1/threads", "write"),
        ("POST", "/v1/threads/thr_1/turns", "write"),
        ("POST", "/v1/executors/rt-1/heartbeat", "write"),
        ("DELETE", "/v1/threads/thr_1", "write"),
        ("GET", "/no/such/endpoint", "read"),
    ],
)
def test_each_request_needs_a_scope(method: str, path: str, needed: Scope | None) -> None:
    assert required_scope(method, path) == needed


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ("read", {"read"}),
        ("write", {"read", "write"}),
        ("admin", {"read", "write", "admin"}),
    ],
)
def test_scopes_nest(granted: Scope, allowed: set[str]) -> None:
    principal = Principal("acme", granted)

    assert {s for s in SCOPES if principal.may(s)} == allowed


def test_with_auth_off_every_caller_is_the_default_tenants_admin() -> None:
    assert Principal("default", "admin") == LOCAL_ADMIN


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("ledger.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"LEDGER_HOST": "localhost"}, False),
        ({"LEDGER_HOST": "::1"}, False),
        ({"LEDGER_HOST": "0.0.0.0"}, True),
        ({"LEDGER_HOST": "192.168.1.5"}, True),
        ({"LEDGER_AUTH": "on"}, True),
        ({"LEDGER_AUTH": "off", "LEDGER_HOST": "0.0.0.0"}, False),
        ({"LEDGER_AUTH": "", "LEDGER_HOST": "0.0.0.0"}, True),
        ({"LEDGER_AUTH": " OFF "}, False),
    ],
)
def test_auth_is_off_by_default_only_on_a_loopback_host(env: dict[str, str], enabled: bool) -> None:
    assert Settings.from_env(env).auth_enabled is enabled


def test_the_host_given_on_the_command_line_decides_the_auth_default() -> None:
    settings = Settings.from_env({})

    assert settings.with_overrides(host="0.0.0.0").auth_enabled is True
    assert settings.with_overrides(host="127.0.0.1").auth_enabled is False


def test_an_unknown_auth_value_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_AUTH"):
        Settings.from_env({"LEDGER_AUTH": "sometimes"})


def test_the_token_cache_time_is_configurable() -> None:
    assert Settings.from_env({}).auth_cache_ms == 5000
    assert Settings.from_env({"LEDGER_AUTH_CACHE_MS": "250"}).auth_cache_ms == 250


@pytest.mark.parametrize("tenant", ["acme", "a", "team-1.prod:eu", "A_b"])
def test_valid_tenants(tenant: str) -> None:
    assert valid_tenant(tenant)


@pytest.mark.parametrize("tenant", ["", "-acme", "a b", "a/b", "x" * 129, "é"])
def test_invalid_tenants(tenant: str) -> None:
    assert not valid_tenant(tenant)


class FakeTokens:
    def __init__(self) -> None:
        self.active: dict[str, Principal] = {}
        self.lookups = 0

    async def __call__(self, token_hash: str) -> Principal | None:
        self.lookups += 1
        return self.active.get(token_hash)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_resolved_token_is_remembered_until_the_cache_time_passes() -> None:
    tokens, clock = FakeTokens(), Clock()
    token = new_token()
    tokens.active[hash_token(token)] = Principal("acme", "write")
    resolver = TokenResolver(tokens, ttl=5.0, clock=clock)

    assert await resolver.resolve(token) == Principal("acme", "write")
    del tokens.active[hash_token(token)]  # revoked
    clock.now += 4.9
    assert await resolver.resolve(token) == Principal("acme", "write")
    assert tokens.lookups == 1
    clock.now += 0.2
    assert await resolver.resolve(token) is None
    assert tokens.lookups == 2


async def test_an_unknown_token_is_remembered_too_and_a_malformed_one_never_looked_up() -> None:
    tokens, clock = FakeTokens(), Clock()
    resolver = TokenResolver(tokens, ttl=5.0, clock=clock)

    assert await resolver.resolve("not-a-token") is None
    assert tokens.lookups == 0
    unknown = new_token()
    assert await resolver.resolve(unknown) is None
    assert await resolver.resolve(unknown) is None
    assert tokens.lookups == 1


async def test_a_zero_cache_time_looks_up_every_request() -> None:
    tokens = FakeTokens()
    resolver = TokenResolver(tokens, ttl=0, clock=Clock())
    token = new_token()

    await resolver.resolve(token)
    await resolver.resolve(token)

    assert tokens.lookups == 2


async def test_the_cache_stays_bounded() -> None:
    tokens, clock = FakeTokens(), Clock()
    resolver = TokenResolver(tokens, ttl=5.0, clock=clock)
    resolver.MAX_ENTRIES = 10

    for _ in range(25):
        await resolver.resolve(new_token())

    assert len(resolver._cache) <= 10


def test_serving_on_a_public_interface_with_auth_on_and_no_token_is_refused() -> None:
    problem = startup_problem(auth_enabled=True, loopback=False, active_tokens=0)

    assert problem is not None
    assert "no active API token" in problem
    assert "ledger tokens create" in problem
    assert "LEDGER_AUTH=off" in problem


@pytest.mark.parametrize(
    ("auth_enabled", "loopback", "active_tokens"),
    [(True, False, 1), (True, True, 0), (False, False, 0), (False, True, 0)],
)
def test_other_combinations_may_serve(
    auth_enabled: bool, loopback: bool, active_tokens: int
) -> None:
    assert (
        startup_problem(auth_enabled=auth_enabled, loopback=loopback, active_tokens=active_tokens)
        is None
    )


def test_auth_off_on_a_public_interface_warns_loudly() -> None:
    warnings = startup_warnings(auth_enabled=False, loopback=False, active_tokens=0)

    assert len(warnings) == 1
    assert "AUTHENTICATION IS OFF" in warnings[0]


def test_auth_on_without_tokens_on_loopback_warns_that_everything_is_refused() -> None:
    warnings = startup_warnings(auth_enabled=True, loopback=True, active_tokens=0)

    assert len(warnings) == 1
    assert "ledger tokens create" in warnings[0]


@pytest.mark.parametrize(
    ("auth_enabled", "loopback", "active_tokens"),
    [(False, True, 0), (True, False, 2), (True, True, 1)],
)
def test_the_usual_setups_start_quietly(
    auth_enabled: bool, loopback: bool, active_tokens: int
) -> None:
    assert (
        startup_warnings(auth_enabled=auth_enabled, loopback=loopback, active_tokens=active_tokens)
        == []
    )
