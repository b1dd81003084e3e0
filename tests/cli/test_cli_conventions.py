"""The command line behaves like one: whole identifiers when piped, flags as flags, list flags in both
forms, --version, -h and shell completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from hbench.cli import app, main
from hbench.cli.sweep import _seeds
from hbench.cli.train import parse_model_args
from hbench.datasets.catalog import list_datasets
from hbench.datasets.hyperbolicity import estimate_hyperbolicity
from hbench.errors import HBenchError


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_datasets_piped_is_tab_separated_with_whole_names(capsys, hbench_home) -> None:
    code, out, _ = run(["datasets"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split("\t")[0] == "name"
    names = [line.split("\t")[0] for line in lines[1:]]
    assert names == [spec.name for spec in list_datasets()]
    assert all(len(line.split("\t")) == len(lines[0].split("\t")) for line in lines)
    # what `hbench datasets | grep amazon-men` shows
    assert [n for n in names if "amazon-men" in n] == ["amazon-men", "amazon-men-2018"]
    assert "…" not in out and "│" not in out


def _commands(group: typer.core.TyperGroup, prefix: list[str]) -> list[list[str]]:
    paths = [prefix]
    for name, command in group.commands.items():
        paths += _commands(command, [*prefix, name]) if hasattr(command, "commands") else [[*prefix, name]]
    return paths


def test_no_help_shows_a_flag_as_taking_a_bool(capsys) -> None:
    commands = _commands(typer.main.get_command(app), [])
    assert ["train"] in commands and ["plot", "training"] in commands
    for path in commands:
        code, out, _ = run([*path, "-h"], capsys)
        assert code == 0 and "Usage: hbench" in out, path
        assert "<bool>" not in out, path
    _, out, _ = run(["train", "--help"], capsys)
    assert "--force" in out and "--no-name" in out


def test_version_and_completion(capsys, monkeypatch) -> None:
    from hbench import __version__

    # Typer reads the shell from the parent processes unless told not to; then `--show-completion` takes the
    # shell as its value. Without this the test passed under a shell and failed under setsid or a bare runner.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"hbench {__version__}"
    code, out, err = run(["--show-completion", "bash"], capsys)
    assert code == 0 and "_hbench_completion" in out and "_HBENCH_COMPLETE" in out, err
    code, out, _ = run(["-h"], capsys)
    assert "--install-completion" in out and "--version" in out


def test_boolean_model_options_are_flags() -> None:
    switches = {"item-bias"}
    assert parse_model_args(["--no-item-bias", "--lr", "0.1"], switches) == {"item-bias": "false", "lr": "0.1"}
    assert parse_model_args(["--item-bias"], switches) == {"item-bias": "true"}
    assert parse_model_args(["--item-bias=true,false"], switches) == {"item-bias": "true,false"}
    with pytest.raises(HBenchError, match="--item-bias is a flag and takes no value"):
        parse_model_args(["--item-bias", "false"], switches)
    with pytest.raises(HBenchError, match="--c needs a value"):
        parse_model_args(["--c"], switches)


def test_seeds_count_list_and_repeat() -> None:
    assert _seeds(None, 1) == 1
    assert _seeds(["3"], 1) == 3  # a count: seeds 0, 1, 2
    assert _seeds(["0,2"], 1) == [0, 2] == _seeds(["0", "2"], 1)
    assert _seeds(["5"] * 1 + ["6,7"], 1) == [5, 6, 7]
    with pytest.raises(HBenchError, match="--seeds expects a count"):
        _seeds(["0,x"], 1)


def _configs(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.rglob("config.json"))]


def test_train_takes_comma_seeds_and_no_flags(tiny_dataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    code, stdout, err = run(["train", "bpr", "-d", str(tiny_dataset.path), "--seed", "0,1", "--k", "10,20", "--k", "5",
                             "--no-item-bias", "--epochs", "1", "--dim", "4", "--out", str(out), "-q"], capsys)
    assert code == 0, err
    configs = _configs(out)
    assert sorted(c["train"]["seed"] for c in configs) == [0, 1] and len(stdout.splitlines()) == 2
    assert all(c["model_options"]["item_bias"] is False and c["train"]["ks"] == [10, 20, 5] for c in configs)
    code, _, err = run(["train", "bpr", "-d", str(tiny_dataset.path), "--item-bias", "false"], capsys)
    assert code == 2 and "--item-bias is a flag" in err


def test_sweep_flag_form_takes_repeated_seeds_and_no_flags(tiny_dataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    code, _, err = run(["sweep", "bpr", "-d", str(tiny_dataset.path), "--seeds", "0", "--seeds", "2",
                        "--no-item-bias", "--epochs", "1", "--dim", "4", "--out", str(out), "-q"], capsys)
    assert code == 0, err
    configs = _configs(out)
    assert sorted(c["train"]["seed"] for c in configs) == [0, 2]
    assert all(c["model_options"]["item_bias"] is False for c in configs)


def test_info_hyperbolicity_prints_the_estimate(tiny_dataset, capsys) -> None:
    code, out, err = run(["info", str(tiny_dataset.path), "--hyperbolicity", "--samples", "3000", "--nodes", "60",
                          "--seed", "4"], capsys)
    assert code == 0, err
    rows = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    expected = estimate_hyperbolicity(tiny_dataset.train, tiny_dataset.n_users, tiny_dataset.n_items, samples=3000,
                                      nodes=60, seed=4)
    assert rows["delta"].startswith(f"{expected.delta:g} (max over 3,000 sampled quadruples")
    assert rows["2*delta/diameter"].startswith(f"{expected.relative:.3f}")
    assert "largest connected component only" in rows["graph"] and "seed 4" in rows["sample"]


def test_tune_fixes_model_options_given_as_flags(tiny_dataset, tmp_path: Path, capsys) -> None:
    """`hbench tune --models cml --negative closest --rank-weight`: every trial and every seed of the winner
    trains with those options (the boolean one as a flag), and tune.json and the budget line say so."""
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    code, stdout, err = run(["tune", "-d", str(tiny_dataset.path), "--models", "cml", "--trials", "2", "--seeds", "2",
                             "--negative", "closest", "--rank-weight", "--negatives", "3", "--epochs", "1",
                             "--dim", "4", "--out", str(out), "-q"], capsys)
    assert code == 0, err
    configs = _configs(out / "search") + _configs(out / "seeds")
    assert len(configs) == 4
    assert all(c["model_options"]["negative"] == "closest" and c["model_options"]["rank_weight"] is True
               and c["train"]["negatives"] == 3 for c in configs)
    assert json.loads((out / "tune.json").read_text())["options"] == {"cml": {"negative": "closest", "rank_weight": True}}
    assert '(fixed options: cml: negative = "closest", rank_weight = true)' in stdout
    code, _, err = run(["tune", "-d", str(tiny_dataset.path), "--models", "cml", "--trials", "2", "--margin", "0.5",
                        "--out", str(tmp_path / "other"), "-q"], capsys)
    assert code == 2 and "--margin is searched by cml's declared space" in err
