"""The command line: one-line errors, and the pipeline end to end on real data through the mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from hbench.cli import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "nope", "--dataset", "x"], "error: unknown model 'nope'"),
        (["train", "bpr", "--dataset", "not-prepared"], "error: no dataset 'not-prepared', prepared or registered"),
        (["train", "bpr", "--dataset", "movielens-1m"], "run `hbench prepare movielens-1m` first"),
        (["train", "bpr"], "error: Missing option '--dataset'"),
        (["prepare", "no-such-dataset"], "error: unknown dataset 'no-such-dataset'"),
        (["train", "bpr", "--dataset", "x", "--dim", "many"], "error: Invalid value for '--dim'"),
        (["table", "/no/such/results"], "error: results directory /no/such/results does not exist"),
        (["info", "nothing"], "error: no dataset 'nothing', prepared or registered; `hbench datasets` lists"),
        (["info", "amazon-clotihng"], "did you mean amazon-clothing or amazon2014-clothing"),
        (["prepare", "movielens-1"], "did you mean movielens-1m or movielens-100k"),
        (["models", "nope"], "error: unknown model 'nope'"),
    ],
)
def test_user_errors_are_one_line_and_non_zero(args, message, capsys, hbench_home) -> None:
    code, out, err = run(args, capsys)
    assert code != 0
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and out == ""


def test_models_lists_options(capsys) -> None:
    code, out, _ = run(["models", "hyperml"], capsys)
    assert code == 0 and "--gamma" in out and "--parametrization" in out


def test_model_option_for_the_wrong_model_is_refused(capsys, tiny_dataset) -> None:
    code, _, err = run(["train", "bpr", "--dataset", str(tiny_dataset.path), "--c", "1.0"], capsys)
    assert code == 2 and "model 'bpr' has no option --c" in err


@pytest.mark.slow
def test_prepare_train_table_on_movielens_from_the_mirror(capsys, hbench_home, shared_data, tmp_path: Path) -> None:
    code, out, _ = run(["prepare", "movielens-100k", "--source", str(shared_data), "--quiet"], capsys)
    assert code == 0 and "943" in out and "1,682" in out and "100,000" in out
    out_dir = tmp_path / "results"
    for model, extra in (("pop", []), ("bpr", []), ("hyperml", ["--c", "0.5"])):
        code, out, err = run(["train", model, "-d", "movielens-100k", "--epochs", "2", "--seed", "0", "--seed", "1",
                              "--out", str(out_dir), "--quiet", *extra], capsys)
        assert code == 0, err
        assert out.count("movielens-100k/loo/") == 2 and err == ""
    code, out, _ = run(["table", str(out_dir)], capsys)
    assert code == 0
    assert "movielens-100k — loo" in out and "hyperml (c=0.5)" in out and "All rows: epochs=2" in out and "± " in out
    code, out, _ = run(["table", str(out_dir), "--format", "latex"], capsys)
    assert code == 0 and "\\toprule" in out
