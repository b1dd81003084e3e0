"""Issue 13, done-when: the CLI driven with generated invalid argument sets and spec files.

Every one must end with exit code 2, exactly one line on stderr ("error: ..."), no traceback, and nothing
written under the results root or the data cache."""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbench.cli import main

FUZZ_SETTINGS = settings(max_examples=70, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with one prepared dataset, so that the invalid argument is the only problem."""
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.load import load_dataset
    from hbench.datasets.prepare import prepare_dataset
    from hbench.datasets.synthetic import HierarchySpec, generate_interactions

    root = tmp_path_factory.mktemp("fuzz")
    csv = root / "tiny.csv"
    generate_interactions(HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=150,
                                        seed=7)).to_csv(csv, index=False)
    home = root / "home"
    prepare_dataset("tiny", custom=CustomFiles(name="tiny", interactions=csv), home=home)
    load_dataset("tiny", home)  # its file check is recorded now, not during the fuzzing
    return home


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _run_invalid(args: list[str], home: Path, out: Path) -> None:
    before = _listing(home)
    err = io.StringIO()
    old = os.environ.get("HBENCH_HOME")
    os.environ["HBENCH_HOME"] = str(home)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                pytest.raises(SystemExit) as done:
            main(args)
    finally:
        if old is None:
            os.environ.pop("HBENCH_HOME", None)
        else:
            os.environ["HBENCH_HOME"] = old
    lines = err.getvalue().strip().splitlines()
    assert done.value.code == 2, (args, done.value.code, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
    assert "Traceback" not in err.getvalue()
    assert not out.exists(), (args, "wrote under the results root")
    assert _listing(home) == before, (args, "wrote under the cache")


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


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=64).filter(lambda b: not _is_utf8(b)), suffix=st.sampled_from([".toml",
                                                                                                          ".yaml"]))
def test_binary_spec_files(fuzz_home: Path, tmp_path: Path, data: bytes, suffix: str) -> None:
    spec = tmp_path / f"spec{suffix}"
    spec.write_bytes(data)
    out = tmp_path / "results"
    _run_invalid(["sweep", str(spec), "--out", str(out / "sweep"), "-q"], fuzz_home, out)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
