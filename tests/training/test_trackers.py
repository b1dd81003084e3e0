"""Experiment trackers, read back with their own readers: an MLflow file store through MlflowClient and
TensorBoard event files through TensorBoard's EventAccumulator, against the run directory's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hbench.cli import main
from hbench.runs import RunDirectory


def _cli(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    return out


def _train_args(dataset, out: Path) -> list[str]:
    return ["train", "hyperml", "-d", str(dataset.path), "--epochs", "3", "--eval-every", "1", "--dim", "8", "--out", str(out), "--quiet"]


def test_mlflow_file_store_holds_config_history_metrics_and_artefacts(tiny_dataset, tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    out = _cli([*_train_args(tiny_dataset, tmp_path / "results"), "--tracker", "mlflow", "--tracker-uri", uri], capsys)
    run_dir = RunDirectory(Path(out.split("\t")[0]))
    history, metrics, config = run_dir.read_history(), run_dir.read_metrics(), run_dir.read_config()

    client = MlflowClient(tracking_uri=uri)
    (tracked,) = client.search_runs([client.get_experiment_by_name("hbench").experiment_id])
    assert tracked.info.status == "FINISHED" and tracked.data.tags["hbench.config_hash"] == config["config_hash"]
    assert tracked.data.params["model"] == "hyperml" and float(tracked.data.params["model_options.c"]) == 1.0
    assert tracked.data.params["train.epochs"] == "3"
    losses = client.get_metric_history(tracked.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in sorted(losses, key=lambda m: m.step)] == [(h["epoch"], h["loss"]) for h in history]
    valid = client.get_metric_history(tracked.info.run_id, "valid/ndcg_at_10")
    # every validation, then the best one again as the final value (at the best epoch's step)
    assert sorted((m.step, m.value) for m in valid) == sorted(
        [(h["epoch"], h["valid"]["ndcg@10"]) for h in history] + [(metrics["best_epoch"], metrics["valid"]["ndcg@10"])])
    assert tracked.data.metrics["test/recall_at_20"] == metrics["test"]["recall@20"]
    artefacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert {"config.json", "metrics.json", "history.jsonl", "train.log", "checkpoint.pt"} <= artefacts


def test_mlflow_logs_every_sweep_cell_under_the_sweeps_name(tiny_dataset, tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    _cli(["sweep", "bpr", "-d", str(tiny_dataset.path), "--dim", "8", "--epochs", "2", "--seeds", "2", "--quiet",
          "--out", str(tmp_path / "sweep"), "--tracker", "mlflow", "--tracker-uri", uri], capsys)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(f"bpr-{tiny_dataset.path.name}").experiment_id])
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert sorted(r.data.tags["hbench.config_hash"] for r in runs) == sorted(c["config_hash"] for c in sweep["cells"])


def test_mlflow_refusal_of_a_file_store_is_one_error_line(tiny_dataset, tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([*_train_args(tiny_dataset, tmp_path), "--tracker", "mlflow", "--tracker-uri", (tmp_path / "m").as_uri()])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: MLflow cannot use tracking URI") and err.count("\n") == 1
    assert not list(tmp_path.rglob("config.json"))  # refused before anything ran


def test_tensorboard_event_files_hold_history_and_final_metrics(tiny_dataset, tmp_path, capsys) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = _cli([*_train_args(tiny_dataset, tmp_path / "results"), "--tracker", "tensorboard"], capsys)
    run_dir = RunDirectory(Path(out.split("\t")[0]))
    history, metrics = run_dir.read_history(), run_dir.read_metrics()
    events = EventAccumulator(str(run_dir.path / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [h["epoch"] for h in history]
    assert [e.value for e in loss] == pytest.approx([h["loss"] for h in history], rel=1e-6)  # stored as float32
    assert [e.value for e in events.Scalars("valid/recall@20")] == pytest.approx(
        [h["valid"]["recall@20"] for h in history], rel=1e-6)
    (final,) = events.Scalars("final/test/recall@20")
    assert final.value == pytest.approx(metrics["test"]["recall@20"], rel=1e-6) and final.step == metrics["best_epoch"]
    assert "config" in events.Tags()["tensors"] or "config/text_summary" in events.Tags()["tensors"]


def test_python_api_takes_trackers(tiny_dataset, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import hbench
    from hbench.trackers import Tracker

    result = hbench.train("bpr", tiny_dataset, epochs=2, dim=8, out=tmp_path / "results",
                          trackers=[Tracker("tensorboard", str(tmp_path / "tb"))])
    relative = result.path.relative_to(tmp_path / "results")  # dataset/protocol/model/run below the log directory
    events = EventAccumulator(str(tmp_path / "tb" / relative))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
