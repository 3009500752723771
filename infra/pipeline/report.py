"""The report a pipeline helper script prints: one line per model and check, as it happens.

Under Azure Pipelines (``TF_BUILD`` set) a ``FAIL`` line is also raised as an error issue of the step, and a line
whose status is one of ``warn_statuses`` as a warning, each prefixed with the step's name (``smoke``,
``bootstrap``): https://learn.microsoft.com/azure/devops/pipelines/scripts/logging-commands#logissue-log-an-error-or-warning
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

FAIL = "FAIL"


@dataclass
class Report:
    """Lines ``(status, model, message)``; ``failed`` once any line is ``FAIL``."""

    step: str
    warn_statuses: frozenset[str] = frozenset()
    lines: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, status: str, model: str, message: str) -> None:
        self.lines.append((status, model, message))
        print(f"{status:<5} {model}: {message}", flush=True)
        if os.environ.get("TF_BUILD") and (status == FAIL or status in self.warn_statuses):
            kind = "error" if status == FAIL else "warning"
            print(f"##vso[task.logissue type={kind}]{self.step} {model}: {message}", flush=True)

    @property
    def failed(self) -> bool:
        return any(status == FAIL for status, _, _ in self.lines)
