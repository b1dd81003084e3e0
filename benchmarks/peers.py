"""hbench against Cornac on one split and dimension: seconds per epoch, time to quality, test metrics.

Data: the fixed train/val/test files of Amazon Clothing 5-core (`amazon-clothing-5core/{train,val,test}.txt`
of the shared mirror: 39,387 users, 23,033 items, 197,338 training pairs), prepared as a custom dataset.
Both libraries' models are evaluated by the same code (hbench's full-ranking evaluator on the test split,
training and validation items masked), so the metric columns are comparable by construction: Cornac's
learned factors and item biases are handed to evaluation as a dot-product model.

Cornac gets its own settings (BPR with SGD, lr 0.05, λ 0.01, its documented defaults apart from k), not
hbench's. LensKit, when installed (`pip install lenskit`; not in the `bench` extra, because it requires
pandas < 3), runs its FlexMF model with the `bpr` preset (pairwise loss, no biases) and its own defaults
(batch 8,192, lr 0.01, AdamW with weight decay 0.01): a PyTorch peer, like hbench, next to Cornac's
Cython. Its epochs are timed one by one through its trainer. hbench trains with its defaults (batch, learning rate, lazy Riemannian Adam), validating every
`--eval-every` epochs and restoring the best checkpoint, as `hbench train` does.

    python benchmarks/peers.py --source ../shared/data [--epochs 60] [--cornac-epochs 300] [--pairs 7] [--record]

The epoch ratio of the done-when is measured paired: on the shared VMs the speed of the whole machine drifts
by up to 2× within minutes (Cornac's own epoch went from 43 to 88 ms between two runs of one session), so
the s/epoch columns of two runs minutes apart can disagree by that much. `--pairs K` alternates K times
(Cornac BPR for 10 epochs, hbench bpr for 8 epochs without validation, Cornac again) and reports, per
pair, hbench's median epoch over the mean of the two Cornac epochs around it: the median and the range
of those K ratios are the headline number.

Needs the `bench` extra (`pip install -e '.[bench]'`) for Cornac.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tabulate import tabulate

from hbench.config import TrainConfig
from hbench.datasets.custom import CustomFiles
from hbench.datasets.prepare import prepare_dataset
from hbench.evaluation.metrics import summarise
from hbench.evaluation.protocols import evaluate
from hbench.geometry import DotProduct, Representations
from hbench.runs import RunDirectory
from hbench.training.trainer import train

try:
    from common import record
except ImportError:  # run as a module
    from benchmarks.common import record

DATASET = "clothing-fixed-split"
KS = (20,)


def prepare(sources: list[Path], home: Path | None):
    """The fixed split as a custom dataset (the raw files are headerless `user item rating` lines)."""
    folder = next((s / "amazon-clothing-5core" for s in sources if (s / "amazon-clothing-5core" / "train.txt").is_file()),
                  None)
    if folder is None:
        raise SystemExit("amazon-clothing-5core/{train,val,test}.txt not found under --source")
    staging = Path(tempfile.mkdtemp(prefix="hbench-peers-"))
    roles = {}
    for role, name in (("train", "train"), ("valid", "val"), ("test", "test")):
        frame = pd.read_csv(folder / f"{name}.txt", sep="\t", header=None, names=["user", "item", "rating"])
        frame.to_csv(staging / f"{name}.csv", index=False)
        roles[role] = staging / f"{name}.csv"
    return prepare_dataset(DATASET, custom=CustomFiles(name=DATASET, **roles), home=home)


def test_metrics(reps: Representations, dataset) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    metrics = summarise(evaluate(reps, dataset, stage="test", protocol="full", ks=KS))
    return {k: metrics[k] for k in ("auc", "recall@20", "ndcg@20")}, time.perf_counter() - started


def run_cornac(dataset, dim: int, epochs: int, seed: int) -> dict:
    import cornac
    from cornac.data import Dataset

    triples = [(str(u), str(i), 1.0) for u, i in zip(dataset.train.users.tolist(), dataset.train.items.tolist())]
    data = Dataset.from_uir(triples, seed=seed)
    model = cornac.models.BPR(k=dim, max_iter=epochs, learning_rate=0.05, lambda_reg=0.01, seed=seed, verbose=False)
    started = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - started
    # Cornac renumbers ids in order of appearance: map its factors back to hbench's internal ids.
    users = np.zeros((dataset.n_users, dim + 1), np.float32)
    items = np.zeros((dataset.n_items, dim + 1), np.float32)
    user_rows = np.array([data.uid_map[str(u)] for u in range(dataset.n_users) if str(u) in data.uid_map])
    known_users = np.array([u for u in range(dataset.n_users) if str(u) in data.uid_map])
    item_rows = np.array([data.iid_map[str(i)] for i in range(dataset.n_items) if str(i) in data.iid_map])
    known_items = np.array([i for i in range(dataset.n_items) if str(i) in data.iid_map])
    users[known_users, :dim] = model.u_factors[user_rows]
    users[:, dim] = 1.0
    items[known_items, :dim] = model.i_factors[item_rows]
    items[known_items, dim] = model.i_biases[item_rows]
    metrics, eval_seconds = test_metrics(Representations(torch.from_numpy(users), torch.from_numpy(items), DotProduct()),
                                         dataset)
    return {"epochs": epochs, "train_seconds": seconds, "s_per_epoch": seconds / epochs, **metrics,
            "eval_seconds": eval_seconds}


def run_lenskit(dataset, dim: int, epochs: int, seed: int) -> dict | None:
    """LensKit FlexMF with the BPR preset and LensKit's own defaults; None when LensKit is not installed."""
    try:
        from lenskit.data import from_interactions_df
        from lenskit.flexmf import FlexMFImplicitConfig, FlexMFImplicitScorer
        from lenskit.parallel import initialize
        from lenskit.training import TrainingOptions
    except ImportError:
        return None
    # LensKit's default gives PyTorch one intra-op thread per training thread (1 on 2 cores) and sets it
    # process-wide; the same hardware for both means the same torch threads, restored afterwards.
    threads = torch.get_num_threads()
    try:
        initialize(backend_threads=threads)
        frame = pd.DataFrame({"user_id": dataset.train.users.astype(np.int64), "item_id": dataset.train.items.astype(np.int64)})
        data = from_interactions_df(frame)
        scorer = FlexMFImplicitScorer(FlexMFImplicitConfig(preset="bpr", embedding_size=dim, epochs=epochs))
        trainer = scorer.create_trainer(data, TrainingOptions(rng=seed, device="cpu"))
        seconds = []
        for _ in range(epochs):
            started = time.perf_counter()
            trainer.train_epoch()
            seconds.append(time.perf_counter() - started)
        trainer.finalize()
        # LensKit numbers ids in its own vocabularies: map its embeddings back to hbench's internal ids.
        users = np.zeros((dataset.n_users, dim), np.float32)
        items = np.zeros((dataset.n_items, dim), np.float32)
        user_rows = scorer.users.numbers(np.arange(dataset.n_users), missing="negative")
        item_rows = scorer.items.numbers(np.arange(dataset.n_items), missing="negative")
        with torch.no_grad():
            u_table, i_table = scorer.model.u_embed.weight.cpu().numpy(), scorer.model.i_embed.weight.cpu().numpy()
        users[user_rows >= 0] = u_table[user_rows[user_rows >= 0]]
        items[item_rows >= 0] = i_table[item_rows[item_rows >= 0]]
        metrics, eval_seconds = test_metrics(Representations(torch.from_numpy(users), torch.from_numpy(items), DotProduct()),
                                             dataset)
    finally:
        torch.set_num_threads(threads)
    return {"epochs": epochs, "train_seconds": sum(seconds), "s_per_epoch": statistics.median(seconds), **metrics,
            "eval_seconds": eval_seconds}


