"""The compiled kernels' shared prefetch: it reaches the machine code and changes no value."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from hbench.compiled import PREFETCH_DISTANCE, prefetch_row, prefetch_row_for_write


@numba.njit
def _gather_sum(table: np.ndarray, rows: np.ndarray, prefetch: bool) -> np.ndarray:
    out = np.zeros(table.shape[1], table.dtype)
    for k in range(rows.shape[0]):
        if prefetch and k + PREFETCH_DISTANCE < rows.shape[0]:
            prefetch_row(table, rows[k + PREFETCH_DISTANCE])
            prefetch_row_for_write(table, rows[k + PREFETCH_DISTANCE])
        for d in range(table.shape[1]):
            out[d] += table[rows[k], d]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 13, 50, 64])
def test_prefetch_changes_no_value_and_is_emitted(dtype: type, width: int) -> None:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((300, width)).astype(dtype)
    rows = rng.integers(0, 300, 1000)
    before = table.copy()
    with_prefetch, without = _gather_sum(table, rows, True), _gather_sum(table, rows, False)
    np.testing.assert_array_equal(with_prefetch, without)
    np.testing.assert_array_equal(table, before)  # a prefetch "for write" writes nothing
    np.testing.assert_allclose(without, table[rows].sum(axis=0), rtol=1e-4)  # numpy's sum, another order
    llvm = _gather_sum.inspect_llvm(_gather_sum.signatures[-1])
    assert "llvm.prefetch" in llvm  # not compiled away: the hint reaches the instruction stream
