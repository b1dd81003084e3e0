"""The training loop shared by every model.

Uniform negative sampling (never a training item of the user), Riemannian Adam (plain Adam on ordinary
parameters, Riemannian steps on geoopt ManifoldParameters), validation every `eval_every` epochs, early
stopping on the validation metric with the best weights restored, and one test evaluation at the end.
A non-finite loss or parameter ends the run with status `diverged`. A search trial given `prune_below`
thresholds stops after the k-th validation when its best value so far is below the k-th threshold; it then
completes as an early-stopped run would (best checkpoint, test evaluation) and records `pruned_at_epoch`.

Randomness comes from one seed through `numpy.random.SeedSequence`: independent streams for parameter
initialisation and for sampling (order and negatives). The split and candidates are fixed by the prepared
dataset, so two models trained with the same seed see the same data.

Resuming: after every epoch the run directory gets `resume.pt` (model, optimisers, the sampler's RNG, the
model's own generators, history, best state and early-stopping counters). A run killed at any point restarts
from its last finished epoch and ends exactly as an uninterrupted run with the same seed would: the sampler
draws a fresh permutation at each epoch start, so an epoch boundary is a complete sampler position.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geoopt
import numpy as np
import torch

from hbench.config import ResolvedRun, TrainConfig
from hbench.datasets.load import load_dataset
from hbench.datasets.store import PreparedDataset
from hbench.devices import reproducible_torchscript, resolve_device
from hbench.errors import HBenchError
from hbench.evaluation.metrics import summarise
from hbench.evaluation.protocols import evaluate
from hbench.features.dataset import find_features
from hbench.geometry import Representations
from hbench.models.base import Recommender, identity_exempt
from hbench.models.registry import build_model, get_model_class, parse_options
from hbench.models.rows import RowGradients
from hbench.protocols import get_protocol
from hbench.runs import RunDirectory, environment, one_process_per_run, package_version
from hbench.training.degenerate import degenerate_best
from hbench.training.optim import RowAdam
from hbench.training.runlog import RunReporter, metrics_text
from hbench.training.sampling import EpochStream, NegativeSampler
from hbench.ui import QUIET, Feedback


@dataclass(frozen=True)
class RunResult:
    """What `train` returns for one run: its directory, its status (`completed` or `diverged`), its
    metrics as `metrics.json` holds them, and whether an identical finished run was found and left alone."""

    path: Path
    status: str  # completed | diverged
    metrics: dict[str, Any]
    skipped: bool = False  # an identical finished run already existed

    def __repr__(self) -> str:
        return f"<run {self.status}{' (skipped)' if self.skipped else ''}: {self.path} {metrics_text(self.metrics.get('test', {}))}>"


def _seed_streams(seed: int) -> tuple[torch.Generator, np.random.Generator]:
    init_seq, sampling_seq = np.random.SeedSequence(seed).spawn(2)
    init = torch.Generator().manual_seed(int(init_seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return init, np.random.default_rng(sampling_seq)


OPTIMIZERS = ("sparse", "dense")


def make_optimizers(model: Recommender, kind: str, lr: float) -> list[torch.optim.Optimizer]:
    """The model's own optimisers if it declares them; otherwise Riemannian Adam for every parameter, with
    `sparse` lazily on the rows of the model's embedding tables (`RowAdam`).

    Riemannian Adam is plain Adam on ordinary parameters and takes Riemannian steps on geoopt
    ManifoldParameters, so one optimiser family serves Euclidean and hyperbolic models alike. Ordinary
    parameters outside the tables get torch's fused Adam (the same update, equal to geoopt's to rounding):
    geoopt's Python loop took 42 ms per step on LightGCN's 62,420 × 50 embedding on a CPU, torch's 4 ms.
    """
    own = model.configure_optimizers(lr)
    if own is not None:
        model.row_gradients = None
        return own
    tables = [p for p in model.embedding_tables() if p.requires_grad] if kind == "sparse" else []
    model.row_gradients = RowGradients() if tables else None
    table_ids = {id(p) for p in tables}
    dense = [p for p in model.parameters() if id(p) not in table_ids and p.requires_grad]
    optimizers: list[torch.optim.Optimizer] = []
    if tables:
        assert model.row_gradients is not None
        optimizers.append(RowAdam(tables, model.row_gradients, lr=lr))
    on_manifold = [p for p in dense if isinstance(p, geoopt.ManifoldParameter)]
    euclidean = [p for p in dense if not isinstance(p, geoopt.ManifoldParameter)]
    if euclidean:
        fusable = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in euclidean)
        optimizers.append(torch.optim.Adam(euclidean, lr=lr, fused=fusable or None))
    if on_manifold:
        optimizers.append(geoopt.optim.RiemannianAdam(on_manifold, lr=lr))
    return optimizers


def touched_rows(model: Recommender, optimizers: list[torch.optim.Optimizer]) -> dict[str, torch.Tensor] | None:
    """Parameter name -> rows the last step changed, when every optimiser updates rows lazily; else None."""
    if not optimizers or not all(isinstance(o, RowAdam) for o in optimizers):
        return None
    by_id = {id(p): name for name, p in model.named_parameters()}
    return {by_id[key]: rows for o in optimizers for key, rows in o.touched.items()}  # type: ignore[attr-defined]


def representations(model: Recommender) -> Representations:
    """What evaluation scores: the model's representations, computed in eval mode without autograd."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model.representations()
    finally:
        model.train(was_training)


