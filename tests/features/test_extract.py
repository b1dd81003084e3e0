"""Feature extraction: genuine features on real photos, resume after an interruption, caching, missing
images, the manifest, prepared datasets and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hbench.atomic import sha256_file
from hbench.errors import HBenchError
from hbench.features.dataset import dataset_features, find_features, load_features
from hbench.features.encoders import Encoder, efficientnet_lite0_weights, get_encoder
from hbench.features.extract import extract_features


@pytest.fixture(scope="module")
def lite0() -> Encoder:
    return get_encoder("efficientnet_lite0")


@pytest.fixture(scope="module")
def lite0_random() -> Encoder:
    return get_encoder("efficientnet_lite0", random_init=True)


@pytest.fixture()
def pictures(tmp_path: Path) -> list[Path]:
    """Ten small JPEGs: smooth colour gradients, so that features differ from picture to picture."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "pictures"
    folder.mkdir()
    paths = []
    ramp = np.linspace(0.0, 1.0, 96)
    for i in range(10):
        colour = rng.uniform(0, 255, size=3)
        pixels = (ramp[:, None, None] * colour + (1 - ramp[None, :, None]) * rng.uniform(0, 255, size=3)) / 2
        path = folder / f"{i}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


# --- genuineness -----------------------------------------------------------------------------------------


def leave_one_out_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """1-nearest-neighbour label accuracy, cosine similarity of centred features, each image against all
    the others. Centring removes the direction all images share, which otherwise swamps a random network's
    features (uncentred, its accuracy falls to chance): the baseline is made as strong as it fairly can be."""
    centred = features - features.mean(axis=0)
    unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return float(np.mean(labels[similarity.argmax(axis=1)] == labels))


@pytest.mark.slow
def test_pretrained_features_are_far_better_than_random_ones(shared_data, lite0, lite0_random, tmp_path) -> None:
    """On real clothing photos, the nearest neighbour in efficientnet_lite0 feature space mostly has the same
    label; with the same architecture randomly initialised it mostly does not."""
    cc0 = shared_data / "clothing-cc0"
    frame = pd.read_csv(cc0 / "images.csv")
    labels = sorted(frame["label"].value_counts().loc[lambda c: c >= 90].index)[:8]
    subset = frame[frame["label"].isin(labels)].sort_values("image").groupby("label").head(12)
    items = [(i, cc0 / "images" / f"{name}.jpg") for i, name in enumerate(subset["image"])]
    y = subset["label"].to_numpy()

    accuracy = {}
    for name, encoder in (("pretrained", lite0), ("random", lite0_random)):
        artifact = extract_features(items, encoder, tmp_path / name, batch_size=32, workers=1)
        assert artifact.has_image().all()
        accuracy[name] = leave_one_out_accuracy(artifact.features(), y)
    print(f"\n1-NN label accuracy on {len(items)} clothing-cc0 photos ({len(labels)} labels, chance "
          f"{1 / len(labels):.3f}): pretrained {accuracy['pretrained']:.3f}, random init {accuracy['random']:.3f}")
    assert accuracy["pretrained"] >= 0.5
    assert accuracy["pretrained"] >= accuracy["random"] + 0.25


# --- resume, cache, missing images, manifest -------------------------------------------------------------


class Interrupted(Exception):
    pass


def test_an_interrupted_extraction_resumes_where_it_stopped(pictures, lite0, tmp_path) -> None:
    items = list(enumerate(pictures))  # 10 images: chunks of 4, 4, 2; batches of 2 -> 5 batches
    options = {"batch_size": 2, "chunk_size": 4, "workers": 0}
    reference = extract_features(items, lite0, tmp_path / "straight", **options).features()

    def stop_after_three(batches: int) -> None:
        if batches == 3:
            raise Interrupted

    target = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        extract_features(items, lite0, target, on_batch=stop_after_three, **options)
    partial = tmp_path / ".resumed.partial"
    assert not target.exists()
    assert sorted(p.name for p in (partial / "chunks").iterdir()) == ["00000.npz"]  # batch 3 was in chunk 1

    batches = []
    artifact = extract_features(items, lite0, target, on_batch=batches.append, **options)
    assert batches == [1, 2, 3]  # chunk 1 (two batches) and chunk 2 (one batch); chunk 0 was kept
    np.testing.assert_array_equal(artifact.features(), reference)
    assert not partial.exists()
    assert artifact.manifest["extraction"]["images_encoded_now"] == 6