def run_hbench(dataset, model: str, dim: int, epochs: int, eval_every: int, seed: int, out: Path,
               home: Path | None, target: float = float("inf")) -> dict:
    config = TrainConfig(dataset=DATASET, protocol="full", dim=dim, epochs=epochs, eval_every=eval_every, seed=seed,
                         ks=(10, 20), patience=max(1, 20 // eval_every), device="cpu")
    result = train(model, config, out=out, home=home, force=True)
    history = RunDirectory(result.path).read_history()
    per_epoch = statistics.median(h["train_seconds"] for h in history)
    best_epoch = result.metrics["best_epoch"]
    seconds_to_best = sum(h["train_seconds"] for h in history if h["epoch"] <= best_epoch)
    # When validation recall@20 first reached the target (validation, not test: the run never sees test before
    # its best checkpoint is chosen); training seconds, and wall clock with the validations spent until then.
    reached = next((h["epoch"] for h in history if h.get("valid", {}).get("recall@20", -1) >= target), None)
    to_target = wall_to_target = None
    if reached is not None:
        to_target = sum(h["train_seconds"] for h in history if h["epoch"] <= reached)
        wall_to_target = to_target + sum(h.get("eval_seconds", 0.0) for h in history if h["epoch"] <= reached)
    test = result.metrics.get("test", {})
    return {"epochs": result.metrics["epochs_run"], "train_seconds": result.metrics["train_seconds"],
            "s_per_epoch": per_epoch, "best_epoch": best_epoch, "seconds_to_best": seconds_to_best,
            "time_to_quality_seconds": result.metrics.get("time_to_quality_seconds"),
            "epoch_to_target": reached, "seconds_to_target": to_target, "wall_seconds_to_target": wall_to_target,
            **{k: test.get(k, float("nan")) for k in ("auc", "recall@20", "ndcg@20")},
            "eval_seconds": result.metrics["eval_seconds"]}


def paired_epoch_ratios(dataset, dim: int, pairs: int, seed: int, out: Path, home: Path | None) -> dict:
    """hbench bpr's epoch over Cornac's, measured `pairs` times back to back (see the module docstring)."""
    ratios, cornac_epochs, hbench_epochs = [], [], []
    for pair in range(pairs):
        before = run_cornac(dataset, dim, 10, seed)["s_per_epoch"]
        hbench = run_hbench(dataset, "bpr", dim, 8, 8, seed + pair, out, home)["s_per_epoch"]
        after = run_cornac(dataset, dim, 10, seed)["s_per_epoch"]
        cornac_epochs.append((before + after) / 2)
        hbench_epochs.append(hbench)
        ratios.append(hbench / cornac_epochs[-1])
    return {"ratios": ratios, "median": statistics.median(ratios), "cornac_s_per_epoch": cornac_epochs,
            "hbench_s_per_epoch": hbench_epochs}


def paired_text(paired: dict) -> str:
    ratios, cornac, hbench = paired["ratios"], paired["cornac_s_per_epoch"], paired["hbench_s_per_epoch"]
    return (f"Paired epoch ratio, hbench bpr / Cornac BPR ({len(ratios)} pairs, each hbench's median of 8 epochs over the "
            f"mean of the Cornac epochs just before and after): median **{paired['median']:.2f}**, range "
            f"{min(ratios):.2f}–{max(ratios):.2f}; Cornac {min(cornac) * 1e3:.0f}–{max(cornac) * 1e3:.0f} ms, hbench "
            f"{min(hbench) * 1e3:.0f}–{max(hbench) * 1e3:.0f} ms per epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, action="append", required=True, help="offline mirror of the raw files")
    parser.add_argument("--home", type=Path, default=None, help="HBENCH_HOME for the prepared split")
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=150, help="hbench BPR's maximum epochs")
    parser.add_argument("--target", type=float, default=0.033,
                        help="recall@20 whose first crossing on validation is timed (the issue's target)")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--cornac-epochs", type=int, default=300)
    parser.add_argument("--lenskit-epochs", type=int, default=10,
                        help="LensKit FlexMF BPR epochs, timed (when LensKit is installed)")
    parser.add_argument("--other-epochs", type=int, default=3, help="epochs timed for CML, HyperML, LightGCN, HGCF")
    parser.add_argument("--pairs", type=int, default=7, help="paired Cornac / hbench bpr epoch timings (0: none)")
    parser.add_argument("--paired-only", action="store_true",
                        help="only the paired epoch ratio (a quick check, say of one code revision against another)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/results/")
    args = parser.parse_args()

    dataset = prepare(args.source, args.home)
    out = Path(tempfile.mkdtemp(prefix="hbench-peers-runs-"))
    shape = (f"{dataset.n_users:,} users × {dataset.n_items:,} items, {len(dataset.train):,} training pairs, "
             f"d={args.dim}, seed {args.seed}, CPU, torch threads {torch.get_num_threads()}")
    if args.paired_only:
        paired = paired_epoch_ratios(dataset, args.dim, max(args.pairs, 1), args.seed, out, args.home)
        line = paired_text(paired)
        text = f"{shape}\n\n{line}"
        print(text)
        if args.record:
            print(f"recorded in {record('peers', text, {'shape': shape, 'paired': paired})}")
        return
    rows = {}
    rows["Cornac BPR, 30 epochs"] = run_cornac(dataset, args.dim, 30, args.seed)
    rows[f"Cornac BPR, {args.cornac_epochs} epochs"] = run_cornac(dataset, args.dim, args.cornac_epochs, args.seed)
    rows["hbench bpr"] = run_hbench(dataset, "bpr", args.dim, args.epochs, args.eval_every, args.seed, out, args.home,
                                    target=args.target)
    for model in ("cml", "hyperml", "lightgcn", "hgcf"):
        rows[f"hbench {model} ({args.other_epochs} epochs, timing only)"] = run_hbench(
            dataset, model, args.dim, args.other_epochs, args.other_epochs, args.seed, out, args.home)
    lenskit = run_lenskit(dataset, args.dim, args.lenskit_epochs, args.seed)  # last: it configures torch's threads
    if lenskit is not None:
        rows[f"LensKit FlexMF BPR (PyTorch), {args.lenskit_epochs} epochs"] = lenskit

    cornac_epoch = rows["Cornac BPR, 30 epochs"]["s_per_epoch"]
    bpr_epoch = rows["hbench bpr"]["s_per_epoch"]
    headers = ["run", "epochs", "s/epoch", "× Cornac epoch", "× hbench bpr epoch", "train s", "s to best ckpt",
               "test AUC", "test R@20", "test N@20", "eval s"]
    body = []
    for name, r in rows.items():
        body.append([name, r["epochs"], f"{r['s_per_epoch']:.3f}", f"{r['s_per_epoch'] / cornac_epoch:.1f}",
                     f"{r['s_per_epoch'] / bpr_epoch:.2f}", f"{r['train_seconds']:.1f}",
                     f"{r['seconds_to_best']:.1f}" if "seconds_to_best" in r else "—",
                     f"{r['auc']:.4f}", f"{r['recall@20']:.4f}", f"{r['ndcg@20']:.4f}", f"{r['eval_seconds']:.1f}"])
    cornac_full = rows[f"Cornac BPR, {args.cornac_epochs} epochs"]
    bpr = rows["hbench bpr"]
    if bpr["seconds_to_target"] is None:
        target_line = f"hbench bpr: validation recall@20 never reached {args.target} in {bpr['epochs']} epochs"
    else:
        target_line = (f"hbench bpr: validation recall@20 ≥ {args.target} first at epoch {bpr['epoch_to_target']}, after "
                       f"{bpr['seconds_to_target']:.1f} s of training ({bpr['wall_seconds_to_target']:.1f} s with its "
                       f"validations) against Cornac's {args.cornac_epochs}-epoch training, "
                       f"{cornac_full['train_seconds']:.1f} s (ratio "
                       f"{bpr['seconds_to_target'] / cornac_full['train_seconds']:.2f}; "
                       f"with validations {bpr['wall_seconds_to_target'] / cornac_full['train_seconds']:.2f})")
    paired_line, paired = "", None
    if args.pairs > 0:
        paired = paired_epoch_ratios(dataset, args.dim, args.pairs, args.seed, out, args.home)
        paired_line = "\n\n" + paired_text(paired)
    table = tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True)
    print(shape)
    print(table)
    print(target_line + paired_line)
    if args.record:
        path = record("peers", f"{shape}\n\n{table}\n\n{target_line}{paired_line}",
                      {"shape": shape, "rows": rows, "paired": paired})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
