"""The visual models (vbpr, vacf, hvacf): losses against hand computations and geoopt, neighbour sampling,
ablation switches, deterministic evaluation, and `hvacf --hyperbolic false` = `vacf` exactly."""

from __future__ import annotations

from types import SimpleNamespace

import geoopt
import numpy as np
import pytest
import torch

from hbench.datasets.store import Interactions
from hbench.errors import HBenchError
from hbench.models import ModelContext, create_model
from hbench.models.registry import available_models
from hbench.runs import RunDirectory
from hbench.training.sampling import NegativeSampler
from hbench.training.trainer import make_optimizers

N_USERS, N_ITEMS, N_FEATURES = 5, 7, 6
# user 0: 0 1 2 · user 1: 3 (a single item) · user 2: 1 4 · user 3: 2 5 · user 4: nothing
TRAIN = Interactions(np.array([0, 0, 0, 1, 2, 2, 3, 3]), np.array([0, 1, 2, 3, 1, 4, 2, 5]))
# Triples whose neighbour sets are forced (histories ≤ L once the positive is removed):
# user 0 / positive 1 → {0, 2};  user 2 / positive 4 → {1};  user 1 / positive 3 → {} (u alone).
BATCH = (torch.tensor([0, 2, 1]), torch.tensor([1, 4, 3]), torch.tensor([[3, 5], [0, 6], [5, 0]]))
NEIGHBOURS = {0: [0, 2], 2: [1], 1: []}


def _features(n_items: int = N_ITEMS, n_features: int = N_FEATURES, seed: int = 5) -> torch.Tensor:
    return torch.randn(n_items, n_features, generator=torch.Generator().manual_seed(seed)).abs()


def _context(dim: int = 4, seed: int = 0, features: torch.Tensor | None | str = "random",
             train: Interactions = TRAIN, n_users: int = N_USERS, n_items: int = N_ITEMS) -> ModelContext:
    feats = _features(n_items) if isinstance(features, str) else features
    return ModelContext(n_users, n_items, dim, train, torch.Generator().manual_seed(seed), feats)


def _scores(reps) -> torch.Tensor:
    return reps.geometry.score_matrix(reps.users, reps.geometry.item_cache(reps.items))


# -- registry and features ------------------------------------------------------------------------------


def test_visual_models_are_registered_and_need_features() -> None:
    models = available_models()
    for name in ("vbpr", "vacf", "hvacf"):
        assert models[name].needs_features
        with pytest.raises(HBenchError, match=rf"model '{name}' needs image features: run `hbench features DATASET` first"):
            create_model(name, _context(features=None))
    assert models["vacf"].Options().hyperbolic is False and models["hvacf"].Options().hyperbolic is True
    # Without the visual path no features are needed, and none are kept.
    model = create_model("hvacf", _context(features=None), {"visual": "false"})
    assert not hasattr(model, "features") and not hasattr(model, "visual_projection")
    with pytest.raises(HBenchError, match="hbench features DATASET --force"):
        create_model("vbpr", _context(features=torch.ones(N_ITEMS + 1, 3)))


def test_features_are_a_frozen_buffer_scaled_to_unit_mean_norm_and_not_checkpointed() -> None:
    feats = _features() * 30
    model = create_model("hvacf", _context(features=feats))
    assert "features" not in dict(model.named_parameters()) and "features" not in model.state_dict()
    assert model.features.norm(dim=1).mean().item() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(model.features * feats.norm(dim=1).mean(), feats, rtol=1e-5)
    raw = create_model("vbpr", _context(features=feats), {"normalize_features": "false"})
    assert torch.equal(raw.features, feats)


# -- VBPR -----------------------------------------------------------------------------------------------


