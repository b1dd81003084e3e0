"""`hbench plot`: the numbers behind each figure against independent computations, then every command
end to end on tiny real runs (PNG and SVG), and its one-line errors."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import geoopt
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from hbench.cli import main
from hbench.errors import HBenchError
from hbench.reports.plots.embeddings import (
    distance_from_origin,
    item_labels,
    load_run_embeddings,
    log0,
    popularity_correlation,
    project_to_disk,
    subsample,
)
from hbench.reports.plots.figures import resolve_output
from hbench.reports.plots.sweep import aggregate_sweep, sweep_runs, use_log_scale
from hbench.reports.plots.training import training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _ball_points(n: int, dim: int, c: float, rng: np.random.Generator) -> np.ndarray:
    """Random points of B_c, radii spread from the origin to very near the boundary."""
    directions = rng.normal(size=(n, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    scaled_radius = np.concatenate([rng.uniform(0, 0.999, n - 2), [0.0, 1 - 1e-6]])  # geoopt clamps artanh at 1 − 1e-7
    return directions * (scaled_radius / np.sqrt(c))[:, None]


def _ball(c: float) -> geoopt.PoincareBall:
    return geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64))  # c in float64, as the points


def _poincare_dist(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    return _ball(c).dist(torch.from_numpy(x), torch.from_numpy(y)).numpy()


# --- geometry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("dim", [2, 8])
def test_distance_from_origin_and_log0_match_geoopt(c: float, dim: int) -> None:
    points = _ball_points(200, dim, c, np.random.default_rng(0))
    ball = _ball(c)
    tensor = torch.from_numpy(points)
    np.testing.assert_allclose(distance_from_origin(points, c), ball.dist0(tensor).numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(log0(points, c), ball.logmap0(tensor).numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("c", [0.5, 1.0, 3.0])
def test_projection_stays_in_the_disk_and_keeps_each_distance_from_the_origin(c: float) -> None:
    points = _ball_points(300, 16, c, np.random.default_rng(1))
    projection = project_to_disk(points, c)
    assert projection.projected and projection.coords.shape == (300, 2) and 0 < projection.retained < 1
    assert (np.linalg.norm(projection.coords, axis=1) < 1).all()
    # On the unit disk (c = 1) a plotted point is √c times as far from the origin as the original on B_c.
    np.testing.assert_allclose(distance_from_origin(projection.coords, 1.0),
                               np.sqrt(c) * distance_from_origin(points, c), rtol=1e-9)


def test_projection_of_points_in_a_plane_is_an_isometry_and_2d_runs_are_only_rescaled() -> None:
    c, rng = 2.0, np.random.default_rng(2)
    flat = _ball_points(60, 2, c, rng)[:-1]  # drop the boundary point: pairwise distances there are ill-conditioned
    basis, _ = np.linalg.qr(rng.normal(size=(12, 2)))  # an orthonormal plane inside R^12
    projection = project_to_disk(flat @ basis.T, c)
    i, j = np.triu_indices(len(flat), 1)
    np.testing.assert_allclose(_poincare_dist(projection.coords[i], projection.coords[j], 1.0),
                               np.sqrt(c) * _poincare_dist(flat[i], flat[j], c), rtol=1e-6, atol=1e-9)
    assert projection.retained == pytest.approx(1.0)
    direct = project_to_disk(flat, c)
    assert not direct.projected
    np.testing.assert_allclose(direct.coords, np.sqrt(c) * flat, rtol=1e-12)


def test_spearman_is_scipys_and_its_sign_follows_popularity() -> None:
    rng = np.random.default_rng(3)
    popularity, distance = rng.integers(0, 50, 300), rng.random(300)
    got = popularity_correlation(popularity, distance)
    expected = spearmanr(popularity, distance)
    assert got.rho == pytest.approx(expected.statistic) and got.pvalue == pytest.approx(expected.pvalue)
    assert got.n == 300
    # Items whose norm grows with popularity: ρ = +1; popular items near the origin (HVACF): ρ = −1.
    popularity = np.arange(1, 41)
    radius = 0.02 * popularity / np.sqrt(2.0)
    outward = np.stack([radius, np.zeros_like(radius)], axis=1)
    assert popularity_correlation(popularity, distance_from_origin(outward, 2.0)).rho == pytest.approx(1.0)
    assert popularity_correlation(popularity[::-1], distance_from_origin(outward, 2.0)).rho == pytest.approx(-1.0)
    assert np.isnan(popularity_correlation(np.ones(5), np.arange(5.0)).rho)


def test_subsample_is_seeded_sorted_and_bounded() -> None:
    first = subsample(100, 10, np.random.default_rng(0))
    assert len(first) == 10 and (np.diff(first) > 0).all()
    assert (first == subsample(100, 10, np.random.default_rng(0))).all()
    assert (subsample(5, 10, np.random.default_rng(0)) == np.arange(5)).all()


# --- sweep aggregation ---------------------------------------------------------------------------------------


def _write_run(root: Path, model: str, seed: int, *, valid: dict, test: dict, options: dict | None = None,
               status: str = "completed", dim: int = 64, lr: float = 1e-3) -> None:
    options = options or {}
    path = root / f"{model}-{json.dumps(options, sort_keys=True)}-{dim}-{lr}-{seed}"
    path.mkdir(parents=True)
    config = {"model": model, "model_options": options, "lr": lr,
              "train": {"seed": seed, "dim": dim, "epochs": 10, "dataset": "toy", "ks": [10, 20], "lr": None},
              "protocol": "loo", "metric": "ndcg@10", "dataset": {"name": "toy", "split_hash": "s1"},
              "group_hash": f"{model}{options}{dim}{lr}"}
    (path / "config.json").write_text(json.dumps(config))
    metrics = {"status": status, "selection_metric": "ndcg@10", "valid": valid if status == "completed" else {},
               "test": test if status == "completed" else {}}
    (path / "metrics.json").write_text(json.dumps(metrics))


# c → test ndcg@10 of seeds 0, 1, 2 (valid is test + 0.1), for hyperml with gamma 0.2 and with gamma 0.
CURVES = {0.2: {0.1: [0.30, 0.34, 0.32], 1.0: [0.40, 0.41, 0.45], 10.0: [0.20, 0.22, 0.27]},
          0.0: {0.1: [0.25, 0.26, 0.21], 1.0: [0.35, 0.31, 0.33]}}


@pytest.fixture()
def sweep_results(tmp_path: Path) -> Path:
    for gamma, curve in CURVES.items():
        for c, values in curve.items():
            for seed, value in enumerate(values):
                _write_run(tmp_path, "hyperml", seed, valid={"ndcg@10": value + 0.1}, test={"ndcg@10": value},
                           options={"c": c, "gamma": gamma, "parametrization": "ball"})
    _write_run(tmp_path, "hyperml", 3, valid={}, test={}, options={"c": 1.0, "gamma": 0.2, "parametrization": "ball"},
               status="diverged")
    for seed in range(2):  # no `c`: left out of a c sweep, but its dim and lr still count as settings
        _write_run(tmp_path, "bpr", seed, valid={"ndcg@10": 0.3}, test={"ndcg@10": 0.28}, dim=32, lr=0.01)
    return tmp_path


def test_sweep_mean_and_bands_per_axis_value_match_a_hand_computation(sweep_results: Path) -> None:
    runs = sweep_runs(sweep_results)
    sweep = aggregate_sweep(runs, "c", stages=("valid", "test"), band="minmax")
    assert sweep.metric == "ndcg@10" and sweep.left_out == {"bpr": 2} and not sweep.categorical
    assert sorted(sweep.lines) == ["hyperml (gamma=0.0)", "hyperml (gamma=0.2)"]
    for gamma, curve in CURVES.items():
        line = sweep.line(f"hyperml (gamma={gamma})", "test")
        assert line["x"].tolist() == sorted(curve)
        for (_, point), (c, values) in zip(line.iterrows(), sorted(curve.items()), strict=True):
            assert point["mean"] == pytest.approx(statistics.mean(values))
            assert point["std"] == pytest.approx(statistics.stdev(values))
            assert (point["lower"], point["upper"]) == pytest.approx((min(values), max(values)))
            assert point["n"] == 3
            assert point["n_diverged"] == (1 if (gamma, c) == (0.2, 1.0) else 0)
        valid = sweep.line(f"hyperml (gamma={gamma})", "valid")
        np.testing.assert_allclose(valid["mean"], line["mean"] + 0.1)
    std = aggregate_sweep(runs, "c", stages=("test",), band="std")
    point = std.line("hyperml (gamma=0.2)", "test").iloc[1]
    values = CURVES[0.2][1.0]
    assert (point["lower"], point["upper"]) == pytest.approx(
        (statistics.mean(values) - statistics.stdev(values), statistics.mean(values) + statistics.stdev(values)))
    assert use_log_scale(sweep.points["x"].to_numpy(), "auto")  # 0.1 … 10 spans two decades
    assert not use_log_scale(np.array([0.5, 1.0, 2.0]), "auto") and not use_log_scale(np.array([0.0, 1.0]), "auto")


def test_sweep_over_a_train_setting_and_a_categorical_option(sweep_results: Path) -> None:
    runs = sweep_runs(sweep_results)
    by_dim = aggregate_sweep(runs, "dim", stages=("test",))
    assert by_dim.line("bpr", "test")[["x", "mean"]].values.tolist() == [[32.0, 0.28]]
    assert not by_dim.left_out  # every run has a dim
    _write_run(sweep_results, "hyperml", 0, valid={"ndcg@10": 0.5}, test={"ndcg@10": 0.4},
               options={"c": 1.0, "gamma": 0.2, "parametrization": "tangent"})
    categorical = aggregate_sweep(sweep_runs(sweep_results), "parametrization", stages=("test",))
    assert categorical.categorical and categorical.categories == ["ball", "tangent"]


def test_sweep_errors_name_what_varies(sweep_results: Path) -> None:
    runs = sweep_runs(sweep_results)
    with pytest.raises(HBenchError, match=r"unknown axis 'curvature'.*vary here: c, dim, gamma, lr"):
        aggregate_sweep(runs, "curvature")
    with pytest.raises(HBenchError, match=r"axis 'parametrization' takes one value \(ball\)"):
        aggregate_sweep(runs, "parametrization")
    with pytest.raises(HBenchError, match=r"axis 'epochs' takes one value \(10\)"):
        aggregate_sweep(runs, "epochs")
    with pytest.raises(HBenchError, match=r"no valid metric 'hr@10'.*available: ndcg@10"):
        aggregate_sweep(runs, "c", metric="hr@10")
    with pytest.raises(HBenchError, match="--band must be"):
        aggregate_sweep(runs, "c", band="iqr")


def test_output_name_and_format() -> None:
    assert resolve_output(None, None, "norms") == (Path("norms.png"), "png")
    assert resolve_output(None, "svg", "norms") == (Path("norms.svg"), "svg")
    assert resolve_output(Path("a/b.SVG"), None, "x") == (Path("a/b.SVG"), "svg")
    assert resolve_output(Path("figure"), "svg", "x") == (Path("figure"), "svg")
    for output, fmt, message in ((Path("a.eps"), None, "figures are .pdf, .png or .svg"), (None, "jpg", "--format must be"),
                                 (Path("a.png"), "svg", "contradicts")):
        with pytest.raises(HBenchError, match=message):
            resolve_output(output, fmt, "x")


# --- end to end on tiny real runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The `tiny_dataset` recipe (module-scoped: one preparation and three 2-epoch runs for every test here)."""
    from hbench.config import TrainConfig
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.prepare import prepare_dataset
    from hbench.datasets.synthetic import HierarchySpec, generate_interactions
    from hbench.training.trainer import train

    root = tmp_path_factory.mktemp("plots")
    spec = HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=150, seed=7)
    csv = root / "tiny.csv"
    generate_interactions(spec).to_csv(csv, index=False)
    home = root / "home"
    dataset = prepare_dataset("tiny", custom=CustomFiles(name="tiny", interactions=csv), overrides={"negatives": 50},
                              home=home)
    runs = {}
    for name, model, dim, options in (("disk2", "hyperml", 2, {}), ("tangent8", "hyperml", 8, {"parametrization": "tangent"}),
                                      ("hvacf", "hvacf", 8, {"visual": False, "learnable_c": True}), ("bpr", "bpr", 8, {})):
        config = TrainConfig(dataset=str(dataset.path), dim=dim, epochs=2, eval_every=1, batch_size=256, lr=0.01,
                             device="cpu")
        runs[name] = train(model, config, options, out=root / "results", home=home).path
    return {"dataset": dataset, "home": home, "root": root, "spec": spec, **runs}


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


