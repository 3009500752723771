"""Policy pack entry point (`pulumi preview --policy-pack infra/policy`); policies are in pack.py."""

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.policy.pack import policies

PolicyPack(name="lakehouse-mlops", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
