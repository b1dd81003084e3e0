"""Unpickling data files without letting them run code.

A pickle is a program: its GLOBAL/STACK_GLOBAL opcodes import any callable and REDUCE calls it, so a
downloaded pickle could run `os.system`. The data hbench reads (HGCF's split pickles, DVBPR's `.npy`)
needs only builtin containers and, for DVBPR, plain numpy arrays; everything else is refused before
it is imported, let alone called.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
import sys
from pathlib import Path
from typing import Any, BinaryIO

from hbench.errors import HBenchError

NUMPY_ARRAY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # Arrays pickle as _reconstruct(ndarray, ...) + dtype; protocol 5 as _frombuffer; scalars as scalar().
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)
"""Globals that plain numpy arrays and scalars need (numpy 1 `numpy.core` names are accepted as well)."""

# Builtin data types that older protocols rebuild by calling their type; they run no user code.
# Python 3 writes bytes at protocol <= 2 as _codecs.encode(str, "latin1") (the raw data of arrays too).
_DATA_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("_codecs", "encode"),
    }
)


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 name of a global written by Python 2 (__builtin__, copy_reg...), as pickle maps it."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _canonical(module: str, name: str) -> tuple[str, str]:
    """One spelling per global, so that numpy 1 and numpy 2 pickles match the same allowed pair."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        module = "numpy._core" + module.removeprefix("numpy.core")
    return module, name


def _numpy_core_module(module: str) -> str:
    """Where a canonical numpy core module lives in the installed numpy (numpy 1 has no `numpy._core`)."""
    if not module.startswith("numpy._core"):
        return module
    import numpy

    if int(numpy.__version__.split(".")[0]) >= 2:
        return module
    return "numpy.core" + module.removeprefix("numpy._core")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that imports only the (module, name) pairs it was given."""

    def __init__(
        self, file: BinaryIO, allowed_globals: frozenset[tuple[str, str]], *, encoding: str, source: str
    ) -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = _DATA_GLOBALS | {_canonical(m, n) for m, n in allowed_globals}
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        canonical = _canonical(*_python3_name(module, name))
        if canonical not in self._allowed:
            raise HBenchError(
                f"refusing to unpickle {self._source}: it references {module}.{name}, "
                "which a data file has no reason to contain"
            )
        # Import exactly what was checked (pickle's own find_class would rename it once more).
        sys.audit("pickle.find_class", *canonical)
        obj: Any = importlib.import_module(_numpy_core_module(canonical[0]))
        for attr in canonical[1].split("."):
            obj = getattr(obj, attr)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise HBenchError(
            f"refusing to unpickle {self._source}: it uses a persistent id, which a data file has no reason to contain"
        )


def _load(fh: BinaryIO, allowed_globals: frozenset[tuple[str, str]], encoding: str, source: str) -> Any:
    try:
        return RestrictedUnpickler(fh, allowed_globals, encoding=encoding, source=source).load()
    except (pickle.UnpicklingError, EOFError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise HBenchError(f"cannot read {source}: not a valid pickle, corrupt or truncated ({reason})") from exc


def restricted_loads(
    data: bytes, allowed_globals: frozenset[tuple[str, str]] = frozenset(), *, encoding: str = "ASCII"
) -> Any:
    """Unpickle `data`, allowing only builtin containers, numbers, strings, bytes and `allowed_globals`.

    `encoding` decodes Python 2 `str` objects: "latin1" for Python 2 numpy pickles, "bytes" to keep them raw.
    """
    return _load(io.BytesIO(data), allowed_globals, encoding, "the data")


def restricted_load(
    file: Path | str | BinaryIO, allowed_globals: frozenset[tuple[str, str]] = frozenset(), *, encoding: str = "ASCII"
) -> Any:
    """Unpickle a file (a path, or a binary file object read from its current position, e.g. after a .npy header)."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        with open(path, "rb") as fh:
            return _load(fh, allowed_globals, encoding, path.name)
    return _load(file, allowed_globals, encoding, Path(str(getattr(file, "name", "the data"))).name)
