"""Encoders: genuine offline weights, exact transforms, and clear one-line errors without network."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hbench.errors import HBenchError
from hbench.features.encoders import (
    EFFICIENTNET_LITE0_TRANSFORM,
    TransformSpec,
    _timm_transform,
    efficientnet_lite0_model,
    efficientnet_lite0_weights,
    get_encoder,
    load_state_dict,
)

JERSEY_T_SHIRT = 610  # ImageNet class 'jersey, T-shirt, tee shirt'
SHORTS = 842  # ImageNet class 'swimming trunks, bathing trunks' (what ImageNet calls shorts)


@pytest.fixture()
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache: nothing downloaded, as on a fresh offline machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def photos(cc0: Path, label: str, n: int) -> list[Path]:
    frame = pd.read_csv(cc0 / "images.csv")
    return [cc0 / "images" / f"{name}.jpg" for name in frame.loc[frame["label"] == label, "image"].head(n)]


@pytest.mark.slow
def test_efficientnet_lite0_weights_are_genuine_imagenet(shared_data: Path) -> None:
    """The shipped weights' own ImageNet classifier recognises T-shirts and shorts in real photos, and the
    feature encoder carries exactly those weights (its features through that classifier agree)."""
    cc0 = shared_data / "clothing-cc0"
    model = efficientnet_lite0_model(num_classes=1000)
    transform = EFFICIENTNET_LITE0_TRANSFORM.build()
    shirts = torch.stack([transform(Image.open(p).convert("RGB")) for p in photos(cc0, "T-Shirt", 12)])
    shorts = torch.stack([transform(Image.open(p).convert("RGB")) for p in photos(cc0, "Shorts", 12)])
    with torch.inference_mode():
        shirt_logits, short_logits = model(shirts), model(shorts)
    shirt_top1 = shirt_logits.argmax(1).tolist()
    short_top1 = short_logits.argmax(1).tolist()
    assert shirt_top1.count(JERSEY_T_SHIRT) >= 9, shirt_top1
    assert short_top1.count(SHORTS) >= 6, short_top1

    encoder = get_encoder("efficientnet_lite0")
    assert encoder.dim == 1280 and encoder.input_size == 224
    with torch.inference_mode():
        pooled = encoder.module(shirts)
        logits = pooled @ model.classifier.weight.T + model.classifier.bias
    assert pooled.shape == (12, 1280)
    torch.testing.assert_close(logits, shirt_logits, rtol=1e-4, atol=1e-3)


def test_efficientnet_lite0_transform_is_timms() -> None:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    assert _timm_transform(model) == EFFICIENTNET_LITE0_TRANSFORM
    assert "mean=0.5,0.5,0.5" in EFFICIENTNET_LITE0_TRANSFORM.id and "centercrop224" in EFFICIENTNET_LITE0_TRANSFORM.id


def test_torchvision_transform_matches_the_weights_preset() -> None:
    from torchvision.models import Inception_V3_Weights

    from hbench.features.encoders import _torchvision_transform

    spec = _torchvision_transform(Inception_V3_Weights.IMAGENET1K_V1)
    assert spec == TransformSpec(resize=342, crop=299)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (380, 300, 3), dtype=np.uint8))
    ours = spec.build()(image)
    theirs = Inception_V3_Weights.IMAGENET1K_V1.transforms()(image)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_unknown_encoders_are_user_errors() -> None:
    with pytest.raises(HBenchError, match="unknown encoder 'vgg'.*timm:<model name>"):
        get_encoder("vgg")
    with pytest.raises(HBenchError, match="bad timm encoder"):
        get_encoder("timm:")
    with pytest.raises(HBenchError, match="unknown timm model 'no_such_net_xyz'"):
        get_encoder("timm:no_such_net_xyz")


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("inception_v3", "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"),
        ("resnet50", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"),
    ],
)
def test_torchvision_encoder_without_weights_offline_says_how_to_supply_them(name, url, offline_hub) -> None:
    with pytest.raises(HBenchError) as info:
        get_encoder(name)
    message = str(info.value)
    assert f"no weights for {name} offline" in message and "--weights FILE" in message
    assert url in message and str(offline_hub) in message and "\n" not in message


def test_timm_encoder_needs_weights_offline() -> None:
    with pytest.raises(HBenchError, match=r"no weights for timm:resnet18 offline.*huggingface\.co/timm/.*--weights"):
        get_encoder("timm:resnet18")


def test_torchvision_weights_are_found_in_the_hub_cache(offline_hub: Path) -> None:
    """A file where torchvision caches it is used, with the transform of the weights it is named after."""
    from torchvision.models import resnet50

    offline_hub.mkdir(parents=True)
    cached = offline_hub / "resnet50-0676ba61.pth"  # IMAGENET1K_V1: resize 256 (V2 would be 232)
    reference = resnet50(weights=None).eval()
    torch.save(reference.state_dict(), cached)
    encoder = get_encoder("resnet50")
    assert encoder.weights_source == str(cached) and encoder.dim == 2048
    assert "resize256-bilinear" in encoder.transform_id and "centercrop224" in encoder.transform_id
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        pooled = encoder.module(x)
        torch.testing.assert_close(pooled @ reference.fc.weight.T + reference.fc.bias, reference(x))


def test_inception_v3_from_a_weights_file_is_the_pooled_2048_d_feature(tmp_path: Path) -> None:
    """A file in torchvision's layout (auxiliary classifier included): the encoder gives the vector before
    `fc`, with torchvision's input transform for these weights (transform_input=True)."""
    from torchvision.models import inception_v3

    reference = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True).eval()
    path = tmp_path / "inception.pth"
    torch.save(reference.state_dict(), path)
    encoder = get_encoder("inception_v3", weights=path)
    assert encoder.dim == 2048 and encoder.input_size == 299 and "resize342" in encoder.transform_id
    x = torch.randn(2, 3, 299, 299)
    with torch.inference_mode():
        pooled = encoder.module(x)
        torch.testing.assert_close(pooled @ reference.fc.weight.T + reference.fc.bias, reference(x))