# How an optimiser runs its step, not what it has learned: kept as built when a saved state is loaded.
_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """`optimizer.load_state_dict(state)`, keeping the step implementation it was built with and, for geoopt's
    and hbench's optimisers, integer entries (the step counter) integers.

    torch turns a saved integer `step` into a float32 tensor, and geoopt's bias correction 1 − β^step then
    rounds differently (β ** tensor is float32, β ** int is float64): a resumed run would drift from an
    uninterrupted one in the last bits. torch's own Adam needs the tensor: it counts steps in place, so an
    integer step (a checkpoint from before dense parameters moved from geoopt's Adam to torch's) would stay
    at its saved value and every later bias correction would be wrong.
    """
    built = [{key: group[key] for key in _IMPLEMENTATION_FLAGS if key in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, built, strict=True):
        group.update(flags)
    # By module, not isinstance: geoopt's Riemannian optimisers subclass torch's, but count steps in integers.
    torchs_own = type(optimizer).__module__.startswith("torch.")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, saved in state["state"].items():
        for key, value in saved.items():
            if isinstance(value, int):
                param = params[index]
                # torch's fused step wants its counter as a float32 tensor beside the parameter.
                optimizer.state[param][key] = (torch.tensor(float(value), dtype=torch.float32, device=param.device)
                                               if torchs_own else value)


def _all_finite(model: Recommender) -> bool:
    """Whether every parameter is finite, read from one sum per parameter.

    A sum is NaN or infinite when any entry is, and costs a fifth of `isfinite(p).all()` (which writes a
    table-sized mask; 26 ms of a 0.3 s BPR epoch on amazon-clothing). It also flags finite parameters whose
    sum overflows, which for float32 means a mean magnitude above 1e38 / numel: a diverged run either way.
    """
    return all(bool(torch.isfinite(p.detach().sum())) for p in model.parameters())


@dataclass
class FitOutcome:
    status: str = "completed"
    message: str = ""
    best_value: float = -math.inf
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    epochs_run: int = 0
    pruned_at_epoch: int | None = None  # the validation after which `prune_below` stopped the run
    train_seconds: float = 0.0
    eval_seconds: float = 0.0  # validation and the final test evaluation (the test curve's time is apart)
    history: list[dict[str, Any]] = field(default_factory=list)
    # With `record_test_curve`: the test metrics at every validation point, and the seconds they took.
    test_curve: list[dict[str, Any]] = field(default_factory=list)
    test_curve_seconds: float = 0.0


def _feature_artifact(cls: type[Recommender], options: Any, dataset: PreparedDataset, encoder: str | None) -> Any:
    """The `hbench features` output a visual configuration reads (None for the others).

    A missing extraction is an error naming the `hbench features` command to run.
    """
    if not cls.uses_features(options):
        return None
    return find_features(dataset, encoder)


def _check_config(config: TrainConfig) -> None:
    # Numeric ranges are TrainConfig's own (checked when it is built).
    if config.optimizer not in OPTIMIZERS:
        raise HBenchError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {config.optimizer!r}")


def model_generators(model: Recommender) -> dict[str, torch.Generator]:
    """The torch generators a model draws from while training (e.g. VACF's neighbour sampler), by attribute."""
    found = {}
    for module_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{module_name}.{attr}" if module_name else attr] = value
    return found


def _fit(
    model: Recommender,
    dataset: PreparedDataset,
    config: TrainConfig,
    *,
    protocol: str,
    metric: str,
    lr: float,
    sampling_rng: np.random.Generator,
    run_dir: RunDirectory,
    device: torch.device,
    feedback: Feedback,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] = lambda entry: None,
) -> FitOutcome:
    """Epochs of sampled triples, validation every `eval_every` epochs, early stopping on `metric`.

    With `resume` (a state written by an earlier, interrupted call) training continues after its epoch.
    """
    outcome = FitOutcome()

    def validate(epoch: int) -> dict[str, float]:
        started = time.perf_counter()
        reps = representations(model)
        valid = summarise(evaluate(reps, dataset, stage="valid", protocol=protocol, ks=config.ks, feedback=feedback))
        outcome.eval_seconds += time.perf_counter() - started
        if config.record_test_curve:
            record_test_point(reps, epoch)
        return valid

    def record_test_point(reps: Representations, epoch: int) -> None:
        """Test metrics of the current weights into the curve file. Written only: nothing in the loop reads
        them (selection and stopping look at `valid` alone), and their time is counted apart from
        validation's so that `eval_seconds` means what it means without the curve."""
        started = time.perf_counter()
        test = summarise(evaluate(reps, dataset, stage="test", protocol=protocol, ks=config.ks, feedback=feedback))
        outcome.test_curve.append({"epoch": epoch, **test})
        run_dir.write_test_curve(outcome.test_curve)
        outcome.test_curve_seconds += time.perf_counter() - started

    def keep_if_best(valid: dict[str, float], epoch: int) -> bool:
        if not valid[metric] > outcome.best_value:  # also refuses NaN
            return False
        outcome.best_value, outcome.best_epoch, outcome.best_valid = valid[metric], epoch, valid
        outcome.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        run_dir.write_checkpoint(outcome.best_state)
        return True

    if config.record_test_curve:
        run_dir.write_test_curve(outcome.test_curve)  # at once: a run that diverges before validating has an empty one
    if not type(model).trainable:
        keep_if_best(validate(0), 0)
        return outcome

    optimizers = make_optimizers(model, config.optimizer, lr)
    sampler = NegativeSampler(dataset.train, dataset.n_items, sampling_rng, graph=dataset.train_graph)
    generators = model_generators(model)
    n_batches = math.ceil(len(dataset.train) / config.batch_size)
    history = outcome.history
    stale, first_epoch = 0, 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        for optimizer, state in zip(optimizers, resume["optimizers"], strict=True):
            load_optimizer_state(optimizer, state)
        sampling_rng.bit_generator.state = resume["sampling_rng"]
        for name, state in resume["generators"].items():
            generators[name].set_state(state)
        history[:], stale, first_epoch = resume["history"], int(resume["stale"]), int(resume["epoch"]) + 1
        for key in ("best_value", "best_epoch", "best_valid", "best_state", "train_seconds", "eval_seconds"):
            setattr(outcome, key, resume[key])
        # The resume state matches this run's config hash, which says whether it records the curve.
        outcome.test_curve[:] = resume.get("test_curve", [])
        outcome.test_curve_seconds = float(resume.get("test_curve_seconds", 0.0))
        if config.record_test_curve:
            run_dir.write_test_curve(outcome.test_curve)  # drop points of epochs after the saved state
        outcome.epochs_run = first_epoch - 1

    config_hash = run_dir.read_config()["config_hash"]  # read once: the resume state is written every epoch

    def save_resume_state(epoch: int, rng_state: dict[str, Any]) -> None:
        run_dir.write_resume_state({
            "config_hash": config_hash, "epoch": epoch, "history": history, "stale": stale,
            "model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
            # The sampler's state after this epoch's draws (the stream may already have drawn the next one).
            "sampling_rng": rng_state,
            "generators": {name: g.get_state() for name, g in generators.items()},
            "best_value": outcome.best_value, "best_epoch": outcome.best_epoch, "best_valid": outcome.best_valid,
            "best_state": outcome.best_state, "train_seconds": outcome.train_seconds,
            "eval_seconds": outcome.eval_seconds,
            **({"test_curve": outcome.test_curve, "test_curve_seconds": outcome.test_curve_seconds}
               if config.record_test_curve else {}),
        })

    def train_epoch(drawn: Any) -> dict[str, float] | None:
        """One pass over the epoch's batches; the mean of each loss part, or None when the loss is not finite.

        The epoch's triples move to the device once; loss parts are summed on the device, so the loop waits
        for the device only at the end of the epoch.
        """
        model.train()
        users, positives, negatives = (torch.from_numpy(a).to(device) for a in
                                       (drawn.users, drawn.positives, drawn.negatives))
        sums: dict[str, torch.Tensor] = {}
        for lo in range(0, users.shape[0], config.batch_size):
            hi = lo + config.batch_size
            terms = model.loss(users[lo:hi], positives[lo:hi], negatives[lo:hi])
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            for optimizer in optimizers:
                optimizer.step()
            model.constrain_(touched_rows(model, optimizers))
            for key, value in {"loss": terms.total, **terms.parts}.items():
                value = value.detach()
                sums[key] = sums[key] + value if key in sums else value
        means = {key: float(value) / n_batches for key, value in sums.items()}
        return means if math.isfinite(means["loss"]) else None

    with feedback.progress(f"{type(model).name} training", total=config.epochs, unit="epochs") as bar, \
            EpochStream(sampler, config.negatives) as stream:
        bar.advance(first_epoch - 1)
        for epoch in range(first_epoch, config.epochs + 1):
            started = time.perf_counter()
            drawn = stream.next_epoch(prefetch=epoch < config.epochs)
            losses = train_epoch(drawn)
            if losses is None:
                outcome.status, outcome.message = "diverged", f"loss became nan or infinite at epoch {epoch}"
            elif not _all_finite(model):
                outcome.status, outcome.message = "diverged", f"parameters became non-finite at epoch {epoch}"
            epoch_seconds = time.perf_counter() - started
            outcome.train_seconds += epoch_seconds
            outcome.epochs_run = epoch
            if outcome.status == "diverged":
                break
            assert losses is not None
            entry: dict[str, Any] = {"epoch": epoch, **losses, "train_seconds": round(epoch_seconds, 3)}
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                before = outcome.eval_seconds
                entry["valid"] = validate(epoch)
                entry["eval_seconds"] = round(outcome.eval_seconds - before, 3)
                stale = 0 if keep_if_best(entry["valid"], epoch) else stale + 1
                evaluations = 1 + sum("valid" in h for h in history)
                thresholds = config.prune_below or ()
                if evaluations <= len(thresholds) and outcome.best_value < thresholds[evaluations - 1]:
                    outcome.pruned_at_epoch = epoch
            history.append(entry)
            run_dir.write_history(history)
            on_epoch(entry)
            if epoch < config.epochs and stale < config.patience and outcome.pruned_at_epoch is None:
                save_resume_state(epoch, drawn.rng_state_after)
            bar.advance(1)
            bar.update(info=f"loss {entry['loss']:.4f}  best {metric} {outcome.best_value:.4f} @ {outcome.best_epoch}")
            if stale >= config.patience:
                feedback.log(f"early stop at epoch {epoch}: no better {metric} in {config.patience} evaluations")
                break
            if outcome.pruned_at_epoch is not None:
                feedback.log(f"pruned at epoch {epoch}: best {metric} {outcome.best_value:.4f} is below the search's "
                             f"threshold for this validation")
                break
    return outcome


