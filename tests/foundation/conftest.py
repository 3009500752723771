"""A home with bakehouse data and all three specs trained once per test session (training costs seconds)."""

import pytest

from tests.conftest import make_trained_home

REFERENCE_DATE = "2026-11-01"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Settings of a home where data was generated and every spec trained; plus the train results."""
    from workloads.specs import list_specs

    return make_trained_home(tmp_path_factory.mktemp("trained-home"), models=list_specs(),
                             reference_date=REFERENCE_DATE)
