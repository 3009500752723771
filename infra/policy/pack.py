"""The policy pack's policies: the rules of infra.policy.rules wrapped as Pulumi policies."""

from __future__ import annotations

from pathlib import Path

import yaml
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy import rules

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _report(messages: list[str], report_violation: ReportViolation, urn: str | None = None) -> None:
    for message in messages:
        report_violation(message, urn)


def _inference_table(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    _report(rules.check_inference_table(args.resource_type, args.props), report_violation)


def _unity_catalog(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    _report(rules.check_unity_catalog_entities(args.resource_type, args.props), report_violation)


def _prod_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    protect = bool(getattr(args.opts, "protect", False))
    _report(rules.check_prod_protected(args.resource_type, rules.stack_of(args.urn), protect), report_violation)


def _prod_run_as(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    _report(rules.check_prod_run_as(args.resource_type, rules.stack_of(args.urn), args.props), report_violation)


def _stack_files_have_no_plaintext_secrets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for path in sorted(PROJECT_ROOT.glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        _report(rules.check_stack_config(config, path.name.split(".")[1]), report_violation)


def policies() -> list:
    """Every policy of the pack, all mandatory."""
    mandatory = EnforcementLevel.MANDATORY
    return [
        ResourceValidationPolicy("serving-inference-table-enabled", "Serving endpoints log an inference table.",
                                 _inference_table, mandatory),
        ResourceValidationPolicy("served-entities-are-uc-models", "Served entities are Unity Catalog models.",
                                 _unity_catalog, mandatory),
        ResourceValidationPolicy("prod-resources-protected", "Prod catalogs, schemas, tables, models are protected.",
                                 _prod_protected, mandatory),
        ResourceValidationPolicy("prod-jobs-run-as-service-principal", "Prod jobs run as a service principal.",
                                 _prod_run_as, mandatory),
        StackValidationPolicy("no-plaintext-secrets-in-stack-config", "Stack config holds no plaintext secret.",
                              _stack_files_have_no_plaintext_secrets, mandatory),
    ]

