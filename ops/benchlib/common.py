"""Shared pieces: progress, timing, percentiles, memory readings and result rows."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from infra.gc_tuning import tune_for_service

STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line on stderr, prefixed with the seconds since the bench began."""
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``samples`` (p in 0..100); NaN when empty."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@contextlib.contextmanager
def ledger_process_gc() -> Iterator[None]:
    """Run the block with the garbage collector set as every ``ledger`` process sets it
    (:func:`infra.gc_tuning.tune_for_service`: what exists so far frozen, collections
    less often), for ours and stock alike. In-process scenarios that move many objects
    (scans, batched ingest) otherwise set off full collections that also walk the
    ~75,000 objects the bench holds (every module of the service imported), which a
    ledger process froze at start: the scan ran at 370k instead of 500k events/s."""
    thresholds = gc.get_threshold()
    tune_for_service()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ratio(ours: float | None, stock: float | None) -> float | None:
    if ours is None or stock is None or stock == 0:
        return None
    return ours / stock


@dataclass
class Row:
    """One figure of the report: ours, the stock recorder's, their ratio and the target."""

    scenario: str
    name: str
    backend: str
    metric: str
    ours: float | None
    stock: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return ratio(self.ours, self.stock)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        progress(
            f"  {row.scenario} {row.name} [{row.backend}] {row.metric}: ours={fmt(row.ours)}"
            f" stock={fmt(row.stock)} ratio={fmt(row.ratio, ratio=True)}"
            + (f" target {row.target} met={row.met}" if row.target else "")
        )
        return row


def fmt(value: float | None, *, ratio: bool = False) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    if ratio:
        return f"{value:.2f}x"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None or value != value else value >= bound


def at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None or value != value else value <= bound


def all_met(*checks: bool | None) -> bool | None:
    if any(check is None for check in checks):
        return None
    return all(checks)


class Deadline:
    """A time budget: ``expired`` once ``seconds`` have passed since creation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.seconds
