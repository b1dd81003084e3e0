"""The restricted unpickler: real HGCF pickles load, code-running pickles are refused before anything runs."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hbench.datasets.safe_pickle import (
    NUMPY_ARRAY_GLOBALS,
    restricted_load,
    restricted_loads,
)
from hbench.errors import HBenchError


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes the way Python 2 wrote `str` (SHORT_BINSTRING/BINSTRING), as DVBPR's files have them."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1 (the numpy of Python 2) named its core module numpy.core.
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def test_real_hgcf_split_loads_as_dict_of_int_lists(shared_data):
    train = restricted_load(shared_data / "amazon-cd-hgcf" / "train.pkl")
    assert isinstance(train, dict) and len(train) == 22_947
    assert all(isinstance(u, int) and isinstance(items, list) for u, items in train.items())
    assert all(isinstance(i, int) for items in train.values() for i in items)
    assert sum(map(len, train.values())) == 328_779


class _Payload:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.call", "nested"])
def test_code_running_pickles_are_refused_before_running(kind, tmp_path):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
        "nested": {"ok": [1, 2], "bad": _Payload(os.system, f"touch {marker}")},
    }[kind]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload))
    for allowed in (frozenset(), NUMPY_ARRAY_GLOBALS):
        with pytest.raises(HBenchError) as info:
            restricted_load(path, allowed)
        message = str(info.value)
        assert message.startswith("refusing to unpickle evil.pkl: it references ")
        assert "\n" not in message
    assert not marker.exists()


def test_py2_global_names_are_checked_too(tmp_path):
    marker = tmp_path / "pwned"
    data = b"c__builtin__\neval\n(S'open(%r, \"w\")'\ntR." % str(marker).encode()
    with pytest.raises(HBenchError, match=r"__builtin__\.eval"):
        restricted_loads(data, NUMPY_ARRAY_GLOBALS)
    assert not marker.exists()


def test_persistent_ids_are_refused():
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return "x" if obj == "secret" else None

    buf = io.BytesIO()
    WithPid(buf).dump(["secret"])
    with pytest.raises(HBenchError, match="persistent id"):
        restricted_loads(buf.getvalue())


def test_builtin_containers_need_no_globals():
    obj = {"a": [1, 2.5, None, True, 1j], (1, 2): {b"raw", "s"}, "f": frozenset({3}), "b": bytearray(b"xy")}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert restricted_loads(pickle.dumps(obj, protocol=protocol)) == obj


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize(
    "array",
    [np.arange(12, dtype=np.int32).reshape(3, 4), np.array([{"productid": 3}, None], dtype=object), np.array(["ab"])],
)
def test_numpy_arrays_need_the_numpy_globals(array, protocol):
    data = pickle.dumps(array, protocol=protocol)
    loaded = restricted_loads(data, NUMPY_ARRAY_GLOBALS)
    if array.dtype.hasobject:
        # An array of objects is never built: its elements come back as a list.
        assert loaded == array.tolist()
    else:
        assert loaded.dtype == array.dtype and loaded.shape == array.shape
        assert list(loaded.ravel()) == list(array.ravel())
    with pytest.raises(HBenchError, match="refusing to unpickle"):
        restricted_loads(data)


def test_numpy_scalars_load():
    data = pickle.dumps([np.float32(1.5), np.int64(7)])
    assert restricted_loads(data, NUMPY_ARRAY_GLOBALS) == [1.5, 7]


def test_python2_latin1_strings_pass_through_encoding():
    data = py2_pickle({b"caf\xe9": [1, 2], b"imgs": b"\xff\xd8\xff\xe0"})
    assert restricted_loads(data, encoding="latin1") == {"café": [1, 2], "imgs": "\xff\xd8\xff\xe0"}
    assert restricted_loads(data, encoding="bytes") == {b"caf\xe9": [1, 2], b"imgs": b"\xff\xd8\xff\xe0"}
    with pytest.raises(HBenchError, match="not a valid pickle.*codec can't decode"):
        restricted_loads(data)


def test_python2_numpy_npy_layout_loads_from_an_open_file(tmp_path):
    """DVBPR's files: an .npy header, then a Python 2 pickle of an object array (numpy.core names)."""
    user_train = [[{b"productid": 0}, {b"productid": 2}], [{b"productid": 1}]]
    dense = np.arange(6, dtype="<i4")
    obj = np.empty(3, dtype=object)
    obj[:] = [user_train, dense, 2]
    data = py2_pickle(obj)
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data and b"_codecs" not in data
    path = tmp_path / "AmazonToyWithImgPartitioned.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": (3,)})
        fh.write(data)
    with open(path, "rb") as fh:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)
        loaded = restricted_load(fh, NUMPY_ARRAY_GLOBALS, encoding="latin1")
    assert loaded[0] == [[{"productid": 0}, {"productid": 2}], [{"productid": 1}]]
    assert loaded[1].tolist() == [0, 1, 2, 3, 4, 5] and loaded[2] == 2


def test_truncated_pickle_is_a_user_error(tmp_path):
    path = tmp_path / "train.pkl"
    path.write_bytes(pickle.dumps({1: [2, 3]})[:-3])
    with pytest.raises(HBenchError, match="cannot read train.pkl"):
        restricted_load(path)


def test_path_may_be_a_string(shared_data):
    assert isinstance(restricted_load(str(Path(shared_data) / "amazon-cd-hgcf" / "test.pkl")), dict)
