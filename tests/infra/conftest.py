"""Shared fixtures of the infra tests: a small fake wheel, typed stack configs, and evaluations of the real
program under mocks, computed once per session (pulumi_databricks is imported once)."""

from __future__ import annotations

import pulumi_databricks  # noqa: F401 - slow import, once per session
import pytest
from infra_helpers import DEV_CHAMPIONS, MODELS

from infra.offline import Evaluation, evaluate


@pytest.fixture(scope="session")
def fake_wheel(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist") / "lakehouse_mlops-0.1.0-py3-none-any.whl"
    path.write_bytes(b"PK fake wheel for mock tests")
    return path


@pytest.fixture(scope="session")
def run(fake_wheel):
    """``run(stack, **kwargs)``: evaluate the real infra/__main__.py under mocks with the fake wheel."""

    def _run(stack: str = "dev", **kwargs) -> Evaluation:
        kwargs.setdefault("wheel", fake_wheel)
        return evaluate(stack, **kwargs)

    return _run


@pytest.fixture(scope="session")
def dev(run) -> Evaluation:
    return run("dev", champions=DEV_CHAMPIONS)


@pytest.fixture(scope="session")
def prod(run) -> Evaluation:
    return run("prod", champions={m: 7 for m in MODELS})


@pytest.fixture(scope="session")
def first_deploy(run) -> Evaluation:
    """No registered model exists yet: every champion lookup fails."""
    return run("dev", champions={})
