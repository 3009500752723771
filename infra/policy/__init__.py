"""The lakehouse-mlops policy pack (``pulumi preview --policy-pack infra/policy``); rules live in rules.py."""
