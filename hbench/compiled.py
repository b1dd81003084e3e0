"""What the compiled (Numba) CPU kernels share.

Numba's default thread pool ("workqueue") aborts the process when two threads launch parallel kernels at
once (two trainings in threads of one notebook): every parallel kernel is entered under this one lock.
"""

from __future__ import annotations

import threading

PARALLEL_KERNEL = threading.Lock()

VECTORISE = frozenset({"reassoc", "contract", "nsz", "arcp"})
"""Numba `fastmath` flags for the kernels' sums: reassociation (and fused multiply-add) lets the compiler
vectorise a reduction over a row; "nnan" and "ninf" are left out, so non-finite values behave as IEEE says
and divergence is still detected. Results differ from a sequential sum by rounding only."""
