"""Each model's loss and representations against hand computations and geoopt."""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import torch

from hbench.datasets.store import Interactions
from hbench.errors import HBenchError
from hbench.models import ModelContext, create_model
from hbench.models.registry import available_models, parse_options


def _context(n_users: int = 6, n_items: int = 9, dim: int = 4, seed: int = 0) -> ModelContext:
    train = Interactions(np.array([0, 0, 1, 2, 3, 4, 5]), np.array([1, 2, 2, 3, 3, 3, 8]))
    return ModelContext(n_users, n_items, dim, train, torch.Generator().manual_seed(seed))


BATCH = (torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([[4, 5], [6, 7], [0, 8]]))


def test_registry_lists_builtin_models_and_rejects_unknown() -> None:
    assert {"pop", "bpr", "cml", "hyperml"} <= set(available_models())
    with pytest.raises(HBenchError, match="unknown model 'nope'"):
        create_model("nope", _context())


def test_options_are_typed_and_validated() -> None:
    cls = available_models()["hyperml"]
    opts = parse_options(cls, {"c": "0.5", "gamma": "0", "parametrization": "tangent"})
    assert (opts.c, opts.gamma, opts.parametrization) == (0.5, 0.0, "tangent")
    with pytest.raises(HBenchError, match="--c expects float"):
        parse_options(cls, {"c": "big"})
    with pytest.raises(HBenchError, match="has no option --curvature"):
        parse_options(cls, {"curvature": "1"})
    with pytest.raises(HBenchError, match="parametrization expects ball|tangent"):
        parse_options(cls, {"parametrization": "sphere"})


def test_pop_scores_are_training_counts() -> None:
    reps = create_model("pop", _context()).representations()
    scores = reps.geometry.score_matrix(reps.users, reps.geometry.item_cache(reps.items))
    assert scores[0].tolist() == [0, 1, 2, 3, 0, 0, 0, 0, 1]


def test_bpr_loss_matches_hand_computation() -> None:
    model = create_model("bpr", _context(), {"reg": "0"})
    with torch.no_grad():
        model.item_bias.copy_(torch.arange(9, dtype=torch.float32).unsqueeze(1) / 10)
    users, pos, neg = BATCH
    terms = model.loss(users, pos, neg)
    u, v, b = model.user_embedding, model.item_embedding, model.item_bias[:, 0]
    expected = np.mean([
        -np.log(1 / (1 + np.exp(-(float((u[a] @ v[p] + b[p]).detach()) - float((u[a] @ v[n] + b[n]).detach())))))
        for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()) for n in row
    ])
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    reps = model.representations()  # the bias is folded into the dot product
    assert reps.geometry.score_matrix(reps.users, reps.geometry.item_cache(reps.items))[1, 3].item() == pytest.approx(float((u[1] @ v[3] + b[3]).detach()), rel=1e-5)


