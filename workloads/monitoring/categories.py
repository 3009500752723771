"""Category codes of text columns: the codes ``pandas.factorize`` gives (in order of first appearance, -1 for
null), shared between the inference rows and the baseline.

Arrow-backed string columns (the default for text read from Delta or Parquet) are coded by a compiled pass over
their Arrow buffers into a small open-addressing table (values of up to 8 bytes are their own keys), several
times faster than hashing Python-visible strings. Columns with many distinct values (not categories), other dtypes, or no numba
take pandas' own path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; pandas covers its absence
    njit = None

MAX_COMPILED_CATEGORIES = 4096  # beyond this many distinct values a column is coded by pandas
_POOL_BYTES = 1 << 20  # room for the distinct values' bytes


def _code_strings(offsets, data, valid, has_nulls, codes, start, table, value_key, pool, pool_off, n_unique):
    """Codes of one Arrow string chunk (``offsets`` into ``data``; ``valid`` when ``has_nulls``) written to
    ``codes[start:]``, continuing the dictionary in ``table`` / ``value_key`` / ``pool`` (the distinct values'
    bytes, ``pool_off`` their offsets) which holds ``n_unique`` values. Returns the new count of distinct values,
    or -1 when they outgrow the dictionary.

    A value of at most 8 bytes is its own key (its bytes packed in an integer, so equal keys of equal length are
    equal values); a longer one is keyed by its FNV-1a hash and compared byte by byte."""
    n = offsets.shape[0] - 1
    shift = np.uint64(64 - int(np.log2(table.shape[0])))
    capacity = value_key.shape[0]
    for i in range(n):
        if has_nulls and not valid[i]:
            codes[start + i] = -1
            continue
        lo = offsets[i]
        hi = offsets[i + 1]
        short = hi - lo <= 8
        key = np.uint64(0)
        if short:
            for j in range(lo, hi):
                key = (key << np.uint64(8)) | np.uint64(data[j])
        else:
            key = np.uint64(14695981039346656037)
            for j in range(lo, hi):
                key = (key ^ np.uint64(data[j])) * np.uint64(1099511628211)
        # Fibonacci hashing of the key (with the length mixed in) to a slot; linear probing
        slot = np.int64(((key + np.uint64(hi - lo)) * np.uint64(11400714819323198485)) >> shift)
        while True:
            u = table[slot]
            if u < 0:  # a new value
                if n_unique >= capacity or pool_off[n_unique] + (hi - lo) > pool.shape[0]:
                    return -1
                p = pool_off[n_unique]
                for j in range(lo, hi):
                    pool[p + j - lo] = data[j]
                pool_off[n_unique + 1] = p + hi - lo
                value_key[n_unique] = key
                table[slot] = n_unique
                codes[start + i] = n_unique
                n_unique += 1
                break
            if value_key[u] == key and pool_off[u + 1] - pool_off[u] == hi - lo:
                same = True
                if not short:
                    p = pool_off[u]
                    for j in range(lo, hi):
                        if pool[p + j - lo] != data[j]:
                            same = False
                            break
                if same:
                    codes[start + i] = u
                    break
            slot = (slot + 1) & (table.shape[0] - 1)
    return n_unique


code_strings = njit(cache=True, nogil=True)(_code_strings) if njit is not None else None


def as_text(series: pd.Series) -> pd.Series:
    return series if isinstance(series.dtype, pd.StringDtype) else series.astype("string")


def _arrow_strings(series: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow string chunks behind ``series``, or None when it is not Arrow-backed text."""
    dtype = series.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") and not (
            isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype)):
        return None
    try:
        chunks = series.array.__arrow_array__()
    except (AttributeError, TypeError):
        return None
    chunks = chunks if isinstance(chunks, pa.ChunkedArray) else pa.chunked_array([chunks])
    if pa.types.is_string(chunks.type):
        chunks = chunks.cast(pa.large_string())
    return chunks if pa.types.is_large_string(chunks.type) else None


def compiled_codes(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``pd.factorize(series)`` (codes as int64, uniques as an object array) by the compiled pass, or None when
    the column does not qualify (see the module docstring)."""
    chunks = None if code_strings is None else _arrow_strings(series)
    if chunks is None:
        return None
    codes = np.empty(len(series), dtype=np.int64)
    table = np.full(4 * MAX_COMPILED_CATEGORIES, -1, dtype=np.int64)
    value_key = np.zeros(MAX_COMPILED_CATEGORIES, dtype=np.uint64)
    pool = np.zeros(_POOL_BYTES, dtype=np.uint8)
    pool_off = np.zeros(MAX_COMPILED_CATEGORIES + 1, dtype=np.int64)
    n_unique, start = 0, 0
    for chunk in chunks.chunks:
        n = len(chunk)
        if n == 0:
            continue
        _, offsets, data = chunk.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64)[chunk.offset:chunk.offset + n + 1]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
        has_nulls = chunk.null_count > 0
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if has_nulls else np.ones(1, dtype=bool)
        n_unique = code_strings(offsets, data, valid, has_nulls, codes, start, table, value_key, pool, pool_off,
                                n_unique)
        if n_unique < 0:
            return None
        start += n
    uniques = np.array([bytes(pool[pool_off[u]:pool_off[u + 1]]).decode("utf-8") for u in range(n_unique)],
                       dtype=object)
    return codes, uniques


def factorize(series_in: pd.Series, series_b: pd.Series | None, fill: str | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Codes of the input and baseline values over one shared dictionary, as ``pd.factorize`` of the two
    concatenated would give them (same codes, same order of first appearance), without the concatenation.
    ``fill`` stands in for nulls."""
    def codes_of(series):
        text = as_text(series)
        if fill is not None and text.hasnans:
            text = text.fillna(fill)
        compiled = compiled_codes(text)
        if compiled is not None:
            return compiled
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)

    codes_in, uniques = codes_of(series_in)
    if series_b is None:
        return codes_in, None, uniques
    codes_b, uniques_b = codes_of(series_b)
    where = pd.Index(uniques, dtype=object).get_indexer(pd.Index(uniques_b, dtype=object)).astype(np.int64)
    new = where < 0
    where[new] = uniques.shape[0] + np.arange(int(new.sum()))
    codes_b = np.where(codes_b >= 0, where[np.maximum(codes_b, 0)], -1)
    return codes_in, codes_b, np.concatenate([uniques, uniques_b[new]])
