"""Issue 33 (audit R17, R20-R22, R24-R26, X03, E08): run directories whose files disagree, restored by
`hbench recommend` and `hbench export`.

Each damage is one line on stderr naming the file at fault, exit 2, and nothing written; a run that is still
training (no metrics.json) or diverged after keeping a checkpoint is restored, with a warning. The loading
stays restricted: a checkpoint that would run code when unpickled is refused without running it.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from hbench.cli import main
from hbench.config import TrainConfig
from hbench.datasets.custom import CustomFiles
from hbench.datasets.prepare import prepare_dataset
from hbench.datasets.store import PreparedDataset
from hbench.datasets.synthetic import HierarchySpec, generate_interactions
from hbench.training.trainer import train


def _dataset(root: Path, name: str, users: int) -> PreparedDataset:
    csv = root / f"{name}.csv"
    generate_interactions(HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=users,
                                        seed=7)).to_csv(csv, index=False)
    return prepare_dataset(name, custom=CustomFiles(name=name, interactions=csv), overrides={"negatives": 20},
                           home=root / "home")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | PreparedDataset]:
    """Two tiny datasets of different sizes, a finished bpr run on the first and one that diverged at once."""
    root = tmp_path_factory.mktemp("restore")
    tiny, other = _dataset(root, "tiny", 150), _dataset(root, "other", 90)
    config = {"dataset": str(tiny.path), "dim": 4, "epochs": 1, "batch_size": 256, "device": "cpu"}
    finished = train("bpr", TrainConfig(**config), out=root / "results")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overflow the huge rate is there to cause
        diverged = train("bpr", TrainConfig(**config, lr=1e300), out=root / "results")
    assert (finished.status, diverged.status) == ("completed", "diverged")
    assert not (diverged.path / "checkpoint.pt").exists()  # diverged in its first epoch, before any validation
    return {"run": finished.path, "diverged": diverged.path, "tiny": tiny, "other": other}


@pytest.fixture()
def run(trained, tmp_path: Path) -> Path:
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(trained["run"], tmp_path / "run"))


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err.strip().splitlines()


def _refused(command: str, run: Path, capsys, tmp_path: Path) -> str:
    """`command` (recommend or export) on `run`: exit 2, one error line, nothing written; returns the line."""
    before = _listing(run)
    args = ["recommend", str(run), "--user", "u0", "-q"] if command == "recommend" else \
        ["export", str(run), "-o", str(tmp_path / "export"), "-q"]
    code, _, err = _cli(args, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    assert "unexpected" not in err[0] and "Traceback" not in err[0]
    assert _listing(run) == before and not (tmp_path / "export").exists()
    return err[0]


def _user(trained) -> str:
    return str(pd.read_parquet(trained["tiny"].path / "users.parquet")["original_id"].iloc[0])


@pytest.mark.parametrize("command", ["recommend", "export"])
def test_truncated_empty_and_garbage_checkpoints_are_named_as_damaged(run, capsys, tmp_path, command) -> None:
    checkpoint = run / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"", b"not a checkpoint at all\n"):  # R17, R22
        checkpoint.write_bytes(damaged)
        line = _refused(command, run, capsys, tmp_path)
        assert line == (f"error: {checkpoint} is damaged (truncated or not a torch checkpoint); train the run again "
                        "(`hbench train ... --force` with the settings in its config.json)")


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(run, capsys, tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (run / "checkpoint.pt").write_bytes(pickle.dumps({"user_embedding": Payload()}, protocol=2))
    assert "is damaged (truncated or not a torch checkpoint)" in _refused("recommend", run, capsys, tmp_path)
    assert not marker.exists()
    # A well-formed torch file that is not a state dict (a list) is no checkpoint either.
    torch.save([torch.zeros(2)], run / "checkpoint.pt")
    assert "is damaged" in _refused("recommend", run, capsys, tmp_path)


def test_a_directory_named_checkpoint_pt_is_called_a_directory(run, capsys, tmp_path) -> None:  # R21
    (run / "checkpoint.pt").unlink()
    (run / "checkpoint.pt").mkdir()
    line = _refused("recommend", run, capsys, tmp_path)
    assert line == (f"error: {run / 'checkpoint.pt'} is a directory, not a checkpoint; train the run again "
                    "(`hbench train ... --force` with the settings in its config.json)")


@pytest.mark.parametrize("command", ["recommend", "export"])
def test_a_checkpoint_of_another_dataset_says_both_sizes(run, trained, capsys, tmp_path, command) -> None:
    # R24, R26: the checkpoint of a bpr run on a 90-user dataset copied into the 150-user run.
    other = trained["other"]
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    foreign = {"user_embedding": torch.zeros(other.n_users, 4), "item_embedding": torch.zeros(other.n_items, 4),
               "item_bias": torch.zeros(other.n_items, 1)}
    assert set(foreign) == set(state)  # the same model's parameters, another dataset's sizes
    torch.save(foreign, run / "checkpoint.pt")
    tiny = trained["tiny"]
    assert (other.n_users, tiny.n_users) == (90, 150)
    line = _refused(command, run, capsys, tmp_path)
    assert line.startswith(f"error: {run / 'checkpoint.pt'} was trained on 90 users × {other.n_items} items but "
                           f"dataset 'tiny' has 150 users × {tiny.n_items} items; ")


def test_a_config_pointing_at_another_dataset_is_refused_before_the_weights(run, trained, capsys, tmp_path) -> None:
    # R25: config.json edited to name the other dataset (its split hash, path and sizes): the checkpoint no longer fits.
    other, tiny = trained["other"], trained["tiny"]
    config = json.loads((run / "config.json").read_text())
    config["dataset"].update(name="other", path=str(other.path), split_hash=other.split_hash, n_users=other.n_users,
                             n_items=other.n_items)
    (run / "config.json").write_text(json.dumps(config))
    line = _refused("recommend", run, capsys, tmp_path)
    assert line.startswith(f"error: {run / 'checkpoint.pt'} was trained on 150 users × {tiny.n_items} items but "
                           f"dataset 'other' has 90 users × {other.n_items} items; ")
    # Only the split hash and path changed: the sizes config.json records are not the dataset's.
    config["dataset"].update(n_users=tiny.n_users, n_items=tiny.n_items)
    (run / "config.json").write_text(json.dumps(config))
    line = _refused("recommend", run, capsys, tmp_path)
    assert line.startswith(f"error: {run / 'config.json'} records 150 users × {tiny.n_items} items but dataset "
                           f"'other' at {other.path} has 90 users × {other.n_items} items")


def test_a_run_that_diverged_before_any_checkpoint_says_so(trained, capsys, tmp_path) -> None:  # X03
    line = _refused("recommend", trained["diverged"], capsys, tmp_path)
    assert line == (f"error: {trained['diverged']} diverged before it kept a checkpoint (loss became nan or infinite "
                    "at epoch 1); there is no model to restore: train it again with other settings (a lower --lr, "
                    "for one)")
    assert "first validation" not in line


def test_a_run_without_metrics_is_restored_with_one_warning(run, trained, capsys, tmp_path) -> None:  # R20, E08
    (run / "metrics.json").unlink()
    code, out, err = _cli(["recommend", str(run), "--user", _user(trained), "--k", "3", "-q"], capsys)
    assert code == 0 and len(out.splitlines()) == 1 + 3
    assert err == [f"warning: {run} has no metrics.json (still training, or interrupted): using its best checkpoint "
                   "so far"]
    code, _, err = _cli(["export", str(run), "--to", "csv", "-o", str(tmp_path / "x"), "-q"], capsys)
    assert code == 0 and len(err) == 1 and err[0].startswith("warning: ") and (tmp_path / "x" / "export.json").is_file()


def test_a_diverged_run_with_a_checkpoint_is_restored_with_a_warning(run, trained, capsys) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(status="diverged", message="parameters became non-finite at epoch 7")
    (run / "metrics.json").write_text(json.dumps(metrics))
    code, out, err = _cli(["recommend", str(run), "--user", _user(trained), "--k", "2", "-q"], capsys)
    assert code == 0 and len(out.splitlines()) == 3
    assert err == [f"warning: {run} diverged (parameters became non-finite at epoch 7): using the checkpoint of its "
                   "best epoch before that"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_checkpoint_written_to_a_full_disk_names_the_checkpoint(tmp_path, monkeypatch) -> None:
    # torch.save fails on a full disk with an "unexpected pos" RuntimeError of its own; the run's writer must
    # report the checkpoint it was writing and leave no temporary file. /dev/full fails every write with ENOSPC.
    import hbench.runs
    from hbench.errors import EnvironmentFailure

    monkeypatch.setattr(hbench.runs, "open", lambda path, mode, **kwargs: open("/dev/full", mode, **kwargs),
                        raising=False)
    with pytest.raises(EnvironmentFailure) as failure:
        hbench.runs.RunDirectory(tmp_path).write_checkpoint({"user_embedding": torch.zeros(1000, 4)})
    assert str(failure.value) == f"cannot write {tmp_path / 'checkpoint.pt'}: No space left on device"
    assert list(tmp_path.iterdir()) == []
