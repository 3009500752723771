"""``mlops traffic`` / ``unpack`` / ``labels ingest`` / ``serve`` through the console script's entry point."""

from __future__ import annotations

import socket

from workloads.cli import main
from workloads.ports.tables import get_tables


def test_traffic_unpack_and_labels_commands(server, serving_settings, spec, capsys):
    home = str(serving_settings.home)
    assert main(["--home", home, "traffic", "--model", spec.name, "--n", "6", "--batch-size", "2",
                 "--url", server.url, "--format", "dataframe_records"]) == 0
    assert "6 ok, 0 failed" in capsys.readouterr().out
    server.flush()
    assert main(["--home", home, "unpack", "--model", spec.name]) == 0
    assert "6 new payload rows → 12 examples" in capsys.readouterr().out
    assert main(["--home", home, "labels", "ingest", "--model", spec.name]) == 0
    assert "12 labels: 12 examples matched, 12 updated" in capsys.readouterr().out
    processed = get_tables(serving_settings).read(serving_settings.table(spec.processed_table))
    assert len(processed) == 12 and processed["quantity"].notna().all()


def test_cli_errors_are_one_line(serving_settings, spec, capsys):
    home = str(serving_settings.home)
    assert main(["--home", home, "unpack", "--model", spec.name]) == 1
    assert "does not exist yet; serve the model and send traffic first" in capsys.readouterr().err
    assert main(["--home", home, "traffic", "--model", spec.name, "--n", "2", "--url", "http://127.0.0.1:9"]) == 1
    assert "is unreachable" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--home", home, "serve", "--model", spec.name, "--port", str(port)]) == 1
    assert "pick another --port" in capsys.readouterr().err
