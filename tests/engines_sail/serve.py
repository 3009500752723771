"""Start pysail's Spark Connect server on a free port of 127.0.0.1, print ``port <n>``, serve until stdin closes.

Run with this directory's environment (``uv run --locked --project tests/engines_sail python tests/engines_sail/serve.py``);
the catalogs come from ``SAIL_CATALOG__LIST`` (tests/engines.py sets it)."""

import sys

from pysail.spark import SparkConnectServer

server = SparkConnectServer("127.0.0.1", 0)  # the OS picks the port: no race between choosing and binding
server.start(background=True)
print(f"port {server.listening_address[1]}", flush=True)
sys.stdin.read()  # the test process holds the pipe; its exit (or close) stops the server
server.stop()
