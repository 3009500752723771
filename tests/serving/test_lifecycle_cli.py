"""Lifecycle commands through ``workloads.cli.main``: rollback says what it did and does not undo itself; an
endpoint that cannot be reached is named with the URL tried and where that URL came from."""

from __future__ import annotations

from tests.fakes import free_port
from workloads import registry
from workloads.cli import main
from workloads.serving.running import record_path, record_running


def _text(captured: str) -> str:
    """Console text with line wrapping taken out."""
    return " ".join(captured.split())


def test_rollback_goes_to_previous_once_and_says_what_it_did(serving_settings, spec, capsys):
    from workloads.promotion import promote, read_audit

    home = str(serving_settings.home)
    assert main(["--home", home, "rollback", "-m", spec.name]) == 1  # v1 is champion, nothing before it
    assert f"error: {spec.name} has no 'previous' version to roll back to" in _text(capsys.readouterr().err)

    promote(serving_settings, spec, 2, reason="test promotion", expected_champion=1)
    assert main(["--home", home, "rollback", "-m", spec.name, "--reason", "v2 predicts +1000"]) == 0
    assert (f"{spec.name}: rolled back: champion v2 -> v1; 'previous' is now v2. A second `mlops rollback` is "
            "refused; use --to-version N to choose another version.") in _text(capsys.readouterr().out)
    assert registry.get_alias(serving_settings, spec, registry.CHAMPION).version == 1

    # A second plain rollback would bring v2 back: refused in one line, nothing moves, nothing is audited.
    assert main(["--home", home, "rollback", "-m", spec.name]) == 1
    captured = capsys.readouterr()
    assert _text(captured.err) == (
        f"error: {spec.name}: champion v1 is already a rollback (from v2); a second rollback would bring back the "
        "version just removed. Pass --to-version N to choose the version to serve")
    assert "Traceback" not in captured.out + captured.err
    assert registry.get_alias(serving_settings, spec, registry.CHAMPION).version == 1
    assert read_audit(serving_settings, spec.name)["action"].tolist() == ["promote", "rollback"]

    assert main(["--home", home, "rollback", "-m", spec.name, "--to-version", "2"]) == 0
    assert f"{spec.name}: rolled back: champion v1 -> v2; 'previous' is now v1." in _text(capsys.readouterr().out)
    assert registry.get_alias(serving_settings, spec, registry.CHAMPION).version == 2
    audit = read_audit(serving_settings, spec.name)
    assert audit["action"].tolist() == ["promote", "rollback", "rollback"]
    assert audit["reason"].tolist()[1] == "v2 predicts +1000"


def test_traffic_names_the_unreachable_url_and_that_it_came_from_the_serve_record(serving_settings, spec, capsys):
    port = free_port()  # nothing listens there
    record_running(serving_settings, spec.name, f"http://127.0.0.1:{port}")  # this (live) process's record
    assert main(["--home", str(serving_settings.home), "traffic", "-m", spec.name, "--n", "2"]) == 1
    captured = capsys.readouterr()
    assert f"endpoint http://127.0.0.1:{port} from the running `mlops serve`" in _text(captured.out)
    err = _text(captured.err)
    assert err.startswith(f"error: endpoint http://127.0.0.1:{port}/serving-endpoints/{spec.endpoint_name}/"
                          "invocations is unreachable (")
    assert err.endswith(f"start it with mlops serve --model {spec.name} (the URL came from the running `mlops "
                        f"serve` recorded in {record_path(serving_settings, spec.name)})")


def test_drift_simulate_sends_to_the_recorded_endpoint_and_names_it_when_unreachable(serving_settings, spec,
                                                                                     capsys):
    port = free_port()
    record_running(serving_settings, spec.name, f"http://127.0.0.1:{port}")
    assert main(["--home", str(serving_settings.home), "drift", "simulate", "-m", spec.name,
                 "--requests", "2"]) == 1
    captured = capsys.readouterr()
    assert f"sending to the running `mlops serve` at http://127.0.0.1:{port}" in _text(captured.out)
    err = _text(captured.err)
    # The URL tried is the recorded one's days-ahead form (--days-ahead defaults to 1).
    assert (f"endpoint http://127.0.0.1:{port}/mlops/days-ahead/1.0/serving-endpoints/{spec.endpoint_name}/"
            "invocations is unreachable") in err
    assert err.endswith(f"(the URL came from the running `mlops serve` recorded in "
                        f"{record_path(serving_settings, spec.name)})")
