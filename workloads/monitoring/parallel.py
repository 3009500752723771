"""Threads for the monitor's computation: how many, and mapping a function over items in a few chunks."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

# Below this many rows threads cost more than they save: smaller inputs are computed on the calling thread.
PARALLEL_MIN_ROWS = 200_000


def parallel_rows(n: int) -> bool:
    """Whether ``n`` rows are worth the threads (more than one worker and ``PARALLEL_MIN_ROWS`` rows)."""
    return n > PARALLEL_MIN_ROWS and worker_count() > 1


def worker_count() -> int:
    """Threads for sorting groups and for the drift pairs: ``MLOPS_MONITOR_THREADS``, default min(4, CPUs)."""
    configured = os.environ.get("MLOPS_MONITOR_THREADS", "")
    return max(1, int(configured)) if configured.isdigit() else min(4, os.cpu_count() or 1)


def pool_map(pool: ThreadPoolExecutor | None, fn, items: list, workers: int) -> list:
    """``[fn(x) for x in items]``, on ``pool`` in a few contiguous chunks (one submit per chunk, not per item:
    ``ThreadPoolExecutor.map`` ignores ``chunksize``, and thousands of tiny submits cost more than they save)."""
    if pool is None or len(items) < 2:
        return [fn(x) for x in items]
    size = max(1, -(-len(items) // (2 * workers)))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [y for part in pool.map(lambda chunk: [fn(x) for x in chunk], chunks) for y in part]
