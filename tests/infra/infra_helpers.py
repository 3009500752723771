"""Helpers shared by the infra tests (a module of its own: conftest modules are not importable by name)."""

from __future__ import annotations

from types import SimpleNamespace

from infra.config import NAMESPACE, StackConfig, parse_stack_config
from infra.offline import read_stack_config

MODELS = ["bakehouse_autolog", "bakehouse_decorators", "bakehouse_large_order"]
DEV_CHAMPIONS = {"bakehouse_autolog": 3, "bakehouse_decorators": 2, "bakehouse_large_order": 1}


def raw_config(stack: str) -> dict:
    """The stack file's lakehouse-mlops keys, without the namespace (as parse_stack_config takes them)."""
    return {k.split(":", 1)[1]: v for k, v in read_stack_config(stack).items() if k.startswith(f"{NAMESPACE}:")}


def typed_config(stack: str, **changes) -> StackConfig:
    return parse_stack_config(stack, {**raw_config(stack), **changes}, host="https://adb-1.1.azuredatabricks.net")



class Fields(SimpleNamespace):
    """Attribute access where an absent field (the engine drops None inputs) reads as None."""

    def __getattr__(self, name: str):
        return None


def ns(value):
    """Plain dicts (as mocks hand back nested outputs) as attribute objects; typed outputs stay as they are."""
    if isinstance(value, dict):
        return Fields(**{k: ns(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return [ns(v) for v in value]
    return value


def resolved(*values):
    """``Output.all(*values)`` with nested dicts turned into attribute objects."""
    import pulumi

    return pulumi.Output.all(*values).apply(ns)