def _textbook_bpr(tables: tuple[torch.Tensor, ...], reg: float, weights: tuple[float, float] = (2, 5),
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """BPR's ranking and L2 terms of BATCH by the plain formula, and autograd's gradient of
    weights[0]·ranking + weights[1]·l2."""
    u_table, v_table, b_table = (t.detach().clone().requires_grad_() for t in tables)
    users, pos, neg = BATCH
    u, p, n = u_table[users], v_table[pos], v_table[neg]
    b_pos, b_neg = b_table[pos, 0], b_table[neg, 0]
    x = (u * p).sum(-1, keepdim=True) + b_pos[:, None] - (u[:, None] * n).sum(-1) - b_neg
    ranking = -torch.nn.functional.logsigmoid(x).mean()
    l2 = reg * ((u ** 2).sum(-1) + (p ** 2).sum(-1) + b_pos ** 2 + ((n ** 2).sum(-1) + b_neg ** 2).mean(-1)).mean()
    (weights[0] * ranking + weights[1] * l2).backward()
    return ranking, l2, [u_table.grad, v_table.grad, b_table.grad]


def test_bpr_hand_written_gradient_equals_autograd_of_the_textbook_loss() -> None:
    """BPR's loss has its gradient written out; autograd through the plain formula is the reference."""
    model = create_model("bpr", _context(), {"reg": "0.3"}).double()
    with torch.no_grad():
        model.item_bias.copy_(torch.linspace(-0.5, 0.5, 9, dtype=torch.float64).unsqueeze(1))
    users, pos, neg = BATCH
    terms = model.loss(users, pos, neg)
    (2 * terms.parts["bpr"] + 5 * terms.parts["l2"]).backward()
    got = [p.grad.clone() for p in (model.user_embedding, model.item_embedding, model.item_bias)]
    ranking, l2, expected = _textbook_bpr((model.user_embedding, model.item_embedding, model.item_bias), 0.3)
    assert terms.parts["bpr"].item() == pytest.approx(ranking.item(), rel=1e-12)
    assert terms.parts["l2"].item() == pytest.approx(l2.item(), rel=1e-12)
    for ours, reference in zip(got, expected):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("weights", [(1, 1), (3, 3), (2, 5)], ids=["total", "scaled total", "other weights"])
@pytest.mark.parametrize("item_bias", [True, False])
def test_bpr_compiled_table_path_equals_autograd_of_the_textbook_loss(item_bias: bool, weights: tuple[int, int]) -> None:
    """Training with row gradients on CPU reads the tables in compiled loops (`bpr_kernels`); the row
    gradients it hands to the optimiser, summed per row, are autograd's dense gradient of the formula.
    (Forward computes the rows of `total`; a scaled total scales them, other weights recompute them.)"""
    from hbench.models.rows import RowGradients

    model = create_model("bpr", _context(), {"reg": "0.3", "item_bias": str(item_bias).lower()}).double()
    if item_bias:
        with torch.no_grad():
            model.item_bias.copy_(torch.linspace(-0.5, 0.5, 9, dtype=torch.float64).unsqueeze(1))
    model.row_gradients = sink = RowGradients()
    assert model._compiled_path_applies()
    users, pos, neg = BATCH
    terms = model.loss(users, pos, neg)
    if weights == (1, 1):
        terms.total.backward()
    else:
        (weights[0] * terms.parts["bpr"] + weights[1] * terms.parts["l2"]).backward()
    tables = (model.user_embedding, model.item_embedding, model.item_bias)
    got = []
    for table in tables:
        popped = sink.pop(table)
        dense = torch.zeros_like(table)
        if popped is not None:
            dense.index_add_(0, popped[0], popped[1])
        got.append(dense)

    ranking, l2, expected = _textbook_bpr(tables, 0.3, weights)
    assert terms.parts["bpr"].item() == pytest.approx(ranking.item(), rel=1e-12)
    assert terms.parts["l2"].item() == pytest.approx(l2.item(), rel=1e-12)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-12, atol=1e-14)
    if item_bias:
        torch.testing.assert_close(got[2], expected[2], rtol=1e-12, atol=1e-14)
    else:
        assert sink.pop(model.item_bias) is None and not got[2].any()  # a frozen bias gets no rows


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_bpr_compiled_loss_is_torchs_softplus_at_any_score(scale: float) -> None:
    """The compiled path's ranking loss (summed in the kernel, softplus written out) is torch's
    softplus(−x).mean() in float32, including score differences far past exp's float32 range (|x| ≈ 10³),
    where log(1 + e^{−x}) taken literally overflows."""
    from hbench.models.rows import RowGradients

    model = create_model("bpr", _context(), {"reg": "0.1"})
    with torch.no_grad():
        for table in (model.user_embedding, model.item_embedding):
            table.copy_(torch.randn(table.shape, generator=torch.Generator().manual_seed(3)) * scale)
    users, pos, neg = BATCH
    u, q = model.user_embedding[users], model.item_embedding[torch.cat([pos.unsqueeze(1), neg], 1)]
    scores = (u.unsqueeze(1) * q).sum(-1) + model.item_bias[torch.cat([pos.unsqueeze(1), neg], 1)][..., 0]
    x = scores[:, :1] - scores[:, 1:]
    if scale > 1:
        assert x.abs().max() > 100  # past where e^{|x|} overflows float32
    model.row_gradients = RowGradients()
    assert model._compiled_path_applies()
    terms = model.loss(users, pos, neg)
    expected = torch.nn.functional.softplus(-x.detach()).mean()
    assert torch.isfinite(terms.parts["bpr"])
    assert terms.parts["bpr"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_bpr_compiled_table_path_keeps_its_rows_for_a_second_backward() -> None:
    """A graph kept for a second backward gives each backward its own weighting's rows (forward's rows are
    neither scaled nor overwritten in place by the first)."""
    from hbench.models.rows import RowGradients

    model = create_model("bpr", _context(), {"reg": "0.3"}).double()
    model.row_gradients = sink = RowGradients()
    tables = (model.user_embedding, model.item_embedding, model.item_bias)
    terms = model.loss(*BATCH)
    for weights in [(2, 5), (3, 3), (1, 1)]:
        (weights[0] * terms.parts["bpr"] + weights[1] * terms.parts["l2"]).backward(retain_graph=True)
        got = []
        for table in tables:
            index, rows, _ = sink.pop(table)
            got.append(torch.zeros_like(table).index_add_(0, index, rows))
        _, _, expected = _textbook_bpr(tables, 0.3, weights)
        for ours, reference in zip(got, expected):
            torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)


