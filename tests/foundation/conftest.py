"""A home with bakehouse data and all three specs trained once per test session (training costs seconds)."""

import pytest

REFERENCE_DATE = "2026-11-01"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Settings of a home where data was generated and every spec trained; plus the train results."""
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse
    from workloads.settings import load_settings
    from workloads.specs import list_specs, load_spec
    from workloads.training import train_model

    settings = load_settings(home=tmp_path_factory.mktemp("trained-home"))
    write_bakehouse(settings, generate(seed=42, reference_date=REFERENCE_DATE))
    results = {name: train_model(settings, load_spec(name)) for name in list_specs()}
    return settings, results
