"""The watcher: monitor -> evaluate -> (retrain needed?) -> retrain, validate, promote.

Each step is a ``mlops watch`` subcommand (a Databricks ``python_wheel_task`` in the watcher job) and
passes values to later steps through the task-values port.
"""
