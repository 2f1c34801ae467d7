"""Settings from the environment: defaults, overrides, and loud failures naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import ConfigError, Settings


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.database_url == "sqlite:///ledger.db"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.workspace == Path(".")
    assert settings.max_body_bytes == 1_048_576
    assert settings.policy_interval_ms == 1000
    assert settings.executor_lease_ms == 30_000
    assert settings.ack_timeout_ms == 30_000
    assert settings.worker_launch_timeout_ms == 60_000
    assert settings.stale_run_after_ms == 600_000
    assert settings.stale_gate_after_ms == 86_400_000
    assert settings.auto_resume_window_ms == 1_200_000
    assert settings.auto_resume_max == 2
    assert settings.auto_resume is True


def test_empty_values_fall_back_to_the_defaults() -> None:
    settings = Settings.from_env(
        {"LEDGER_PORT": "", "LEDGER_HOST": "", "LEDGER_DATABASE_URL": "", "LEDGER_WORKSPACE": ""}
    )

    assert settings == Settings()


def test_the_environment_overrides_the_defaults() -> None:
    settings = Settings.from_env(
        {
            "LEDGER_DATABASE_URL": "postgresql://u@db/ledger",
            "LEDGER_HOST": "0.0.0.0",
            "LEDGER_PORT": "9090",
            "LEDGER_WORKSPACE": "/srv/work",
            "LEDGER_MAX_BODY_BYTES": "2048",
            "LEDGER_MAX_PAGE_SIZE": "50",
            "LEDGER_POLICY_INTERVAL_MS": "250",
            "LEDGER_EXECUTOR_LEASE_MS": "5000",
            "LEDGER_ACK_TIMEOUT_MS": "6000",
            "LEDGER_WORKER_LAUNCH_TIMEOUT_MS": "7000",
            "LEDGER_STALE_RUN_AFTER_MS": "8000",
            "LEDGER_STALE_GATE_AFTER_MS": "9000",
            "LEDGER_AUTO_RESUME_WINDOW_MS": "10000",
            "LEDGER_AUTO_RESUME_MAX": "0",
            "LEDGER_AUTO_RESUME": "off",
        }
    )

    assert settings == Settings(
        database_url="postgresql://u@db/ledger",
        host="0.0.0.0",
        port=9090,
        workspace=Path("/srv/work"),
        max_body_bytes=2048,
        max_page_size=50,
        policy_interval_ms=250,
        executor_lease_ms=5000,
        ack_timeout_ms=6000,
        worker_launch_timeout_ms=7000,
        stale_run_after_ms=8000,
        stale_gate_after_ms=9000,
        auto_resume_window_ms=10000,
        auto_resume_max=0,
        auto_resume=False,
    )


def test_from_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_PORT", "8181")
    monkeypatch.setenv("LEDGER_HOST", "::1")

    settings = Settings.from_env()

    assert (settings.port, settings.host) == (8181, "::1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("on", True), ("ON", True), ("true", True), ("1", True), (" off ", False), ("0", False)],
)
def test_auto_resume_switch(raw: str, expected: bool) -> None:
    assert Settings.from_env({"LEDGER_AUTO_RESUME": raw}).auto_resume is expected


def test_an_unknown_auto_resume_value_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_AUTO_RESUME"):
        Settings.from_env({"LEDGER_AUTO_RESUME": "maybe"})


@pytest.mark.parametrize("raw", ["eighty", "80.5", "8080x", "0x50"])
def test_a_non_integer_port_fails_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="LEDGER_PORT") as failure:
        Settings.from_env({"LEDGER_PORT": raw})

    assert repr(raw) in str(failure.value)


def test_a_non_integer_duration_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_ACK_TIMEOUT_MS"):
        Settings.from_env({"LEDGER_ACK_TIMEOUT_MS": "30s"})


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LEDGER_PORT", "-1"),
        ("LEDGER_POLICY_INTERVAL_MS", "0"),
        ("LEDGER_MAX_BODY_BYTES", "0"),
        ("LEDGER_AUTO_RESUME_MAX", "-3"),
        ("LEDGER_KEEP_ALIVE_MS", "0"),
    ],
)
def test_a_value_below_its_minimum_fails_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_overrides_replace_only_the_fields_given() -> None:
    base = Settings.from_env({"LEDGER_PORT": "9000"})

    changed = base.with_overrides(host="10.0.0.1", port=None)

    assert changed.host == "10.0.0.1"
    assert changed.port == 9000
    assert base.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("env", "projections"),
    [({}, True), ({"LEDGER_PROJECTIONS": "on"}, True), ({"LEDGER_PROJECTIONS": "off"}, False)],
)
def test_the_server_runs_the_projections_unless_told_to_leave_them(
    env: dict[str, str], projections: bool
) -> None:
    assert Settings.from_env(env).projections is projections


def test_an_unknown_projections_value_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_PROJECTIONS"):
        Settings.from_env({"LEDGER_PROJECTIONS": "elsewhere"})