def _is_svg(path: Path) -> bool:
    text = path.read_text()
    return text.lstrip().startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")


def test_embeddings_are_the_models_own_representations(tiny_runs: dict) -> None:
    from hbench.models import ModelContext, create_model
    from hbench.runs import RunDirectory

    emb = load_run_embeddings(tiny_runs["tangent8"])
    dataset = tiny_runs["dataset"]
    model = create_model("hyperml", ModelContext(dataset.n_users, dataset.n_items, 8, dataset.train, torch.Generator()),
                         {"parametrization": "tangent"})
    state = RunDirectory(tiny_runs["tangent8"]).load_checkpoint()
    model.load_state_dict(state)
    # Tangent parameters are not the points: the plot must use exp0 of them, as evaluation does.
    expected = geoopt.PoincareBall(1.0).expmap0(state["item_embedding"]).double().numpy()
    np.testing.assert_allclose(emb.items, expected, rtol=1e-6)
    np.testing.assert_allclose(emb.users, model.representations().users.double().numpy(), rtol=1e-6)
    assert emb.c == 1.0 and emb.label.startswith("hyperml (")
    # HVACF: users aggregated from their neighbours by attention, and a learned curvature.
    hvacf = load_run_embeddings(tiny_runs["hvacf"])
    model = create_model("hvacf", ModelContext(dataset.n_users, dataset.n_items, 8, dataset.train, torch.Generator()),
                         {"visual": False, "learnable_c": True})
    model.load_state_dict(RunDirectory(tiny_runs["hvacf"]).load_checkpoint())
    reps = model.representations()
    assert hvacf.c == pytest.approx(model.ball.c.item()) and hvacf.c != 1.0
    np.testing.assert_allclose(hvacf.users, reps.users.double().numpy(), rtol=1e-6)
    counts = pd.Series(dataset.train.items).value_counts()
    assert (emb.popularity[counts.index.to_numpy()] == counts.to_numpy()).all() and emb.popularity.sum() == len(dataset.train)


