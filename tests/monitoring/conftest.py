"""Shared fixtures: a spec-shaped processed inference table and baseline in a temporary home."""

import pytest

from workloads.monitoring.synthetic import make_frames
from workloads.ports.tables import get_tables
from workloads.settings import load_settings
from workloads.specs import load_spec


def seed_tables(settings, spec, **kwargs):
    frame, baseline = make_frames(spec, **kwargs)
    tables = get_tables(settings)
    tables.write(settings.table(spec.processed_table), frame)
    tables.write(settings.table(spec.baseline_table), baseline)
    return frame, baseline


@pytest.fixture(scope="session")
def refreshed(tmp_path_factory):
    """A regression model's tables refreshed once at 1 day (drift from day 3 of 5)."""
    from workloads.monitoring.refresh import refresh_local

    settings = load_settings(home=tmp_path_factory.mktemp("monitor-home"))
    spec = load_spec("bakehouse_autolog").model_copy(update={"slices": []})
    seed_tables(settings, spec, rows=1500, days=5, baseline_rows=600, drift_from_day=3, label_fraction=0.8)
    result = refresh_local(settings, spec)
    return settings, spec, result
