"""The lakehouse-mlops Pulumi program: the platform, then everything each deployed model spec needs.

Configuration comes only from ``pulumi.Config()`` (see infra/config.py), so this file runs unchanged under
the engine (``pulumi up``) and under mocks (``mlops plan``, tests, benchmarks).
"""

import pulumi

from infra import champion as champion_lookup
from infra.artifacts import locate_wheel
from infra.components.model import ModelDeployment
from infra.components.platform import Platform
from infra.config import load_stack_config, webhook_url
from infra.specs import resolve_spec

config = load_stack_config()
specs = [resolve_spec(name) for name in config.models]
wheel = locate_wheel(config.wheel)
# Every lookup before any resource is declared, through databricks-sdk (infra/champion.py: "absent" and "cannot
# read" told apart by error code), with the provider's workspace and auth type.
registry = champion_lookup.client_factory(config.host, pulumi.Config("databricks").get("authType"))
champions = {spec.name: champion_lookup.lookup_champion(config.registered_model(spec.name), registry,
                                                        creates_catalog=config.catalog.create)
             for spec in specs}

platform = Platform("platform", config, wheel, webhook_url())
models = {spec.name: ModelDeployment(spec.name, spec, config, platform, champions[spec.name]) for spec in specs}

pulumi.export("catalog", platform.catalog_name)
pulumi.export("models_schema", config.models_schema)
pulumi.export("monitoring_schema", config.monitoring_schema)
pulumi.export("wheel_path", platform.wheel_path)
pulumi.export("models", {name: deployment.outputs for name, deployment in models.items()})
