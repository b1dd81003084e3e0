"""Issue 13.5-13.8: careless and hostile input is one line on stderr and exit 2, never a traceback; every
option's range is checked from flags, spec files and Python; names that become paths are slugs; prepared
files are verified before training."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hbench.cli import main
from hbench.config import TrainConfig
from hbench.errors import HBenchError
from hbench.models.registry import get_model_class, parse_options


def run_cli(args: list[str], capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(done.value.code), err.strip().splitlines()


def assert_usage_error(args: list[str], capsys, match: str) -> None:
    code, lines = run_cli(args, capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], (code, lines)


# --- 13.5 / 13.6: ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--seed", "-1"], "--seed must be non-negative"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "-1"], "--lr must be positive"),
        (["--lr", "0"], "--lr must be positive"),
        (["--k", "0"], "--k must be at least 1"),
        (["--dim", "100000000"], "--dim must be at least 1 and at most 16384"),
        (["--gamma", "-1"], "--gamma must be non-negative, got -1"),
        (["--init-std", "-1"], "--init-std must be positive"),
        (["--margin", "nan"], "--margin must be a finite number"),
    ],
)
def test_out_of_range_training_flags_are_one_line(flags, match, tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "results"
    assert_usage_error(["train", "hyperml", "-d", str(tiny_dataset.path), "--out", str(out), "-q", *flags], capsys,
                       match)
    assert not out.exists()


@pytest.mark.parametrize(("model", "options", "match"), [("bpr", {"reg": -1}, "--reg must be non-negative"),
                                                         ("hyperml", {"gamma": -1.0}, "--gamma"),
                                                         ("cml", {"max_norm": 0}, "--max-norm must be positive"),
                                                         ("hvacf", {"c": float("inf")}, "--c must be a finite")])
def test_python_api_checks_the_same_ranges(model, options, match) -> None:
    with pytest.raises(HBenchError, match=match):
        parse_options(get_model_class(model), options)
    with pytest.raises(HBenchError, match="--lr must be positive"):
        TrainConfig(dataset="x", lr=0.0)


def test_spec_files_check_the_same_ranges(tiny_dataset, tmp_path, capsys) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(f'datasets = ["{tiny_dataset.path}"]\nseeds = 1\n[[models]]\nname = "hyperml"\n'
                    'grid = { gamma = [0.2, -1.0] }\n')
    assert_usage_error(["sweep", str(spec), "--out", str(tmp_path / "sw"), "-q"], capsys, "--gamma must be non-negative")
    assert not (tmp_path / "sw").exists()


def test_models_listing_shows_the_ranges(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["models", "hyperml"])
    listing = capsys.readouterr().out
    assert done.value.code == 0 and "float, positive" in listing and "float, non-negative" in listing


# --- 13.5: files and places -----------------------------------------------------------------------------


def test_out_on_a_file_is_one_line(tiny_dataset, tmp_path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    assert_usage_error(["train", "bpr", "-d", str(tiny_dataset.path), "--epochs", "1", "--out", str(afile), "-q"],
                       capsys, "cannot write in")


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe\x80", 'name = "x"\n'.encode("utf-16")])
def test_binary_or_utf16_spec_is_one_line(content, tmp_path, capsys) -> None:
    for suffix in (".toml", ".yaml"):
        spec = tmp_path / f"spec{suffix}"
        spec.write_bytes(content)
        assert_usage_error(["sweep", str(spec), "-q"], capsys, "a spec file is UTF-8 text")


def _finished_run(tiny_dataset, out: Path, capsys) -> Path:
    code, _ = run_cli(["train", "bpr", "-d", str(tiny_dataset.path), "--epochs", "1", "--dim", "4", "--out", str(out),
                       "-q"], capsys)
    assert code == 0
    return next(out.rglob("metrics.json")).parent


@pytest.mark.parametrize("damaged", ["metrics.json", "config.json"])
def test_damaged_run_files_are_one_line_for_train_and_table(damaged, tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "results"
    run = _finished_run(tiny_dataset, out, capsys)
    (run / damaged).write_bytes(b'{"status": "compl\xff')
    if damaged == "metrics.json":
        assert_usage_error(["train", "bpr", "-d", str(tiny_dataset.path), "--epochs", "1", "--dim", "4", "--out",
                            str(out), "-q"], capsys, f"{damaged} is damaged")
    assert_usage_error(["table", str(out)], capsys, f"{damaged} is damaged")


@pytest.mark.parametrize(("entry", "match"), [
    ({"test": "oops"}, "its test entry is not an object of metrics"),
    ({"test": {"hr@10": "abc"}}, "its test hr@10 is 'abc', not a number"),
    ({"status": 3}, "its status is not a string"),
])
def test_metrics_json_not_as_hbench_writes_it_is_named(entry, match, tiny_dataset, tmp_path, capsys) -> None:
    """Valid JSON of the wrong shape blames metrics.json (not config.json), and is never an unexpected error."""
    out = tmp_path / "results"
    run = _finished_run(tiny_dataset, out, capsys)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, **entry}))
    assert_usage_error(["table", str(out), "--no-test"], capsys, f"metrics.json is damaged ({match})")


def test_damaged_manifest_is_one_line_for_info(tiny_dataset, capsys) -> None:
    (tiny_dataset.path / "manifest.json").write_text('{"name": "tiny", "n_users": ')
    assert_usage_error(["info", str(tiny_dataset.path)], capsys, "manifest.json is damaged")


def _reviews(tmp_path: Path, data: bytes) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    (mirror / "reviews_Automotive_5.json.gz").write_bytes(data)
    return mirror


GOOD_LINES = "".join(json.dumps({"reviewerID": f"u{u}", "asin": f"i{i}", "overall": 5.0, "unixReviewTime": 9 + i})
                     + "\n" for u in range(20) for i in range(6)).encode()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (gzip.compress(b"[" * 100_000 + b"]" * 100_000 + b"\n"), "line 1: nested too deeply"),
        (GOOD_LINES, "not a complete gzip file (Not a gzipped file"),
        (gzip.compress(GOOD_LINES)[:150], "not a complete gzip file (Compressed file ended"),
    ],
)
def test_damaged_review_files_are_one_line(data, match, hbench_home, tmp_path, capsys) -> None:
    mirror = _reviews(tmp_path, data)
    assert_usage_error(["prepare", "amazon2014-automotive", "--source", str(mirror), "-q"], capsys, match)


# --- 13.5: the top-level guard --------------------------------------------------------------------------


def _raising(error: BaseException):
    def command(*args, **kwargs):
        raise error

    return command


def test_ctrl_c_is_interrupted_130_and_nothing_else_is(monkeypatch, capsys) -> None:
    import hbench.datasets.catalog as commands  # `hbench datasets` imports it when it runs

    monkeypatch.setattr(commands, "list_datasets", _raising(KeyboardInterrupt()))
    code, lines = run_cli(["datasets"], capsys)
    assert code == 130 and lines[-1] == "error: interrupted"
    # click reports an EOFError as an abort too; it is not an interruption.
    monkeypatch.setattr(commands, "list_datasets", _raising(EOFError("stream ended")))
    code, lines = run_cli(["datasets"], capsys)
    assert code == 1 and lines[-1].startswith("error: unexpected EOFError: stream ended")


def test_unexpected_errors_are_one_line_with_their_type_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    import hbench.datasets.catalog as commands  # `hbench datasets` imports it when it runs

    monkeypatch.setattr(commands, "list_datasets", _raising(ZeroDivisionError("division by zero")))
    code, lines = run_cli(["datasets"], capsys)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("error: unexpected ZeroDivisionError: division by zero") and "--debug" in lines[0]
    for args, env in ((["--debug", "datasets"], None), (["datasets"], "1")):
        if env:
            monkeypatch.setenv("HBENCH_DEBUG", env)
        with pytest.raises(SystemExit) as done:
            main(args)
        err = capsys.readouterr().err
        assert done.value.code == 1 and "Traceback (most recent call last)" in err and "ZeroDivisionError" in err


# --- 13.7: names that become paths ----------------------------------------------------------------------


def test_sweep_name_cannot_leave_the_results_root(tiny_dataset, tmp_path, capsys) -> None:
    root = tmp_path / "a" / "b" / "results"
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "../../x"\ndatasets = ["{tiny_dataset.path}"]\nseeds = 1\n[[models]]\nname = "pop"\n')
    assert_usage_error(["sweep", str(spec), "--out", str(root / "sweeps" / "ok"), "-q"], capsys, "sweep name '../../x'")
    assert not (tmp_path / "a").exists()


def test_manifest_name_cannot_put_a_run_outside_out(tiny_dataset, tmp_path, capsys) -> None:
    manifest = json.loads((tiny_dataset.path / "manifest.json").read_text())
    manifest["name"] = "../../x"
    (tiny_dataset.path / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "deep" / "er" / "results"
    assert_usage_error(["train", "pop", "-d", str(tiny_dataset.path), "--out", str(out), "-q"], capsys,
                       "the dataset name '../../x'")
    assert not (tmp_path / "deep").exists() and not (tmp_path / "x").exists()


# --- 13.8: prepared files verified before training ------------------------------------------------------


def test_tampered_test_split_is_refused_before_training(tiny_dataset, tmp_path, capsys) -> None:
    test = tiny_dataset.path / "test.parquet"
    frame = pd.read_parquet(test)
    frame.loc[0, "item"] = (int(frame.loc[0, "item"]) + 1) % tiny_dataset.n_items
    frame.to_parquet(test, index=False)
    out = tmp_path / "results"
    assert_usage_error(["train", "pop", "-d", str(tiny_dataset.path), "--out", str(out), "-q"], capsys,
                       "test.parquet changed since it was prepared")
    assert not out.exists()


def test_unchanged_files_are_not_hashed_again(tiny_dataset, monkeypatch) -> None:
    from hbench.datasets import store

    store.load_prepared(tiny_dataset.path)  # verifies and records the files' stat
    calls = []
    monkeypatch.setattr(store, "sha256_file", lambda path: calls.append(path) or "x")
    store.load_prepared(tiny_dataset.path)
    assert calls == []
    copy = tiny_dataset.path / "copy.tmp"
    shutil.copy(tiny_dataset.path / "train.parquet", copy)
    copy.replace(tiny_dataset.path / "train.parquet")  # same bytes, new file: hashed again, and still right
    monkeypatch.undo()
    assert store.load_prepared(tiny_dataset.path).name == "tiny"
