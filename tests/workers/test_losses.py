"""Each loss against a straightforward reference computation on small random tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from counterpoint.workers.losses import (
    CoSENTLoss,
    DebiasedContrastiveLoss,
    FalseNegativeFilter,
    InfoNCELoss,
    MatryoshkaLoss,
    SupervisedSimCSELoss,
    UnsupervisedSimCSELoss,
    encode_views,
    gather_embeddings,
    has_active_dropout,
    is_distributed,
)
from counterpoint.workers.losses.cosent import pairwise_angle

B, D, K = 6, 8, 2


def _batch(seed: int = 0, *, close: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """anchors (B, D), positives (B, D), negatives (B, K, D); ``close`` puts each positive near its anchor."""
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(B, D, generator=g, dtype=torch.float64)
    positives = torch.randn(B, D, generator=g, dtype=torch.float64)
    if close:
        positives = anchors + 0.1 * positives
    negatives = torch.randn(B, K, D, generator=g, dtype=torch.float64)
    return anchors, positives, negatives


def _cos(x: Tensor, y: Tensor) -> float:
    return float((x @ y) / (x.norm() * y.norm()))


def _infonce_by_hand(
    queries: Tensor, candidates: Tensor, scale: float, drop: frozenset[tuple[int, int]] = frozenset()
) -> float:
    """-1/n Σ_i log(exp(λ cos(q_i, c_i)) / Σ_j exp(λ cos(q_i, c_j))), candidate i = row i's positive."""
    total = 0.0
    for i in range(queries.shape[0]):
        terms = [
            math.exp(scale * _cos(queries[i], candidates[j]))
            for j in range(candidates.shape[0])
            if (i, j) not in drop
        ]
        total -= math.log(math.exp(scale * _cos(queries[i], candidates[i])) / sum(terms))
    return total / queries.shape[0]


# --- InfoNCE -----------------------------------------------------------------------------------


def test_infonce_equals_cross_entropy_over_the_scaled_cosine_matrix() -> None:
    anchors, positives, negatives = _batch()
    candidates = torch.cat([positives, negatives.reshape(-1, D)])
    expected = _infonce_by_hand(anchors, candidates, scale=20.0)
    logits = 20.0 * F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T
    assert F.cross_entropy(logits, torch.arange(B)).item() == pytest.approx(expected, rel=1e-9)

    loss = InfoNCELoss()
    assert loss(anchors, positives, negatives).item() == pytest.approx(expected, rel=1e-6)
    # (B, k, d) and the flat (B*k, d) layout are the same input.
    assert loss(anchors, positives, negatives.reshape(-1, D)).item() == pytest.approx(expected, rel=1e-6)
    # Without hard negatives the candidates are the positives only.
    assert loss(anchors, positives).item() == pytest.approx(
        _infonce_by_hand(anchors, positives, 20.0), rel=1e-6
    )
    assert InfoNCELoss(scale=5.0)(anchors, positives).item() == pytest.approx(
        _infonce_by_hand(anchors, positives, 5.0), rel=1e-6
    )


def test_symmetric_is_the_average_of_both_directions() -> None:
    anchors, positives, negatives = _batch(1)
    forward = _infonce_by_hand(anchors, torch.cat([positives, negatives.reshape(-1, D)]), 20.0)
    backward = _infonce_by_hand(positives, anchors, 20.0)  # positive -> all anchors, no hard negatives
    got = InfoNCELoss(symmetric=True)(anchors, positives, negatives)
    assert got.item() == pytest.approx(0.5 * (forward + backward), rel=1e-6)


def test_gradients_flow_to_the_embeddings() -> None:
    anchors, positives, negatives = (t.float().requires_grad_() for t in _batch(2))
    InfoNCELoss(symmetric=True)(anchors, positives, negatives).backward()
    for t in (anchors, positives, negatives):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_learnable_temperature_gets_a_gradient_and_is_clamped() -> None:
    anchors, positives, _ = (t.float() for t in _batch(3))
    loss_fn = InfoNCELoss(scale=20.0, learnable_scale=True)
    assert [name for name, _ in loss_fn.named_parameters()] == ["log_scale"]
    assert float(loss_fn.scale.detach()) == pytest.approx(20.0)
    loss_fn(anchors, positives).backward()
    assert loss_fn.log_scale.grad is not None and loss_fn.log_scale.grad.abs() > 0
    with torch.no_grad():
        loss_fn.log_scale.fill_(math.log(1e4))
    assert float(loss_fn.scale.detach()) == pytest.approx(100.0)  # max_scale
    assert loss_fn.temperature == pytest.approx(0.01)
    # A fixed scale is a buffer: it moves with .to() but is not trained.
    assert list(InfoNCELoss().parameters()) == []


