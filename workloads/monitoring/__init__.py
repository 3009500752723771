"""Quality monitoring: the local monitor that writes the Databricks metric tables, the Databricks refresh,
the read API evaluation code uses on both runtimes, and the HTML report.

- :mod:`.stats` exact drift / profile / quality statistics on sorted arrays;
- :mod:`.compute` metric rows from processed inference rows and the baseline;
- :mod:`.refresh` incremental, atomic local refresh and the Databricks ``run_refresh`` path;
- :mod:`.metrics` ``latest_window_metrics`` and readers of the two metric tables;
- :mod:`.report` the self-contained HTML report.
"""
