"""Issue 33, done-when: `hbench recommend` and `hbench export` driven with generated invalid arguments and
damaged run folders, and with a disk that fills up in the middle of an export.

A user's mistake ends with exit code 2, a refused write with exit 1; either way exactly one line on stderr
("error: ..."), no traceback, nothing written into the run folder and nothing half-written where the
output was asked for. One tiny run is trained once; every example damages a fresh copy of it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hbench.cli import main
from tests.reliability.harness import assert_refused, fuzz_settings, is_utf8, prepare_tiny

FUZZ_SETTINGS = fuzz_settings(30)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished bpr run (loo) on a tiny prepared dataset."""
    from hbench.config import TrainConfig
    from hbench.training.trainer import train

    root = tmp_path_factory.mktemp("fuzz-runs")
    dataset = prepare_tiny(root, negatives=20) / "prepared" / "tiny"
    result = train("bpr", TrainConfig(dataset=str(dataset), dim=4, epochs=1, batch_size=256, device="cpu"),
                   out=root / "results")
    assert result.status == "completed"
    return result.path


@contextlib.contextmanager
def _copy(pristine: Path) -> Iterator[Path]:
    """A scratch folder holding `run/`, a copy of the trained run (function-scoped fixtures outlive examples)."""
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(pristine, Path(scratch) / "run")
        yield Path(scratch)


def _run_refused(args: list[str], scratch: Path, code: int = 2) -> None:
    """`args` must fail with `code` and one error line, leaving everything under `scratch` as it was."""
    assert_refused(args, None, [scratch], code)


def _damage(run: Path, damage: tuple) -> None:
    kind, arg = damage
    checkpoint = run / "checkpoint.pt"
    if kind == "truncate":
        checkpoint.write_bytes(checkpoint.read_bytes()[: int(arg * checkpoint.stat().st_size)])
    elif kind == "garbage":
        checkpoint.write_bytes(arg)
    elif kind == "directory":
        checkpoint.unlink()
        checkpoint.mkdir()
        (checkpoint / "data.pkl").write_bytes(b"\x80")
    elif kind == "missing":
        checkpoint.unlink()
    elif kind == "shapes":  # the same parameters sized for another dataset
        torch.save({name: torch.zeros((arg, *tensor.shape[1:])) for name, tensor in
                    torch.load(checkpoint, weights_only=True).items()}, checkpoint)
    elif kind == "not_a_state_dict":
        torch.save(arg, checkpoint)
    elif kind == "config_text":
        (run / "config.json").write_bytes(arg)
    elif kind == "config_without":
        config = json.loads((run / "config.json").read_text())
        section, _, key = arg.partition(".")
        del (config[section] if key else config)[key or section]
        (run / "config.json").write_text(json.dumps(config))
    elif kind == "metrics_text":
        (run / "metrics.json").write_bytes(arg)
    else:
        raise AssertionError(kind)


_DAMAGES = st.one_of(
    st.tuples(st.just("truncate"), st.floats(min_value=0.0, max_value=0.999)),
    st.tuples(st.just("garbage"), st.binary(max_size=300)),
    st.tuples(st.just("directory"), st.none()),
    st.tuples(st.just("missing"), st.none()),
    st.tuples(st.just("shapes"), st.integers(min_value=1, max_value=400).filter(lambda n: n not in (150, 108))),
    st.tuples(st.just("not_a_state_dict"), st.sampled_from([[torch.zeros(2)], torch.zeros(3), {"x": 1}, 7, "w"])),
    st.tuples(st.just("config_text"), st.one_of(st.binary(max_size=80),
                                                st.sampled_from([b"[]", b"{}", b"null", b'{"model"']))),
    st.tuples(st.just("config_without"), st.sampled_from(["model", "dataset", "train", "protocol", "model_options",
                                                          "dataset.split_hash", "dataset.name", "train.dim"])),
    st.tuples(st.just("metrics_text"), st.one_of(st.binary(max_size=40),
                                                 st.sampled_from([b"[]", b"{}", b"{\"x\": 1}"]))),
)