QUALITY_FRACTION = 0.95


def time_to_quality(history: list[dict[str, Any]], metric: str, fraction: float = QUALITY_FRACTION) -> dict[str, Any]:
    """When the validation `metric` first reached `fraction` of its best value over the run.

    Seconds are training seconds (validation excluded, so models that validate more often are not
    penalised) summed up to and including that epoch; None when no validation produced a number.
    """
    evaluated = [(h["epoch"], h["valid"][metric]) for h in history if "valid" in h and math.isfinite(h["valid"][metric])]
    if not evaluated:
        return {"time_to_quality_seconds": None, "epochs_to_quality": None}
    best = max(value for _, value in evaluated)
    # A metric that is best at 0 (or below) has no meaningful fraction: the first evaluation qualifies.
    epoch = next(e for e, value in evaluated if value >= fraction * best or best <= 0)
    seconds = sum(h["train_seconds"] for h in history if h["epoch"] <= epoch)
    return {"time_to_quality_seconds": round(seconds, 3), "epochs_to_quality": epoch}


@dataclass(frozen=True)
class PlannedRun:
    """A run resolved against its dataset (and features) but not started: identity and destination."""

    model_name: str
    config: TrainConfig
    options: Any
    run: ResolvedRun
    run_dir: RunDirectory
    dataset: PreparedDataset
    features: Any  # the FeatureArtifact visual models read, or None

    def status(self) -> str | None:
        return self.run_dir.status()