def test_cml_hinge_and_unit_ball() -> None:
    model = create_model("cml", _context(), {"init_std": "5", "margin": "0.5"})  # large init: constrain_ must clip
    assert model.user_embedding.norm(dim=1).max().item() <= 1 + 1e-6
    users, pos, neg = BATCH
    u, v = model.user_embedding.detach(), model.item_embedding.detach()
    expected = np.mean([max(0.0, 0.5 + float((u[a] - v[p]).pow(2).sum()) - float((u[a] - v[n]).pow(2).sum()))
                        for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()) for n in row])
    assert model.loss(users, pos, neg).total.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("parametrization", ["ball", "tangent"])
def test_hyperml_loss_matches_geoopt(parametrization: str) -> None:
    c, gamma, margin = 0.7, 0.3, 1.0
    model = create_model("hyperml", _context(), {"c": str(c), "gamma": str(gamma), "parametrization": parametrization,
                                                 "init_std": "0.3"})
    ball = geoopt.PoincareBall(c=c)
    reps = model.representations()
    assert (reps.users.norm(dim=1) < 1 / c**0.5).all()
    users, pos, neg = BATCH
    hinge, ratios = [], []
    for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()):
        x = reps.users[a].double()
        d_pos = ball.dist(x, reps.items[p].double())
        e_pos = (ball.logmap0(x) - ball.logmap0(reps.items[p].double())).norm()
        ratios.append(float((d_pos - e_pos).abs() / e_pos))
        for n in row:
            d_neg = ball.dist(x, reps.items[n].double())
            e_neg = (ball.logmap0(x) - ball.logmap0(reps.items[n].double())).norm()
            hinge.append(max(0.0, margin + float(d_pos) ** 2 - float(d_neg) ** 2))
            ratios.append(float((d_neg - e_neg).abs() / e_neg))
    terms = model.loss(users, pos, neg)
    assert terms.parts["pull_push"].item() == pytest.approx(np.mean(hinge), rel=1e-4)
    # The distortion mean runs over the batch's positive pairs and all its negative pairs.
    assert terms.parts["distortion"].item() == pytest.approx(gamma * np.mean(ratios), rel=1e-4)


def test_hyperml_gamma_zero_drops_the_distortion_term() -> None:
    terms = create_model("hyperml", _context(), {"gamma": "0"}).loss(*BATCH)
    assert set(terms.parts) == {"pull_push"}
    assert terms.total is terms.parts["pull_push"]


def test_hyperml_ball_parameters_are_manifold_parameters() -> None:
    model = create_model("hyperml", _context(), {"c": "2.0", "parametrization": "ball"})
    assert isinstance(model.user_embedding, geoopt.ManifoldParameter)
    assert model.user_embedding.manifold.c.item() == pytest.approx(2.0)
    with pytest.raises(HBenchError, match="--c must be positive"):
        create_model("hyperml", _context(), {"c": "0"})