def test_false_negative_filter_removes_a_planted_duplicate() -> None:
    anchors, positives, _ = _batch(4, close=True)
    anchors[3], positives[3] = (
        anchors[0],
        positives[0],
    )  # example 0 twice: each copy's twin is a false negative
    plain = InfoNCELoss()(anchors, positives).item()
    filtered = InfoNCELoss(false_negatives=FalseNegativeFilter(margin=0.0))(anchors, positives).item()
    expected = _infonce_by_hand(anchors, positives, 20.0, drop=frozenset({(0, 3), (3, 0)}))
    assert filtered == pytest.approx(expected, rel=1e-6)
    assert plain > filtered + 0.2  # the twin doubled the positive's mass in two rows' denominators

    similarities = F.normalize(anchors, dim=-1) @ F.normalize(positives, dim=-1).T
    mask = FalseNegativeFilter(margin=0.0).mask(similarities, torch.arange(B))
    assert mask.nonzero().tolist() == [[0, 3], [3, 0]]
    # An absolute threshold catches them too; the positive itself is never masked.
    mask = FalseNegativeFilter(margin=None, threshold=0.95).mask(similarities, torch.arange(B))
    assert mask.nonzero().tolist() == [[0, 3], [3, 0]]
    with pytest.raises(ValueError):
        FalseNegativeFilter(margin=None, threshold=None)


def test_false_negative_filter_removes_a_planted_duplicate_hard_negative() -> None:
    anchors, positives, negatives = _batch(4, close=True)
    negatives[2, 1] = positives[0]  # column B + 2*K + 1 duplicates anchor 0's positive
    column = B + 2 * K + 1
    got = InfoNCELoss(false_negatives=FalseNegativeFilter())(anchors, positives, negatives).item()
    candidates = torch.cat([positives, negatives.reshape(-1, D)])
    assert got == pytest.approx(
        _infonce_by_hand(anchors, candidates, 20.0, drop=frozenset({(0, column)})), rel=1e-6
    )


# --- debiased ----------------------------------------------------------------------------------


def _debiased_by_hand(anchors: Tensor, candidates: Tensor, tau_plus: float, t: float) -> tuple[float, int]:
    """Chuang et al. eq.: N·g with g = max((mean_j e^{s_j/t} - τ+ e^{s+/t}) / (1-τ+), e^{-1/t}).
    Returns the loss and how many rows hit the clamp."""
    total, clamped = 0.0, 0
    for i in range(anchors.shape[0]):
        pos = math.exp(_cos(anchors[i], candidates[i]) / t)
        negs = [math.exp(_cos(anchors[i], candidates[j]) / t) for j in range(candidates.shape[0]) if j != i]
        n = len(negs)
        estimate = (sum(negs) / n - tau_plus * pos) / (1 - tau_plus)
        clamped += estimate < math.exp(-1 / t)
        g = max(estimate, math.exp(-1 / t))
        total -= math.log(pos / (pos + n * g))
    return total / anchors.shape[0], clamped


def test_debiased_with_tau_plus_zero_is_exactly_infonce() -> None:
    """Identity tested: τ+ = 0 makes g the plain mean of the negatives' exp (each is >= e^{-1/t} for
    cosine >= -1, so the clamp never binds) and N·g their sum, i.e. the InfoNCE denominator."""
    anchors, positives, negatives = _batch(5)
    for args in ((anchors, positives), (anchors, positives, negatives)):
        for symmetric in (False, True):
            expected = InfoNCELoss(symmetric=symmetric)(*args)
            got = DebiasedContrastiveLoss(tau_plus=0.0, scale=20.0, symmetric=symmetric)(*args)
            assert got.item() == pytest.approx(expected.item(), rel=1e-9)
    # Continuity: the correction vanishes smoothly as τ+ -> 0.
    base = InfoNCELoss()(anchors, positives, negatives).item()
    gaps = [
        abs(DebiasedContrastiveLoss(tau, scale=20.0)(anchors, positives, negatives).item() - base)
        for tau in (1e-2, 1e-4)
    ]
    assert gaps[1] < gaps[0] and gaps[1] < 1e-3