def test_timm_encoder_with_local_weights(tmp_path: Path) -> None:
    """--weights for any timm backbone: the classifier in the file is dropped, features are pre-logits."""
    import timm

    reference = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    path = tmp_path / "mnv3.pth"
    torch.save(reference.state_dict(), path)
    encoder = get_encoder("timm:mobilenetv3_small_050", weights=path)
    x = torch.randn(2, 3, encoder.input_size, encoder.input_size)
    with torch.inference_mode():
        features = encoder.module(x)
        assert features.shape == (2, encoder.dim)
        torch.testing.assert_close(reference.forward_head(reference.forward_features(x), pre_logits=True), features)
    # The same weights as safetensors (what the Hugging Face hub serves): same encoder, same weights identity
    # only if the bytes are equal, so a different file means a different SHA-256.
    from safetensors.torch import save_file

    save_file(reference.state_dict(), tmp_path / "mnv3.safetensors")
    again = get_encoder("timm:mobilenetv3_small_050", weights=tmp_path / "mnv3.safetensors")
    with torch.inference_mode():
        torch.testing.assert_close(again.module(x), features)
    assert again.weights_sha256 != encoder.weights_sha256 and again.transform_id == encoder.transform_id
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(HBenchError, match="cannot read weights file"):
        get_encoder("timm:mobilenetv3_small_050", weights=tmp_path / "bad.safetensors")


def test_weights_that_do_not_fit_are_clear_errors(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(HBenchError, match=r"does not fit torchvision resnet50: .*missing.*of another shape"):
        get_encoder("resnet50", weights=path)
    with pytest.raises(HBenchError, match=r"does not fit tf_efficientnet_lite0: \d+ tensors, the model has 296"):
        get_encoder("efficientnet_lite0", weights=path)
    with pytest.raises(HBenchError, match="does not exist"):
        get_encoder("inception_v3", weights=tmp_path / "nope.pth")
    shuffled = dict(reversed(list(load_state_dict(efficientnet_lite0_weights()).items())))
    torch.save(shuffled, tmp_path / "shuffled.pth")
    with pytest.raises(HBenchError, match=r"tensor 0 \(_fc.bias\) has shape \[1000\], the model's conv_stem.weight"):
        get_encoder("efficientnet_lite0", weights=tmp_path / "shuffled.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "not_weights.pth")
    with pytest.raises(HBenchError, match="is not a state dict"):
        load_state_dict(tmp_path / "not_weights.pth")


class _Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_weights_are_loaded_with_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Payload(marker)}, evil)
    with pytest.raises(HBenchError) as info:
        get_encoder("resnet50", weights=evil)
    assert "refused to load" in str(info.value) and "weights_only=True" in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists()

    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_state_dict(efficientnet_lite0_weights())
    assert calls and all(call.get("weights_only") is True and call.get("map_location") == "cpu" for call in calls)


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = get_encoder("efficientnet_lite0", random_init=True)
    b = get_encoder("efficientnet_lite0", random_init=True)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.is_random and a.weights_sha256 == "random-init"
    for (_, pa), (_, pb) in zip(a.module.state_dict().items(), b.module.state_dict().items(), strict=True):
        assert torch.equal(pa, pb)