def test_vbpr_loss_and_scores_match_hand_computation() -> None:
    model = create_model("vbpr", _context(dim=6), {"reg": "0", "normalize_features": "false"})
    assert model.user_factors.shape[1] == 3 and model.user_visual.shape[1] == 3  # --dim split K = K' = 3
    with torch.no_grad():
        model.item_bias.copy_(torch.arange(N_ITEMS, dtype=torch.float32).unsqueeze(1) / 10)
        model.visual_bias.copy_(torch.linspace(-0.2, 0.3, N_FEATURES))
    gu, gi, tu = model.user_factors.detach(), model.item_factors.detach(), model.user_visual.detach()
    E, bv, b, f = model.visual_projection.detach(), model.visual_bias.detach(), model.item_bias.detach()[:, 0], _features()

    def score(a: int, i: int) -> float:
        return float(b[i] + gu[a] @ gi[i] + tu[a] @ (f[i] @ E) + bv @ f[i])

    users, pos, neg = BATCH
    expected = np.mean([np.log1p(np.exp(-(score(a, p) - score(a, n))))
                        for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()) for n in row])
    terms = model.loss(users, pos, neg)
    assert set(terms.parts) == {"bpr"} and terms.total.item() == pytest.approx(expected, rel=1e-5)
    full = _scores(model.representations())
    for a in range(N_USERS):
        for i in range(N_ITEMS):
            assert full[a, i].item() == pytest.approx(score(a, i), rel=1e-4, abs=1e-6)


def test_vbpr_regularisers_and_sparse_tables() -> None:
    model = create_model("vbpr", _context(dim=6), {"reg": "0.1", "reg_visual": "0.5", "visual_dim": "2"})
    assert model.user_factors.shape[1] == 4 and model.visual_projection.shape == (N_FEATURES, 2)
    terms = model.loss(*BATCH)
    expected = 0.5 * (model.visual_projection.pow(2).sum() + model.visual_bias.pow(2).sum())
    assert set(terms.parts) == {"bpr", "l2", "l2_visual"}
    assert terms.parts["l2_visual"].item() == pytest.approx(expected.item())
    assert terms.total.item() == pytest.approx(sum(v.item() for v in terms.parts.values()), rel=1e-6)
    assert {id(p) for p in model.embedding_tables()} == {
        id(model.user_factors), id(model.item_factors), id(model.user_visual), id(model.item_bias)}
    with pytest.raises(HBenchError, match="--visual-dim must lie in 1..5"):
        create_model("vbpr", _context(dim=6), {"visual_dim": "6"})


# -- HVACF / VACF: hand computations --------------------------------------------------------------------


def _tangents(model, ball: geoopt.PoincareBall | None = None):
    """Hand-made ũ (with the forced neighbours, uniform weights) and ṽ, in float64."""
    def tangent(table):
        t = table.detach().double()
        return ball.logmap0(t) if ball is not None else t

    U, V, P = tangent(model.user_embedding), tangent(model.item_embedding), tangent(model.neighbour_embedding)
    V = V + model.features.double() @ model.visual_projection.detach().double()
    users = {a: U[a] + (P[nb].mean(0) if nb else 0.0) for a, nb in NEIGHBOURS.items()}
    return users, V


@pytest.mark.parametrize(("parametrization", "loss"), [("tangent", "hinge"), ("ball", "hinge"), ("tangent", "bpr")])
def test_hvacf_loss_terms_match_geoopt(parametrization: str, loss: str) -> None:
    c, gamma, lam, margin = 0.7, 0.3, 0.2, 0.5
    model = create_model("hvacf", _context(), {
        "c": str(c), "gamma": str(gamma), "lambda_adj": str(lam), "margin": str(margin), "loss": loss,
        "parametrization": parametrization, "attention": "false", "init_std": "0.3",
    })
    assert isinstance(model.user_embedding, geoopt.ManifoldParameter) == (parametrization == "ball")
    ball = geoopt.PoincareBall(c=c).double()
    users_t, items_t = _tangents(model, ball if parametrization == "ball" else None)
    hyp, euc, ratios = [], [], []
    users, pos, neg = BATCH
    for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()):
        h = ball.expmap0(users_t[a])
        d_p, e_p = float(ball.dist(h, ball.expmap0(items_t[p]))), float((users_t[a] - items_t[p]).norm())
        ratios.append(abs(d_p - e_p) / e_p)
        for n in row:
            d_n, e_n = float(ball.dist(h, ball.expmap0(items_t[n]))), float((users_t[a] - items_t[n]).norm())
            ratios.append(abs(d_n - e_n) / e_n)
            if loss == "hinge":
                hyp.append(max(0.0, margin + d_p**2 - d_n**2))
                euc.append(max(0.0, margin + e_p**2 - e_n**2))
            else:
                hyp.append(np.log1p(np.exp(-(d_n - d_p))))
                euc.append(np.log1p(np.exp(-(e_n - e_p))))
    terms = model.loss(users, pos, neg)
    assert set(terms.parts) == {"hyperbolic", "euclidean", "adjustment"}
    assert terms.parts["hyperbolic"].item() == pytest.approx(np.mean(hyp), rel=1e-4)
    assert terms.parts["euclidean"].item() == pytest.approx(gamma * np.mean(euc), rel=1e-4)
    assert terms.parts["adjustment"].item() == pytest.approx(lam * np.mean(ratios), rel=1e-4)
    assert terms.total.item() == pytest.approx(sum(v.item() for v in terms.parts.values()), rel=1e-6)


