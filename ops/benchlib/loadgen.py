"""A small HTTP load generator for when ``wrk`` is missing (run as its own process).

``python ops/benchlib/loadgen.py URL --connections 32 --duration 10 --paths FILE --body JSON``
keeps ``connections`` requests in flight (one asyncio task per connection, httpx),
POSTing ``body`` to the paths of FILE in turn, and prints one ``BENCH_JSON`` line.
It is slower than wrk: on a small machine it can be the bottleneck, which the
bench reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def run(url: str, connections: int, duration: float, paths: list[str], body: bytes) -> dict:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    end = started + duration
    headers = {"content-type": "application/json"}

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:

        async def connection(index: int) -> None:
            nonlocal errors
            turn = index * 17
            while time.perf_counter() < end:
                path = paths[turn % len(paths)]
                turn += 1
                sent = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                if response.status_code >= 400:
                    errors += 1

        await asyncio.gather(*(connection(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": int(percentile(latencies, 50) * 1e6),
        "p99_us": int(percentile(latencies, 99) * 1e6),
        "max_us": int(max(latencies, default=0) * 1e6),
        "status_errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--paths", required=True, help="file with one path a line")
    parser.add_argument("--body", default="{}")
    args = parser.parse_args()
    with open(args.paths) as file:
        paths = [line.strip() for line in file if line.strip()]
    result = asyncio.run(run(args.url, args.connections, args.duration, paths, args.body.encode()))
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
