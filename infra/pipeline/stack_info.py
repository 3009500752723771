"""Facts about a deployed stack the pipeline needs, from `pulumi stack output --json` and Pulumi.<stack>.yaml.

    python infra/pipeline/stack_info.py models --stack prod [--outputs outputs.json]
        the models the stack deploys, one per line: the stack output `models` when given, else the
        stack config key `lakehouse-mlops:models`
    python infra/pipeline/stack_info.py env --stack prod [--from-stack dev]
        `export` lines for the workloads CLI acting on that stack: DATABRICKS_HOST, MLOPS_ENV,
        MLOPS_CATALOG_<ENV> (also of --from-stack, for `mlops promote --from dev --to prod`), MLOPS_SCHEMA

Reading the stack config file needs no Pulumi CLI and no credentials, so the model list is known even
when the outputs are not (first deploy, or outputs renamed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from infra.config import SchemasConfig

PROJECT = "lakehouse-mlops"
ROOT = Path(__file__).resolve().parents[2]


class StackInfoError(RuntimeError):
    """A stack fact the pipeline needs is missing or malformed."""


def load_stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<stack>.yaml (empty when the file has none)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise StackInfoError(f"no stack config {path.name} in {root}; stacks are Pulumi.<stack>.yaml files")
    data = yaml.safe_load(path.read_text()) or {}
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise StackInfoError(f"{path.name}: `config` must be a mapping")
    return config


def load_outputs(path: str | Path | None) -> dict[str, Any]:
    """`pulumi stack output --json` saved to a file; {} when no file is given or it is empty."""
    if path is None:
        return {}
    text = Path(path).read_text().strip()
    if not text:
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise StackInfoError(f"{path}: expected the JSON object of `pulumi stack output --json`")
    return data


def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        names = []
        for item in value:
            if isinstance(item, str):
                names.append(item)
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(item["name"])
            else:
                raise StackInfoError(f"{where}: cannot read a model name from {item!r}")
        return names
    raise StackInfoError(f"{where}: expected a list of model names or a mapping keyed by model, got {value!r}")


def deployed_models(stack: str, outputs: dict[str, Any] | None = None, root: Path = ROOT) -> list[str]:
    """Models deployed to the stack: the `models` stack output, else `lakehouse-mlops:models` config."""
    if outputs and outputs.get("models") is not None:
        return _names(outputs["models"], "stack output `models`")
    config = load_stack_config(stack, root)
    key = f"{PROJECT}:models"
    if key not in config:
        raise StackInfoError(f"Pulumi.{stack}.yaml has no `{key}` and the stack outputs no `models`")
    return _names(config[key] or [], f"Pulumi.{stack}.yaml `{key}`")


def workspace_host(stack: str, host: str | None = None, root: Path = ROOT) -> str | None:
    """The workspace a pipeline helper talks to: ``host`` if given, else ``DATABRICKS_HOST``, else the stack
    config's ``databricks:host``."""
    return host or os.environ.get("DATABRICKS_HOST") or load_stack_config(stack, root).get("databricks:host")


# Keys of each model's entry in the `models` stack output (infra/components/model.py ModelDeployment).
ENDPOINT_KEY = "endpoint_name"
REGISTERED_MODEL_KEY = "registered_model"
WATCHER_JOB_KEY = "watcher_job_id"
TRAINING_JOB_KEY = "training_job_id"


def model_entries(stack: str, outputs: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """Each model deployed to the stack (:func:`deployed_models`) with its entry of the `models` stack output
    (``{}`` when the outputs have none for it, e.g. before the first deploy)."""
    per_model = (outputs or {}).get("models")
    per_model = per_model if isinstance(per_model, dict) else {}
    return [(model, entry if isinstance(entry := per_model.get(model), dict) else {})
            for model in deployed_models(stack, outputs)]


def job_id(value: Any, model: str, job: str) -> int | None:
    """A job id from a model's stack output entry (``None`` when absent); one clear error when not a number."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StackInfoError(f"{model}: the stack outputs no usable {job} job id ({value!r})") from None


def _catalog(config: dict[str, Any], stack: str) -> str:
    value = config.get(f"{PROJECT}:catalog")
    if isinstance(value, dict):
        value = value.get("name")
    if not isinstance(value, str) or not value:
        raise StackInfoError(f"Pulumi.{stack}.yaml: `{PROJECT}:catalog` needs a name")
    return value


DEFAULT_SCHEMA = SchemasConfig.model_fields["models"].default  # what the infra program uses when unset


def _schema(config: dict[str, Any]) -> str | None:
    schemas = config.get(f"{PROJECT}:schemas")
    if isinstance(schemas, dict) and isinstance(schemas.get("models"), str):
        return schemas["models"]
    value = config.get(f"{PROJECT}:schema")
    return value if isinstance(value, str) else None


def stack_env(stack: str, from_stack: str | None = None, root: Path = ROOT) -> dict[str, str]:
    """Environment for the workloads CLI (`mlops --backend databricks ...`) acting on `stack`."""
    config = load_stack_config(stack, root)
    host = config.get("databricks:host")
    if not isinstance(host, str) or not host:
        raise StackInfoError(f"Pulumi.{stack}.yaml has no `databricks:host`")
    env = {
        "DATABRICKS_HOST": host,
        "MLOPS_BACKEND": "databricks",
        "MLOPS_ENV": str(config.get(f"{PROJECT}:environment") or stack),
        f"MLOPS_CATALOG_{stack.upper()}": _catalog(config, stack),
    }
    schema = _schema(config)
    if schema:
        env["MLOPS_SCHEMA"] = schema
    if from_stack:
        source = load_stack_config(from_stack, root)
        # The workloads address both environments' models with one MLOPS_SCHEMA (workloads/settings.py), so
        # promotion reads the source's models in this stack's schema: refuse stacks whose schemas differ rather
        # than look for the source's models in the wrong place.
        source_schema = _schema(source) or DEFAULT_SCHEMA
        if source_schema != (schema or DEFAULT_SCHEMA):
            raise StackInfoError(f"Pulumi.{from_stack}.yaml keeps its models in schema {source_schema!r} but "
                                 f"Pulumi.{stack}.yaml in {schema or DEFAULT_SCHEMA!r}; promotion needs one models "
                                 f"schema (`{PROJECT}:schemas.models`) in both stacks")
        env[f"MLOPS_CATALOG_{from_stack.upper()}"] = _catalog(source, from_stack)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="models the stack deploys, one per line")
    models.add_argument("--stack", required=True)
    models.add_argument("--outputs", help="file holding `pulumi stack output --json`")
    env = sub.add_parser("env", help="export lines for the workloads CLI acting on the stack")
    env.add_argument("--stack", required=True)
    env.add_argument("--from-stack", help="also export this stack's catalog (the promotion source)")
    args = parser.parse_args(argv)
    try:
        if args.command == "models":
            for name in deployed_models(args.stack, load_outputs(args.outputs)):
                print(name)
        else:
            for key, value in stack_env(args.stack, args.from_stack).items():
                print(f"export {key}={shlex.quote(value)}")
    except (StackInfoError, json.JSONDecodeError, yaml.YAMLError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