def _check_trainable_split(dataset: PreparedDataset) -> None:
    """Refuse a prepared split with an empty part before anything is trained or written: training needs
    train, epoch selection needs validation and the result needs test, and finding out at the end wastes the
    training and leaves a run directory without metrics. `prepare` refuses such splits now, but datasets
    prepared by older versions can still be in a user's cache."""
    for part, noun in ((dataset.train, "training"), (dataset.valid, "validation"), (dataset.test, "test")):
        if len(part) == 0:
            raise HBenchError(f"dataset {dataset.name!r} ({dataset.path}) has no {noun} interactions (a run trains, "
                              f"selects its epoch and is tested on three non-empty parts); prepare it again with "
                              f"a non-empty {noun} part (`hbench prepare ... --force`)")


def plan_run(
    model_name: str,
    config: TrainConfig,
    model_options: dict[str, Any] | None = None,
    *,
    out: Path = Path("results"),
    home: Path | None = None,
    dataset: PreparedDataset | None = None,
) -> PlannedRun:
    """Resolve defaults (protocol, metric, lr, features) and the run directory, without training.

    `dataset` may be passed when planning many runs on one dataset, to load it once.
    """
    _check_config(config)
    dataset = dataset if dataset is not None else load_dataset(config.dataset, home)
    _check_trainable_split(dataset)
    protocol = config.protocol or dataset.default_protocol
    spec = get_protocol(protocol)
    metric = config.metric or spec.selection_metric
    known = spec.produced_metrics(config.ks)
    if metric not in known:
        raise HBenchError(f"--metric {metric!r} is not produced by protocol {protocol!r} (choose from {', '.join(known)})")
    cls = get_model_class(model_name)
    options = parse_options(cls, model_options or {})
    if config.batch_size is None:  # resolved here, so the run's identity records the batch it trained with
        config = dataclasses.replace(config, batch_size=cls.default_batch_size)
    lr = config.lr if config.lr is not None else cls.default_lr_for(options)
    features = _feature_artifact(cls, options, dataset, config.features)
    features_id = None if features is None else {"encoder": features.encoder, "key": features.key}
    run = ResolvedRun(
        model=model_name,
        model_options=dict(vars(options)),
        train={**config.identity(), "dataset": dataset.name},  # the name, not a machine-specific path
        dataset={"name": dataset.name, "path": str(dataset.path), "manifest_sha256": dataset.manifest_hash,
                 "split_hash": dataset.split_hash, "n_users": dataset.n_users, "n_items": dataset.n_items,
                 # not part of the run's identity (the split hash covers the candidates); reports read it
                 "negatives": dataset.manifest.get("options", {}).get("negatives"),
                 "features": features_id},
        protocol=protocol,
        metric=metric,
        lr=lr,
        hbench_version=package_version("hbench"),
        identity_exempt=identity_exempt(options),
    )
    return PlannedRun(model_name, config, options, run, RunDirectory.for_run(out, run), dataset, features)