@FUZZ_SETTINGS
@given(damage=_DAMAGES, command=st.sampled_from(["recommend", "export"]))
def test_damaged_run_folders(pristine: Path, damage: tuple, command: str) -> None:
    with _copy(pristine) as scratch:
        run = scratch / "run"
        _damage(run, damage)
        args = (["recommend", str(run), "--user", "0", "-q"] if command == "recommend"
                else ["export", str(run), "-o", str(scratch / "out"), "-q"])
        _run_refused(args, scratch)


_BAD_K = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["x", "1.5", "", "1e3"]))
_INVALID_ARGS = st.one_of(
    st.tuples(st.just("--k"), _BAD_K),
    st.tuples(st.just("--to"), st.from_regex(r"[a-zA-Z0-9]{0,8}", fullmatch=True).filter(
        lambda s: s not in ("ranx", "trec", "csv", "parquet"))),
    st.tuples(st.just("-o"), st.sampled_from(["file", "file/below", "file/a/b.csv", "dir_with_mine"])),
    st.tuples(st.just("--users"), st.one_of(st.binary(max_size=40).filter(lambda b: not b.strip()),
                                            st.binary(min_size=1, max_size=40).filter(lambda b: not is_utf8(b)))),
    st.tuples(st.just("--users-missing"), st.just("nosuch.txt")),
)


@FUZZ_SETTINGS
@given(arg=_INVALID_ARGS, command=st.sampled_from(["recommend", "export"]))
def test_invalid_arguments(pristine: Path, arg: tuple[str, object], command: str) -> None:
    with _copy(pristine) as scratch:
        run = scratch / "run"
        (scratch / "file").write_text("a file\n")
        (scratch / "dir_with_mine").mkdir()
        (scratch / "dir_with_mine" / "notes.txt").write_text("mine\n")
        flag, value = arg
        args = [command, str(run), "-q"] + (["--user", "0"] if command == "recommend" and flag != "--users" else [])
        if flag == "--users":
            if command == "export":
                return  # export ranks the test users; nothing to fuzz here
            (scratch / "users.txt").write_bytes(value)  # type: ignore[arg-type]
            args += ["--users", str(scratch / "users.txt")]
        elif flag == "--users-missing":
            args += ["--users", str(scratch / str(value))] if command == "recommend" else ["--to", "xml"]
        elif flag == "-o":
            target = str(scratch / str(value))
            if command == "recommend" and value in ("file", "dir_with_mine"):
                target += "/r.parquet" if value == "file" else ""  # an existing file is simply replaced
            args += ["-o", target]
        elif flag == "--to" and command == "recommend":
            args += ["--k", "0"]
        else:
            args += [flag, str(value)]
        _run_refused(args, scratch)


@FUZZ_SETTINGS
@given(failing=st.sampled_from(["run", "qrels", "users", "items", "export"]),
       fmt=st.sampled_from(["ranx", "trec", "csv", "parquet"]),
       code=st.sampled_from([errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES]),
       earlier=st.booleans())
def test_a_disk_that_fills_up_during_an_export(pristine: Path, failing: str, fmt: str, code: int,
                                               earlier: bool) -> None:
    with _copy(pristine) as scratch:
        run, out = scratch / "run", scratch / "out"
        if earlier:  # an earlier export must survive the failed one whole
            with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit):
                main(["export", str(run), "--to", "csv", "-o", str(out), "-q"])
        real_write_bytes, real_to_parquet = Path.write_bytes, pd.DataFrame.to_parquet

        def fails(path: object) -> bool:
            return Path(str(path)).name.startswith(f".{failing}.")

        def write_bytes(self: Path, data: bytes) -> int:
            if fails(self):
                real_write_bytes(self, data[: len(data) // 2])
                raise OSError(code, "simulated")
            return real_write_bytes(self, data)

        def to_parquet(self: pd.DataFrame, path: object, *args, **kwargs) -> None:
            if fails(path):
                raise OSError(code, "simulated")
            return real_to_parquet(self, path, *args, **kwargs)

        with mock.patch.object(Path, "write_bytes", write_bytes), \
                mock.patch.object(pd.DataFrame, "to_parquet", to_parquet):
            args = ["export", str(run), "--to", fmt, "--embeddings", "-o", str(out), "-q"]
            _run_refused(args, scratch, code=1)
