#!/usr/bin/env bash
# Pipeline job setup: uv, the locked project environment, and the Pulumi CLI at the version of the locked
# Pulumi Python SDK (the CLI and the SDK are released together with the same version number).
# Set PULUMI_VERSION to pin another CLI version. Runs on Microsoft-hosted agents (internet access).
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -m pip install -q uv
uv sync --locked

version="${PULUMI_VERSION:-$(uv run --locked python -c 'import importlib.metadata as m; print(m.version("pulumi"))')}"
if [ "$("$HOME/.pulumi/bin/pulumi" version 2>/dev/null || true)" != "v${version}" ]; then
  curl -fsSL https://get.pulumi.com | sh -s -- --version "${version}"
fi
"$HOME/.pulumi/bin/pulumi" version
# Later steps of this job find `pulumi` on PATH.
echo "##vso[task.prependpath]$HOME/.pulumi/bin"
