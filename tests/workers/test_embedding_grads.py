"""Sparse embedding backward into persistent dense buffers: the same gradients and optimizer steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from counterpoint.workers.embedding_grads import EmbeddingGradients
from counterpoint.workers.gradcache import GradCache
from counterpoint.workers.losses import InfoNCELoss
from tests.tiny_models import build_tiny_bi_encoder

ANCHORS = ["the cat sat", "dogs ran through green fields", "old towns", "a mat under grey skies"]
POSITIVES = ["a cat sitting", "dogs running in fields", "an old town", "grey skies over a mat"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("tiny-embedding-grads"))


def _model(path: Path) -> nn.Module:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu")
    model.eval()  # no dropout: the two models must compute the same function
    return model


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, grads: EmbeddingGradients | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if grads is not None:
        grads.reset()
    encode = [model(dict(model.preprocess(texts)))["sentence_embedding"] for texts in (ANCHORS, POSITIVES)]
    InfoNCELoss()(*encode).backward()  # two forward passes, two embedding backwards
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def test_three_steps_match_the_dense_embedding_backward(tiny_path: Path) -> None:
    dense, sparse = _model(tiny_path), _model(tiny_path)
    grads = EmbeddingGradients(sparse)
    assert len(grads) == 3  # word, position and token-type embeddings
    assert all(m.sparse for m in sparse.modules() if isinstance(m, nn.Embedding))
    opt_dense = torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=0.01, fused=True)
    opt_sparse = torch.optim.AdamW(sparse.parameters(), lr=1e-2, weight_decay=0.01, fused=True)
    for _ in range(3):
        _step(dense, opt_dense, None)
        _step(sparse, opt_sparse, grads)
        for (name, a), b in zip(dense.named_parameters(), sparse.parameters(), strict=True):
            if a.grad is None:
                assert b.grad is None, name  # unused parameters (the BERT pooler) stay untouched
                continue
            assert not b.grad.is_sparse, name
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
            assert torch.allclose(a, b, atol=1e-6), name
    word = sparse[0].auto_model.embeddings.word_embeddings.weight
    assert word.grad is grads.buffers[0][1]  # accumulated in place: no new buffer was made
    assert torch.count_nonzero(word.grad.abs().sum(dim=1)) < word.shape[0] // 10  # few rows touched


def test_reset_zeroes_the_buffers_between_steps(tiny_path: Path) -> None:
    model = _model(tiny_path)
    grads = EmbeddingGradients(model)
    grads.reset()
    model(dict(model.preprocess(ANCHORS)))["sentence_embedding"].sum().backward()
    word = model[0].auto_model.embeddings.word_embeddings.weight
    assert word.grad is not None and word.grad.abs().sum() > 0
    grads.reset()
    assert word.grad.abs().sum() == 0


def test_gradcache_accumulates_chunk_gradients_into_the_buffers(tiny_path: Path) -> None:
    plain, cached = _model(tiny_path), _model(tiny_path)
    grads = EmbeddingGradients(cached)
    columns = [plain.preprocess(ANCHORS), plain.preprocess(POSITIVES)]

    def encoder(model: nn.Module) -> Callable[[Any], torch.Tensor]:
        return lambda features: model(dict(features))["sentence_embedding"]

    InfoNCELoss()(*[encoder(plain)(c) for c in columns]).backward()
    grads.reset()
    GradCache(encoder(cached), chunk_size=2)(InfoNCELoss(), *columns).backward()
    for (name, a), b in zip(plain.named_parameters(), cached.parameters(), strict=True):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-5), name
