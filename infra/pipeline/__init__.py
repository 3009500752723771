"""Helpers the Azure DevOps pipeline (azure-pipelines.yml) calls: setup, stack facts, smoke test, PR comment."""
