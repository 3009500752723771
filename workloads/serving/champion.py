"""The served model: the registry's ``champion``, followed without restart.

A background thread polls the alias (one cheap registry call every ``poll_interval`` seconds). When
it moves, the new version is loaded off the request path and swapped in with one reference
assignment; a request in flight keeps the :class:`ServedModel` it started with, so nothing fails and
each request is logged with the version that actually scored it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workloads import registry
from workloads.settings import Settings
from workloads.specs import ModelSpec

log = logging.getLogger(__name__)


def served_entity_name(spec: ModelSpec, version: int) -> str:
    """Name of the served entity for a model version (the same on Databricks and locally)."""
    return f"{spec.registered_model_suffix}-{int(version)}"


def version_of_entity(served_entity: str | None) -> str | None:
    """Model version encoded in a served entity name/id (``<model>_model-<version>``), if any."""
    if not served_entity:
        return None
    tail = str(served_entity).rsplit("-", 1)[-1]
    return tail if tail.isdigit() else None


def direct_predictor(model: Any) -> Callable | None:
    """The flavor model's own predict method, when calling it is equivalent to the pyfunc's.

    The endpoint has already checked every column against the spec's types, so pyfunc's per-call
    schema enforcement (most of the scoring time of a small request) adds nothing for scikit-learn
    models; other flavors keep the full pyfunc path.
    """
    metadata = getattr(model, "metadata", None)
    flavors = getattr(metadata, "flavors", None) or {}
    pyfunc_conf = flavors.get("python_function", {})
    if "sklearn" not in flavors or pyfunc_conf.get("loader_module") != "mlflow.sklearn":
        return None
    try:
        raw = model.get_raw_model()
    except Exception:  # noqa: BLE001 - no raw model: use the pyfunc path
        return None
    return getattr(raw, pyfunc_conf.get("predict_fn", "predict"), None)


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version and how it appears in the endpoint and the payload table."""

    version: int
    entity_name: str
    model: Any
    direct: Callable | None = None

    @property
    def served_entity_id(self) -> str:
        return self.entity_name

    def predict(self, frame):
        if self.direct is not None:
            return self.direct(frame)
        return self.model.predict(frame)


class Champion:
    """Holds the currently served :class:`ServedModel` and follows the ``champion`` alias.

    Args:
        settings: where the registry is.
        spec: the model whose champion is served.
        poll_interval: seconds between alias checks.
    """

    def __init__(self, settings: Settings, spec: ModelSpec, poll_interval: float = 1.0):
        self.settings = settings
        self.spec = spec
        self.poll_interval = poll_interval
        self._current: ServedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    @property
    def current(self) -> ServedModel:
        served = self._current
        if served is None:
            raise RuntimeError("champion not loaded; call start() first")
        return served

    def start(self) -> Champion:
        """Load the champion now (raises :class:`RegistryError` if there is none) and start following it."""
        info = registry.require_alias(self.settings, self.spec, registry.CHAMPION)
        self._load(info.version)
        self._thread = threading.Thread(target=self._follow, name="champion-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def refresh(self) -> bool:
        """Check the alias once; load and swap if it moved. Returns whether a swap happened."""
        info = registry.get_alias(self.settings, self.spec, registry.CHAMPION)
        if info is None or (self._current is not None and info.version == self._current.version):
            return False
        self._load(info.version)
        return True

    def _load(self, version: int) -> None:
        model = registry.load_model(self.settings, self.spec, alias=None, version=version)
        previous = self._current
        self._current = ServedModel(version, served_entity_name(self.spec, version), model, direct_predictor(model))
        if previous is not None:
            self.swaps += 1
            log.info("now serving %s version %s (was %s)", self.spec.name, version, previous.version)

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:
                log.exception("champion refresh for %s failed; still serving the loaded version", self.spec.name)
