"""Starting and polling a Databricks monitor refresh: the current Data Quality API, the legacy one as fallback.

databricks-sdk marks ``WorkspaceClient.quality_monitors`` deprecated: "Please use the Data Quality Monitors API
instead (REST: /api/data-quality/v1/monitors), which manages both Data Profiling and Anomaly Detection". So a
refresh starts with ``data_quality.create_refresh("table", <table_id>, Refresh(...))`` and is polled with
``data_quality.get_refresh``; that API names a table by its Unity Catalog UUID, found with ``tables.get``
("Find the table_id from ... the table_id of the Tables resource", the SDK's docstring). The legacy
``quality_monitors.run_refresh`` / ``get_refresh`` (``/api/2.1/unity-catalog/tables/<name>/monitor/refreshes``)
is used only where the current API is not there: a workspace that answers it with "no such endpoint", "not
implemented" or "feature disabled", or does not know this table's monitor through it.

Both APIs' states are reported as the same short names: PENDING, RUNNING, SUCCESS, FAILED, CANCELED, UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_QUALITY, LEGACY = "data-quality", "quality-monitors"
# Error codes meaning "this workspace has no current API for this", not "the request was wrong".
_FALLBACK_CODES = {"ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED", "FEATURE_DISABLED", "RESOURCE_DOES_NOT_EXIST",
                   "NOT_FOUND"}


@dataclass(frozen=True)
class RefreshStatus:
    """One monitor refresh as either API reports it."""

    refresh_id: int
    state: str
    message: str | None
    api: str

    @property
    def running(self) -> bool:
        return self.state in ("PENDING", "RUNNING")


def _short(state) -> str:
    if state is None:  # not reported yet: the refresh was only just queued
        return "PENDING"
    return str(getattr(state, "value", state)).removeprefix("MONITOR_REFRESH_STATE_")


class MonitorRefreshes:
    """Refreshes of the monitor on one table, through whichever API the workspace offers."""

    def __init__(self, workspace, table: str):
        self.workspace = workspace
        self.table = table
        self.api: str | None = None
        self._table_id: str | None = None

    def start(self) -> RefreshStatus:
        """Start a refresh (current API first).

        Raises:
            databricks.sdk.errors.DatabricksError: neither API could start it.
        """
        from databricks.sdk.errors import DatabricksError

        try:
            return self._start_current()
        except DatabricksError as exc:
            if exc.error_code not in _FALLBACK_CODES:
                raise
        except (AttributeError, ImportError):  # an SDK older than the data_quality API
            pass
        return self._start_legacy()

    def get(self, refresh_id: int) -> RefreshStatus:
        """The refresh's current status, through the API that started it."""
        if self.api == DATA_QUALITY:
            info = self.workspace.data_quality.get_refresh("table", self._table_id, refresh_id)
            return RefreshStatus(int(info.refresh_id), _short(info.state), info.message, DATA_QUALITY)
        info = self.workspace.quality_monitors.get_refresh(table_name=self.table, refresh_id=refresh_id)
        return RefreshStatus(int(info.refresh_id), _short(info.state), info.message, LEGACY)

    def _start_current(self) -> RefreshStatus:
        from databricks.sdk.service.dataquality import Refresh

        table_id = self.workspace.tables.get(self.table).table_id
        info = self.workspace.data_quality.create_refresh(
            "table", table_id, Refresh(object_type="table", object_id=table_id))
        self.api, self._table_id = DATA_QUALITY, table_id
        return RefreshStatus(int(info.refresh_id), _short(info.state), info.message, DATA_QUALITY)

    def _start_legacy(self) -> RefreshStatus:
        info = self.workspace.quality_monitors.run_refresh(table_name=self.table)
        self.api = LEGACY
        return RefreshStatus(int(info.refresh_id), _short(info.state), info.message, LEGACY)
