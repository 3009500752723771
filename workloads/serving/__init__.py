"""Model serving: the local endpoint that writes the Databricks inference table, and the Databricks path.

- :func:`workloads.serving.server.start_server` runs the local endpoint in-process;
- :mod:`workloads.serving.payloads` parses the four request formats (shared with unpacking);
- :mod:`workloads.serving.payload_log` writes ``<prefix>_payload`` durably and exactly once;
- :mod:`workloads.serving.databricks` creates/updates, waits for, queries and reports a Databricks endpoint.
"""
