"""Image-feature extraction speed: hbench's `extract_features` (what `hbench features` runs) next to a plain
torchvision DataLoader + model loop over the same images with the same encoder and transform.

Both decode JPEGs in DataLoader worker processes and encode in batches without autograd. hbench adds
channels-last memory format (CPU and CUDA), float16 autocast on CUDA, chunked resumable writes and the
final artifact (features.npy + manifest with hashes); its time is end to end, writes included. A third
row, the plain loop in channels-last, shows how much of the difference is the memory format alone.

    python benchmarks/features_throughput.py --images ../shared/data/clothing-cc0 [--count 256]
        [--encoder efficientnet_lite0] [--batch-size 64] [--device auto] [--workers N] [--record]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from hbench.devices import resolve_device
from hbench.features.encoders import get_encoder
from hbench.features.extract import ImageFiles, default_workers, extract_features

try:
    from common import machine, record
except ImportError:  # run as a module
    from benchmarks.common import machine, record


def plain_loop(encoder, paths: list[Path], batch_size: int, workers: int, device: torch.device,
               channels_last: bool) -> float:
    """The loop one would write by hand; returns seconds."""
    from torch.utils.data import DataLoader

    model = encoder.module.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = DataLoader(ImageFiles(paths, encoder.transform, encoder.input_size), batch_size=batch_size,
                        num_workers=workers, pin_memory=device.type == "cuda")
    _warm_up(model, encoder, batch_size, device, channels_last, autocast=False)
    start = time.perf_counter()
    outputs = []
    with torch.no_grad():
        for images, _ in loader:
            x = images.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outputs.append(model(x).cpu())
    torch.cat(outputs).numpy()
    return time.perf_counter() - start


def _warm_up(model, encoder, batch_size: int, device: torch.device, channels_last: bool, autocast: bool) -> None:
    x = torch.randn(batch_size, 3, encoder.input_size, encoder.input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
        model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/clothing-cc0",
                        help="a folder with images/*.jpg (default: ../shared/data/clothing-cc0)")
    parser.add_argument("--count", type=int, default=256, help="number of images (the first ones by name)")
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--random-init", action="store_true",
                        help="random weights (timing does not depend on them): for encoders without local weights")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: cores - 1, at most 8)")
    parser.add_argument("--record", action="store_true", help="append the numbers to benchmarks/results/")
    args = parser.parse_args()

    folder = args.images / "images" if (args.images / "images").is_dir() else args.images
    paths = sorted(folder.glob("*.jpg"))[: args.count]
    if not paths:
        raise SystemExit(f"no .jpg images in {folder}")
    device = resolve_device(args.device)
    workers = default_workers() if args.workers is None else args.workers

    def build():
        return get_encoder(args.encoder, args.weights, random_init=args.random_init)

    rows = []
    seconds = plain_loop(build(), paths, args.batch_size, workers, device, channels_last=False)
    rows.append(("plain torchvision DataLoader loop", seconds))
    seconds = plain_loop(build(), paths, args.batch_size, workers, device, channels_last=True)
    rows.append(("plain loop, channels-last", seconds))
    encoder = build()
    with tempfile.TemporaryDirectory() as tmp:
        # Same warm-up as the plain loops (one batch through the model in the format hbench uses).
        module = encoder.module.to(device)
        if device.type in ("cpu", "cuda"):
            module = module.to(memory_format=torch.channels_last)
        _warm_up(module, encoder, args.batch_size, device, device.type in ("cpu", "cuda"), autocast=device.type == "cuda")
        start = time.perf_counter()
        extract_features(list(enumerate(paths)), encoder, Path(tmp) / "features", batch_size=args.batch_size,
                         device=str(device), workers=workers)
        rows.append(("hbench extract_features (end to end)", time.perf_counter() - start))

    plain = rows[0][1]
    body = [(name, len(paths), f"{s:.2f}", f"{len(paths) / s:.1f}", f"{plain / s:.2f}") for name, s in rows]
    table = tabulate(body, headers=["method", "images", "seconds", "images/s", "× plain"], tablefmt="pipe")
    setup = (f"{args.encoder}{' (random init)' if args.random_init else ''}, batch {args.batch_size}, "
             f"{workers} workers, device {device}, images from {folder}")
    info = machine()
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(setup)
    print(table)
    if args.record:
        numbers = {"setup": setup, "rows": [{"method": n, "images": len(paths), "seconds": s} for n, s in rows]}
        path = record("features_throughput", setup + "\n\n" + table, numbers)
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
