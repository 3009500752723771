"""Model specs as the infra program sees them: the shipped specs, plus any registered for an offline run.

The program resolves deployed model names only through here, so an offline evaluation (benchmarks, tests)
can add synthetic specs without touching the package's spec directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from workloads.specs import ModelSpec, list_specs, load_spec

_extra: dict[str, ModelSpec] = {}


def known_specs() -> list[str]:
    """Names of every spec the program may deploy."""
    return sorted(set(list_specs()) | set(_extra))


def resolve_spec(name: str) -> ModelSpec:
    """The spec named ``name`` (an added one first, then the shipped one)."""
    return _extra[name] if name in _extra else load_spec(name)


@contextmanager
def extra_specs(specs: Iterable[ModelSpec]) -> Iterator[None]:
    """Make ``specs`` resolvable for the duration of the block."""
    added = {spec.name: spec for spec in specs}
    previous = dict(_extra)
    _extra.update(added)
    try:
        yield
    finally:
        _extra.clear()
        _extra.update(previous)
