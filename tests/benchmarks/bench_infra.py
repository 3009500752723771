"""Benchmark: evaluation time of the real infra/__main__.py under Pulumi mocks for 1, 10 and 100 model specs.

    uv run python tests/benchmarks/bench_infra.py [--quick]

Synthetic specs are copies of ``bakehouse_autolog`` under new names, all with a champion (so every endpoint
is declared). Prints time and resources per size, and the ratios to the 1-spec run measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

SIZES = (1, 10, 100)


def synthetic_specs(n: int):
    from infra.specs import resolve_spec

    base = resolve_spec("bakehouse_autolog")
    data = base.model_dump()
    return [base.model_validate({**data, "name": f"bench_{i:03d}"}) for i in range(n)]


def measure(n: int, repeats: int, wheel: Path) -> tuple[float, int]:
    """Median wall time of ``repeats`` evaluations with ``n`` specs, and the resource count."""
    from infra.offline import evaluate

    specs = synthetic_specs(n)
    names = [s.name for s in specs]
    times, count = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        evaluation = evaluate("dev", specs=specs, wheel=wheel, champions={name: 1 for name in names},
                              overrides={"lakehouse-mlops:models": names})
        times.append(time.perf_counter() - started)
        count = len(evaluation.resources)
    return statistics.median(times), count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per size instead of three")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3

    started = time.perf_counter()
    import pulumi_databricks  # noqa: F401 - measured apart: it is paid once per process

    import_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench-infra-") as scratch:
        wheel = Path(scratch) / "lakehouse_mlops-0.0.0-py3-none-any.whl"
        wheel.write_bytes(b"benchmark wheel")
        measure(1, 1, wheel)  # warm-up: first registration pays lazy imports
        results = {n: measure(n, repeats, wheel) for n in SIZES}

    base_seconds, base_resources = results[SIZES[0]]
    table = Table(title=f"infra program under mocks (median of {repeats}; "
                        f"pulumi_databricks import {import_seconds:.2f}s, paid once)")
    for column in ("model specs", "resources", "seconds", "ms / resource", "time ratio vs 1", "resource ratio vs 1",
                   "time ratio / resource ratio"):
        table.add_column(column, justify="right")
    for n in SIZES:
        seconds, resources = results[n]
        time_ratio, resource_ratio = seconds / base_seconds, resources / base_resources
        table.add_row(str(n), str(resources), f"{seconds:.3f}", f"{1000 * seconds / resources:.2f}",
                      f"{time_ratio:.1f}x", f"{resource_ratio:.1f}x", f"{time_ratio / resource_ratio:.2f}")
    Console(width=140).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
