"""Logs a person can follow when stderr is a file: a train and a sweep through the CLI, stderr captured
(not a terminal), checked line by line against the run directories' history.jsonl and metrics.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hbench.cli import main
from hbench.runs import RunDirectory


def _cli(args: list[str], capsys) -> tuple[str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    return out, err


def _epoch_line(entry: dict, epochs: int, metric: str) -> re.Pattern:
    parts = " ".join(f"{k} {entry[k]:.4f}" for k in entry if k not in ("epoch", "loss", "valid", "train_seconds",
                                                                          "eval_seconds"))
    text = re.escape(f"epoch {entry['epoch']}/{epochs}  loss {entry['loss']:.4f} ({parts})")
    if "valid" in entry:
        text += re.escape(f"  valid {metric} {entry['valid'][metric]:.4f} (best ")
        text += r"[0-9.]+ @ \d+\)"
    return re.compile(text + r"  \d+\.\ds  eta \d+:\d\d:\d\d$")


def test_train_prints_one_line_per_epoch_and_evaluation_into_stderr_and_train_log(tiny_dataset, tmp_path, capsys) -> None:
    out, err = _cli(["train", "hyperml", "-d", str(tiny_dataset.path), "--epochs", "4", "--eval-every", "2",
                     "--dim", "8", "--out", str(tmp_path)], capsys)
    run = RunDirectory(Path(out.split("\t")[0]))
    history, metrics, metric = run.read_history(), run.read_metrics(), run.read_config()["metric"]
    lines = err.splitlines()
    assert lines[0].startswith("start hyperml on tiny (full), seed 0, device cpu, 4 epochs -> ")
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == len(history) == 4
    for line, entry in zip(epoch_lines, history, strict=True):
        assert _epoch_line(entry, 4, metric).match(line), line
    valid_lines = [line for line in lines if line.startswith("valid @ epoch")]
    assert [int(line.split()[3].rstrip(":")) for line in valid_lines] == [2, 4]  # evaluated epochs only
    assert f"ndcg@10 {history[1]['valid']['ndcg@10']:.4f}" in valid_lines[0]
    assert any(line.startswith("test: ") and f"recall@20 {metrics['test']['recall@20']:.4f}" in line for line in lines)
    assert lines[-1].startswith(f"end completed: best epoch {metrics['best_epoch']} ")
    # Nothing a terminal would redraw (bars), and train.log holds the same lines.
    assert "\r" not in err and "━" not in err
    assert (run.path / "train.log").read_text().splitlines() == lines


def test_sweep_logs_each_cell_start_and_end_and_log_every_thins_the_epoch_lines(tiny_dataset, tmp_path, capsys) -> None:
    out_dir = tmp_path / "sweep"
    _, err = _cli(["sweep", "bpr", "-d", str(tiny_dataset.path), "--dim", "8", "--epochs", "4", "--seeds", "2",
                   "--log-every", "2", "--out", str(out_dir)], capsys)
    lines = err.splitlines()
    sweep = json.loads((out_dir / "sweep.json").read_text())
    assert len(sweep["cells"]) == 2
    for number, cell in enumerate(sweep["cells"], 1):
        run = RunDirectory(out_dir / cell["path"])
        metrics = run.read_metrics()
        what = f"{tiny_dataset.path} bpr seed {cell['train']['seed']}"  # the dataset as the sweep names it
        start, end = f"cell {number}/2 start: {what}", f"cell {number}/2 end: {what}: completed in "
        assert lines.index(start) < next(i for i, line in enumerate(lines) if line.startswith(end))
        end_line = next(line for line in lines if line.startswith(end))
        assert end_line.endswith(f"valid recall@20 {metrics['valid']['recall@20']:.4f}")
        log = (run.path / "train.log").read_text().splitlines()
        assert [line.split()[1] for line in log if line.startswith("epoch ")] == ["2/4", "4/4"]
        assert log[-1].startswith("end completed")
    # Cells' epoch lines stay in their train.log; the sweep's log has one line per cell event.
    assert not any(line.startswith("epoch ") for line in lines)
