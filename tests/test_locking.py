"""Promotion lock: one holder across processes, bounded wait, clear error, released on exit."""

import multiprocessing
import time

import pytest

from workloads.errors import MlopsError
from workloads.locking import LockHeldError, exclusive_lock, lock_path, promotion_lock
from workloads.settings import load_settings


def _contend(home, start, release, results):
    """Wait for the start signal, try the lock briefly; if won, hold it until told to release."""
    settings = load_settings(home=home)
    start.wait(10)
    try:
        with promotion_lock(settings, "bakehouse_autolog", timeout=0.2):
            results.put("won")
            release.wait(10)
    except LockHeldError as exc:
        results.put(f"held: {exc}")


def _hold(home, acquired, release):
    settings = load_settings(home=home)
    with promotion_lock(settings, "bakehouse_autolog", timeout=1):
        acquired.set()
        release.wait(10)


def test_two_processes_only_one_gets_the_lock(settings):
    ctx = multiprocessing.get_context("fork")
    start, release, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(settings.home), start, release, results)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    try:
        outcomes = sorted(results.get(timeout=10) for _ in procs)
    finally:
        release.set()
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    assert outcomes[0].startswith("held: promotion of model bakehouse_autolog in dev is in progress elsewhere")
    assert outcomes[1] == "won"


def test_held_lock_times_out_with_holder_then_is_free_after_release(settings):
    ctx = multiprocessing.get_context("fork")
    acquired, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(settings.home), acquired, release))
    holder.start()
    try:
        assert acquired.wait(10)
        began = time.monotonic()
        with pytest.raises(LockHeldError) as info, promotion_lock(settings, "bakehouse_autolog", timeout=0.3):
            pytest.fail("lock acquired while another process holds it")
        # it waited its timeout (no upper wall-clock bound: a loaded machine may take longer to return; the wait is
        # bounded by the deadline the lock computes, which the message reports)
        assert time.monotonic() - began >= 0.3
        assert "waited 0.3s" in str(info.value)
        assert isinstance(info.value, MlopsError)
        assert f"pid {holder.pid}" in str(info.value)
        assert info.value.holder.startswith(f"pid {holder.pid}")
    finally:
        release.set()
        holder.join(timeout=10)
    assert holder.exitcode == 0
    with promotion_lock(settings, "bakehouse_autolog", timeout=0) as path:
        assert path == lock_path(settings, "promotion-dev-bakehouse_autolog")


def test_lock_is_released_when_the_holder_dies(settings):
    ctx = multiprocessing.get_context("fork")
    acquired, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(settings.home), acquired, release))
    holder.start()
    assert acquired.wait(10)
    holder.kill()
    holder.join(timeout=10)
    with promotion_lock(settings, "bakehouse_autolog", timeout=2):
        pass


def test_locks_are_per_model_and_env(settings):
    with promotion_lock(settings, "m1"):
        with promotion_lock(settings, "m2", timeout=0):
            pass
        with promotion_lock(settings, "m1", timeout=0, env="prod"):
            pass
        with pytest.raises(LockHeldError), exclusive_lock(settings, "promotion-dev-m1", timeout=0):
            pass


def test_lock_is_reentrant_after_exit_and_names_are_safe(settings):
    with promotion_lock(settings, "../weird name"):
        pass
    with promotion_lock(settings, "../weird name", timeout=0) as path:
        assert path.parent == settings.home / "locks"
        assert "/" not in path.name