@pytest.mark.parametrize(("tau_plus", "close", "expect_clamp"), [(0.1, False, False), (0.5, True, True)])
def test_debiased_matches_the_paper_formula(tau_plus: float, close: bool, expect_clamp: bool) -> None:
    anchors, positives, negatives = _batch(6, close=close)
    candidates = torch.cat([positives, negatives.reshape(-1, D)])
    expected, clamped = _debiased_by_hand(anchors, candidates, tau_plus, t=1 / 20)
    assert (clamped > 0) == expect_clamp
    got = DebiasedContrastiveLoss(tau_plus=tau_plus, scale=20.0)(anchors, positives, negatives)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_debiased_defaults_send_gradient_to_the_negatives() -> None:
    """At the paper's t = 0.5 the clamp does not bind on a typical batch, so negatives are pushed away;
    at scale 20 with τ+ = 0.1 and well-aligned positives every row clamps and they get nothing."""
    anchors, positives, negatives = (t.float() for t in _batch(13, close=True))
    negatives.requires_grad_()
    DebiasedContrastiveLoss()(anchors, positives, negatives).backward()
    assert negatives.grad is not None and negatives.grad.abs().min() > 0
    negatives.grad = None
    DebiasedContrastiveLoss(0.1, scale=20.0)(anchors, positives, negatives).backward()
    assert negatives.grad is not None and negatives.grad.abs().max() == 0


def test_debiased_is_finite_and_differentiable_at_large_scale() -> None:
    anchors, positives, negatives = (t.float().requires_grad_() for t in _batch(7, close=True))
    loss = DebiasedContrastiveLoss(tau_plus=0.3, scale=100.0, learnable_scale=True)
    value = loss(anchors, positives, negatives)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(anchors.grad).all()
    assert loss.log_scale.grad is not None
    with pytest.raises(ValueError):
        DebiasedContrastiveLoss(tau_plus=1.0)


# --- SimCSE ------------------------------------------------------------------------------------


def test_simcse_losses_are_infonce_on_views_and_triplets() -> None:
    anchors, positives, negatives = _batch(8)
    assert UnsupervisedSimCSELoss()(anchors, positives).item() == pytest.approx(
        InfoNCELoss()(anchors, positives).item(), rel=1e-9
    )
    hard = negatives[:, 0]
    assert SupervisedSimCSELoss()(anchors, positives, hard).item() == pytest.approx(
        _infonce_by_hand(anchors, torch.cat([positives, hard]), 20.0), rel=1e-6
    )
    with pytest.raises(ValueError):
        SupervisedSimCSELoss()(anchors, positives)


def test_unsupervised_simcse_views_differ_only_with_dropout() -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(D, 16), nn.Dropout(0.1), nn.Linear(16, 8))
    x = torch.randn(B, D)
    view_a, view_b = encode_views(encoder, x, model=encoder)
    assert not torch.allclose(view_a, view_b)
    UnsupervisedSimCSELoss()(view_a, view_b).backward()
    assert encoder[0].weight.grad is not None
    encoder.eval()
    assert not has_active_dropout(encoder)
    with pytest.raises(ValueError, match="dropout"):
        encode_views(encoder, x, model=encoder)


# --- CoSENT ------------------------------------------------------------------------------------


def _unit(theta: float) -> list[float]:
    return [math.cos(theta), math.sin(theta)]


