"""Run the local endpoint: in-process (a handle with ``.url`` and ``.stop()``) or in the foreground."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import uvicorn

from workloads.errors import MlopsError
from workloads.ports.tables import get_tables
from workloads.serving.app import DEFAULT_MAX_BODY, Clock, EndpointConfig, create_app, utc_now
from workloads.serving.champion import Champion
from workloads.serving.payload_log import PayloadLogger
from workloads.settings import Settings
from workloads.specs import ModelSpec, load_spec

log = logging.getLogger(__name__)


class ServerError(MlopsError):
    """The endpoint could not start (port in use, no champion, ...)."""


def wal_dir(settings: Settings, spec: ModelSpec) -> Path:
    """Where an endpoint keeps its payload write-ahead segments."""
    return settings.home / "serving" / spec.endpoint_name / "wal"


@dataclass
class ServingHandle:
    """A running endpoint. ``stop()`` flushes the payload log and shuts the server down."""

    url: str
    host: str
    port: int
    spec: ModelSpec
    champion: Champion
    logger: PayloadLogger
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def invocations_url(self) -> str:
        return f"{self.url}/serving-endpoints/{self.spec.endpoint_name}/invocations"

    @property
    def served_version(self) -> int:
        return self.champion.current.version

    def flush(self) -> int:
        """Write every logged request to the payload table now (e.g. before unpacking)."""
        return self.logger.flush()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.champion.stop()
        self.logger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _components(settings: Settings, spec: ModelSpec, clock: Clock, poll_interval: float, flush_interval: float,
                fsync: bool, max_body_bytes: int):
    champion = Champion(settings, spec, poll_interval=poll_interval).start()
    logger = PayloadLogger(get_tables(settings), settings.table(spec.payload_table), wal_dir(settings, spec),
                           flush_interval=flush_interval, fsync=fsync)
    try:
        logger.open()
    except Exception:
        champion.stop()
        raise
    config = EndpointConfig(settings=settings, spec=spec, clock=clock, max_body_bytes=max_body_bytes)
    return champion, logger, create_app(config, champion, logger)


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServerError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None


def _uvicorn_config(app, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          timeout_keep_alive=30)


def start_server(settings: Settings, model: str | ModelSpec, host: str = "127.0.0.1", port: int = 0,
                 clock: Clock | None = None, poll_interval: float = 1.0, flush_interval: float = 1.0,
                 fsync: bool = False, max_body_bytes: int = DEFAULT_MAX_BODY,
                 startup_timeout: float = 30.0) -> ServingHandle:
    """Start the endpoint for a model's champion in a background thread of this process.

    Args:
        settings: where the registry and tables are.
        model: model spec or its name.
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (see ``handle.port``).
        clock: callable returning "now" (UTC), used for ``request_time``; injectable to simulate time.
        poll_interval: seconds between checks of the ``champion`` alias.
        flush_interval: seconds between payload table flushes.
        fsync: fsync every logged request (power-loss durability).
        max_body_bytes: larger request bodies get a 413.
        startup_timeout: seconds to wait for the socket to listen.

    Returns:
        A :class:`ServingHandle`; call ``stop()`` (or use it as a context manager).
    """
    spec = load_spec(model) if isinstance(model, str) else model
    champion, logger, app = _components(settings, spec, clock or utc_now, poll_interval, flush_interval, fsync,
                                        max_body_bytes)
    server = uvicorn.Server(_uvicorn_config(app, host, port))
    server.install_signal_handlers = lambda: None  # not the main thread

    def run() -> None:
        asyncio.run(server.serve())

    thread = threading.Thread(target=run, name=f"serving-{spec.endpoint_name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            champion.stop()
            logger.close()
            raise ServerError(f"endpoint for {spec.name} did not start on {host}:{port} (port in use?)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}"
    return ServingHandle(url, host, bound, spec, champion, logger, server, thread)


def serve_forever(settings: Settings, model: str, host: str = "127.0.0.1", port: int = 8080,
                  poll_interval: float = 1.0, flush_interval: float = 1.0, fsync: bool = False,
                  on_ready=None) -> None:
    """Run the endpoint in the foreground until interrupted (Ctrl-C or SIGTERM flushes the payload log)."""
    spec = load_spec(model)
    _check_port(host, port)
    champion, logger, app = _components(settings, spec, utc_now, poll_interval, flush_interval, fsync,
                                        DEFAULT_MAX_BODY)
    server = uvicorn.Server(_uvicorn_config(app, host, port))
    if on_ready is not None:
        on_ready(spec, champion, logger)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: with the default handler the process
    # would die before the payload log is flushed (rows left in the write-ahead log until the next start).
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if _main_thread() else None
    try:
        server.run()
    finally:
        champion.stop()
        logger.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)