def test_vacf_is_the_euclidean_loss_and_squared_euclidean_scores() -> None:
    model = create_model("vacf", _context(), {"attention": "false", "init_std": "0.3"})
    users_t, items_t = _tangents(model)
    users, pos, neg = BATCH
    expected = np.mean([max(0.0, 1.0 + float((users_t[a] - items_t[p]).pow(2).sum()) - float((users_t[a] - items_t[n]).pow(2).sum()))
                        for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()) for n in row])
    terms = model.loss(users, pos, neg)
    assert set(terms.parts) == {"euclidean"} and terms.total is terms.parts["euclidean"]
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    reps = model.representations()
    assert reps.geometry.name == "squared_euclidean" and model.ball is None


def test_attention_weights_are_a_softmax_of_the_mlp_over_real_neighbours() -> None:
    model = create_model("vacf", _context(), {"init_std": "0.5"})
    with torch.no_grad():
        model.attention_vector.mul_(20)  # make the weights clearly non-uniform
    neighbours = torch.tensor([[0, 2, 0], [1, 0, 0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    got = model.user_tangent(torch.tensor([0, 2]), neighbours, mask).detach()
    U, V, P = model.user_embedding.detach(), model.item_embedding.detach(), model.neighbour_embedding.detach()
    WF = model.features @ model.visual_projection.detach()
    A, b, w = model.attention_weight.detach(), model.attention_bias.detach(), model.attention_vector.detach()
    logits = torch.stack([torch.relu(torch.cat([U[0], V[l], P[l], WF[l]]) @ A + b) @ w for l in (0, 2)])
    alpha = torch.softmax(logits, 0)
    assert not torch.allclose(alpha, torch.full_like(alpha, 0.5), atol=1e-2)
    assert torch.allclose(got[0], U[0] + alpha[0] * P[0] + alpha[1] * P[2], atol=1e-6)
    assert torch.allclose(got[1], U[2] + P[1], atol=1e-6)  # one real neighbour: weight 1, padding ignored


# -- ablation switches ----------------------------------------------------------------------------------


def test_each_ablation_switch_removes_its_loss_term_or_parameters() -> None:
    full = create_model("hvacf", _context())
    params = dict(full.named_parameters())
    parts = full.loss(*BATCH).parts
    assert set(parts) == {"hyperbolic", "euclidean", "adjustment"}
    assert {"visual_projection", "attention_weight", "attention_bias", "attention_vector"} <= set(params)
    # Same seed, same parameters and neighbour draws: the objective loses exactly the switched-off term.
    no_euc = create_model("hvacf", _context(), {"gamma": "0"}).loss(*BATCH)
    assert set(no_euc.parts) == {"hyperbolic", "adjustment"}
    assert no_euc.total.item() == pytest.approx((parts["hyperbolic"] + parts["adjustment"]).item(), rel=1e-6)
    no_adj = create_model("hvacf", _context(), {"lambda_adj": "0"}).loss(*BATCH)
    assert set(no_adj.parts) == {"hyperbolic", "euclidean"}
    assert no_adj.total.item() == pytest.approx((parts["hyperbolic"] + parts["euclidean"]).item(), rel=1e-6)
    assert set(create_model("hvacf", _context(), {"reg": "0.1"}).loss(*BATCH).parts) == {
        "hyperbolic", "euclidean", "adjustment", "l2"}

    uniform = create_model("hvacf", _context(), {"attention": "false"})
    assert not any(name.startswith("attention") for name, _ in uniform.named_parameters())
    no_visual = create_model("hvacf", _context(), {"visual": "false"})
    assert "visual_projection" not in dict(no_visual.named_parameters()) and not hasattr(no_visual, "features")
    assert no_visual.attention_weight.shape[0] == 3 * 4  # [u; v; p] without W_f f
    euclidean = create_model("hvacf", _context(), {"hyperbolic": "false"})
    assert euclidean.ball is None and not any("ball" in name for name, _ in euclidean.named_parameters())
    assert set(euclidean.loss(*BATCH).parts) == {"euclidean"}
    assert euclidean.representations().geometry.name == "squared_euclidean"
    assert full.representations().geometry.name == "poincare"


def test_options_are_validated() -> None:
    for opts, message in (({"neighbours": "0"}, "--neighbours must be at least 1"),
                          ({"c": "0"}, "--c must be positive"),
                          ({"gamma": "-1"}, "--gamma must be non-negative"),
                          ({"hyperbolic": "false", "learnable_c": "true"}, "need --hyperbolic true"),
                          ({"hyperbolic": "false", "parametrization": "ball"}, "need --hyperbolic true")):
        with pytest.raises(HBenchError, match=message):
            create_model("hvacf", _context(), opts)


# -- neighbours and evaluation --------------------------------------------------------------------------


def _long_history_context(seed: int = 0) -> ModelContext:
    # user 0 has 12 items, user 1 one item, user 2 none.
    train = Interactions(np.array([0] * 12 + [1]), np.array(list(range(12)) + [3]))
    return _context(seed=seed, train=train, n_users=3, n_items=14, features=_features(14))


def test_training_neighbours_exclude_the_positive_are_distinct_and_padded() -> None:
    model = create_model("hvacf", _long_history_context(), {"neighbours": "5"})
    users = torch.tensor([0] * 40 + [1, 2])
    positives = torch.tensor([i % 12 for i in range(40)] + [3, 13])
    seen = set()
    for _ in range(5):
        neighbours, mask = model.sample_neighbours(users, exclude=positives)
        assert neighbours.shape == (42, 5)
        for r in range(40):
            chosen = neighbours[r][mask[r]].tolist()
            assert len(chosen) == 5 == len(set(chosen)) and positives[r].item() not in chosen
            assert all(0 <= i < 12 for i in chosen)
            seen.update(chosen)
        assert not mask[40].any() and not mask[41].any()  # single item = the positive; empty history
        assert (neighbours[~mask] == 0).all()
    assert seen == set(range(12))  # every history item gets drawn at some point
    # A user whose only item is the positive is represented by u alone; the loss stays finite.
    u = model.user_tangent(torch.tensor([1]), *model.sample_neighbours(torch.tensor([1]), torch.tensor([3])))
    assert torch.equal(u, model.user_embedding[1:2])
    assert torch.isfinite(model.loss(torch.tensor([1, 0]), torch.tensor([3, 4]), torch.tensor([[12], [13]])).total)


def test_neighbour_draws_follow_the_seed() -> None:
    users, positives = torch.zeros(30, dtype=torch.int64), torch.zeros(30, dtype=torch.int64)

    def draw(seed: int) -> torch.Tensor:
        return create_model("vacf", _long_history_context(seed)).sample_neighbours(users, positives)[0]

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))


def test_representations_are_deterministic_blockwise_and_survive_a_checkpoint(monkeypatch) -> None:
    from hbench.models import acf

    model = create_model("hvacf", _long_history_context(), {"neighbours": "4"})
    first, second = model.representations(), model.representations()
    assert torch.equal(first.users, second.users) and torch.equal(first.items, second.items)
    neighbours, mask = model.evaluation_neighbours()
    assert mask.sum(1).tolist() == [4, 1, 0]  # a fixed choice of up to L, the whole history when shorter
    assert neighbours[1, 0].item() == 3
    model.loss(*[torch.tensor(x) for x in ([0, 1], [2, 3], [[12], [13]])])  # training draws leave evaluation alone
    assert torch.equal(model.representations().users, first.users)
    monkeypatch.setattr(acf, "USER_BLOCK", 2)
    assert torch.equal(model.representations().users, first.users)
    # A model built from another generator and loaded from the state dict evaluates identically.
    other = create_model("hvacf", _long_history_context(seed=9), {"neighbours": "4"})
    assert "neighbour_seed" in model.state_dict()
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.representations().users, first.users)
    # Evaluation scores are −d_c between the user and item points.
    assert first.geometry.name == "poincare" and first.geometry.c == 1.0
    expected = -geoopt.PoincareBall(c=1.0).dist(first.users[:, None].double(), first.items[None].double())
    candidates = first.items.unsqueeze(0).expand(3, -1, -1)
    assert torch.allclose(first.geometry.score_candidates(first.users, candidates).double(), expected, atol=1e-5)


