"""Fast CPU dropout: Bernoulli masks at rate p, torch's own semantics and seeds, exact attention math."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from counterpoint.workers.fast_dropout import (
    ATTENTION,
    FastDropout,
    apply_dropout,
    attention,
    keep_mask,
    use_fast_dropout,
)
from counterpoint.workers.gradcache import GradCache
from counterpoint.workers.losses import InfoNCELoss
from tests.tiny_models import build_tiny_bi_encoder


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_keeps_each_element_with_probability_1_minus_p(p: float) -> None:
    torch.manual_seed(0)
    n = 1_000_001  # odd: the last 64-bit draw is half used
    keep = keep_mask((n,), p)
    assert keep.dtype == torch.bool and keep.shape == (n,)
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(keep.float().mean().item() - (1 - p)) < 5 * sigma
    # no pattern between neighbours (the two halves of one 64-bit draw are independent)
    pairs = keep[:-1].view(-1, 2).float()
    both = (pairs[:, 0] * pairs[:, 1]).mean().item()
    assert abs(both - (1 - p) ** 2) < 6 * ((1 - p) ** 2 * (1 - (1 - p) ** 2) / pairs.shape[0]) ** 0.5


def test_keep_mask_follows_torch_manual_seed_and_the_saved_rng_state() -> None:
    shape = (4, 3, 7)
    torch.manual_seed(7)
    first = keep_mask(shape, 0.3)
    state = torch.get_rng_state()
    second = keep_mask(shape, 0.3)
    torch.manual_seed(7)
    assert torch.equal(keep_mask(shape, 0.3), first)
    torch.set_rng_state(state)
    assert torch.equal(keep_mask(shape, 0.3), second)
    assert not torch.equal(first, second)


def test_apply_dropout_scales_kept_elements_and_routes_gradients_through_the_mask() -> None:
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(3)
    out = apply_dropout(x, 0.25)
    torch.manual_seed(3)
    keep = keep_mask(x.shape, 0.25)
    assert torch.count_nonzero(out[~keep]) == 0
    assert torch.allclose(out[keep], x[keep] / 0.75, rtol=1e-6, atol=0)
    out.backward(torch.ones_like(out))
    assert x.grad is not None and torch.allclose(x.grad, keep.float() / 0.75)
    # no-ops and limits as F.dropout
    assert apply_dropout(x, 0.25, training=False) is x and apply_dropout(x, 0.0) is x
    assert torch.equal(apply_dropout(x, 1.0), torch.zeros_like(x))


def test_fast_dropout_is_an_nn_dropout_and_off_in_eval_mode() -> None:
    module = FastDropout(0.2)
    assert isinstance(module, nn.Dropout)
    x = torch.ones(1000)
    assert 0 < (module(x) == 0).sum() < 1000
    module.eval()
    assert torch.equal(module(x), x)


def _qkv(seed: int, batch: int = 3, heads: int = 2, length: int = 5, dim: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, dim, generator=g, requires_grad=True) for _ in range(3)]


class _Attention(nn.Module):
    is_causal = False


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_training_attention_is_the_eager_formula_with_the_same_mask(mask_kind: str) -> None:
    """softmax(q k^T s + mask) -> dropout -> @ v, outputs and gradients, as transformers' eager path."""
    q, k, v = _qkv(0)
    padding = torch.ones(3, 1, 5, 5, dtype=torch.bool)
    padding[0, ..., 3:] = False  # the first row's last two keys are padding
    masks: dict[str, Any] = {
        "none": None,
        "bool": padding,
        "float": torch.zeros(3, 1, 5, 5).masked_fill(~padding, torch.finfo(torch.float32).min),
    }
    mask = masks[mask_kind]
    torch.manual_seed(11)
    out, weights = attention(_Attention(), q, k, v, mask, dropout=0.2, scaling=0.5)
    assert weights is None and out.shape == (3, 5, 2, 4)
    out.sum().backward()
    got = [t.grad.clone() for t in (q, k, v)]  # type: ignore[union-attr]

    for t in (q, k, v):
        t.grad = None
    torch.manual_seed(11)
    keep = keep_mask((3, 2, 5, 5), 0.2)
    scores = q @ k.transpose(2, 3) * 0.5
    if mask is not None:
        scores = scores + masks["float"]
    reference = ((scores.softmax(-1) * keep / 0.8) @ v).transpose(1, 2)
    assert torch.allclose(out, reference, atol=1e-6)
    reference.sum().backward()
    for mine, theirs in zip(got, (q.grad, k.grad, v.grad), strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)
    if mask is not None:  # padding keys get no attention at all
        assert torch.count_nonzero(k.grad[0, :, 3:]) == 0  # type: ignore[index]


def test_attention_without_dropout_is_transformers_sdpa_unchanged() -> None:
    q, k, v = _qkv(1)
    ours, _ = attention(_Attention(), q, k, v, None, dropout=0.0, scaling=0.5)
    theirs, _ = sdpa_attention_forward(_Attention(), q, k, v, None, dropout=0.0, scaling=0.5)
    assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("tiny-fast-dropout"))


def _texts() -> list[str]:
    return ["the cat sat", "dogs ran through green fields under grey skies", "old towns", "a mat"]


def test_use_fast_dropout_changes_training_only(tiny_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(tiny_path), device="cpu")
    fast = SentenceTransformer(str(tiny_path), device="cpu")
    changed = use_fast_dropout(fast)
    dropouts = [m for m in fast.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is FastDropout for m in dropouts)
    assert changed == len(dropouts) + 1  # and the transformer's attention implementation
    assert fast[0].auto_model.config._attn_implementation == ATTENTION

    plain.eval()
    fast.eval()
    features = fast.preprocess(_texts())
    with torch.no_grad():
        assert torch.allclose(
            fast(dict(features))["sentence_embedding"], plain(dict(features))["sentence_embedding"], atol=1e-6
        )
    fast.train()
    torch.manual_seed(5)
    first = fast(dict(features))["sentence_embedding"]
    second = fast(dict(features))["sentence_embedding"]
    torch.manual_seed(5)
    again = fast(dict(features))["sentence_embedding"]
    assert not torch.allclose(first, second)  # two dropout views (unsupervised SimCSE relies on them)
    assert torch.equal(first, again)  # the seed decides the masks


def test_gradcache_replays_fast_dropout_masks_exactly(tiny_path: Path) -> None:
    """GradCache's RNG replay reproduces the fast masks: the same gradients as one graph over chunks."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_path), device="cpu")
    use_fast_dropout(model)
    model.train()
    columns = [model.preprocess(_texts()), model.preprocess(list(reversed(_texts())))]

    def encode(features: Any) -> torch.Tensor:
        return model(dict(features))["sentence_embedding"]

    torch.manual_seed(9)
    model.zero_grad(set_to_none=True)
    from counterpoint.workers.gradcache import split_features

    chunks = [torch.cat([encode(c) for c in split_features(x, 2)]) for x in columns]
    InfoNCELoss()(*chunks).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(9)
    model.zero_grad(set_to_none=True)
    GradCache(encode, chunk_size=2)(InfoNCELoss(), *columns).backward()
    for name, grad in expected.items():
        assert torch.allclose(model.get_parameter(name).grad, grad, atol=1e-5), name
