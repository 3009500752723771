"""The Python worker daemon of the tests' Spark Connect server: pyspark's own daemon, with what the project's UDFs
import (MLflow's pyfunc, scikit-learn, pandas, pyarrow) imported once before it forks.

With ``spark.python.worker.reuse=false`` (tests/engines.py: a fresh worker per task, UDFs isolated as on serverless)
every task is a new process forked from this daemon; without the imports here each of them imports MLflow and
scikit-learn again (seconds per task on 2 cores). Nothing runs at import beyond module loading, so each forked
worker starts as clean as before: no tracking URI, no model, no state of an earlier task.
"""

import mlflow.pyfunc  # noqa: F401
import pandas  # noqa: F401
import pyarrow  # noqa: F401
import sklearn.pipeline  # noqa: F401
from pyspark.daemon import manager

if __name__ == "__main__":
    manager()
