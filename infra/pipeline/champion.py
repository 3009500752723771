"""Whether a Unity Catalog registered model has a `champion` alias: decides if there is anything to promote.

    python infra/pipeline/champion.py mlops_dev.bakehouse_ml.bakehouse_autolog_model
        exit 0 and print the champion's version when the alias exists;
        exit 3 when the model or the alias does not exist yet (nothing to promote: a first deploy);
        exit 1 on any other error (auth, network): the pipeline step fails.

Databricks auth from the environment, as in smoke.py (azure-cli inside an AzureCLI@2 task).
"""

from __future__ import annotations

import argparse
import sys

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError, NotFound

CHAMPION = "champion"
NO_CHAMPION = 3


def champion_version(w: WorkspaceClient, full_name: str) -> int | None:
    """The version the `champion` alias points at, or None (no such model, or no such alias)."""
    try:
        info = w.registered_models.get(full_name, include_aliases=True)
    except NotFound:
        return None
    for alias in info.aliases or []:
        if alias.alias_name == CHAMPION:
            return alias.version_num
    return None


def main(argv: list[str] | None = None, client: WorkspaceClient | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registered_model", help="<catalog>.<schema>.<model>_model")
    args = parser.parse_args(argv)
    try:
        version = champion_version(client or WorkspaceClient(), args.registered_model)
    except (DatabricksError, ValueError) as exc:
        print(f"error: {args.registered_model}: {exc}", file=sys.stderr)
        return 1
    if version is None:
        print(f"{args.registered_model} has no '{CHAMPION}' alias")
        return NO_CHAMPION
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