def train(
    model_name: str,
    config: TrainConfig,
    model_options: dict[str, Any] | None = None,
    *,
    out: Path = Path("results"),
    home: Path | None = None,
    force: bool = False,
    feedback: Feedback = QUIET,
) -> RunResult:
    """Train `model_name` on a prepared dataset and write one run directory under `out`.

    A finished identical run is left alone (unless `force`); an interrupted one resumes from `resume.pt`.
    """
    return train_planned(plan_run(model_name, config, model_options, out=out, home=home), force=force,
                         feedback=feedback)


@one_process_per_run
def train_planned(planned: PlannedRun, *, force: bool = False, feedback: Feedback = QUIET) -> RunResult:
    """Train (or resume, or skip) one planned run."""
    config, dataset, run, run_dir = planned.config, planned.dataset, planned.run, planned.run_dir
    cls = get_model_class(planned.model_name)
    device = resolve_device(config.device)
    reproducible_torchscript()
    if run_dir.status() is not None and not force:
        if not run_dir.lacks_test_curve(run):
            feedback.log(f"{run_dir.path} already holds this finished run (use --force to train again)")
            return RunResult(run_dir.path, run_dir.status() or "completed", run_dir.read_metrics(), skipped=True)
        feedback.log(f"{run_dir.path} holds this run without a test curve: training it again to record one")
    # The model is built before the run folder is written: a model that cannot be built (a plugin raising in
    # __init__, an option its code rejects) leaves no half-started run behind.
    item_features = None
    if planned.features is not None:
        item_features = torch.from_numpy(np.ascontiguousarray(planned.features.features(), dtype=np.float32))
    init_generator, sampling_rng = _seed_streams(config.seed)
    model = build_model(cls, planned.options, dataset, dim=config.dim, generator=init_generator,
                        item_features=item_features).to(device)
    resume = None if force else run_dir.load_resume_state(run.config_hash)
    if resume is None:
        run_dir.start(run, environment(device))
    else:
        run_dir.note_resumed(int(resume["epoch"]), str(device))
        feedback.log(f"resuming {run_dir.path} after epoch {int(resume['epoch'])}")

    reporter = RunReporter(feedback, run_dir, run.to_dict(), config.epochs if cls.trainable else 0)
    feedback = reporter.feedback  # the same, also writing the run's train.log
    reporter.start(str(device))
    outcome = _fit(model, dataset, config, protocol=run.protocol, metric=run.metric, lr=run.lr,
                   sampling_rng=sampling_rng, run_dir=run_dir, device=device, feedback=feedback, resume=resume,
                   on_epoch=reporter.epoch)
    if outcome.status == "completed" and outcome.best_state is None:
        # NaN never beats the best so far: with no finite validation value there is no checkpoint to test.
        outcome.status = "diverged"
        outcome.message = f"validation {run.metric} was not a number at any of {outcome.epochs_run} epoch(s)"
    if outcome.status == "completed" and (reason := degenerate_best(model, outcome.best_state)) is not None:
        outcome.status, outcome.message = "diverged", reason

    summary: dict[str, Any] = {
        "status": outcome.status, "message": outcome.message, "model": planned.model_name, "dataset": dataset.name,
        "protocol": run.protocol, "selection_metric": run.metric, "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run, "valid": outcome.best_valid,
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    if outcome.pruned_at_epoch is not None:
        summary["pruned_at_epoch"] = outcome.pruned_at_epoch
    if outcome.status == "completed":
        model.load_state_dict(outcome.best_state)
        model.eval()
        started = time.perf_counter()
        per_user = evaluate(representations(model), dataset, stage="test", protocol=run.protocol, ks=config.ks,
                            feedback=feedback)
        outcome.eval_seconds += time.perf_counter() - started
        run_dir.write_per_user(per_user)
        summary["test"] = summarise(per_user)
        summary["n_test_users"] = int(len(per_user))
    summary.update(train_seconds=round(outcome.train_seconds, 3), eval_seconds=round(outcome.eval_seconds, 3),
                   **time_to_quality(outcome.history, run.metric), quality_fraction=QUALITY_FRACTION)
    if config.record_test_curve:  # apart from eval_seconds, which stays validation + the final test
        summary["test_curve_seconds"] = round(outcome.test_curve_seconds, 3)
    run_dir.finish(summary)
    reporter.finish(summary)
    return RunResult(run_dir.path, outcome.status, summary)
