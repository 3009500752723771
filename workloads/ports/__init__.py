"""Narrow ports the workloads talk to; the backend (local or Databricks) is chosen by settings."""
