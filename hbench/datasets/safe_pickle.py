"""Unpickling data files without letting them run code.

A pickle is a program: its GLOBAL/STACK_GLOBAL opcodes import any callable and REDUCE calls it, so a
downloaded pickle could run `os.system`. The data hbench reads (HGCF's split pickles, DVBPR's `.npy`)
needs only builtin containers and, for DVBPR, plain numpy arrays; everything else is refused before
it is imported, let alone called.

Even numpy's own names are not handed out: `dtype.__setstate__` accepts flags that hide an object field
from numpy, and `ndarray.__setstate__` then copies file bytes into it as object pointers (a crafted
383-byte `.npy` crashed the process). So the unpickler gives the pickle stand-ins that only record their
arguments; a dtype is accepted when it is one of a few plain kinds and its pickled state is exactly the
state numpy itself writes for it, and an array is built from checked bytes by `np.frombuffer`. An array of
objects is never built at all: it loads as a (nested) list of its already unpickled elements.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import math
import pickle
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

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
"""Globals that plain numpy arrays and scalars need (numpy 1 `numpy.core` names are accepted as well).

They are served by the checking stand-ins below, never by numpy's own functions."""

# bool, integers, floats, complex, fixed-width bytes and text: dtypes holding no pointers. "O8" (object) is
# accepted as a descriptor only so that object arrays can be read as lists.
_PLAIN_DESCR = re.compile(r"^(b1|[iu][1248]|f[248]|c(8|16)|[SU][0-9]{1,6}|O[48])$")
_MAX_ELEMENTS = 1 << 34  # a shape product beyond any data file: refused before any arithmetic on it
_MAX_DEPTH = 200  # nesting of containers checked after loading; real data files nest a few levels


class _PickledDtype:
    """A dtype the pickle asked for: `dtype(descr, align, copy)`, then at most its pickled state."""

    def __init__(self, descr: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(descr, str) or not _PLAIN_DESCR.match(descr):
            raise _Refused(f"a dtype {descr!r} that is not a plain number, bytes or text type")
        self.dtype = np.dtype(descr)

    def __setstate__(self, state: Any) -> None:
        # The state may only repeat what numpy writes for this dtype (byte order aside): any other flags,
        # fields or sizes are how an object field gets hidden.
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise _Refused(f"an invalid dtype state {state!r}"[:200])
        dtype = self.dtype if state[1] in ("|", "=") else self.dtype.newbyteorder(state[1])
        expected = dtype.__reduce__()[2]
        if tuple(state) != expected:
            raise _Refused(f"a dtype state {state!r} that numpy does not write for {dtype}"[:200])
        self.dtype = dtype


class _PickledArray:
    """An array the pickle asked for through `_reconstruct(ndarray, ...)`; its state carries the data."""

    def __init__(self, cls: Any = None, shape: Any = None, typecode: Any = None) -> None:
        if cls is not _NDARRAY:
            raise _Refused("an array of a class other than numpy.ndarray")
        self.value: Any = None
        self.built = False

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("an array state that is not (version, shape, dtype, fortran, data)")
        shape, dtype, fortran, data = state[-4:]
        self.value = _array(data, dtype, _shape(shape), "F" if fortran is True else "C")
        self.built = True


_NDARRAY = object()  # what the pickle gets for `numpy.ndarray`: only `_reconstruct` accepts it


class _Refused(Exception):
    """Raised by the stand-ins; reported with the file's name as a refusal."""


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 32:
        raise _Refused(f"an array shape {shape!r} that is not a tuple of sizes"[:200])
    if math.prod(shape) > _MAX_ELEMENTS:
        raise _Refused(f"an array of shape {shape} (more elements than any data file holds)")
    return shape


def _checked_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, _PickledDtype):
        raise _Refused("an array or scalar whose dtype is not a pickled numpy dtype")
    return dtype.dtype


def _raw_bytes(data: Any) -> bytes:
    # Python 2 pickles read with encoding="latin1" turn the array's raw `str` into text of one code point per byte.
    if isinstance(data, str):
        return data.encode("latin1")
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    raise _Refused(f"array data of type {type(data).__name__}")


def _nested(flat: list[Any], shape: tuple[int, ...]) -> Any:
    """A flat C-order list as nested lists of `shape` (a 0-d array is its one element)."""
    if not shape:
        return flat[0]
    for size in reversed(shape[1:]):
        flat = [flat[i:i + size] for i in range(0, len(flat), size)] if size else [[] for _ in range(len(flat))]
    return flat


