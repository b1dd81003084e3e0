"""Worker processes that die with their parent.

A `hbench sweep --jobs N` parent killed by kill -9 (or the OOM killer) runs no cleanup, and its workers,
blocked on the pipe to it, would live on holding CPUs, GPUs and run directories. Each worker therefore
asks Linux to SIGKILL it when its parent dies (prctl PR_SET_PDEATHSIG), and, as a fallback where that is
not available, a daemon thread watches the parent's pid and ends the worker when it changes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCH_SECONDS = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process as soon as process `parent_pid` (its parent) is gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no usable libc: the watcher below still ends the worker
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="hbench-parent-watch", daemon=True).start()


def _watch(parent_pid: int) -> None:
    # An orphan is re-parented (to init or a subreaper), so a changed parent pid means the parent died.
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)
