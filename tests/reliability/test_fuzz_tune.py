"""Issue 33: `hbench tune` and `hbench sweep` driven with generated invalid argument sets.

As in test_fuzz_cli.py: every one must end with exit code 2, exactly one line on stderr ("error: ..."), no
traceback, and nothing written under --out or the data cache. Each set is a valid command with one mistake
added, so the mistake is what is refused, and it must be refused before any training starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import assert_refused, fuzz_settings, prepare_tiny

FUZZ_SETTINGS = fuzz_settings(12)


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with one prepared dataset, so that the invalid argument is the only problem."""
    return prepare_tiny(tmp_path_factory.mktemp("fuzz-tune"))


def _run_invalid(args: list[str], home: Path, root: Path) -> None:
    """`hbench ARGS` must refuse in one line with exit 2 and leave `root` (holding --out) and `home` as they were."""
    assert_refused([*args, "--home", str(home), "-q"], home, [root])


_NOT_A_COUNT = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["x", "1.5", "", "-"]))
_BAD_SEEDS = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["-1,2", "1,1", "a", "0,x", ""]))
_UNKNOWN_NAME = st.from_regex(r"no[a-z]{2,8}", fullmatch=True)

# A mistake shared by both commands: one flag and its value (or a typo'd flag), added to a valid command.
_SHARED = st.one_of(
    st.tuples(st.just("--seeds"), _BAD_SEEDS),
    st.tuples(st.just("--seed"), st.sampled_from(["0", "0,1"])),  # train's flag: sweep and tune take --seeds
    st.tuples(st.just("--protocol"), _UNKNOWN_NAME),
    st.tuples(st.just("--metric"), st.one_of(_UNKNOWN_NAME, st.just("ndcg@0"))),
    st.tuples(st.sampled_from(["--epochs", "--dim", "--batch-size", "--patience", "--eval-every"]), _NOT_A_COUNT),
    st.tuples(st.just("--lr"), st.sampled_from(["0", "-1", "nan", "inf", "fast"])),
    st.tuples(st.from_regex(r"--zz[a-z]{1,8}", fullmatch=True), st.just("1")),
    st.tuples(st.just("--executor"), _UNKNOWN_NAME),
    st.tuples(st.just("--jobs"), st.integers(max_value=0).map(str)),
    st.tuples(st.just("--device"), st.sampled_from(["tpu", "cuda:x", "gpu0"])),
    st.tuples(st.just("--tracker"), _UNKNOWN_NAME),
    st.tuples(st.just("--tracker-uri"), st.just("file:///tmp/x")),  # without --tracker
    st.tuples(st.just("--out"), st.sampled_from(["FILE", "FILE/sub"])),  # a file, a path under one
)
_TUNE_ONLY = st.one_of(
    st.tuples(st.just("--trials"), _NOT_A_COUNT),
    st.tuples(st.just("--models"), st.one_of(_UNKNOWN_NAME, st.sampled_from(["", ",", "bpr,pop"]))),
    st.tuples(st.just("--dataset"), _UNKNOWN_NAME),
    st.tuples(st.just("--search-seed"), st.sampled_from(["-1", "4294967296"])),
    st.tuples(st.just("--reg"), st.just("0.1")),  # searched by bpr's declared space: cannot also be fixed
    st.tuples(st.just("--margin"), st.just("0.5")),  # an option of cml only: a tune fixes it for every model
    st.tuples(st.just("--epochs"), st.just("1,2")),  # a list: tune sweeps no grid
)
_SWEEP_ONLY = st.one_of(
    st.tuples(st.just("--dataset"), _UNKNOWN_NAME),
    st.tuples(st.just("--reg"), st.sampled_from(["-1", "-1,0.1", "x,0.1", ","])),
    st.tuples(st.just("--init-std"), st.sampled_from(["0", "0.1,-2"])),
)


def _with_out(flag: tuple[str, str], out: Path, blocker: Path) -> list[str]:
    """The command's --out and the added mistake as `--name=value` (a value may start with a dash); a mistake
    in --out itself (FILE: an existing file) takes the place of the valid one."""
    name, value = flag
    if name == "--out":
        return [f"--out={value.replace('FILE', str(blocker))}"]
    return [f"--out={out}", f"{name}={value}"]


def _blocker(root: Path) -> Path:
    blocker = root / "notes.txt"
    if not blocker.exists():
        blocker.write_text("mine\n")
    return blocker


@FUZZ_SETTINGS
@given(flag=st.one_of(_SHARED, _TUNE_ONLY), models=st.sampled_from(["bpr", "bpr,cml"]))
def test_invalid_tune_arguments(fuzz_home: Path, tmp_path: Path, flag: tuple[str, str], models: str) -> None:
    root = tmp_path / "results"
    root.mkdir(exist_ok=True)
    base = ["tune", "-d", "tiny", "--models", models, "--trials", "1", "--epochs", "1", "--dim", "4"]
    _run_invalid([*base, *_with_out(flag, root / "tune", _blocker(root))], fuzz_home, root)


@FUZZ_SETTINGS
@given(flag=st.one_of(_SHARED, _SWEEP_ONLY), model=st.sampled_from(["bpr", "cml"]))
def test_invalid_sweep_arguments(fuzz_home: Path, tmp_path: Path, flag: tuple[str, str], model: str) -> None:
    root = tmp_path / "results"
    root.mkdir(exist_ok=True)
    if flag[0] in ("--reg", "--init-std") and model == "cml":
        model = "bpr"  # cml has --init-std too, but not --reg; the value is the mistake under test
    base = ["sweep", model, "-d", "tiny", "--epochs", "1", "--dim", "4"]
    _run_invalid([*base, *_with_out(flag, root / "sweep", _blocker(root))], fuzz_home, root)
