"""The Python API: the documented example (docs/api.md) runs as written, `import hbench` stays light, reprs are short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _documented_example() -> str:
    """The first Python block of the API page (docs/api.md), the example users copy."""
    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", page, re.S).group(1)


def test_documented_example_runs_and_recommends_unseen_items(hbench_home, tmp_path, monkeypatch, capsys) -> None:
    from hbench.datasets.synthetic import HierarchySpec, generate_interactions

    frame = generate_interactions(HierarchySpec(categories=2, subcategories=2, items_per_subcategory=10, users=60, seed=3))
    frame = frame.assign(user="u" + frame["user"].astype(str), item="i" + frame["item"].astype(str))
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code = _documented_example()
    assert len(code.strip().splitlines()) == 5
    exec(compile(code, "docs/api.md", "exec"), {})  # noqa: S102 - the documented example, run as a user would
    out, err = capsys.readouterr()
    assert "| hyperml" in out and "epoch 5/5" in err  # the table, and the plain log lines of progress="log"
    lines = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+u[12]\s", line)]
    assert [(row[1], row[2]) for row in lines] == [(u, str(r)) for u in ("u1", "u2") for r in range(1, 6)]
    import hbench

    data = hbench.load_dataset("my-ratings")
    train_pairs = set(zip(data.train.users.tolist(), data.train.items.tolist(), strict=True))
    run = hbench.load_run(next(Path("results").rglob("checkpoint.pt")).parent)
    users = {u: i for i, u in enumerate(run.user_ids)}
    items = {v: i for i, v in enumerate(run.item_ids)}
    assert not any((users[row[1]], items[row[3]]) in train_pairs for row in lines)
    # Short, one-line reprs.
    for shown in (repr(data), repr(run), repr(data.train)):
        assert "\n" not in shown and len(shown) < 250, shown
    assert repr(data).startswith("<dataset my-ratings: 60 users")


def test_import_hbench_loads_neither_torch_nor_pandas_and_warns_nothing() -> None:
    probe = "import hbench, sys; print('torch' in sys.modules, 'pandas' in sys.modules, callable(hbench.train))"
    done = subprocess.run([sys.executable, "-W", "default", "-c", probe], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.stdout.split() == ["False", "False", "True"], done.stderr


def test_models_and_trainer_import_without_torchs_jit_script_warning() -> None:
    probe = "import hbench.training.trainer, hbench.models.hyperml, hbench.models.acf"
    done = subprocess.run([sys.executable, "-W", "default", "-c", probe], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "jit.script" not in done.stderr, done.stderr


def test_progress_styles() -> None:
    from hbench.ui import QUIET, Feedback, as_feedback

    assert as_feedback(None) is QUIET and as_feedback("log").bars is False and as_feedback("rich").bars is True
    custom = Feedback(log_every=5)
    assert as_feedback(custom) is custom
    with pytest.raises(ValueError, match="progress must be"):
        as_feedback("bars")
