"""A local fake JSON HTTP server for tests that drive a real client (databricks-sdk, requests, urllib)
against a scripted REST API on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# handle(method, path, query, body, headers) -> (status, payload)
#   path: the request path without the query string; query: parse_qs of the query string;
#   body: the JSON-decoded request body (a form body: {field: value}), None when there is none;
#   headers: the request headers.
#   payload: bytes or str are sent as they are, anything else as JSON; always as application/json.
Handle = Callable[[str, str, dict[str, list[str]], Any, Message], tuple[int, Any]]


@contextmanager
def json_server(handle: Handle, shutdown_timeout: float = 5.0) -> Iterator[str]:
    """Serve ``handle`` on a free port of 127.0.0.1 while the block runs; yields the base URL (no trailing /).

    Requests are served on threads, so ``handle`` may be called concurrently."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}  # OAuth token requests
            else:
                body = json.loads(raw) if raw else None
            status, payload = handle(method, url.path, parse_qs(url.query), body, self.headers)
            if isinstance(payload, str):
                payload = payload.encode()
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PUT(self):
            self._serve("PUT")

        def do_PATCH(self):
            self._serve("PATCH")

        def do_DELETE(self):
            self._serve("DELETE")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=shutdown_timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Environment variables through which databricks-sdk could find credentials other than the test's own.
DATABRICKS_AUTH_VARIABLES = ("DATABRICKS_AUTH_TYPE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "ARM_CLIENT_ID",
                             "ARM_CLIENT_SECRET", "ARM_TENANT_ID", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_ACCOUNT_ID",
                             "DATABRICKS_HOST", "TF_BUILD")


def fake_databricks_auth(monkeypatch, host: str | None = None) -> None:
    """Make databricks-sdk authenticate with a fake personal access token only (no profile file, no other
    credentials from the environment, no pipeline markers), against ``host`` when given."""
    for key in DATABRICKS_AUTH_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-fake")
    if host is not None:
        monkeypatch.setenv("DATABRICKS_HOST", host)


class LocalSparkStandIn:
    """A local Spark session standing in for Databricks where local pyspark lacks Delta.

    Every statement is recorded (whitespace normalised) in ``sql_seen``; ``DESCRIBE HISTORY`` answers ``version``;
    :meth:`answer` handles the rest: by default the statement with ``VERSION AS OF n`` dropped (the table as it is).
    Subclasses answer the Delta statements their tests need (``MERGE``, ``SHOW TBLPROPERTIES``, snapshots).
    """

    def __init__(self, real, version: int = 0):
        self.real, self.version, self.sql_seen = real, version, []

    def __getattr__(self, item):
        return getattr(self.real, item)

    def sql(self, text: str):
        text = " ".join(text.split())
        self.sql_seen.append(text)
        if text.startswith("DESCRIBE HISTORY"):  # plain SQL: no rows shipped from the driver (createDataFrame)
            return self.real.sql(f"SELECT {int(self.version)}L AS version")
        return self.answer(text)

    def answer(self, text: str):
        import re

        return self.real.sql(re.sub(r" VERSION AS OF \d+", "", text))
