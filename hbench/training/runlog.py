"""What one training run reports as it goes: plain log lines and experiment-tracker calls.

A run logs one line when it starts, one per epoch (every `log_every`-th and the last: loss parts, the
selection metric when validated, seconds, ETA), one per evaluation (every metric) and one when it ends.
The lines go to the run's train.log always and to stderr where there are no progress bars (see
`hbench.ui.Feedback.line`), so a job whose output goes to a file can be followed epoch by epoch:

    start hyperml on tiny (loo), seed 0, device cpu, 20 epochs -> results/tiny/loo/hyperml/3f2a9c81d0-seed0
    epoch 1/20  loss 0.7012 (distortion 0.0312)  valid ndcg@10 0.2310 (best 0.2310 @ 1)  0.8s  eta 0:00:15
    valid @ epoch 1: hr@10 0.4400  ndcg@10 0.2310  hr@20 0.6000  ndcg@20 0.2711  mrr 0.2001  auc 0.8011  (0.1s)
    test: hr@10 0.4200  ndcg@10 0.2250  ...  (0.1s)
    end completed: best epoch 14 (valid ndcg@10 0.3121), 19 epochs, train 15.2s, eval 2.1s
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.markup import escape

from hbench.runs import LOG, RunDirectory
from hbench.ui import Feedback

# History keys that are not loss parts.
_NOT_LOSS = {"epoch", "loss", "valid", "train_seconds", "eval_seconds"}


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def metrics_text(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())


class RunReporter:
    """Reports one run: `start()`, then `epoch(entry)` for every history entry, then `finish(summary)`.

    `feedback` is the caller's; `self.feedback` is the same one writing into the run's train.log, which
    the trainer uses for everything else it says during the run (early stopping, resuming).
    """

    def __init__(self, feedback: Feedback, run_dir: RunDirectory, config: dict[str, Any], epochs: int) -> None:
        self.feedback = feedback.logging_to(run_dir.path / LOG)
        self.run_dir, self.config, self.epochs = run_dir, config, epochs
        self.metric: str = config["metric"]
        self.started = time.perf_counter()
        self.epochs_here = 0  # epochs run in this process (a resumed run's earlier ones took unknown time)
        self.best_value, self.best_epoch = -math.inf, 0
        self.last_entry_at = self.started
        self.tracked = [tracker.open_run(config, run_dir.path) for tracker in feedback.trackers]

    def start(self, device: str) -> None:
        history = self.run_dir.read_history()  # non-empty when resuming
        for entry in history:
            self._note_best(entry)
        resumed = f", resumed after epoch {history[-1]['epoch']}" if history else ""
        c = self.config
        text = (f"start {c['model']} on {c['dataset']['name']} ({c['protocol']}), seed {c['train']['seed']}, "
                f"device {device}, {f'{self.epochs} epochs' if self.epochs else 'no training'}{resumed} "
                f"-> {self.run_dir.path}")
        self.feedback.log(escape(text))  # a log line, not only a plain one: a terminal shows it above the bars

    def _note_best(self, entry: dict[str, Any]) -> None:
        value = entry.get("valid", {}).get(self.metric, math.nan)
        if value > self.best_value:  # strictly, as early stopping keeps the first best; NaN never wins
            self.best_value, self.best_epoch = value, int(entry["epoch"])

    def epoch(self, entry: dict[str, Any]) -> None:
        """One finished epoch's history entry (as history.jsonl stores it)."""
        now = time.perf_counter()
        self.epochs_here += 1
        self.last_entry_at = now
        self._note_best(entry)
        for tracked in self.tracked:
            tracked.epoch(entry)
        epoch = int(entry["epoch"])
        if epoch % self.feedback.log_every and epoch != self.epochs:
            return
        parts = {k: v for k, v in entry.items() if k not in _NOT_LOSS and isinstance(v, int | float)}
        text = f"epoch {epoch}/{self.epochs}  loss {entry['loss']:.4f}"
        if parts:
            text += " (" + " ".join(f"{k} {v:.4f}" for k, v in sorted(parts.items())) + ")"
        if "valid" in entry:
            text += (f"  valid {self.metric} {entry['valid'][self.metric]:.4f}"
                     f" (best {self.best_value:.4f} @ {self.best_epoch})")
        seconds = entry.get("train_seconds", 0.0) + entry.get("eval_seconds", 0.0)
        eta = (now - self.started) / self.epochs_here * (self.epochs - epoch)
        self.feedback.line(f"{text}  {seconds:.1f}s  eta {_clock(eta)}")
        if "valid" in entry:
            self.feedback.line(f"valid @ epoch {epoch}: {metrics_text(entry['valid'])}  ({entry['eval_seconds']:.1f}s)")

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's metrics.json content, written."""
        if "test" in summary:
            self.feedback.line(f"test: {metrics_text(summary['test'])}  "
                               f"({time.perf_counter() - self.last_entry_at:.1f}s)")
        if summary["status"] == "completed":
            best = summary["valid"].get(self.metric, math.nan)
            text = (f"end completed: best epoch {summary['best_epoch']} (valid {self.metric} {best:.4f}), "
                    f"{summary['epochs_run']} epochs")
        else:
            text = f"end {summary['status']}: {summary['message']}"
        self.feedback.line(f"{text}, train {summary['train_seconds']:.1f}s, eval {summary['eval_seconds']:.1f}s")
        for tracked in self.tracked:
            tracked.finish(summary)
