"""The amateur of contrastive decoding made from the expert itself: its first L layers.

Li et al. (2023) contrast a large "expert" LM with a small "amateur" LM of the same
tokenizer. When no second model is at hand, the default amateur here is the expert
truncated to its first ``L`` decoder layers (default: half of them), followed by the
expert's own final norm and LM head (an early exit, as in DoLa, Chuang et al. 2023).

Two equivalent ways to run it are provided:

* :func:`truncated_amateur` builds a standalone model: a shallow copy of the expert whose
  decoder keeps ``layers[:L]`` (same parameter tensors, no weight copy; embeddings, final
  norm and head shared). Run separately it needs its own KV cache.
* :func:`early_exit_logits` computes the same logits from the expert's hidden state after
  layer ``L``. Because the first ``L`` layers see the same inputs with the same weights, the
  truncated model's activations and KV cache are exactly the expert's first ``L`` layers',
  so the decoding loop takes this path: one forward pass and one KV cache serve both models,
  and the amateur costs one norm plus one head projection per token.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

_LAYER_ATTRS = ("layers", "h", "blocks")
_NORM_ATTRS = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


def default_amateur_layers(num_layers: int) -> int:
    """Default depth of the truncated amateur: half of the expert's layers (at least 1).

    On SmolLM2-135M (30 layers) and the shipped prompts, a 7-layer amateur is too weak to
    model the expert's failure modes (CD then rewards tokens that are merely unlikely under
    a near-random distribution, and loops: rep-4 3.4%), while 15 layers gives rep-2 ~1.6%,
    rep-4 0% and fluent text.
    """
    return max(1, num_layers // 2)


def _decoder_layers(model: Any) -> tuple[Any, str, nn.ModuleList]:
    decoder = model.get_decoder()
    for attr in _LAYER_ATTRS:
        layers = getattr(decoder, attr, None)
        if isinstance(layers, nn.ModuleList):
            return decoder, attr, layers
    raise ValueError(
        f"{type(model).__name__} has no decoder layer list ({'/'.join(_LAYER_ATTRS)}): "
        "pass a separate amateur model instead of amateur_layers"
    )


def num_decoder_layers(model: Any) -> int:
    """Number of decoder layers of a transformers causal LM."""
    return len(_decoder_layers(model)[2])


def check_amateur_layers(model: Any, amateur_layers: int) -> None:
    """Raise ValueError unless ``1 <= amateur_layers < number of layers`` of ``model``."""
    total = num_decoder_layers(model)
    if not 1 <= amateur_layers < total:
        raise ValueError(
            f"amateur_layers must be between 1 and {total - 1} for this model, got {amateur_layers}"
        )


def final_norm(model: Any) -> nn.Module:
    """The final norm the decoder applies before the LM head."""
    decoder = model.get_decoder()
    for attr in _NORM_ATTRS:
        module = getattr(decoder, attr, None)
        if isinstance(module, nn.Module):
            return module
    raise ValueError(
        f"{type(model).__name__} has no final norm ({'/'.join(_NORM_ATTRS)}): "
        "pass a separate amateur model instead of amateur_layers"
    )


def early_exit_logits(model: Any, hidden_after_layers: torch.Tensor) -> torch.Tensor:
    """Logits of the truncated amateur: ``lm_head(final_norm(h_L))``.

    ``hidden_after_layers`` is the expert's hidden state after its first ``L`` layers, i.e.
    ``outputs.hidden_states[L]`` (index 0 is the embedding output).
    """
    head = model.get_output_embeddings()
    return head(final_norm(model)(hidden_after_layers))


def truncated_amateur(model: Any, amateur_layers: int) -> Any:
    """A standalone copy of ``model`` that runs only its first ``amateur_layers`` layers.

    The copy is shallow: modules and parameters are the expert's (no extra memory); only the
    layer list and the config (``num_hidden_layers``, ``layer_types``) are new. It has its
    own KV cache when run, sized for its ``amateur_layers`` layers.
    """
    check_amateur_layers(model, amateur_layers)
    decoder, attr, layers = _decoder_layers(model)
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = amateur_layers
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types)[:amateur_layers]

    small_decoder = copy.copy(decoder)
    small_decoder._modules = dict(decoder._modules)  # copy.copy shares the dict: give it its own
    setattr(small_decoder, attr, nn.ModuleList(list(layers)[:amateur_layers]))
    small_decoder.config = config

    amateur = copy.copy(model)
    amateur._modules = dict(model._modules)
    replaced = False
    for name, module in model._modules.items():
        if module is decoder:
            amateur._modules[name] = small_decoder
            replaced = True
    if not replaced:
        raise ValueError(f"cannot locate the decoder module of {type(model).__name__}")
    amateur.config = config
    return amateur
