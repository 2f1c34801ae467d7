"""Usage: each turn's figures so far (a new report replaces the last), summed over the thread."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from commands.thread_commands import CompleteTurn, RecordUsage, StartThread, StartTurn
from commands.thread_handlers import ThreadHandlers
from domain.errors import LifecycleConflict, NotFound
from domain.thread import Usage
from tests.unit.fake_repository import InMemoryRepository, context, handlers_over


@pytest.fixture
def repository() -> InMemoryRepository:
    return InMemoryRepository()


@pytest.fixture
def handlers(repository: InMemoryRepository, tmp_path: Path) -> ThreadHandlers:
    return handlers_over(repository, tmp_path)


async def thread_with_turn(handlers: ThreadHandlers, turn_id: str = "t1") -> None:
    await handlers.start_thread(StartThread(thread_id="thr_1"), context())
    await handlers.start_turn("thr_1", StartTurn(turn_id=turn_id), context())


def usage(**fields: object) -> RecordUsage:
    return RecordUsage.model_validate({"input_tokens": 0, "output_tokens": 0, **fields})


async def test_a_second_report_replaces_the_turns_figures(
    handlers: ThreadHandlers, repository: InMemoryRepository
) -> None:
    await thread_with_turn(handlers)
    await handlers.record_usage(
        "thr_1",
        "t1",
        usage(input_tokens=10, output_tokens=5, reasoning_tokens=2, cost_usd=0.5, model="m1"),
        context(),
    )

    saved = await handlers.record_usage(
        "thr_1", "t1", usage(input_tokens=30, output_tokens=7, model="m2"), context()
    )

    assert saved.body["total_tokens"] == 37
    assert saved.body["model"] == "m2"
    thread = await handlers.load("default", "thr_1")
    assert thread.turns["t1"].usage == Usage(
        input_tokens=30, output_tokens=7, reasoning_tokens=0, cost_usd=0.0, model="m2"
    )
    assert thread.usage.total_tokens == 37
    assert repository.types("thr_1")[-2:] == ["UsageRecorded", "UsageRecorded"]


async def test_thread_totals_sum_every_turn_and_count_all_four_token_kinds(
    handlers: ThreadHandlers,
) -> None:
    await thread_with_turn(handlers)
    await handlers.record_usage(
        "thr_1",
        "t1",
        usage(
            input_tokens=10,
            output_tokens=5,
            reasoning_tokens=2,
            reasoning_replay_tokens=1,
            cost_usd=0.25,
        ),
        context(),
    )
    await handlers.complete_turn("thr_1", "t1", CompleteTurn(), context())
    await handlers.start_turn("thr_1", StartTurn(turn_id="t2"), context())
    await handlers.record_usage(
        "thr_1", "t2", usage(input_tokens=100, output_tokens=50, cost_usd=0.5), context()
    )
    await handlers.complete_turn("thr_1", "t2", CompleteTurn(), context())
    await handlers.start_turn("thr_1", StartTurn(turn_id="t3"), context())  # no usage: adds 0

    totals = (await handlers.load("default", "thr_1")).usage

    assert (totals.input_tokens, totals.output_tokens) == (110, 55)
    assert (totals.reasoning_tokens, totals.reasoning_replay_tokens) == (2, 1)
    assert totals.total_tokens == 110 + 55 + 2 + 1
    assert totals.cost_usd == 0.75


async def test_a_turn_without_usage_has_none_and_adds_nothing(handlers: ThreadHandlers) -> None:
    await thread_with_turn(handlers)

    thread = await handlers.load("default", "thr_1")

    assert thread.turns["t1"].usage is None
    assert thread.usage == Usage()


async def test_usage_on_an_ended_turn_is_refused_unless_after_the_fact(
    handlers: ThreadHandlers, repository: InMemoryRepository
) -> None:
    await thread_with_turn(handlers)
    await handlers.complete_turn("thr_1", "t1", CompleteTurn(), context())
    before = repository.events("thr_1")

    with pytest.raises(LifecycleConflict, match="not active"):
        await handlers.record_usage("thr_1", "t1", usage(input_tokens=3), context())
    assert repository.events("thr_1") == before

    await handlers.record_usage(
        "thr_1", "t1", usage(input_tokens=3, after_the_fact=True), context()
    )
    assert (await handlers.load("default", "thr_1")).usage.input_tokens == 3


async def test_usage_for_an_unknown_turn_is_not_found(handlers: ThreadHandlers) -> None:
    await thread_with_turn(handlers)

    with pytest.raises(NotFound):
        await handlers.record_usage("thr_1", "t9", usage(), context())


@pytest.mark.parametrize(
    "body",
    [
        {"output_tokens": 1},
        {"input_tokens": 1},
        {"input_tokens": -1, "output_tokens": 0},
        {"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": -5},
        {"input_tokens": 0, "output_tokens": 0, "reasoning_replay_tokens": -1},
        {"input_tokens": 1.5, "output_tokens": 0},
        {"input_tokens": 1.0, "output_tokens": 0},
        {"input_tokens": "10", "output_tokens": 0},
        {"input_tokens": True, "output_tokens": 0},
        {"input_tokens": 10**13, "output_tokens": 0},
        {"input_tokens": 0, "output_tokens": 0, "cost_usd": -0.01},
        {"input_tokens": 0, "output_tokens": 0, "cost_usd": math.inf},
        {"input_tokens": 0, "output_tokens": 0, "cost_usd": math.nan},
        {"input_tokens": 0, "output_tokens": 0, "cost_usd": "0.1"},
        {"input_tokens": 0, "output_tokens": 0, "model": ""},
        {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
    ],
)
def test_usage_outside_the_contract_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RecordUsage.model_validate(body)


def test_usage_takes_whole_costs_and_defaults_the_optional_figures() -> None:
    parsed = RecordUsage.model_validate({"input_tokens": 1, "output_tokens": 2, "cost_usd": 1})

    assert (parsed.reasoning_tokens, parsed.reasoning_replay_tokens) == (0, 0)
    assert parsed.cost_usd == 1.0
    assert (parsed.model, parsed.after_the_fact) == (None, False)
