"""``mlops serve``, ``unpack``, ``labels ingest``, ``traffic`` and ``endpoint ...``: serving and its inference table."""

from __future__ import annotations

import typer
from rich.table import Table

from workloads.cli.common import console, state, step


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: str = typer.Option(..., "--model", "-m", help="Model spec name; its champion is served."),
        port: int = typer.Option(8080, help="TCP port."),
        host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
        poll_interval: float = typer.Option(1.0, help="Seconds between checks of the champion alias."),
        flush_interval: float = typer.Option(1.0, help="Seconds between payload table flushes."),
        fsync: bool = typer.Option(False, help="fsync every logged request (survives power loss, slower)."),
    ) -> None:
        """Serve the model's champion locally, logging every request to its payload table (Ctrl-C stops)."""
        from workloads.errors import MlopsError
        from workloads.serving.running import clear_running, record_running
        from workloads.serving.server import serve_forever

        settings = state.settings()
        if settings.backend != "local":
            raise MlopsError("mlops serve runs the local endpoint; on Databricks the Pulumi program deploys the endpoint "
                             "(`pulumi up --stack <stack>`; `mlops endpoint status` reads it)")

        def ready(spec, champion, logger) -> None:
            if logger.rows_recovered:
                console.print(f"[yellow]recovered {logger.rows_recovered} logged requests from the last run[/]")
            record_running(settings, spec.name, f"http://{host}:{port}")
            console.print(
                f"[green]✓[/] serving {settings.registered_model(spec.name)} version {champion.current.version} "
                f"at http://{host}:{port}/serving-endpoints/{spec.endpoint_name}/invocations "
                f"→ {settings.table(spec.payload_table)}", soft_wrap=True)

        try:
            serve_forever(settings, model, host=host, port=port, poll_interval=poll_interval,
                          flush_interval=flush_interval, fsync=fsync, on_ready=ready)
        finally:
            clear_running(settings, model)

    @app.command("unpack")
    def unpack(model: str = typer.Option(..., "--model", "-m", help="Model spec name.")) -> None:
        """Unpack new payload rows into the processed inference table (incremental, exactly once)."""
        from workloads.specs import load_spec
        from workloads.unpacking import unpack as run

        settings = state.settings()
        spec = load_spec(model)
        with step(f"Unpacking {settings.table(spec.payload_table)}"):
            result = run(settings, spec)
        skipped = ", ".join(f"{k} {v}" for k, v in result.skipped.items() if v) or "none"
        console.print(f"{result.payload_rows} new payload rows → {result.examples_written} examples in "
                      f"{settings.table(spec.processed_table)} (skipped: {skipped}; payload version "
                      f"{result.from_version} → {result.to_version})")

    labels = typer.Typer(help="Ground-truth labels for served predictions.", no_args_is_help=True)

    @labels.command("ingest")
    def ingest(
        model: str = typer.Option(..., "--model", "-m", help="Model spec name."),
        source: str | None = typer.Option(None, help="CSV file, Delta directory or catalog.schema.table; "
                                                     "default: the labels traffic recorded."),
    ) -> None:
        """Merge late labels into the processed inference table by example or request id."""
        from workloads.labels import ingest_labels
        from workloads.specs import load_spec

        settings = state.settings()
        spec = load_spec(model)
        with step(f"Merging labels into {settings.table(spec.processed_table)}"):
            result = ingest_labels(settings, spec, source=source)
        console.print(f"{result.received} labels: {result.matched} examples matched, {result.updated} updated, "
                      f"{result.unmatched} not unpacked yet")

    app.add_typer(labels, name="labels")

    @app.command("traffic")
    def traffic(
        model: str = typer.Option(..., "--model", "-m", help="Model spec name."),
        n: int = typer.Option(100, "--n", help="Number of requests."),
        url: str | None = typer.Option(None, help="Endpoint base URL (default: the running `mlops serve` of this "
                                                  "model in this home, else http://127.0.0.1:8080)."),
        batch_size: int = typer.Option(1, help="Rows per request."),
        concurrency: int = typer.Option(4, help="Parallel connections."),
        fmt: str = typer.Option("dataframe_split", "--format", help="dataframe_split, dataframe_records, "
                                                                     "instances or inputs."),
        seed: int = typer.Option(0, help="Sampling seed."),
        labels_: bool = typer.Option(True, "--labels/--no-labels", help="Record the true labels of what is sent."),
    ) -> None:
        """Send requests built from the serving pool of the model's source table (examples nothing trains or is
        gated on) to a running endpoint, and record their true labels for `mlops labels ingest`."""
        from workloads.serving.running import endpoint_url
        from workloads.specs import load_spec
        from workloads.traffic import TrafficError, send_traffic, serving_pool

        settings = state.settings()
        spec = load_spec(model)
        url, source = endpoint_url(settings, spec.name, url)
        if source != "--url":
            console.print(f"endpoint {url} from {source}", soft_wrap=True)
        frame = serving_pool(settings, spec)
        try:
            with step(f"Sending {n} requests of {batch_size} rows to {url}"):
                result = send_traffic(url, spec, frame, n, batch_size=batch_size, concurrency=concurrency,
                                      fmt=fmt, seed=seed, settings=settings, record_labels=labels_)
        except TrafficError as exc:
            raise TrafficError(f"{exc} (the URL came from {source})") from None
        rate = result.requests / result.seconds if result.seconds else 0.0
        console.print(f"{result.ok} ok, {result.failed} failed ({rate:.0f} req/s); "
                      f"{result.labels_recorded} labels recorded for later ingest")
        for error in result.errors:
            console.print(f"[red]  {error}[/]")

    endpoint = typer.Typer(help="The model's Databricks serving endpoint (declared by the Pulumi program; read-only "
                                  "here).", no_args_is_help=True)

    @endpoint.command("status")
    def status(model: str = typer.Option(..., "--model", "-m", help="Model spec name.")) -> None:
        """Show whether the endpoint is ready and which version it serves."""
        from workloads.serving.databricks import endpoint_status
        from workloads.specs import load_spec

        spec = load_spec(model)
        found = endpoint_status(state.settings(), spec)
        if found is None:
            console.print(f"endpoint {spec.endpoint_name} does not exist; the Pulumi program declares it once the model has a "
                          "champion (`pulumi up --stack <stack>`)", soft_wrap=True)
            raise typer.Exit(1)
        table = Table("endpoint", "ready", "config update", "versions", "inference table")
        table.add_row(found.name, str(found.ready), found.config_update, ", ".join(found.served_versions),
                      found.inference_table or "off")
        console.print(table)

    app.add_typer(endpoint, name="endpoint")