def test_learnable_c_gets_a_gradient_stays_positive_and_is_used_everywhere() -> None:
    model = create_model("hvacf", _context(), {"learnable_c": "true", "c": "0.5", "init_std": "0.3"})
    assert model.ball.isp_c.requires_grad
    terms = model.loss(*BATCH)
    terms.total.backward()
    assert model.ball.isp_c.grad is not None and model.ball.isp_c.grad.abs().item() > 0
    optimizers = make_optimizers(model, "sparse", lr=0.5)
    for _ in range(10):
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        model.loss(*BATCH).total.backward()
        for opt in optimizers:
            opt.step()
    c = model.ball.c.item()
    assert c > 0 and c != pytest.approx(0.5)
    assert model.representations().geometry.c == pytest.approx(c)
    # The loss reads the ball's current c: changing it changes the hyperbolic term.
    with torch.no_grad():
        before = model.loss(*BATCH).parts["hyperbolic"].item()
        model.ball.isp_c.add_(1.0)
        assert model.loss(*BATCH).parts["hyperbolic"].item() != pytest.approx(before)


# -- hvacf without the hyperbolic part is vacf ----------------------------------------------------------


def _train_steps(name: str, options: dict[str, str], steps: int = 6):
    ctx = _context(dim=8, seed=3, train=TRAIN)
    model = create_model(name, ctx, options)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    optimizers = make_optimizers(model, "sparse", lr=0.05)
    sampler = NegativeSampler(TRAIN, N_ITEMS, np.random.default_rng(11))
    losses = []
    for _ in range(steps):
        for users, positives, negatives in sampler.epoch(4, 2):
            terms = model.loss(*(torch.from_numpy(a) for a in (users, positives, negatives)))
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            terms.total.backward()
            for opt in optimizers:
                opt.step()
            model.constrain_()
            losses.append(terms.total.item())
    return model, init, losses


