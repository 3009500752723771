"""Domain exceptions. Every error a user can cause is an ``MlopsError`` with one clear line."""


class MlopsError(Exception):
    """Base class: the message is shown to the user as one line, with what to do."""


class SpecError(MlopsError):
    """A model spec is unknown or invalid."""


class TableNotFoundError(MlopsError):
    """A Unity Catalog table (or its local Delta twin) does not exist."""


class DataValidationError(MlopsError):
    """Input data failed validation; ``failures`` names each failed check."""

    def __init__(self, message: str, failures: list[str] | None = None):
        super().__init__(message)
        self.failures = failures or []


class RegistryError(MlopsError):
    """A registered model, version or alias is missing or cannot be changed."""


class SettingsError(MlopsError):
    """Settings (home dir, backend, names) are invalid."""


class SchemaDriftError(MlopsError):
    """A step would write columns a declared table (processed, baseline) lacks: on Databricks the stack declares
    those tables from the spec, and a job never changes their schema."""
