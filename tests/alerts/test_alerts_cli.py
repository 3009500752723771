"""``mlops alerts test`` and ``mlops alerts list`` through the real entry point."""

import json

from workloads.alerts import notify, outbox_path
from workloads.cli import main


def test_alerts_test_delivers_to_outbox_and_webhook(home, webhook_server, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", webhook_server.url)
    code = main(["--home", str(home), "alerts", "test", "--model", "bakehouse_autolog"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "delivered to all 2 destination(s)" in out
    assert "outbox" in out and "webhook" in out
    [request] = webhook_server.requests
    assert request["json"]["kind"] == "test" and request["json"]["model"] == "bakehouse_autolog"
    [line] = outbox_path(home).read_text().splitlines()
    assert json.loads(line)["id"] == request["json"]["id"]


def test_alerts_test_reports_a_dead_destination_and_exits_1(home, closed_port, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK", f"http://127.0.0.1:{closed_port}/hook")
    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_RETRIES", "0")
    code = main(["--home", str(home), "alerts", "test"])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED" in captured.out and "delivered" in captured.out
    assert "1 of 2 alert destination(s) failed" in captured.err
    assert len(outbox_path(home).read_text().splitlines()) == 1


def test_alerts_test_bad_config_is_one_line(home, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_ALERT_SNS_TOPIC", "nope")
    code = main(["--home", str(home), "alerts", "test"])
    err = capsys.readouterr().err
    assert code == 1
    assert "invalid alerts config" in err and "sns.topic_arn" in err
    assert "Traceback" not in err


def test_alerts_list_shows_recent_alerts(home, settings, capsys):
    for i in range(5):
        notify(settings, "breach", "bakehouse_autolog", f"breach number {i}")
    notify(settings, "promotion", "other", "v2 promoted")
    code = main(["--home", str(home), "alerts", "list", "--n", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "breach number 3" in out and "breach number 4" in out and "v2 promoted" in out
    assert "breach number 2" not in out

    code = main(["--home", str(home), "alerts", "list", "--kind", "promotion"])
    out = capsys.readouterr().out
    assert "v2 promoted" in out and "breach number" not in out


def test_alerts_test_without_destinations(home, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_ALERT_OUTBOX", "false")
    assert main(["--home", str(home), "alerts", "test"]) == 1
    assert "no alert destinations configured" in capsys.readouterr().err


def test_alerts_list_empty(home, capsys):
    assert main(["--home", str(home), "alerts", "list"]) == 0
    assert "no alerts in" in capsys.readouterr().out
