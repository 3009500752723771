"""Make the shared helper module (pipeline_rules) importable whatever pytest's import mode; the parsed
pipeline file, once per module."""

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(scope="module")
def doc():
    import pipeline_rules

    return pipeline_rules.load_pipeline()