def test_a_second_extraction_with_the_same_key_is_a_no_op(pictures, lite0, lite0_random, tmp_path) -> None:
    items = list(enumerate(pictures[:3]))
    target = tmp_path / "features"
    first = extract_features(items, lite0, target, batch_size=4, workers=1)  # decoding in a worker process
    stamp = (target / "features.npy").stat().st_mtime_ns
    batches = []
    second = extract_features(items, lite0, target, batch_size=4, workers=1, on_batch=batches.append)
    assert batches == [] and second.key == first.key and second.manifest == first.manifest
    assert (target / "features.npy").stat().st_mtime_ns == stamp
    # A different encoder, weights or image set is a different key.
    assert extract_features(items, lite0_random, target, batch_size=4, workers=0).key != first.key
    other = extract_features(items[:2], lite0, tmp_path / "other", batch_size=4, workers=0)
    assert other.key != first.key
    forced = extract_features(items, lite0, target, batch_size=4, workers=0, force=True, on_batch=batches.append)
    assert batches == [1] and forced.key == first.key


def test_items_without_a_usable_image_get_flagged_zero_rows(pictures, lite0, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    items = [(0, pictures[0]), (1, None), (2, broken), (3, tmp_path / "absent.jpg"), (5, pictures[1])]
    artifact = extract_features(items, lite0, tmp_path / "features", n_items=7, batch_size=4, workers=0)
    features, has_image = artifact.features(), artifact.has_image()
    assert features.shape == (7, 1280) and features.dtype == np.float32
    np.testing.assert_array_equal(has_image, [True, False, False, False, False, True, False])
    assert not features[~has_image].any()
    assert np.linalg.norm(features[[0, 5]], axis=1).min() > 0
    assert artifact.manifest["counts"] == {"items": 7, "with_image": 2, "no_image": 4, "undecodable": 1}
    assert artifact.manifest["undecodable_items"] == [2]


def test_the_manifest_records_what_the_features_are(pictures, lite0, tmp_path) -> None:
    artifact = extract_features(list(enumerate(pictures[:2])), lite0, tmp_path / "f", batch_size=2, workers=0,
                                source={"dataset": "pictures", "images_sha256": "abc"})
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest == artifact.manifest
    assert manifest["encoder"]["name"] == "efficientnet_lite0"
    assert manifest["encoder"]["weights_sha256"] == sha256_file(efficientnet_lite0_weights())
    assert manifest["encoder"]["transform_id"] == lite0.transform_id
    assert manifest["dim"] == 1280 and manifest["n_items"] == 2 and len(manifest["key"]) == 64
    assert manifest["source"] == {"dataset": "pictures", "images_sha256": "abc"}
    assert manifest["versions"]["torch"] and manifest["versions"]["timm"]
    assert manifest["extraction"]["device"] == "cpu" and manifest["extraction"]["precision"] == "float32"
    for name, digest in manifest["files"].items():
        assert sha256_file(tmp_path / "f" / name) == digest


def test_bad_arguments_are_user_errors(pictures, lite0, tmp_path) -> None:
    with pytest.raises(HBenchError, match="once"):
        extract_features([(0, pictures[0]), (0, pictures[1])], lite0, tmp_path / "f")
    with pytest.raises(HBenchError, match="out of range"):
        extract_features([(4, pictures[0])], lite0, tmp_path / "f", n_items=3)
    with pytest.raises(HBenchError, match="batch size"):
        extract_features([(0, pictures[0])], lite0, tmp_path / "f", batch_size=0)
    with pytest.raises(HBenchError, match="unknown device"):
        extract_features([(0, pictures[0])], lite0, tmp_path / "f", device="gpu0")


# --- prepared datasets and the command line --------------------------------------------------------------


def add_image_store(dataset, pictures: list[Path]) -> None:
    """An image store in the layout of `hbench.datasets.images`: images/<item>.<suffix> and images.parquet
    (item, status, file relative to the dataset, sha256; one row per item)."""
    folder = dataset.path / "images"
    folder.mkdir()
    rows = []
    for item in range(dataset.n_items):
        if item < len(pictures):
            suffix = ".png" if item == 1 else ".jpg"  # the store keeps each image's own format
            Image.open(pictures[item]).save(folder / f"{item}{suffix}")
            rows.append((item, "ok", f"images/{item}{suffix}", sha256_file(folder / f"{item}{suffix}")))
        else:
            rows.append((item, "missing", "", ""))
    frame = pd.DataFrame(rows, columns=["item", "status", "file", "sha256"])
    frame.to_parquet(dataset.path / "images.parquet", index=False)


def test_features_of_a_prepared_dataset_through_the_cli(tiny_dataset, pictures, capsys) -> None:
    from hbench.cli import main

    with pytest.raises(HBenchError, match="has no item images"):
        dataset_features(tiny_dataset)
    add_image_store(tiny_dataset, pictures[:4])
    with pytest.raises(HBenchError, match=r"run `hbench features tiny --encoder efficientnet_lite0` first"):
        load_features(tiny_dataset)

    with pytest.raises(SystemExit) as exit_info:
        main(["features", "tiny", "--batch-size", "4", "--workers", "0", "--quiet"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0 and err == ""
    path, shape = out.strip().split("\t")
    assert shape == f"{tiny_dataset.n_items}x1280"
    assert Path(path).parent == tiny_dataset.path / "features" and Path(path).name.startswith("efficientnet_lite0-")

    features = load_features(tiny_dataset)
    assert features.shape == (tiny_dataset.n_items, 1280)
    assert np.linalg.norm(features[:4], axis=1).min() > 0 and not features[4:].any()
    assert find_features(tiny_dataset, "efficientnet_lite0").path == Path(path)
    with pytest.raises(HBenchError, match=r"no resnet50 features .*`hbench features tiny --encoder resnet50`"):
        load_features(tiny_dataset, "resnet50")

    # A second run is a no-op; changed images make the stored features stale.
    batches = []
    assert dataset_features(tiny_dataset, on_batch=batches.append, workers=0).path == Path(path) and batches == []
    store = pd.read_parquet(tiny_dataset.path / "images.parquet")
    store.loc[0, "sha256"] = "0" * 64
    store.to_parquet(tiny_dataset.path / "images.parquet", index=False)
    with pytest.raises(HBenchError, match="made from other images"):
        load_features(tiny_dataset)


def test_cli_errors_are_one_line(tiny_dataset, capsys, offline_torch_home) -> None:
    from hbench.cli import main

    add_image_store(tiny_dataset, [])
    for args, message in (
        (["features", "tiny", "--encoder", "nope"], "error: unknown encoder 'nope'"),
        (["features", "tiny", "--encoder", "inception_v3"], "error: no weights for inception_v3 offline"),
        (["features", "tiny", "--device", "cuda:7"], "error: device cuda:7 requested"),
        (["features", "missing-dataset"], "error: no dataset 'missing-dataset', prepared or registered"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        out, err = capsys.readouterr()
        assert exit_info.value.code != 0 and out == ""
        assert err.count("\n") == 1 and err.startswith(message), err


@pytest.fixture()
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"
