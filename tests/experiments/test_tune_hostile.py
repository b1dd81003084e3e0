"""Issue 33: `hbench tune` and `hbench sweep` given damaged study files and careless flags.

A user's mistake is one `error: ` line naming the file or flag at fault, exit 2, refused before any search
runs and with nothing written; a sweep or tune that produced no result for a model exits 3 and says so.
The cases are the audit's (../shared/reference/audit-2026-12.md): T01-T06, T14, T15, T19, K05, K07, P05,
P06, N03, N04 and rough edge 6. Real runs are tiny (one epoch, dimension 4, one or two trials)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hbench.api import tune
from hbench.cli import main
from hbench.errors import HBenchError
from tests.reliability.harness import listing, prepare_tiny

DAMAGED = "delete it or run the command that writes it again"


def _cli(args: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `hbench ARGS` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        main(args)
    return done.value.code, out.getvalue(), err.getvalue()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data cache holding the small dataset `tiny` (150 users, 108 items)."""
    return prepare_tiny(tmp_path_factory.mktemp("tune-hostile"))


def _tune_args(home: Path, out: Path, *extra: str, models: str = "bpr", trials: str = "2") -> list[str]:
    return ["tune", "-d", "tiny", "--models", models, "--trials", trials, "--epochs", "1", "--dim", "4",
            "--home", str(home), "--out", str(out), "-q", *extra]


@pytest.fixture(scope="module")
def finished_tune(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tune of bpr (2 trials, 1 seed): the template the damaged-file tests copy and damage."""
    pytest.importorskip("optuna")
    out = tmp_path_factory.mktemp("finished") / "tune"
    code, _, err = _cli(_tune_args(home, out, "--seeds", "1"))
    assert code == 0, err
    return out


@pytest.fixture()
def tune_copy(finished_tune: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tune"
    shutil.copytree(finished_tune, copy)
    return copy


def _rewrite_json(path: Path, change: Callable[[dict], object]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _truncate(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


# T01, T02 and a missing or mistyped key: each once said "unexpected ...", or went on with a made-up budget.
_TUNE_JSON_DAMAGE = {
    "truncated": _truncate,
    "a list": lambda p: p.write_text("[]"),
    "without spaces": lambda p: _rewrite_json(p, lambda d: {k: v for k, v in d.items() if k != "spaces"}),
    "seeds not a list": lambda p: _rewrite_json(p, lambda d: {**d, "final_seeds": "0,1"}),
    "a space not a mapping": lambda p: _rewrite_json(p, lambda d: {**d, "spaces": {"bpr": ["lr"]}}),
}


@pytest.mark.parametrize("damage", sorted(_TUNE_JSON_DAMAGE))
def test_a_damaged_tune_json_is_named_and_nothing_runs(damage: str, home: Path, tune_copy: Path) -> None:
    log = tune_copy / "tune.json"
    _TUNE_JSON_DAMAGE[damage](log)
    before = listing(tune_copy)
    code, out, err = _cli(_tune_args(home, tune_copy, "--seeds", "1"))
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {log} is damaged (") and line.endswith(DAMAGED), line
    assert listing(tune_copy) == before


# T03-T06: a TPE record truncated, without trials, with a trial without params, with a value the space cannot
# hold (each once "unexpected JSONDecodeError/KeyError", or "lr expects float" without the file).
_TPE_DAMAGE = {
    "truncated": (_truncate, "line "),
    "without trials": (lambda p: _rewrite_json(p, lambda d: {"search": d["search"]}), "it lacks trials"),
    "trials not a list": (lambda p: _rewrite_json(p, lambda d: {**d, "trials": {"0": {}}}),
                          "its trials are not a list"),
    "a trial without params": (lambda p: _rewrite_json(p, lambda d: {**d, "trials": [{}]}), "trial 0 has no params"),
    "lr is text": (lambda p: _rewrite_json(p, lambda d: {**d, "trials": [{**d["trials"][0], "params": {
        **d["trials"][0]["params"], "lr": "fast"}}, *d["trials"][1:]]}), 'trial 0 has lr = "fast", not a number'),
    "reg outside the space": (lambda p: _rewrite_json(p, lambda d: {**d, "trials": [d["trials"][0], {
        **d["trials"][1], "params": {**d["trials"][1]["params"], "reg": 5.0}}]}), "trial 1 has reg = 5.0"),
}


@pytest.mark.parametrize("damage", sorted(_TPE_DAMAGE))
def test_a_damaged_tpe_record_is_named_and_nothing_runs(damage: str, home: Path, tune_copy: Path) -> None:
    (record,) = (tune_copy / "search").glob("tpe-*.json")
    change, reason = _TPE_DAMAGE[damage]
    change(record)
    before = listing(tune_copy)
    code, out, err = _cli(_tune_args(home, tune_copy, "--seeds", "1"))
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: {record} is damaged (") and reason in line and line.endswith(DAMAGED), line
    assert listing(tune_copy) == before


def test_a_damaged_tpe_record_stops_a_sweep_before_its_grid_runs(home: Path, tmp_path: Path) -> None:
    """A sweep spec with a grid entry and a TPE entry: the damaged record is refused before the grid's cells."""
    pytest.importorskip("optuna")
    spec = tmp_path / "mixed.toml"
    spec.write_text('name = "mixed"\ndatasets = ["tiny"]\nseeds = 1\ntrain = { epochs = 1, dim = 4 }\n'
                    '[[models]]\nname = "cml"\ngrid = { margin = [0.5, 1.0] }\n'
                    '[[models]]\nname = "bpr"\nsearch = { method = "tpe", trials = 1, space = { reg = { low = 0.001, '
                    'high = 0.1, log = true } } }\n')
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "tpe-tiny-bpr.json").write_text('{"search": {"method": "tpe", "trials": [')
    code, _, err = _cli(["sweep", str(spec), "--home", str(home), "--out", str(out), "-q"])
    assert code == 2 and f"{out / 'tpe-tiny-bpr.json'} is damaged" in _one_error_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["tpe-tiny-bpr.json"]  # no cell ran, no sweep.json


