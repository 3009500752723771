import pytest

from workloads import registry
from workloads.errors import RegistryError
from workloads.specs import ModelSpec, Threshold, load_spec
from workloads.training import train_model


def test_aliases_set_get_and_load_by_alias_or_version(trained):
    settings, results = trained
    spec = load_spec("bakehouse_autolog")
    champion = registry.require_alias(settings, spec, registry.CHAMPION)
    assert champion.version == results[spec.name].version
    assert registry.get_alias(settings, spec, registry.PREVIOUS) is None
    registry.set_alias(settings, spec, registry.PREVIOUS, champion.version)
    assert registry.get_alias(settings, spec, registry.PREVIOUS).version == champion.version
    registry.delete_alias(settings, spec, registry.PREVIOUS)
    assert registry.get_alias(settings, spec, registry.PREVIOUS) is None
    by_alias = registry.load_model(settings, spec)
    by_version = registry.load_model(settings, spec, version=champion.version)
    assert by_alias.metadata.run_id == by_version.metadata.run_id == champion.run_id
    info = registry.version_info(settings, spec, champion.version)
    assert info.tags["passed_thresholds"] == "true"
    assert [v.version for v in registry.list_versions(settings, spec)] == [champion.version]


def test_missing_alias_version_and_model_are_clear_errors(trained):
    settings, _ = trained
    spec = load_spec("bakehouse_autolog")
    with pytest.raises(RegistryError, match="has no 'challenger' version"):
        registry.load_model(settings, spec, alias="challenger")
    with pytest.raises(RegistryError, match="has no version 99"):
        registry.version_info(settings, spec, 99)
    with pytest.raises(RegistryError, match="cannot set alias"):
        registry.set_alias(settings, spec, "champion", 99)


def test_first_version_becomes_champion_only_if_it_passes(trained, monkeypatch):
    settings, _ = trained
    strict = load_spec("bakehouse_autolog").model_copy(update={
        "name": "bakehouse_strict", "thresholds": {"rmse": Threshold(max=0.01), "r2": Threshold(min=0.5)}})
    assert isinstance(strict, ModelSpec)
    result = train_model(settings, strict)
    assert result.version == 1
    assert not result.passed and result.failures[0].startswith("rmse:")
    assert result.alias is None
    assert registry.get_alias(settings, strict, registry.CHAMPION) is None
    assert registry.version_info(settings, strict, 1).tags["passed_thresholds"] == "false"


def test_second_passing_version_becomes_challenger_not_champion(trained):
    settings, results = trained
    spec = load_spec("bakehouse_large_order")
    second = train_model(settings, spec)
    assert second.alias == "challenger"
    assert registry.require_alias(settings, spec).version == results[spec.name].version
    assert registry.require_alias(settings, spec, "challenger").version == second.version
