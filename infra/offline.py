"""Run the real ``infra/__main__.py`` offline: Pulumi mocks, config from a stack file, no CLI, no network.

Used by ``mlops plan``, the infra tests and the benchmark. :func:`prepare` installs config and mocks (for
``@pulumi.runtime.test`` tests that run the program themselves); :func:`evaluate` does everything and returns
what the program declared.
"""

from __future__ import annotations

import json
import logging
import runpy
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config

from infra.artifacts import project_root
from infra.specs import extra_specs
from workloads.errors import MlopsError
from workloads.specs import ModelSpec

PROJECT = "lakehouse-mlops"
REGISTRY_GET = "databricks-sdk:registered_models.get"  # how the offline registry records a lookup
SECRET_PLACEHOLDER = "[secret]"
MOCK_HOST = "https://adb-0000000000000000.0.azuredatabricks.net"


class StackFileError(MlopsError):
    """A stack file is missing or unreadable."""


def stack_file(stack: str, root: Path | None = None) -> Path:
    return (root or project_root()) / f"Pulumi.{stack}.yaml"


def read_stack_config(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The ``config:`` map of ``Pulumi.<stack>.yaml`` (keys namespaced, values as written)."""
    path = stack_file(stack, root)
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in path.parent.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no stack file {path.name} in {path.parent}; stacks: {', '.join(known) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return dict(data.get("config") or {})


def runtime_config(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Stack-file values as the engine hands them to the program: strings, objects as JSON, secrets marked.

    Encrypted (``secure:``) values cannot be decrypted offline; they become a placeholder, still secret.
    """
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = SECRET_PLACEHOLDER
            secret_keys.append(key)
        elif isinstance(value, str):
            values[key] = value
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        else:
            values[key] = json.dumps(value)
    return values, secret_keys


@dataclass
class DeclaredResource:
    """One resource the program registered, as the engine would see it."""

    type: str
    name: str
    urn: str
    parent: str
    protect: bool
    custom: bool
    inputs: dict[str, Any]
    id: str = ""
    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()

    @property
    def parent_name(self) -> str:
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""

    def key_inputs(self) -> dict[str, Any]:
        """Inputs without the bulky or derived ones, for plans and diffs."""
        return {k: v for k, v in self.inputs.items() if not k.startswith("__")}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping what the engine would know: parent, protect, custom, and the options that
    decide how a change is applied (replace-on-changes, delete-before-replace, ignore-changes)."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.declared: list[DeclaredResource] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            from pulumi.runtime import rpc

            inputs = rpc.deserialize_properties(request.object)
            self.declared.append(DeclaredResource(
                type=request.type, name=request.name, urn=response.urn, parent=request.parent,
                protect=bool(request.protect), custom=bool(request.custom), inputs=_plain(inputs),
                id=response.id, replace_on_changes=tuple(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=tuple(request.ignoreChanges)))
        return response


def _plain(value: Any) -> Any:
    """Inputs as plain JSON-able data (unknowns and secrets rendered)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


class LakehouseMocks(pulumi_mocks.Mocks):
    """Resource and invoke answers shaped like the Databricks provider's.

    ``champions`` maps a model spec name to its champion version; a name mapped to None has a registered
    model but no champion; a name absent has no registered model yet (the lookup fails, as on a first deploy).
    ``lookup_errors`` maps a model name to another failure of the lookup (e.g. ``PERMISSION_DENIED: ...``).
    """

    def __init__(self, champions: Mapping[str, int | None] | None = None,
                 lookup_errors: Mapping[str, str] | None = None):
        self.champions = dict(champions or {})
        self.lookup_errors = dict(lookup_errors or {})
        self.invokes: list[tuple[str, dict]] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        inputs = dict(args.inputs)
        kind = args.typ.rsplit(":", 1)[-1]
        resource_id = f"{args.name}-id"
        if kind == "Catalog":
            resource_id = inputs.get("name", resource_id)
        elif kind == "Schema":
            resource_id = f"{inputs.get('catalogName')}.{inputs.get('name')}"
        elif kind in ("SqlTable", "RegisteredModel"):
            resource_id = f"{inputs.get('catalogName')}.{inputs.get('schemaName')}.{inputs.get('name')}"
        elif kind == "Job":
            resource_id = str(100000 + _stable(f"{args.name}/{inputs.get('name')}") % 900000)
        elif kind == "QualityMonitor":
            inputs["dashboardId"] = f"dash-{_stable(str(inputs.get('tableName'))) % 10**8:08d}"
            inputs["monitorVersion"] = 1
        elif kind == "ModelServing":
            inputs["servingEndpointId"] = f"ep-{inputs.get('name')}"
            if inputs.get("routeOptimized"):  # the data-plane URL Databricks assigns a route-optimized endpoint
                inputs["endpointUrl"] = (f"https://ep-{_stable(str(inputs.get('name'))) % 10**8:08d}.0.serving"
                                         ".azuredatabricks.net/1234567890123456/serving-endpoints/"
                                         f"{inputs.get('name')}/invocations")
        elif kind == "File":
            inputs["fileSize"] = 1
        return resource_id, inputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        self.invokes.append((args.token, dict(args.args)))
        return {}

    # The registry client the program asks for champions (infra/champion.py ``client_factory``): it answers like
    # databricks-sdk's ``registered_models.get``, with the SDK's own exceptions for the error codes.
    @property
    def registered_models(self) -> LakehouseMocks:
        return self

    def get(self, full_name: str, include_aliases: bool = False):
        from databricks.sdk.errors import DatabricksError
        from databricks.sdk.errors.platform import ERROR_CODE_MAPPING, PermissionDenied
        from databricks.sdk.service.catalog import RegisteredModelAlias, RegisteredModelInfo

        self.invokes.append((REGISTRY_GET, {"fullName": full_name, "includeAliases": include_aliases}))
        model = full_name.rsplit(".", 1)[-1].removesuffix("_model")
        if model in self.lookup_errors:
            code, _, message = self.lookup_errors[model].partition(": ")
            cls = {"PERMISSION_DENIED": PermissionDenied}.get(code, ERROR_CODE_MAPPING.get(code, DatabricksError))
            raise cls(message or code, error_code=code)
        if model not in self.champions:
            raise ERROR_CODE_MAPPING["RESOURCE_DOES_NOT_EXIST"](f"Registered model {full_name} not found",
                                                                 error_code="RESOURCE_DOES_NOT_EXIST")
        version = self.champions[model]
        catalog, schema, name = full_name.split(".")
        return RegisteredModelInfo(full_name=full_name, catalog_name=catalog, schema_name=schema, name=name,
                                   aliases=[RegisteredModelAlias(alias_name="champion", version_num=version)]
                                   if version is not None else [])


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelname, record.getMessage()))


@dataclass
class Harness:
    """Config and mocks installed for one offline run of the program."""

    stack: str
    monitor: RecordingMonitor
    mocks: LakehouseMocks
    log: _Collector
    root: Path

    @property
    def main(self) -> Path:
        return self.root / "infra" / "__main__.py"

    def run_program(self) -> dict[str, Any]:
        """Run ``infra/__main__.py`` afresh (as the engine would) and return its module namespace."""
        return runpy.run_path(str(self.main), run_name="__main__")

    @property
    def resources(self) -> list[DeclaredResource]:
        return list(self.monitor.declared)

    @property
    def warnings(self) -> list[str]:
        return [m for level, m in self.log.messages if level == "WARNING"]


def prepare(stack: str = "dev", *, config: Mapping[str, Any] | None = None,
            overrides: Mapping[str, Any] | None = None, champions: Mapping[str, int | None] | None = None,
            wheel: str | Path | None = None, root: Path | None = None, preview: bool = False,
            lookup_errors: Mapping[str, str] | None = None) -> Harness:
    """Install config (the stack file's, or ``config``, plus ``overrides``) and fresh mocks.

    Keys of ``config``/``overrides`` are namespaced (``lakehouse-mlops:models``); an override of None removes
    the key. ``wheel`` sets ``lakehouse-mlops:wheel`` so no built wheel is needed.
    """
    root = root or project_root()
    values = dict(read_stack_config(stack, root) if config is None else config)
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    if wheel is not None:
        values[f"{PROJECT}:wheel"] = str(wheel)
    values.setdefault("databricks:host", MOCK_HOST)
    flat, secret_keys = runtime_config(values)
    set_all_config(flat, secret_keys)

    collector = _Collector()
    logger = logging.getLogger(f"infra.offline.{stack}")
    logger.handlers[:] = [collector]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    mocks = LakehouseMocks(champions, lookup_errors)
    monitor = RecordingMonitor(mocks)
    from infra import champion

    champion.client_factory = lambda host, auth_type=None: mocks
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=monitor)
    return Harness(stack=stack, monitor=monitor, mocks=mocks, log=collector, root=root)


@dataclass
class Evaluation:
    """What one offline run declared."""

    stack: str
    resources: list[DeclaredResource]
    outputs: dict[str, Any]
    warnings: list[str]
    deprecations: list[str] = field(default_factory=list)
    invokes: list[tuple[str, dict]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[DeclaredResource]:
        """Resources whose type token ends with ``kind`` (e.g. ``ModelServing`` or ``model:ModelJobs``)."""
        return [r for r in self.resources if r.type.endswith(kind)]

    def get(self, kind: str, parent_contains: str = "", name: str | None = None) -> DeclaredResource:
        found = [r for r in self.of_type(kind)
                 if parent_contains in r.urn and (name is None or r.name == name)]
        if len(found) != 1:
            raise LookupError(f"expected one {kind} under {parent_contains!r}, found {len(found)}")
        return found[0]


def evaluate(stack: str = "dev", *, config: Mapping[str, Any] | None = None,
             overrides: Mapping[str, Any] | None = None, champions: Mapping[str, int | None] | None = None,
             wheel: str | Path | None = None, specs: Iterable[ModelSpec] = (), root: Path | None = None,
             lookup_errors: Mapping[str, str] | None = None) -> Evaluation:
    """Run the program for ``stack`` under mocks and return what it declared, its outputs and warnings.

    Raises whatever the program raises (e.g. ``StackConfigError``) after the runtime has settled.
    """
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    harness = prepare(stack, config=config, overrides=overrides, champions=champions, wheel=wheel, root=root,
                      lookup_errors=lookup_errors)
    outputs: dict[str, Any] = {}

    def program():
        harness.run_program()
        exported = pulumi_settings.get_root_resource().outputs
        return pulumi.Output.from_input(exported).apply(outputs.update)

    with warnings.catch_warnings(record=True) as caught, extra_specs(specs):
        warnings.simplefilter("always")
        _sync_await(run_pulumi_func(lambda: _sync_await(pulumi.Output.from_input(program()).future())))
    deprecations = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    deprecations += [m for m in harness.warnings if "deprecated" in m.lower()]
    return Evaluation(stack=stack, resources=harness.resources, outputs=outputs,
                      warnings=harness.warnings, deprecations=deprecations, invokes=harness.mocks.invokes)


def placeholder_wheel(directory: Path) -> Path:
    """A stand-in wheel file for offline runs where nothing was built (its hash is stable)."""
    path = directory / "lakehouse_mlops-0.0.0+offline-py3-none-any.whl"
    if not path.exists():
        path.write_bytes(b"offline placeholder: run `uv build --wheel` for the real one\n")
    return path