def test_seeds_0_is_refused_before_the_search(home: Path, tmp_path: Path) -> None:
    """T14: `--seeds 0` once ran the whole search, then failed, leaving tune.json with final_seeds = []."""
    out = tmp_path / "tune"
    code, _, err = _cli(_tune_args(home, out, "--seeds", "0"))
    line = _one_error_line(err)
    assert code == 2 and "--seeds 0 is a count of no seeds" in line and "--seeds 1 runs seed 0" in line, line
    assert not out.exists()


@pytest.mark.parametrize(("seeds", "message"), [([], "--seeds gives no seed"), ([0, -1], "got -1"),
                                                ([1, 1], "repeats a seed")])
def test_the_api_checks_the_seeds_before_anything_is_written(home: Path, tmp_path: Path, seeds: list[int],
                                                             message: str) -> None:
    out = tmp_path / "tune"
    with pytest.raises(HBenchError) as refused:
        tune("tiny", ["bpr"], 1, seeds, out, train={"epochs": 1, "dim": 4}, home=home)
    assert not out.exists()  # once: refused after the search ran, beside the tune.json it had written
    assert message in str(refused.value)


@pytest.mark.parametrize(("extra", "message"), [
    (["-d", "nosuch"], "no dataset 'nosuch'"),
    (["--metric", "nosuch@10"], "--metric 'nosuch@10' is not produced"),
    (["--protocol", "nosuch"], "nosuch"),
    (["--search-seed", "-1"], "--search-seed must be from 0"),
])
def test_a_bad_dataset_or_setting_is_refused_before_anything_is_printed_or_written(
        home: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    """T15: an unknown dataset once printed an empty plan table, then failed, leaving tune.json and search/."""
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    code, stdout, err = _cli(_tune_args(home, out, "--seeds", "1", *extra))
    assert code == 2 and message in _one_error_line(err) and stdout == ""
    assert not out.exists()


def test_a_missing_optuna_is_reported_before_tune_json_is_written(home: Path, tmp_path: Path, monkeypatch) -> None:
    """K05."""
    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` meets when it is not installed
    out = tmp_path / "tune"
    code, _, err = _cli(_tune_args(home, out, "--seeds", "1"))
    assert code == 2 and "a TPE search needs Optuna" in _one_error_line(err)
    assert not out.exists()


@pytest.mark.parametrize("command", ["tune", "sweep"])
@pytest.mark.parametrize("under", [False, True])
def test_out_naming_a_file_or_a_path_under_one_is_one_line(command: str, under: bool, home: Path,
                                                          tmp_path: Path) -> None:
    """T19: once "unexpected FileExistsError" / NotADirectoryError, exit 1."""
    pytest.importorskip("optuna")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    out = blocker / "sub" if under else blocker
    args = (_tune_args(home, out, "--seeds", "1") if command == "tune" else
            ["sweep", "bpr", "-d", "tiny", "--epochs", "1", "--dim", "4", "--home", str(home), "--out", str(out), "-q"])
    code, _, err = _cli(args)
    line = _one_error_line(err)
    assert code == 2 and str(blocker) in line, line
    assert blocker.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _searched_trials(root: Path, model: str) -> list[tuple[dict, dict]]:
    return [(json.loads(c.read_text()), json.loads((c.parent / "metrics.json").read_text()))
            for c in sorted(root.rglob("config.json")) if json.loads(c.read_text())["model"] == model]


def _short_enough(text: str, value: float) -> bool:
    """`text` is `value` to at most 4 significant digits (as 0.01252 is 0.012520700...)."""
    digits = text.lower().split("e")[0].replace(".", "").replace("-", "").lstrip("0")
    return len(digits) <= 4 and abs(float(text) - value) <= 5e-4 * abs(value)


def test_tune_prints_each_winner_and_takes_a_tracker(home: Path, tmp_path: Path) -> None:
    """Rough edge 6: the summary once showed configuration "—" and "the only configuration" for every model,
    the winners' values only as 16-digit floats in row labels. K07: `--tracker` was refused as "not an
    option of bpr"; now it reaches the runs of both stages."""
    pytest.importorskip("optuna")
    pytest.importorskip("tensorboard")
    out = tmp_path / "tune"
    code, stdout, err = _cli(_tune_args(home, out, "--seeds", "2", "--tracker", "tensorboard",
                                        models="bpr,cml", trials="2"))
    assert code == 0, err
    for model, space in (("bpr", ("lr", "reg")), ("cml", ("lr", "margin"))):
        trials = [(c, m["valid"][m["selection_metric"]]) for c, m in _searched_trials(out / "search", model)]
        best = max(valid for _, valid in trials)
        (line,) = [row for row in stdout.splitlines() if row.startswith(f"| {model} ")]
        values = dict(re.findall(r"(\w+)=([-+.\de]+)", line))
        assert sorted(values) == sorted(space), line
        # The printed values are those of a trial with the best validation score (ties: any of them).
        assert any(all(_short_enough(values[key], config["lr"] if key == "lr" else config["model_options"][key])
                       for key in space) for config, valid in trials if valid == best), (line, trials)
        assert f"{best:.4f}" in line and "2/2" in line
    assert "—" not in stdout.split("\n\n")[1] and "the only configuration" not in stdout
    runs = [c.parent for c in out.rglob("config.json")]
    assert len(runs) == 8 and all(any((run / "tensorboard").glob("events.out.tfevents.*")) for run in runs)
    # The table's row labels and caption write the searched values the same short way.
    code, table, err = _cli(["table", str(out / "seeds")])
    assert code == 0, err
    for token in re.findall(r"\b(?:lr|reg|margin)=([-+.\de]+)", table):
        assert len(token.lower().split("e")[0].replace(".", "").lstrip("0")) <= 4, token


def test_tune_with_an_unknown_tracker_writes_nothing(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    code, _, err = _cli(_tune_args(home, out, "--seeds", "1", "--tracker", "wandb"))
    assert code == 2 and "--tracker must be one of mlflow, tensorboard" in _one_error_line(err)
    assert not out.exists()


def test_a_sweep_where_every_cell_diverged_exits_3(home: Path, tmp_path: Path) -> None:
    """P05: once exit 0 with "Every configuration is reported (no selection: an ablation)"; `train` of the
    same exits 3."""
    out = tmp_path / "sweep"
    code, stdout, err = _cli(["sweep", "bpr", "-d", "tiny", "--init-std", "1e30,1e31", "--epochs", "1", "--dim", "4",
                              "--home", str(home), "--out", str(out), "-q"])
    line = _one_error_line(err)
    assert code == 3 and "every cell of sweep" in line and "2 diverged" in line, line
    assert "2 cells: 2 diverged." in stdout and "an ablation" not in stdout
    assert "an ablation" not in (out / "sweep-summary.md").read_text()


def _nanloss_model() -> type:
    """A model that diverges at its first step whatever its configuration (the audit's `nanloss` plugin)."""
    from hbench.models.base import LossTerms
    from hbench.models.bpr import BPRMF

    class NanLoss(BPRMF):
        name = "nanloss"
        summary = "BPR whose loss is always nan (a test model)"

        def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
            terms = super().loss(users, positives, negatives)
            return LossTerms(terms.total * float("nan"), terms.parts)

    return NanLoss


def test_a_model_whose_search_finished_no_trial_is_named_after_the_others_seeds_ran(
        home: Path, tmp_path: Path, monkeypatch) -> None:
    """P06: once exit 2 after both searches, and bpr's seeds never ran."""
    pytest.importorskip("optuna")
    from hbench.models import registry

    monkeypatch.setitem(registry._BUILTIN, "nanloss", _nanloss_model())
    out = tmp_path / "tune"
    code, stdout, err = _cli(_tune_args(home, out, "--seeds", "2", models="nanloss,bpr", trials="1"))
    line = _one_error_line(err)
    assert code == 3 and "nanloss" in line and "bpr" not in line, line
    finals = [json.loads((c.parent / "metrics.json").read_text()) | {"model": json.loads(c.read_text())["model"]}
              for c in (out / "seeds").rglob("config.json")]
    assert sorted((m["model"], m["status"]) for m in finals) == [("bpr", "completed"), ("bpr", "completed")]
    (row,) = [r for r in stdout.splitlines() if r.startswith("| nanloss ")]
    assert "no finished trial" in row


@pytest.mark.parametrize(("args", "hint"), [
    (["train", "bpr", "-d", "tiny", "--seeds", "3"],
     "model 'bpr' has no option --seeds (did you mean --seed? train takes a list of seeds: --seed 0,1,2)"),
    (["train", "bpr", "-d", "tiny", "--epoch", "3"], "model 'bpr' has no option --epoch (did you mean --epochs?)"),
    (["sweep", "bpr", "-d", "tiny", "--seed", "0,1", "--dry-run"], "(did you mean --seeds? sweep takes a count of "
                                                                   "seeds or a list: --seeds 3 or --seeds 0,1,2)"),
    (["sweep", "bpr", "-d", "tiny", "--epoch", "2", "--dry-run"],
     "--epoch is neither an option of bpr nor a training setting (did you mean --epochs?)"),
    (["sweep", "bpr", "-d", "tiny", "--seeds", "0", "--dry-run"], "--seeds 0 is a count of no seeds"),
    (["tune", "-d", "tiny", "--models", "bpr", "--seed", "0"], "did you mean --seeds? tune takes a count"),
    (["tune", "-d", "tiny", "--models", "bpr", "--trial", "3"], "(did you mean --trials?)"),
    (["ablate", "hyperml", "-d", "tiny", "--seed", "0"], "did you mean --seeds? ablate takes a count"),
])
def test_the_seed_flag_of_the_other_command_gets_a_hint(args: list[str], hint: str, home: Path, tmp_path: Path) -> None:
    """N03, N04: `train --seed` is a list, `sweep/tune --seeds` a count or a list; the wrong one is answered
    with the right one, and a near miss with its closest flag."""
    code, _, err = _cli([*args, "--home", str(home), "--out", str(tmp_path / "out"), "-q"])
    assert code == 2 and hint in _one_error_line(err), err
    assert not (tmp_path / "out").exists()