def test_hvacf_without_the_hyperbolic_part_reproduces_vacf_exactly() -> None:
    a, init_a, losses_a = _train_steps("vacf", {})
    b, init_b, losses_b = _train_steps("hvacf", {"hyperbolic": "false"})
    assert init_a.keys() == init_b.keys() and all(torch.equal(init_a[k], init_b[k]) for k in init_a)
    assert losses_a == losses_b
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    ra, rb = a.representations(), b.representations()
    assert torch.equal(ra.users, rb.users) and torch.equal(ra.items, rb.items) and ra.geometry == rb.geometry
    assert not all(torch.equal(init_a[k], v) for k, v in a.state_dict().items())  # it did train
    # ... and the hyperbolic model is a different one.
    c, _, _ = _train_steps("hvacf", {})
    assert not torch.equal(c.representations().users, ra.users)


def test_trained_through_the_trainer_hvacf_without_hyperbola_equals_vacf(tiny_dataset, tmp_path, monkeypatch) -> None:
    from hbench.config import TrainConfig
    from hbench.training import trainer

    features = _features(tiny_dataset.n_items, 16)
    # No image extraction here: the trainer's feature loader hands every visual model the same fixed features.
    fixed = SimpleNamespace(encoder="fixed", key="test", features=lambda: features.numpy())
    monkeypatch.setattr(trainer, "_feature_artifact", lambda cls, options, dataset, encoder: (
        fixed if cls.uses_features(options) else None))
    config = TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=2, batch_size=256, device="cpu", seed=5, lr=0.01)
    vacf = trainer.train("vacf", config, out=tmp_path / "a")
    hvacf_flat = trainer.train("hvacf", config, {"hyperbolic": "false"}, out=tmp_path / "b")
    assert vacf.status == hvacf_flat.status == "completed"
    assert vacf.metrics["test"] == hvacf_flat.metrics["test"]
    hyperbolic = trainer.train("hvacf", config, out=tmp_path / "c")
    assert hyperbolic.status == "completed" and hyperbolic.metrics["test"] != vacf.metrics["test"]
    assert {"hyperbolic", "euclidean", "adjustment"} <= set(RunDirectory(hyperbolic.path).read_history()[0])
    assert trainer.train("vbpr", config, out=tmp_path / "d").status == "completed"
