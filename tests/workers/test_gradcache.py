"""GradCache gives the plain loss's gradients, with dropout off and (thanks to RNG replay) on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from counterpoint.workers.gradcache import GradCache, RngState, split_features
from counterpoint.workers.losses import CoSENTLoss, InfoNCELoss, MatryoshkaLoss, UnsupervisedSimCSELoss
from tests.tiny_models import build_tiny_bi_encoder

BATCH, CHUNK = 16, 4
VOCABULARY = "the cat sat on a mat while dogs ran through green fields under grey skies near old towns"
WORDS = VOCABULARY.split()


def _texts(seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 14, (BATCH,), generator=g).tolist()
    return [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (n,), generator=g)) for n in lengths]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    from sentence_transformers import SentenceTransformer

    path: Path = build_tiny_bi_encoder(tmp_path_factory.mktemp("tiny"))
    return SentenceTransformer(str(path), device="cpu")


@pytest.fixture(scope="module")
def columns(model: Any) -> list[dict[str, Any]]:
    """anchors, positives, negatives: 16 tokenised texts each (padded to each column's longest)."""
    return [model.preprocess(_texts(seed)) for seed in (1, 2, 3)]


def _encoder(model: Any) -> Callable[[dict[str, Any]], Tensor]:
    return lambda features: model(dict(features))["sentence_embedding"]


def _grads(module: nn.Module) -> dict[str, Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def _assert_same_grads(got: dict[str, Tensor], expected: dict[str, Tensor], atol: float = 1e-5) -> None:
    assert got.keys() == expected.keys() and expected
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=atol), (
            name,
            (got[name] - expected[name]).abs().max().item(),
        )


def _plain(
    model: nn.Module, loss_fn: Callable[..., Tensor], inputs: list[Any], **kw: Any
) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    encode = _encoder(model)
    loss = loss_fn(*[encode(x) for x in inputs], **kw)
    loss.backward()
    return loss.item(), _grads(model)


def _cached(
    model: nn.Module, loss_fn: Callable[..., Tensor], inputs: list[Any], **kw: Any
) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = GradCache(_encoder(model), chunk_size=CHUNK)(loss_fn, *inputs, **kw)
    loss.backward()
    return loss.item(), _grads(model)


def test_split_features_handles_tensors_mappings_and_lists() -> None:
    x = torch.arange(10)
    assert [c.tolist() for c in split_features(x, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    mapping = {"input_ids": torch.zeros(10, 3), "modality": "text", "scalar": torch.tensor(1.0)}
    chunks = split_features(mapping, 4)
    assert [c["input_ids"].shape[0] for c in chunks] == [4, 4, 2]
    assert all(c["modality"] == "text" and c["scalar"].ndim == 0 for c in chunks)
    assert split_features(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    with pytest.raises(ValueError):
        split_features(x, 0)


@pytest.mark.parametrize(
    ("name", "n_inputs"),
    [("infonce_hard_negatives", 3), ("symmetric_learnable", 3), ("matryoshka", 2), ("cosent", 2)],
)
def test_dropout_off_gradcache_equals_the_plain_loss(
    model: nn.Module, columns: list[Any], name: str, n_inputs: int
) -> None:
    model.eval()  # dropout off: one full-batch forward is the reference
    kwargs: dict[str, Any] = {}
    if name == "infonce_hard_negatives":
        make: Callable[[], nn.Module] = InfoNCELoss
    elif name == "symmetric_learnable":

        def make() -> nn.Module:
            return InfoNCELoss(symmetric=True, learnable_scale=True)
    elif name == "matryoshka":

        def make() -> nn.Module:
            return MatryoshkaLoss(InfoNCELoss(), dims=[32, 16, 8], weights=[1.0, 0.5, 0.25])
    else:
        make = CoSENTLoss
        kwargs["labels"] = torch.linspace(0, 5, BATCH)
    inputs = columns[:n_inputs]
    plain_fn, cached_fn = make(), make()
    plain_loss, plain_grads = _plain(model, plain_fn, inputs, **kwargs)
    cached_loss, cached_grads = _cached(model, cached_fn, inputs, **kwargs)
    assert cached_loss == pytest.approx(plain_loss, rel=1e-5)
    _assert_same_grads(cached_grads, plain_grads)
    if list(plain_fn.parameters()):  # the learnable temperature
        _assert_same_grads(_grads(cached_fn), _grads(plain_fn))


def _chunked_reference(model: nn.Module, loss_fn: Callable[..., Tensor], inputs: list[Any]) -> dict:
    """Same dropout draws as GradCache's first pass (same seed, same chunk order), but one graph."""
    model.zero_grad(set_to_none=True)
    encode = _encoder(model)
    embeddings = [torch.cat([encode(c) for c in split_features(x, CHUNK)]) for x in inputs]
    loss_fn(*embeddings).backward()
    return _grads(model)


def test_dropout_on_gradcache_equals_the_plain_loss_thanks_to_rng_replay(
    model: nn.Module, columns: list[Any]
) -> None:
    model.train()
    inputs = columns[:3]
    encode = _encoder(model)
    torch.manual_seed(0)
    first = encode(columns[0])
    assert not torch.allclose(first, encode(columns[0]))  # dropout is really on

    torch.manual_seed(123)
    expected = _chunked_reference(model, InfoNCELoss(), inputs)
    state_after_reference = torch.get_rng_state()

    torch.manual_seed(123)
    model.zero_grad(set_to_none=True)
    GradCache(encode, chunk_size=CHUNK)(InfoNCELoss(), *inputs).backward()
    _assert_same_grads(_grads(model), expected)
    # The replayed second pass leaves the global generator where the first pass left it.
    assert torch.equal(torch.get_rng_state(), state_after_reference)

    # Negative control: without the replay the second pass draws new masks and the gradients drift.
    torch.manual_seed(123)
    model.zero_grad(set_to_none=True)
    GradCache(encode, chunk_size=CHUNK, restore_rng=False)(InfoNCELoss(), *inputs).backward()
    drift = max((_grads(model)[n] - expected[n]).abs().max().item() for n in expected)
    assert drift > 1e-4


def test_unsupervised_simcse_views_through_gradcache(model: nn.Module, columns: list[Any]) -> None:
    """The same features passed twice get different dropout masks per input, replayed exactly."""
    model.train()
    torch.manual_seed(7)
    expected = _chunked_reference(model, UnsupervisedSimCSELoss(), [columns[0], columns[0]])
    torch.manual_seed(7)
    model.zero_grad(set_to_none=True)
    loss = GradCache(_encoder(model), chunk_size=CHUNK)(UnsupervisedSimCSELoss(), columns[0], columns[0])
    loss.backward()
    assert loss.item() > 0.01  # the views differ, so the positives are not trivially matched
    _assert_same_grads(_grads(model), expected)


def test_backward_scaling_no_grad_and_missing_inputs(model: nn.Module, columns: list[Any]) -> None:
    model.eval()
    cache = GradCache(_encoder(model), chunk_size=CHUNK)
    _, full = _cached(model, InfoNCELoss(), columns[:2])
    model.zero_grad(set_to_none=True)
    loss = cache(InfoNCELoss(), *columns[:2])
    (0.25 * loss).backward()  # e.g. gradient accumulation over 4 steps
    _assert_same_grads(_grads(model), {n: 0.25 * g for n, g in full.items()}, atol=1e-6)

    with torch.no_grad():
        value = cache(InfoNCELoss(), *columns[:2])
    assert not value.requires_grad and value.item() == pytest.approx(loss.item(), rel=1e-5)
    # An optional input that is absent (no hard negatives) is passed through as None.
    with_none = cache(InfoNCELoss(), columns[0], columns[1], None)
    assert with_none.item() == pytest.approx(loss.item(), rel=1e-5)


def test_encoder_only_ever_sees_one_chunk() -> None:
    encoder = nn.Linear(4, 3)
    seen: list[tuple[int, bool]] = []

    def encode(x: Tensor) -> Tensor:
        seen.append((x.shape[0], torch.is_grad_enabled()))
        return encoder(x)

    GradCache(encode, chunk_size=6)(InfoNCELoss(), torch.randn(BATCH, 4), torch.randn(BATCH, 4)).backward()
    first_pass = [(6, False), (6, False), (4, False)] * 2  # anchors then positives, no graph
    assert seen == first_pass + [(n, True) for n, _ in first_pass]


def test_no_sync_wraps_every_chunk_but_the_last() -> None:
    encoder = nn.Linear(4, 3)
    calls: list[str] = []

    @contextmanager
    def no_sync() -> Iterator[None]:
        calls.append("no_sync")
        yield

    cache = GradCache(encoder, chunk_size=CHUNK, no_sync=no_sync)
    cache(InfoNCELoss(), torch.randn(BATCH, 4), torch.randn(BATCH, 4)).backward()
    assert len(calls) == 2 * BATCH // CHUNK - 1


def test_rng_state_replay_restores_outer_state() -> None:
    torch.manual_seed(0)
    state = RngState.capture()
    a = torch.rand(3)
    after = torch.get_rng_state()
    with state.replay():
        assert torch.equal(torch.rand(3), a)
    assert torch.equal(torch.get_rng_state(), after)
