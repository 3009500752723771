"""Whether `mlops promote --model M --from dev --to prod` has anything to do, before the pipeline runs it.

    python infra/pipeline/champion.py --model bakehouse_autolog --from dev --to prod
        exit 0  promote: the source has a champion the target does not have yet
        exit 3  nothing to promote: the source model has no `champion` alias yet (a first deploy)
        exit 4  up to date: the target champion already is a copy of the source champion
        exit 1  any other error (auth, network): the pipeline step fails

The settings come from the environment like the `mlops` CLI's (MLOPS_BACKEND, MLOPS_CATALOG_<ENV>,
MLOPS_SCHEMA: the pipeline exports them with `stack_info.py env`). The source champion is read with
databricks-sdk, so a permission or network error is an error rather than "no champion"; the target's
champion tags (`source_model`, `source_version`, written by the promotion) through the workloads
registry, with `workloads.environments.is_copy_of`, as `promote_across` compares them.
"""

from __future__ import annotations

import argparse
import sys

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError, NotFound

from workloads import registry
from workloads.environments import is_copy_of
from workloads.errors import MlopsError
from workloads.settings import Settings, load_settings

CHAMPION = registry.CHAMPION
PROMOTE, NO_CHAMPION, UP_TO_DATE = 0, 3, 4


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


def promotion(w: WorkspaceClient, settings: Settings, model: str, source_env: str,
              target_env: str) -> tuple[int, str]:
    """(exit code, reason) for promoting `model` from `source_env` to `target_env`."""
    source = settings.for_env(source_env).registered_model(model)
    version = champion_version(w, source)
    if version is None:
        return NO_CHAMPION, f"{source} has no '{CHAMPION}' alias yet: nothing to promote"
    target = settings.for_env(target_env)
    current = registry.get_alias(target, model, CHAMPION)
    if is_copy_of(current, source, version):
        return UP_TO_DATE, (f"{target.registered_model(model)} champion v{current.version} already is "
                            f"{source} v{version}")
    return PROMOTE, f"{source} v{version} -> {target.registered_model(model)}"


def main(argv: list[str] | None = None, client: WorkspaceClient | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model spec name")
    parser.add_argument("--from", dest="source", default="dev", help="source environment")
    parser.add_argument("--to", dest="target", default="prod", help="target environment")
    args = parser.parse_args(argv)
    try:
        code, reason = promotion(client or WorkspaceClient(), load_settings(), args.model, args.source, args.target)
    except (DatabricksError, MlopsError, ValueError) as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return 1
    print(reason)
    return code


if __name__ == "__main__":
    sys.exit(main())
