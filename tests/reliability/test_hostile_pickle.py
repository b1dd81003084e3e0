"""Issue 13.1: pickles built only from the allowed numpy names must not corrupt memory.

A dtype's pickled state can clear the flags that tell numpy a field holds objects; numpy then copies the
file's bytes into that field as object pointers, and the first access crashes the process. The files
here are written opcode by opcode, as an attacker would."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hbench.datasets.safe_pickle import NUMPY_ARRAY_GLOBALS, restricted_loads
from hbench.errors import HBenchError

REPO = Path(__file__).resolve().parents[2]
P = pickle


def _text(value: str) -> bytes:
    data = value.encode()
    return P.SHORT_BINUNICODE + bytes([len(data)]) + data


def _dtype(descr: str, state: bytes | None) -> bytes:
    """`numpy.dtype(descr, False, True)`, then BUILD with the pickled `state` tuple (None: no state)."""
    out = b"cnumpy\ndtype\n" + _text(descr) + P.NEWFALSE + P.NEWTRUE + P.TUPLE3 + P.REDUCE
    return out + (state + P.BUILD if state is not None else b"")


def _state(byteorder: str, names: bytes, fields: bytes, elsize: int, alignment: int, flags: int) -> bytes:
    return (P.MARK + P.BININT1 + b"\x03" + _text(byteorder) + P.NONE + names + fields
            + P.BININT + elsize.to_bytes(4, "little", signed=True)
            + P.BININT + alignment.to_bytes(4, "little", signed=True) + P.BININT1 + bytes([flags]) + P.TUPLE)


def _array(dtype: bytes, raw: bytes, n: int = 1) -> bytes:
    """`_reconstruct(ndarray, (0,), b'b')` then BUILD (1, (n,), dtype, False, raw)."""
    return (P.PROTO + b"\x02" + b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
            + P.MARK + P.BININT1 + b"\x00" + P.TUPLE + P.SHORT_BINBYTES + b"\x01b" + P.TUPLE3 + P.REDUCE
            + P.MARK + P.BININT1 + b"\x01" + P.BININT1 + bytes([n]) + P.TUPLE1 + dtype + P.NEWFALSE
            + P.SHORT_BINBYTES + bytes([len(raw)]) + raw + P.TUPLE + P.BUILD + P.STOP)


HIDDEN_OBJECT_FIELD = _array(
    # V8 with one field 'f' of dtype O8 at offset 0, flags 0: numpy no longer knows 'f' holds pointers.
    _dtype("V8", _state("|", _text("f") + P.TUPLE1,
                        P.EMPTY_DICT + _text("f") + _dtype("O8", None) + P.BININT1 + b"\x00" + P.TUPLE2 + P.SETITEM,
                        8, 1, 0)),
    b"\xef\xbe\xad\xde\xef\xbe\xad\xde",
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HIDDEN_OBJECT_FIELD, "dtype 'V8'"),
        # An allowed descriptor whose state claims another item size or clears the object flags.
        (_array(_dtype("i8", _state("<", P.NONE, P.NONE, 4096, 1, 0)), b"\x00" * 8), "dtype state"),
        (_array(_dtype("O8", _state("|", P.NONE, P.NONE, -1, -1, 0)), b"\xef\xbe\xad\xde" * 2), "dtype state"),
        # Plain dtype, but fewer bytes than the shape needs (numpy would read past them).
        (_array(_dtype("f8", None), b"\x00" * 8, n=4), "with 8 bytes"),
        # An object array whose data are raw bytes instead of a list of objects.
        (_array(_dtype("O8", None), b"\xef\xbe\xad\xde" * 2), "not a list"),
    ],
)
def test_tampered_numpy_pickles_are_refused_before_any_array_exists(data: bytes, reason: str) -> None:
    with pytest.raises(HBenchError, match=f"refusing to unpickle the data: it holds .*{reason}"):
        restricted_loads(data, NUMPY_ARRAY_GLOBALS)


def test_plain_arrays_still_load_with_their_values() -> None:
    """The checked path builds the same arrays numpy would, byte order included."""
    for array in (np.arange(5, dtype=">i4"), np.array([1.5, -2.0], "<f8"), np.array([True, False]),
                  np.array([b"ab", b"c"]), np.array(["xy", "z"]), np.arange(6, dtype="u1").reshape(2, 3, order="F")):
        for protocol in (2, 5):
            loaded = restricted_loads(pickle.dumps(array, protocol=protocol), NUMPY_ARRAY_GLOBALS)
            assert loaded.dtype == array.dtype and loaded.tolist() == array.tolist()
    nested = np.empty((2, 2), dtype=object)
    nested[:] = [[{"a": 1}, None], [[1, 2], "x"]]
    assert restricted_loads(pickle.dumps(nested), NUMPY_ARRAY_GLOBALS) == [[{"a": 1}, None], [[1, 2], "x"]]


def test_hostile_dvbpr_file_is_one_line_error_and_leaves_no_raw_copy(tmp_path: Path) -> None:
    """The reported crash: `hbench prepare amazon-men --source DIR` on the 383-byte file (SIGSEGV before)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with open(mirror / "AmazonMenWithImgPartitioned.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        fh.write(HIDDEN_OBJECT_FIELD)
    home = tmp_path / "home"
    env = {**os.environ, "HBENCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("HBENCH_MIRROR", None)
    done = subprocess.run([sys.executable, "-m", "hbench", "prepare", "amazon-men", "--source", str(mirror), "-q"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines() == [
        "error: refusing to unpickle AmazonMenWithImgPartitioned.npy: it holds a dtype 'V8' that is not a plain "
        "number, bytes or text type"
    ]
    raw = home / "raw" / "amazon-men"
    assert not raw.exists() or not [p for p in raw.iterdir() if not p.name.startswith(".")]
    assert not (home / "prepared" / "amazon-men").exists()
