"""Run every benchmark under tests/benchmarks/ (each prints its own table of values and ratios).

    uv run python tests/benchmarks/run.py [--quick] [NAME ...]

NAME is a benchmark's short name (the file ``bench_<NAME>.py``: ``infra``, ``serving``, ``monitor``,
``drift_evidence``, ``scale``); default: all. Each runs in its own
process so one benchmark's memory and imports do not colour another's numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    benches = available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(benches)})")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in benches]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(benches)}")
    failed = []
    for name in args.names or list(benches):
        print(f"\n=== benchmark: {name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(benches[name]), *(["--quick"] if args.quick else [])])
        print(f"=== {name}: exit {code} in {time.perf_counter() - started:.0f} s ===", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
