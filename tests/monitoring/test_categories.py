"""Category codes: the compiled pass over Arrow strings gives exactly pandas' factorize codes."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from workloads.monitoring import categories

VALUES = ["cash", None, "", "héllo", "cash", "card", None, "", "日本", "card",
          "a value longer than eight bytes", "a value longer than eight bytes!", "12345678", "123456789", "\x00",
          "\x00\x00"]


def _arrow_series(chunks: list[list], sliced: int = 0) -> pd.Series:
    array = pa.chunked_array([pa.array(c, type=pa.large_string()) for c in chunks])
    series = pd.Series(pd.arrays.ArrowStringArray(array))
    return series.iloc[sliced:] if sliced else series


@pytest.mark.parametrize("sliced", [0, 7])
def test_compiled_codes_equal_pandas_factorize(sliced):
    rng = np.random.default_rng(4)
    values = [VALUES[i] for i in rng.integers(0, len(VALUES), 5000)]
    series = _arrow_series([values[:1234], values[1234:1235], [], values[1235:]], sliced=sliced)
    got = categories.compiled_codes(series)
    assert got is not None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    assert np.array_equal(got[0], codes)
    assert list(got[1]) == list(uniques)
    assert (got[0] == -1).sum() == series.isna().sum() > 0


def test_plain_string_columns_and_string_dtype_take_the_compiled_path():
    for series in (pd.Series(VALUES * 3, dtype="string[pyarrow]"), pd.Series(VALUES * 3, dtype="str")):
        got = categories.compiled_codes(series)
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        assert got is not None and np.array_equal(got[0], codes) and list(got[1]) == list(uniques)


def test_too_many_distinct_values_or_python_strings_fall_back_to_pandas():
    many = pd.Series([f"v{i}" for i in range(categories.MAX_COMPILED_CATEGORIES + 1)], dtype="string[pyarrow]")
    assert categories.compiled_codes(many) is None
    assert categories.compiled_codes(pd.Series(VALUES, dtype="string[python]")) is None
    codes_in, _, uniques = categories.factorize(many, None)  # still coded, by pandas
    assert len(uniques) == len(many) and codes_in[-1] == len(many) - 1


def test_shared_dictionary_and_fill():
    inputs = pd.Series(["b", None, "a", "b"], dtype="string[pyarrow]")
    baseline = pd.Series(["c", "a", None], dtype="string[pyarrow]")
    codes_in, codes_b, uniques = categories.factorize(inputs, baseline)
    both, both_uniques = pd.factorize(pd.concat([inputs, baseline], ignore_index=True), use_na_sentinel=True)
    assert list(uniques) == list(both_uniques) == ["b", "a", "c"]
    assert np.array_equal(np.concatenate([codes_in, codes_b]), both)
    codes_in, codes_b, uniques = categories.factorize(inputs, baseline, fill="unknown")
    assert list(uniques) == ["b", "unknown", "a", "c"] and codes_in[1] == codes_b[2] == 1