def test_norms_writes_png_and_svg_and_prints_rho(tiny_runs: dict, capsys, tmp_path: Path) -> None:
    emb = load_run_embeddings(tiny_runs["tangent8"])
    rho = popularity_correlation(emb.popularity, distance_from_origin(emb.items, emb.c)).rho
    code, out, err = _run(["plot", "norms", str(tiny_runs["tangent8"]), "-o", str(tmp_path / "n.png"), "-q"], capsys)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert f"Spearman ρ = {rho:.3f}" in lines[0] and lines[-1] == str(tmp_path / "n.png")
    assert _is_png(tmp_path / "n.png")
    code, out, _ = _run(["plot", "norms", str(tiny_runs["disk2"]), "-o", str(tmp_path / "n"), "--format", "svg", "-q"],
                        capsys)
    assert code == 0 and _is_svg(tmp_path / "n")


def test_norms_finds_the_dataset_by_name_under_home(tiny_runs: dict, capsys, tmp_path: Path) -> None:
    moved = tmp_path / "run"
    shutil.copytree(tiny_runs["disk2"], moved)
    config = json.loads((moved / "config.json").read_text())
    config["dataset"]["path"] = str(tmp_path / "gone")  # prepared on another machine
    (moved / "config.json").write_text(json.dumps(config))
    code, _, err = _run(["plot", "norms", str(moved), "-o", str(tmp_path / "n.png"), "-q", "--home",
                         str(tmp_path / "empty")], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot find dataset 'tiny'" in err and "--home" in err
    code, _, err = _run(["plot", "norms", str(moved), "-o", str(tmp_path / "n.png"), "-q", "--home",
                         str(tiny_runs["home"])], capsys)
    assert code == 0 and _is_png(tmp_path / "n.png"), err


def test_disk_by_popularity_and_by_category(tiny_runs: dict, capsys, tmp_path: Path) -> None:
    for run, name in ((tiny_runs["disk2"], "d2.png"), (tiny_runs["tangent8"], "d8.svg")):
        code, out, err = _run(["plot", "disk", str(run), "-o", str(tmp_path / name), "--max-points", "40"], capsys)
        assert code == 0 and out == f"{tmp_path / name}\n", err
    assert _is_png(tmp_path / "d2.png") and _is_svg(tmp_path / "d8.svg")
    code, _, err = _run(["plot", "disk", str(tiny_runs["tangent8"]), "--color-by", "category", "-q"], capsys)
    assert code == 2 and "stores no item categories; pass --labels FILE" in err and err.count("\n") == 1
    from hbench.datasets.synthetic import item_hierarchy

    labels = item_hierarchy(tiny_runs["spec"])[["item", "category"]]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    names = item_labels(tiny_runs["dataset"], tmp_path / "labels.csv")
    original = pd.read_parquet(tiny_runs["dataset"].path / "items.parquet")["original_id"].astype(int)
    assert (names == labels.set_index("item").loc[original, "category"].astype(str).to_numpy()).all()
    code, _, err = _run(["plot", "disk", str(tiny_runs["hvacf"]), "--labels", str(tmp_path / "labels.csv"),
                         "-o", str(tmp_path / "cat.png"), "-q"], capsys)
    assert code == 0 and _is_png(tmp_path / "cat.png"), err


def test_training_curves_and_figure(tiny_runs: dict, capsys, tmp_path: Path) -> None:
    curves, metric = training_curves([tiny_runs["root"] / "results"])
    selection = json.loads((tiny_runs["bpr"] / "config.json").read_text())["metric"]
    assert metric == selection and len(curves) == 4
    assert all(list(c.epochs) == [1, 2] and len(c.valid) == 2 and c.status == "completed" for c in curves)
    history = [json.loads(line) for line in (tiny_runs["bpr"] / "history.jsonl").read_text().splitlines()]
    bpr = next(c for c in curves if c.label.startswith("bpr"))
    assert list(bpr.loss) == [h["loss"] for h in history] and list(bpr.valid) == [h["valid"][metric] for h in history]
    code, out, err = _run(["plot", "training", str(tiny_runs["disk2"]), str(tiny_runs["bpr"]),
                           "-o", str(tmp_path / "t.svg")], capsys)
    assert code == 0 and out == f"{tmp_path / 't.svg'}\n" and _is_svg(tmp_path / "t.svg"), err
    code, _, err = _run(["plot", "training", str(tiny_runs["bpr"]), "--metric", "nope", "-o", str(tmp_path / "x.png")],
                        capsys)
    assert code == 2 and "no validation metric 'nope'" in err


def test_sweep_writes_an_image(sweep_results: Path, capsys, tmp_path: Path) -> None:
    code, out, err = _run(["plot", "sweep", str(sweep_results), "--axis", "c", "-o", str(tmp_path / "s.png")], capsys)
    assert code == 0 and out == f"{tmp_path / 's.png'}\n" and _is_png(tmp_path / "s.png")
    assert "left out runs of models without 'c': bpr (2)" in err
    code, _, _ = _run(["plot", "sweep", str(sweep_results), "-a", "c", "--band", "std", "--stage", "test", "-q",
                       "-f", "svg", "-o", str(tmp_path / "s.svg")], capsys)
    assert code == 0 and _is_svg(tmp_path / "s.svg")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plot", "norms", "{bpr}", "-q"], "needs a hyperbolic run, but bpr in"),
        (["plot", "disk", "{bpr}", "-q"], "needs a hyperbolic run, but bpr in"),
        (["plot", "norms", "/no/such/run"], "run directory /no/such/run does not exist"),
        (["plot", "training", "/no/such/run"], "run directory /no/such/run does not exist"),
        (["plot", "norms", "{root}"], "is not a run directory (no config.json"),
        (["plot", "sweep", "{results}", "--axis", "curvature"], "unknown axis 'curvature': no run has such a setting"),
        (["plot", "sweep", "{results}", "--axis", "dim", "--xscale", "cubic"], "--xscale must be auto, linear or log"),
        (["plot", "sweep", "/no/such/results", "--axis", "c"], "results directory /no/such/results does not exist"),
        (["plot", "norms", "{disk2}", "-o", "x.jpg"], "figures are .pdf, .png or .svg"),
        (["plot", "disk", "{disk2}", "--color-by", "size"], "--color-by must be popularity or category"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, tiny_runs: dict, capsys) -> None:
    paths = {"bpr": tiny_runs["bpr"], "disk2": tiny_runs["disk2"], "root": tiny_runs["root"],
             "results": tiny_runs["root"] / "results"}
    code, out, err = _run([a.format(**paths) for a in args], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


# --- figures for papers: size, format, style ------------------------------------------------------------------


def _pdf_size(path: Path) -> tuple[float, float]:
    """The page size in points, from the PDF's /MediaBox (one page)."""
    import re

    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", path.read_bytes())
    assert len(boxes) == 1 and path.read_bytes().startswith(b"%PDF-")
    return float(boxes[0][0]), float(boxes[0][1])


def _svg_size(path: Path) -> tuple[float, float]:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    assert root.get("width").endswith("pt") and root.get("height").endswith("pt")
    return float(root.get("width")[:-2]), float(root.get("height")[:-2])


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("width", [3.3, 7.0])
def test_every_kind_renders_at_the_requested_size(width: float, tiny_runs: dict, sweep_results: Path, capsys,
                                                  tmp_path: Path) -> None:
    kinds = {"sweep": [str(sweep_results), "--axis", "c"], "norms": [str(tiny_runs["tangent8"])],
             "disk": [str(tiny_runs["disk2"])], "training": [str(tiny_runs["root"] / "results")]}
    for kind, args in kinds.items():
        pdf = tmp_path / f"{kind}.pdf"
        code, out, err = _run(["plot", kind, *args, "-o", str(pdf), "--width", str(width), "--font-size", "8"], capsys)
        assert code == 0 and out.splitlines()[-1] == str(pdf), err
        page_width, page_height = _pdf_size(pdf)
        assert page_width == pytest.approx(72 * width) and 72 * 1.5 < page_height < 72 * 12, kind
        svg = tmp_path / f"{kind}.svg"
        code, _, err = _run(["plot", kind, *args, "-o", str(svg), "--width", str(width), "--height", "6"], capsys)
        assert code == 0 and _svg_size(svg) == pytest.approx((72 * width, 72 * 6)), err
        png = tmp_path / f"{kind}.png"
        code, _, err = _run(["plot", kind, *args, "-o", str(png), "--width", str(width), "--height", "6.5", "--dpi", "100"],
                            capsys)
        assert code == 0 and _png_size(png) == (round(100 * width), 650), err


def test_pdf_embeds_truetype_fonts_and_is_reproducible(tiny_runs: dict, capsys, tmp_path: Path) -> None:
    for name in ("a.pdf", "b.pdf"):
        code, _, err = _run(["plot", "training", str(tiny_runs["bpr"]), "-o", str(tmp_path / name)], capsys)
        assert code == 0, err
    data = (tmp_path / "a.pdf").read_bytes()
    assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType (42), not Type 3
    assert data == (tmp_path / "b.pdf").read_bytes()


def test_seed_bands_and_colours_by_model(tiny_runs: dict) -> None:
    from matplotlib.colors import to_rgba

    from hbench.reports.plots.figures import (
        FigureStyle,
        figure_context,
        training_figure,
    )
    from hbench.reports.plots.training import group_by_configuration, seed_band

    # seeds ending at different epochs (early stopping): each epoch averages the seeds that reached it
    band = seed_band([(np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])), (np.array([1, 2]), np.array([3.0, 6.0]))])
    assert band.epochs.tolist() == [1, 2, 3] and band.n.tolist() == [2, 2, 1]
    assert band.mean.tolist() == [2.0, 4.0, 3.0] and band.low.tolist() == [1.0, 2.0, 3.0]
    assert band.high.tolist() == [3.0, 6.0, 3.0]

    curves, metric = training_curves([tiny_runs["root"] / "results"])
    # three seeds of one configuration, as `hbench train --seed 0,1,2` makes them
    seeds = [curve for curve in curves if curve.model == "bpr"][0]
    import dataclasses

    copies = [dataclasses.replace(seeds, label=f"bpr seed {s}", loss=seeds.loss + s) for s in range(3)]
    groups = group_by_configuration([*copies, *[c for c in curves if c.model != "bpr"]])
    bpr = next(g for g in groups if g.model == "bpr")
    assert len(bpr.runs) == 3 and bpr.loss.mean.tolist() == pytest.approx((seeds.loss + 1).tolist())
    assert bpr.loss.low.tolist() == pytest.approx(seeds.loss.tolist()) and (bpr.loss.n == 3).all()
    with figure_context(FigureStyle(font_size=7, style="grayscale")):
        figure = training_figure([*copies, *[c for c in curves if c.model != "bpr"]], metric)
        loss_axes = figure.axes[0]
        colours = [to_rgba(line.get_color()) for line in loss_axes.get_lines()]
        assert loss_axes.xaxis.label.get_size() == 7
    # one line per configuration (bpr's three seeds are one), one colour per model: the two hyperml
    # configurations share one, bpr and hvacf differ; grayscale gives greys only
    assert len(colours) == 4 and len(set(colours)) == 3
    assert all(r == g == b for r, g, b, _ in colours)


@pytest.mark.parametrize(("args", "message"), [
    (["--style", "nope"], "unknown matplotlib style 'nope'"),
    (["--width", "0.1"], "--width is in inches"),
    (["--font-size", "100"], "--font-size is in points"),
    (["--width", "3.3", "--height", "1.5"], "--height 1.5 leaves no room for the axes"),
])
def test_figure_style_mistakes_are_one_line(args: list[str], message: str, tiny_runs: dict, capsys) -> None:
    code, out, err = _run(["plot", "training", str(tiny_runs["bpr"]), *args], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
