"""Issue 13, done-when: the CLI driven with generated invalid argument sets and spec files.

Every one must end with exit code 2, exactly one line on stderr ("error: ..."), no traceback, and nothing
written under the results root or the data cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import assert_refused, fuzz_settings, is_utf8, prepare_tiny

FUZZ_SETTINGS = fuzz_settings(70)


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with one prepared dataset, so that the invalid argument is the only problem."""
    return prepare_tiny(tmp_path_factory.mktemp("fuzz"))


def _run_invalid(args: list[str], home: Path, out: Path) -> None:
    """Refused in one line with exit 2, nothing written under the results root's folder or the cache."""
    out.parent.mkdir(parents=True, exist_ok=True)
    assert_refused(args, home, [out.parent])
    assert not out.exists(), (args, "wrote under the results root")


def _bad_float(positive: bool) -> st.SearchStrategy[str]:
    bound = 0.0 if positive else -1e-300
    numbers = st.floats(max_value=bound, allow_nan=False) if positive else st.floats(max_value=-1e-9)
    return st.one_of(numbers.map(repr), st.sampled_from(["nan", "inf", "-inf", "NaN", "abc", "1..2", "", "0x"]))


_BAD_INT_BELOW_ONE = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["1.5", "x", "", "1e3", "--"]))

_TRAIN_FLAGS = st.one_of(
    st.tuples(st.just("--seed"), st.one_of(st.integers(max_value=-1).map(str), st.just("seven"))),
    st.tuples(st.just("--lr"), _bad_float(positive=True)),
    st.tuples(st.just("--dim"), st.one_of(_BAD_INT_BELOW_ONE, st.integers(min_value=16385).map(str))),
    st.tuples(st.sampled_from(["--k", "--epochs", "--batch-size", "--negatives", "--patience", "--eval-every"]),
              _BAD_INT_BELOW_ONE),
)
_MODEL_FLAGS = st.one_of(
    st.tuples(st.just("hyperml"), st.sampled_from(["--gamma", "--margin"]), _bad_float(positive=False)),
    st.tuples(st.just("hyperml"), st.sampled_from(["--c", "--init-std"]), _bad_float(positive=True)),
    st.tuples(st.just("bpr"), st.just("--reg"), _bad_float(positive=False)),
    st.tuples(st.just("cml"), st.just("--max-norm"), _bad_float(positive=True)),
    st.tuples(st.sampled_from(["bpr", "hyperml"]), st.from_regex(r"--zz[a-z]{1,8}", fullmatch=True), st.just("1")),
)


@FUZZ_SETTINGS
@given(flag=_TRAIN_FLAGS, model=st.sampled_from(["bpr", "hyperml", "cml", "pop"]))
def test_invalid_training_flags(fuzz_home: Path, tmp_path: Path, flag: tuple[str, str], model: str) -> None:
    out = tmp_path / "results"
    _run_invalid(["train", model, "-d", "tiny", "--out", str(out), "-q", f"{flag[0]}={flag[1]}"], fuzz_home, out)


@FUZZ_SETTINGS
@given(entry=_MODEL_FLAGS)
def test_invalid_model_options(fuzz_home: Path, tmp_path: Path, entry: tuple[str, str, str]) -> None:
    model, flag, value = entry
    out = tmp_path / "results"
    _run_invalid(["train", model, "-d", "tiny", "--out", str(out), "-q", f"{flag}={value}"], fuzz_home, out)


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return repr(value)


_SPEC_PROBLEMS = st.one_of(
    st.tuples(st.just("name"), st.one_of(st.just("../../x"), st.from_regex(r"[./][a-z/.]{0,10}", fullmatch=True),
                                         st.from_regex(r"[a-z]{1,4}/[a-z]{1,4}", fullmatch=True))),
    st.tuples(st.just("train.lr"), st.one_of(st.floats(max_value=0.0), st.just(float("nan")))),
    st.tuples(st.just("train.dim"), st.one_of(st.integers(max_value=0), st.integers(min_value=16385))),
    st.tuples(st.just("train.epochs"), st.integers(max_value=0)),
    st.tuples(st.just("grid.gamma"), st.floats(max_value=-1e-9)),
    st.tuples(st.just("grid.c"), st.floats(max_value=0.0)),
    st.tuples(st.just("seeds"), st.integers(max_value=-1)),
)


def _spec_text(problem: tuple[str, object]) -> str:
    key, value = problem
    top = {"name": '"fuzz"', "datasets": '["tiny"]', "seeds": "1"}
    train = {"epochs": "1", "dim": "4"}
    grid = {}
    section, _, field = key.partition(".")
    if section == "train":
        train[field] = _toml_value(value)
    elif section == "grid":
        grid[field] = f"[{_toml_value(value)}]"
    else:
        top[key] = _toml_value(value)
    lines = [f"{k} = {v}" for k, v in top.items()]
    lines.append("train = { " + ", ".join(f"{k} = {v}" for k, v in train.items()) + " }")
    lines += ["[[models]]", 'name = "hyperml"']
    if grid:
        lines.append("grid = { " + ", ".join(f"{k} = {v}" for k, v in grid.items()) + " }")
    return "\n".join(lines) + "\n"


@FUZZ_SETTINGS
@given(problem=_SPEC_PROBLEMS, suffix=st.sampled_from([".toml"]))
def test_invalid_spec_files(fuzz_home: Path, tmp_path: Path, problem: tuple[str, object], suffix: str) -> None:
    spec = tmp_path / f"spec{suffix}"
    spec.write_text(_spec_text(problem))
    out = tmp_path / "results"
    _run_invalid(["sweep", str(spec), "--out", str(out / "sweep"), "-q"], fuzz_home, out)


@fuzz_settings(40)
@given(data=st.binary(min_size=1, max_size=64).filter(lambda b: not is_utf8(b)), suffix=st.sampled_from([".toml",
                                                                                                          ".yaml"]))
def test_binary_spec_files(fuzz_home: Path, tmp_path: Path, data: bytes, suffix: str) -> None:
    spec = tmp_path / f"spec{suffix}"
    spec.write_bytes(data)
    out = tmp_path / "results"
    _run_invalid(["sweep", str(spec), "--out", str(out / "sweep"), "-q"], fuzz_home, out)
