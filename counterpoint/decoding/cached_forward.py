"""The model side of decoding: one cached forward pass, prompt tensors, KV-cache forking.

transformers 5 names the KV cache argument ``cache`` (``past_key_values`` is its deprecated
alias); :class:`~transformers.DynamicCache` objects are updated in place. Every decoding
method in :mod:`counterpoint.decoding.methods` runs the model through these helpers only.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def forward(model: Any, ids: torch.Tensor, cache: DynamicCache, hidden: Sequence[int] = ()) -> Any:
    """One cached forward pass; logits of the last position only, hidden states on request."""
    kwargs: dict[str, Any] = {"output_hidden_states": list(hidden)} if hidden else {}
    return model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1, **kwargs)


def new_cache(model: Any) -> DynamicCache:
    """An empty KV cache for ``model``."""
    return DynamicCache(config=model.config)


def device_of(model: Any) -> torch.device:
    """The device ``model``'s parameters live on."""
    return next(model.parameters()).device


def token_tensor(token: int, device: torch.device) -> torch.Tensor:
    """One token as a ``(1, 1)`` LongTensor, the input of one decoding step."""
    return torch.tensor([[token]], dtype=torch.long, device=device)


def prompt_tensor(prompt_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """A prompt as a ``(1, T)`` LongTensor; accepts a list of ids, a 1-D or a ``(1, T)`` tensor."""
    if isinstance(prompt_ids, torch.Tensor):
        ids = prompt_ids.detach().to(torch.long)
        if ids.dim() == 2:
            if ids.shape[0] != 1:
                raise ValueError(f"one prompt at a time: got a batch of {ids.shape[0]}")
            ids = ids[0]
        if ids.dim() != 1:
            raise ValueError(f"prompt_ids must be 1-D or (1, T), got shape {tuple(prompt_ids.shape)}")
    else:
        ids = torch.tensor([int(i) for i in prompt_ids], dtype=torch.long)
    if ids.numel() == 0:
        raise ValueError("prompt_ids is empty: decoding needs at least one prompt token")
    return ids.view(1, -1)


_SPLITS: weakref.WeakKeyDictionary[Any, tuple[Any, Any] | None] = weakref.WeakKeyDictionary()


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """``(decoder, head)`` when ``logits == head(decoder(x).last_hidden_state)`` for ``model``.

    Contrastive search needs the last hidden state of all k candidates but the logits of the
    chosen one only: running the decoder and the LM head separately saves k-1 head
    projections per token (a 49152 x 576 matmul each for SmolLM2). Checked once per model on
    a two-token input; a model whose head does more (logit soft-capping, scaling) fails the
    check and takes the full forward pass instead.
    """
    if model in _SPLITS:
        return _SPLITS[model]
    split = None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
        if decoder is not model and head is not None:
            ids = torch.tensor([[0, 1]], device=device_of(model))
            with torch.inference_mode():
                full = model(input_ids=ids).logits
                parts = head(decoder(input_ids=ids).last_hidden_state)
            if full.shape == parts.shape and torch.allclose(full, parts, rtol=1e-4, atol=1e-5):
                split = (decoder, head)
    except Exception:  # any model the check cannot run on uses the full forward pass
        split = None
    _SPLITS[model] = split
    return split


def fork_cache(cache: DynamicCache, row: int, batch: int, k: int, *, views: bool = True) -> None:
    """Turn a cache of ``batch`` rows into k copies of its row ``row``.

    For plain ``DynamicLayer`` caches this is a view (``expand``): the layer's next ``update``
    concatenates the new keys/values onto it and so materialises the k rows once, instead of
    a ``batch_select_indices`` copy plus a ``batch_repeat_interleave`` copy per step. Other
    layer types (sliding windows, ...) go through those two public methods.
    """
    if views and all(type(layer) is DynamicLayer for layer in cache.layers):
        for layer in cache.layers:
            if layer.is_initialized and layer.keys is not None and layer.keys.numel():
                layer.keys = layer.keys[row : row + 1].expand(k, -1, -1, -1)
                layer.values = layer.values[row : row + 1].expand(k, -1, -1, -1)
        return
    if batch > 1:
        cache.batch_select_indices(torch.tensor([row]))
    cache.batch_repeat_interleave(k)