def test_cosent_on_a_hand_computed_three_pair_case() -> None:
    cosines = [0.9, 0.5, 0.1]  # predicted cosine of pairs 0, 1, 2
    labels = torch.tensor([1.0, 0.5, 0.0])  # gold order: pair 0 > pair 1 > pair 2
    emb_a = torch.tensor([_unit(0.0)] * 3, dtype=torch.float64)
    emb_b = torch.tensor([_unit(math.acos(c)) for c in cosines], dtype=torch.float64)
    lam = 20.0
    # log(1 + Σ_{s_ij > s_kl} exp(λ(cos_kl - cos_ij))): the ordered pairs (0,1), (0,2), (1,2).
    expected = math.log(
        1 + math.exp(lam * (0.5 - 0.9)) + math.exp(lam * (0.1 - 0.9)) + math.exp(lam * (0.1 - 0.5))
    )
    assert CoSENTLoss(scale=lam)(emb_a, emb_b, labels).item() == pytest.approx(expected, rel=1e-9)
    # Only the order of the labels matters (0-5 STS scores give the same loss) ...
    assert CoSENTLoss(scale=lam)(emb_a, emb_b, labels * 5).item() == pytest.approx(expected, rel=1e-9)
    # ... ties contribute nothing, and a mis-ordered prediction costs more.
    tied = torch.tensor([1.0, 1.0, 0.0])
    expected_tied = math.log(1 + math.exp(lam * (0.1 - 0.9)) + math.exp(lam * (0.1 - 0.5)))
    assert CoSENTLoss(scale=lam)(emb_a, emb_b, tied).item() == pytest.approx(expected_tied, rel=1e-9)
    assert CoSENTLoss(scale=lam)(emb_a, emb_b, labels.flip(0)).item() > expected + 5


def test_angle_similarity_matches_complex_arithmetic_and_trains() -> None:
    x, y, _ = _batch(9)
    half = D // 2
    zx = torch.complex(x[:, :half], x[:, half:]) / x.norm(dim=1, keepdim=True)
    zy = torch.complex(y[:, :half], y[:, half:]) / y.norm(dim=1, keepdim=True)
    product = (zx * zy.conj()).sum(dim=1)
    assert torch.allclose(pairwise_angle(x, y), (product.real + product.imag).abs())
    x32 = x.float().requires_grad_()
    CoSENTLoss(similarity="angle")(x32, y.float(), torch.rand(B)).backward()
    assert torch.isfinite(x32.grad).all() and x32.grad.abs().sum() > 0


# --- Matryoshka --------------------------------------------------------------------------------


def test_matryoshka_with_one_full_dim_and_weight_one_equals_the_inner_loss() -> None:
    anchors, positives, negatives = _batch(10)
    inner = InfoNCELoss(symmetric=True)
    wrapped = MatryoshkaLoss(inner, dims=[D], weights=[1.0])
    assert wrapped(anchors, positives, negatives).item() == pytest.approx(
        inner(anchors, positives, negatives).item(), rel=1e-9
    )
    labels = torch.rand(B, dtype=torch.float64)  # 1-d labels pass through untouched
    assert MatryoshkaLoss(CoSENTLoss(), [D])(anchors, positives, labels).item() == pytest.approx(
        CoSENTLoss()(anchors, positives, labels).item(), rel=1e-9
    )


def test_matryoshka_is_the_weighted_sum_over_truncated_renormalised_embeddings() -> None:
    anchors, positives, negatives = _batch(11)
    inner = InfoNCELoss()

    def trunc(t: Tensor, m: int) -> Tensor:
        return F.normalize(t[..., :m], dim=-1)

    expected = inner(anchors, positives, negatives) + 0.5 * inner(
        trunc(anchors, 4), trunc(positives, 4), trunc(negatives, 4)
    )
    got = MatryoshkaLoss(inner, dims=[8, 4], weights=[1.0, 0.5])(anchors, positives, negatives)
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)
    with pytest.raises(ValueError):
        MatryoshkaLoss(inner, dims=[16])(anchors, positives)
    with pytest.raises(ValueError):
        MatryoshkaLoss(inner, dims=[8, 4], weights=[1.0])


# --- distributed helpers outside torch.distributed --------------------------------------------


def test_gather_is_a_no_op_when_not_distributed() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    gathered = gather_embeddings(x)
    assert not is_distributed()
    assert gathered.embeddings is x and gathered.offset == 0 and gathered.sizes == (4,)
    anchors, positives, negatives = _batch(12)
    assert InfoNCELoss(gather=True)(anchors, positives, negatives).item() == pytest.approx(
        InfoNCELoss()(anchors, positives, negatives).item(), rel=1e-12
    )