def test_initialisation_follows_the_generator() -> None:
    a = create_model("bpr", _context(seed=1)).user_embedding
    b = create_model("bpr", _context(seed=1)).user_embedding
    c = create_model("bpr", _context(seed=2)).user_embedding
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("negative", ["each", "closest"])
@pytest.mark.parametrize("rank_weight", [False, True])
def test_cml_negative_reduction_and_rank_weight_match_a_hand_computation(negative: str, rank_weight: bool) -> None:
    """Per pair: the mean or the largest hinge over its negatives, times ln(1 + n_items · M / U) with M the
    violating negatives (Hsieh et al.'s WARP estimate); checked on a batch where some pairs violate 1 or 2
    of their negatives and some none."""
    context = _context(n_items=9, dim=3)
    model = create_model("cml", context, {"negative": negative, "rank_weight": str(rank_weight).lower(),
                                          "margin": "0.1", "init_std": "0.4"})
    users, pos = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4])
    neg = torch.tensor([[4, 5, 6], [6, 7, 8], [0, 8, 5], [0, 3, 5]])
    with torch.no_grad():
        model.user_embedding[3] = model.item_embedding[4]  # on its positive: no negative within the margin
    u, v = model.user_embedding.detach().double(), model.item_embedding.detach().double()
    expected, violations = [], []
    for a, p, row in zip(users.tolist(), pos.tolist(), neg.tolist()):
        hinges = [max(0.0, 0.1 + float((u[a] - v[p]).pow(2).sum()) - float((u[a] - v[n]).pow(2).sum())) for n in row]
        value = max(hinges) if negative == "closest" else sum(hinges) / len(hinges)
        violators = sum(h > 0 for h in hinges)
        violations.append(violators)
        expected.append(value * (np.log(1 + 9 * violators / len(row)) if rank_weight else 1.0))
    assert violations == [2, 1, 2, 0]  # the case tells the weights apart, ln(1 + 0) = 0 included
    assert model.loss(users, pos, neg).total.item() == pytest.approx(float(np.mean(expected)), rel=1e-5)


def _geoopt_hyperml(tables: tuple[torch.Tensor, torch.Tensor], c: float, margin: float, gamma: float,
                    weights: tuple[float, float]) -> tuple[float, float, list[torch.Tensor]]:
    """HyperML's two terms of BATCH by geoopt's exp0, Möbius distance and log0 on the projected points, and
    autograd's gradient of weights[0]·L_P + weights[1]·γL_D in the tangent tables."""
    from hbench.models.hyperml import DISTORTION_EPS

    ball = geoopt.PoincareBall(c=c)
    u_table, v_table = (t.detach().clone().requires_grad_() for t in tables)
    users, pos, neg = BATCH
    items = torch.cat([pos[:, None], neg], dim=1)
    x = ball.expmap0(u_table[users], project=True)[:, None]
    y = ball.expmap0(v_table[items], project=True)
    d = ball.dist(x, y)
    e = (ball.logmap0(x) - ball.logmap0(y)).norm(dim=-1)
    pull_push = torch.relu(margin + d[:, :1] ** 2 - d[:, 1:] ** 2).mean()
    distortion = gamma * ((d - e).abs() / (e + DISTORTION_EPS)).mean()
    (weights[0] * pull_push + weights[1] * distortion).backward()
    return pull_push.item(), distortion.item(), [u_table.grad, v_table.grad]


def _hyperml_rows(model, weights: tuple[float, float], compiled: bool, batch=BATCH) -> tuple[dict, list[torch.Tensor]]:
    """HyperML's loss terms on `batch` and, summed per row, the row gradients of weights[0]·L_P + weights[1]·γL_D,
    by the compiled table path or by the tensor path (`exp0_distances` after `lookup`) of the same model."""
    from hbench.models.rows import RowGradients

    model.row_gradients = sink = RowGradients()
    model._compiled_path_applies = (lambda: True) if compiled else (lambda: False)
    terms = model.loss(*batch)
    distortion = terms.parts.get("distortion", torch.zeros(()))
    (weights[0] * terms.parts["pull_push"] + weights[1] * distortion).backward()
    rows = [torch.zeros_like(t).index_add_(0, *sink.pop(t)[:2]) for t in (model.user_embedding, model.item_embedding)]
    del model._compiled_path_applies
    return {k: v.item() for k, v in terms.parts.items()}, rows


