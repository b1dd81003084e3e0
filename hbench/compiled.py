"""What the compiled (Numba) CPU kernels share.

Numba's default thread pool ("workqueue") aborts the process when two threads launch parallel kernels at
once (two trainings in threads of one notebook): every parallel kernel is entered under this one lock.
"""

from __future__ import annotations

import threading

PARALLEL_KERNEL = threading.Lock()
