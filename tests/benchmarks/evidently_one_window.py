"""Evidently's default data-drift report on one window, timed; run in an isolated env (pandas < 3).

    uv run --no-project --with evidently --with 'pandas<3' python evidently_one_window.py CURRENT.parquet REF.parquet

Prints one JSON line: {"seconds": ..., "rows": ..., "version": ...}. Not a project dependency.
"""

import json
import sys
import time

import pandas as pd


def main(argv=None) -> None:
    current_path, reference_path = (argv or sys.argv[1:])[:2]
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    current = pd.read_parquet(current_path)
    reference = pd.read_parquet(reference_path)
    columns = [c for c in reference.columns if c in current.columns and c not in ("model_version", "timestamp")]
    current, reference = current[columns], reference[columns]
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    snapshot.dict()  # make sure every metric is computed and materialised
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(current),
                      "version": evidently.__version__}))


if __name__ == "__main__":
    main()
