"""The suite's pytest-xdist groups (tests/conftest.py): what shares a worker, so shared servers start once."""

import pytest

from tests.conftest import _group_for_workers


class FakeItem:
    """What ``_group_for_workers`` reads of a pytest item: its node id, the fixtures it uses, its markers."""

    def __init__(self, nodeid, fixtures):
        self.nodeid = nodeid
        self.fixturenames = list(fixtures)
        self.markers = []

    def add_marker(self, marker):
        self.markers.append(marker)

    @property
    def group(self):
        (mark,) = [m for m in self.markers if m.name == "xdist_group"]
        return mark.args[0]


SPARK = {"spark": ("session", "tests")}
SAIL = {"sail": ("session", "tests")}
PLUGIN_SESSION = {"tmp_path_factory": ("session", "")}  # a session fixture not in SHARED_ON_ONE_WORKER: groups nothing


def test_a_module_stays_together_and_engine_users_share_one_group():
    items = [FakeItem("tests/a.py::t1", {**SPARK, **PLUGIN_SESSION}), FakeItem("tests/a.py::t2", PLUGIN_SESSION),
             FakeItem("tests/b.py::t1", SAIL), FakeItem("tests/c.py::t1", {**SPARK, **SAIL}),
             FakeItem("tests/d.py::t1", PLUGIN_SESSION), FakeItem("tests/d.py::t2", {"home": ("function", "tests")}),
             FakeItem("tests/e.py::t1", {"trained": ("module", "tests/e.py")})]
    _group_for_workers(items)
    groups = {item.nodeid: item.group for item in items}
    # a.py (spark) and b.py (sail) join through c.py, which uses both servers
    assert groups["tests/a.py::t1"] == groups["tests/a.py::t2"] == groups["tests/b.py::t1"] == groups["tests/c.py::t1"]
    assert groups["tests/d.py::t1"] == groups["tests/d.py::t2"] == "tests/d.py"
    assert groups["tests/e.py::t1"] == "tests/e.py"
    assert len(set(groups.values())) == 3


def test_the_real_suite_puts_every_spark_test_on_one_worker(request):
    """The collected session's own items: every test using the Spark Connect server has one group."""
    spark_groups = {mark.args[0] for item in request.session.items if "spark" in item.fixturenames
                    for mark in item.iter_markers("xdist_group")}
    if not any("spark" in item.fixturenames for item in request.session.items):
        pytest.skip("no Spark test collected in this run")
    assert len(spark_groups) == 1