def _array(data: Any, dtype: Any, shape: tuple[int, ...], order: str) -> Any:
    """The array `data` describes, or for an object dtype the nested list of its elements."""
    checked = _checked_dtype(dtype)
    count = math.prod(shape)
    if checked.hasobject:
        if not isinstance(data, list) or len(data) != count:
            raise _Refused("an object array whose elements are not a list of its size")
        if order == "F" and len(shape) > 1:
            raise _Refused("a Fortran-ordered array of objects")
        return _nested(list(data), shape)
    raw = _raw_bytes(data)
    if len(raw) != count * checked.itemsize:
        raise _Refused(f"an array of shape {shape} and dtype {checked} with {len(raw)} bytes of data")
    return np.frombuffer(raw, dtype=checked, count=count).reshape(shape, order=order).copy()


def _scalar(dtype: Any, data: Any = None) -> Any:
    checked = _checked_dtype(dtype)
    if checked.hasobject:
        return data
    raw = _raw_bytes(data)
    if len(raw) != checked.itemsize:
        raise _Refused(f"a {checked} scalar with {len(raw)} bytes")
    return np.frombuffer(raw, dtype=checked, count=1)[0]


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> Any:
    if _checked_dtype(dtype).hasobject:
        raise _Refused("an object array in a raw buffer")
    return _array(buffer, dtype, _shape(shape), "F" if order == "F" else "C")


_NUMPY_STAND_INS: dict[tuple[str, str], Callable[..., Any] | object] = {
    ("numpy._core.multiarray", "_reconstruct"): _PickledArray,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _PickledDtype,
}

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
        sys.audit("pickle.find_class", *canonical)
        if canonical in _NUMPY_STAND_INS:
            return _NUMPY_STAND_INS[canonical]
        # Import exactly what was checked (pickle's own find_class would rename it once more).
        obj: Any = importlib.import_module(canonical[0])
        for attr in canonical[1].split("."):
            obj = getattr(obj, attr)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise HBenchError(
            f"refusing to unpickle {self._source}: it uses a persistent id, which a data file has no reason to contain"
        )


def _finish(loaded: Any, source: str) -> Any:
    """`loaded` with every pickled array replaced by its value, after checking that no stand-in is left half
    built (an array never given its state, a dtype outside an array) and that nesting stays shallow."""
    done: dict[int, Any] = {}

    def visit(obj: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Refused(f"containers nested more than {_MAX_DEPTH} levels deep")
        if isinstance(obj, _PickledArray):
            if not obj.built:
                raise _Refused("an array without its data")
            return obj.value if id(obj) in done else done.setdefault(id(obj), visit(obj.value, depth + 1))
        if isinstance(obj, _PickledDtype):
            return obj.dtype
        if isinstance(obj, list | dict | tuple | set | frozenset):
            if id(obj) in done:
                return done[id(obj)]
            done[id(obj)] = obj  # a cycle through a list or dict comes back to this very object
            if isinstance(obj, list):
                obj[:] = [visit(item, depth + 1) for item in obj]
            elif isinstance(obj, dict):
                for key in obj:
                    if isinstance(key, _PickledArray | _PickledDtype):
                        raise _Refused("a numpy object as a dictionary key")
                    obj[key] = visit(obj[key], depth + 1)
            else:
                items = [visit(item, depth + 1) for item in obj]
                if any(new is not old for new, old in zip(items, obj, strict=True)):
                    if not isinstance(obj, tuple):
                        raise _Refused("a numpy object inside a set")
                    done[id(obj)] = tuple(items)
        return done.get(id(obj), obj) if isinstance(obj, list | dict | tuple | set | frozenset) else obj

    return visit(loaded, 0)


def _load(fh: BinaryIO, allowed_globals: frozenset[tuple[str, str]], encoding: str, source: str) -> Any:
    try:
        return _finish(RestrictedUnpickler(fh, allowed_globals, encoding=encoding, source=source).load(), source)
    except HBenchError:
        raise
    except _Refused as exc:
        raise HBenchError(f"refusing to unpickle {source}: it holds {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError, OverflowError) as exc:
        # A damaged or hostile stream makes pickle's own opcodes fail in many ways; none is a bug of ours.
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise HBenchError(f"cannot read {source}: not a valid pickle, corrupt or truncated ({reason})") from None


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