@pytest.mark.parametrize("scale", [0.05, 0.6, 8.0], ids=["near the origin", "inside", "past the projection radius"])
@pytest.mark.parametrize(("gamma", "weights"), [(0.3, (1, 1)), (0.3, (2, 5)), (0.0, (1, 1))],
                         ids=["total", "other weights", "no distortion term"])
def test_hyperml_compiled_table_path_equals_the_tensor_path(scale: float, gamma: float, weights: tuple[int, int]) -> None:
    """Tangent tables trained with row gradients on the CPU read the rows in compiled loops with the
    distances' derivatives written out (`hyperml_kernels`). In float64 their loss and row gradients are the
    tensor path's (autograd through `exp0_distances`) to rounding, guards included: with scale 8 most
    points lie past the projection radius, where the clamp passes no gradient along the norm."""
    model = create_model("hyperml", _context(), {"c": "0.7", "gamma": str(gamma), "init_std": str(scale)}).double()
    assert model._compiled_path_applies() is False  # no row gradients asked for: the tensor path
    model.row_gradients = object()
    assert model._compiled_path_applies()
    parts, rows = _hyperml_rows(model, weights, compiled=True)
    parts_ref, rows_ref = _hyperml_rows(model, weights, compiled=False)
    assert parts == pytest.approx(parts_ref, rel=1e-12)
    assert any(g.abs().max() > 1e-6 for g in rows)  # not a comparison of two zero gradients
    for ours, reference in zip(rows, rows_ref):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-13)


def test_hyperml_compiled_table_path_keeps_the_guards_of_a_coincident_pair() -> None:
    """A negative equal to its user: the arcosh argument and the log0 distance sit on their guards, which
    pass no gradient; both paths give the same finite loss and rows."""
    model = create_model("hyperml", _context(), {"c": "0.7", "gamma": "0.3", "init_std": "0.3"}).double()
    with torch.no_grad():
        model.item_embedding[4] = model.user_embedding[0]  # BATCH pairs user 0 with negative 4
    parts, rows = _hyperml_rows(model, (1, 1), compiled=True)
    parts_ref, rows_ref = _hyperml_rows(model, (1, 1), compiled=False)
    assert parts == pytest.approx(parts_ref, rel=1e-12)
    for ours, reference in zip(rows, rows_ref):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("scale", [0.05, 0.3], ids=["near the origin", "inside"])
def test_hyperml_compiled_table_path_equals_autograd_through_geoopt(scale: float) -> None:
    """The independent reference inside the projection radius: autograd through geoopt's exp0, Möbius
    distance and log0. Its Möbius form loses digits as points near the boundary (artanh of a norm close
    to 1), hence tolerances of about 1e-7 relative."""
    c, margin, gamma, weights = 0.7, 1.0, 0.3, (2, 5)
    model = create_model("hyperml", _context(), {"c": str(c), "gamma": str(gamma), "init_std": str(scale)}).double()
    parts, rows = _hyperml_rows(model, weights, compiled=True)
    pull_push, distortion, expected = _geoopt_hyperml((model.user_embedding, model.item_embedding), c, margin, gamma,
                                                      weights)
    assert parts["pull_push"] == pytest.approx(pull_push, rel=1e-7)
    assert parts["distortion"] == pytest.approx(distortion, rel=1e-7)
    for ours, reference in zip(rows, expected):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-8)


def test_hyperml_compiled_table_path_in_float32_agrees_with_the_tensor_path() -> None:
    """Training's dtype: the compiled path's loss and row gradients match the tensor path to float32
    rounding, over a batch with several negatives."""
    generator = torch.Generator().manual_seed(1)
    batch = (torch.randint(40, (64,), generator=generator), torch.randint(60, (64,), generator=generator),
             torch.randint(60, (64, 5), generator=generator))
    model = create_model("hyperml", _context(n_users=40, n_items=60, dim=16, seed=3),
                         {"c": "1.3", "gamma": "0.4", "init_std": "0.4"})
    parts, rows = _hyperml_rows(model, (1, 1), compiled=True, batch=batch)
    parts_ref, rows_ref = _hyperml_rows(model, (1, 1), compiled=False, batch=batch)
    assert parts == pytest.approx(parts_ref, rel=1e-5)
    for ours, reference in zip(rows, rows_ref):
        torch.testing.assert_close(ours, reference, rtol=2e-4, atol=2e-6)
