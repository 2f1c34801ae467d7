"""Garbage collector settings for every Ledger process (the service and the commands).

With the default thresholds (a young collection every 700 allocations) a time-travel
read of a long run, which allocates some 100,000 objects that live until its answer
is written (snapshot rows, lifecycle entries, the view), set off full collections over
every object of the process in the middle of the request: 40% of ``/at/{seq}`` on a
10,000-event run and all of its p99 tail. Reference counting frees those objects
anyway; the collector is only needed for cycles, which it still collects. The same
holds for the commands that move many events through Python (``ledger import``,
``ledger export``, ``ledger project``): each page or batch of objects survives
young collections and set off full ones over everything the process holds.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)


def tune_for_service() -> None:
    """Move what start-up allocated out of the collector's sight (``gc.freeze``: it lives as
    long as the process) and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
