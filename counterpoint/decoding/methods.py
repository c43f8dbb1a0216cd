"""Decoding methods over a KV cache, one prompt, one token at a time (generators, to stream).

* greedy: ``x_t = argmax p(v | x_<t)``.
* sampling: temperature, then top-k, then top-p (nucleus) filtering; a seeded ``torch.Generator``.
* contrastive search (Su et al. 2022, "A Contrastive Framework for Neural Text Generation"):
  among the top-k candidates ``V_k`` of ``p(. | x_<t)``::

      x_t = argmax_{v in V_k} (1 - α) p(v | x_<t) - α max_{j<t} cos(h_v, h_{x_j})

  where ``h`` is the last layer's hidden state and ``j`` runs over the prompt and the tokens
  generated so far. The k candidates are scored in ONE batched forward pass: the KV cache is
  made k rows of the current prefix, the k candidate tokens are fed as a batch, and the
  chosen candidate's row is the prefix of the next step (``_fork_cache``: views of a plain
  ``DynamicCache``, ``batch_select_indices`` + ``batch_repeat_interleave`` otherwise). That
  pass also extends the sequence with the chosen token, so each token costs one forward
  pass of batch k; the LM head runs on the chosen row only (``_decoder_and_head``).
  ``α = 0`` is greedy search.
* contrastive decoding (Li et al. 2023, "Contrastive Decoding: Open-ended Text Generation as
  Optimization")::

      x_t = argmax_{v in V_head} log p_exp(v | x_<t) - log p_ama(v | x_<t)
      V_head = {v : p_exp(v | x_<t) >= α max_w p_exp(w | x_<t)}

  with ``p_ama = softmax(amateur_logits / τ)``. The amateur is either another model of the
  same tokenizer (its own KV cache) or, by default, the expert's first ``L`` layers (see
  :mod:`counterpoint.decoding.amateur`: computed from the expert's own forward pass).

transformers 5 names the KV cache argument ``cache`` (``past_key_values`` is its deprecated
alias); :class:`~transformers.DynamicCache` objects are updated in place.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from counterpoint.decoding.amateur import check_amateur_layers, default_amateur_layers, early_exit_logits
from counterpoint.decoding.params import (
    DECODING_METHODS,
    DEFAULT_CD_ALPHA,
    DEFAULT_CS_TOP_K,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PENALTY_ALPHA,
    MAX_CS_TOP_K,
)
from counterpoint.decoding.stopping import StopScanner, normalize_stops

# A method's raw stream: yields token ids, returns why it ended ("eos" or "length").
RawTokens = Generator[int, None, str]
T = TypeVar("T")


# ----------------------------------------------------------------------------- forward pass
def _forward(model: Any, ids: torch.Tensor, cache: DynamicCache, hidden: Sequence[int] = ()) -> Any:
    """One cached forward pass; logits of the last position only, hidden states on request."""
    kwargs: dict[str, Any] = {"output_hidden_states": list(hidden)} if hidden else {}
    return model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1, **kwargs)


def _new_cache(model: Any) -> DynamicCache:
    return DynamicCache(config=model.config)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _token_tensor(token: int, device: torch.device) -> torch.Tensor:
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


# ----------------------------------------------------------------------------- choice rules
def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """Sampling filters on a 1-D logit vector: temperature, top-k, then top-p (nucleus).

    Top-p keeps the smallest set of most likely tokens whose probability mass reaches
    ``top_p`` (a token is dropped when the mass strictly before it already does).
    """
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs
        drop = order[before >= top_p]
        logits = logits.index_fill(0, drop, -math.inf)
    return logits


def contrastive_search_scores(
    top_probs: torch.Tensor, candidate_hidden: torch.Tensor, context_hidden: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Su et al. (2022) scores ``(1-α) p(v) - α max_j cos(h_v, h_j)`` for k candidates.

    ``top_probs``: (k,); ``candidate_hidden``: (k, d); ``context_hidden``: (t, d). Hidden
    states need not be normalised.
    """
    cand = F.normalize(candidate_hidden.float(), dim=-1)
    ctx = F.normalize(context_hidden.float(), dim=-1)
    penalty = (cand @ ctx.T).max(dim=-1).values
    return (1.0 - alpha) * top_probs.float() - alpha * penalty


def contrastive_decoding_scores(
    expert_logits: torch.Tensor, amateur_logits: torch.Tensor, alpha: float, amateur_temperature: float = 1.0
) -> torch.Tensor:
    """Li et al. (2023) scores ``log p_exp - log p_ama`` on ``V_head``, ``-inf`` elsewhere.

    ``V_head = {v : p_exp(v) >= α max p_exp}``; ``p_ama = softmax(amateur_logits / τ)``
    (``τ = inf`` makes the amateur uniform, which turns the rule into greedy search).
    """
    if expert_logits.shape != amateur_logits.shape:
        raise ValueError(
            f"expert and amateur vocabularies differ: {tuple(expert_logits.shape)} vs {tuple(amateur_logits.shape)}"
        )
    logp_exp = torch.log_softmax(expert_logits.float(), dim=-1)
    logp_ama = torch.log_softmax(amateur_logits.float() / amateur_temperature, dim=-1)
    threshold = logp_exp.max() + (math.log(alpha) if alpha > 0 else -math.inf)
    return (logp_exp - logp_ama).masked_fill(logp_exp < threshold, -math.inf)


# ----------------------------------------------------------------------------- the methods
def _greedy(model: Any, ids: torch.Tensor, max_new_tokens: int, eos: Collection[int]) -> RawTokens:
    device = _device(model)
    cache = _new_cache(model)
    with torch.inference_mode():
        logits = _forward(model, ids.to(device), cache).logits[0, -1]
    for step in range(max_new_tokens):
        token = int(torch.argmax(logits))
        if token in eos:
            return "eos"
        yield token
        if step + 1 < max_new_tokens:
            with torch.inference_mode():
                logits = _forward(model, _token_tensor(token, device), cache).logits[0, -1]
    return "length"


def _sampling(
    model: Any,
    ids: torch.Tensor,
    max_new_tokens: int,
    eos: Collection[int],
    temperature: float,
    top_k: int | None,
    top_p: float,
    seed: int | None,
) -> RawTokens:
    device = _device(model)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    cache = _new_cache(model)
    with torch.inference_mode():
        logits = _forward(model, ids.to(device), cache).logits[0, -1]
    for step in range(max_new_tokens):
        with torch.inference_mode():
            probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
            token = int(torch.multinomial(probs, 1, generator=generator))
        if token in eos:
            return "eos"
        yield token
        if step + 1 < max_new_tokens:
            with torch.inference_mode():
                logits = _forward(model, _token_tensor(token, device), cache).logits[0, -1]
    return "length"


_SPLITS: weakref.WeakKeyDictionary[Any, tuple[Any, Any] | None] = weakref.WeakKeyDictionary()


def _decoder_and_head(model: Any) -> tuple[Any, Any] | None:
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
            ids = torch.tensor([[0, 1]], device=_device(model))
            with torch.inference_mode():
                full = model(input_ids=ids).logits
                parts = head(decoder(input_ids=ids).last_hidden_state)
            if full.shape == parts.shape and torch.allclose(full, parts, rtol=1e-4, atol=1e-5):
                split = (decoder, head)
    except Exception:  # any model the check cannot run on uses the full forward pass
        split = None
    _SPLITS[model] = split
    return split


def _fork_cache(cache: DynamicCache, row: int, batch: int, k: int, *, views: bool = True) -> None:
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


def _contrastive_search(
    model: Any, ids: torch.Tensor, max_new_tokens: int, eos: Collection[int], top_k: int, alpha: float
) -> RawTokens:
    device = _device(model)
    cache = _new_cache(model)
    split = _decoder_and_head(model)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
        """Last-layer hidden states (B, T, d) and a function: batch row -> next-token logits."""
        if split is not None:
            decoder, head = split
            hidden = decoder(input_ids=x, cache=cache, use_cache=True).last_hidden_state
            return hidden, lambda row: head(hidden[row, -1])
        out = _forward(model, x, cache, hidden=[-1])
        return out.hidden_states[-1], lambda row: out.logits[row, -1]

    with torch.inference_mode():
        hidden, logits_of = run(ids.to(device))
        logits = logits_of(0)
        context = F.normalize(hidden[0].float(), dim=-1)  # (t, d): the prompt's states included
    k = min(top_k, logits.numel())
    best, batch = 0, 1
    for _ in range(max_new_tokens):
        with torch.inference_mode():
            top_probs, top_ids = torch.topk(torch.softmax(logits.float(), dim=-1), k)
            _fork_cache(cache, best, batch, k)  # k copies of the chosen row: the prefix of every candidate
            hidden, logits_of = run(top_ids.view(k, 1))  # the k candidates, one batched pass
            candidates = F.normalize(hidden[:, -1].float(), dim=-1)  # (k, d)
            scores = contrastive_search_scores(top_probs, candidates, context, alpha)
            best, batch = int(torch.argmax(scores)), k
            token = int(top_ids[best])
            logits = logits_of(best)
            context = torch.cat([context, candidates[best : best + 1]])
        if token in eos:
            return "eos"
        yield token
    return "length"


def _contrastive_decoding(
    model: Any,
    ids: torch.Tensor,
    max_new_tokens: int,
    eos: Collection[int],
    alpha: float,
    amateur: Any | None,
    amateur_layers: int,
    amateur_temperature: float,
) -> RawTokens:
    device = _device(model)
    cache = _new_cache(model)
    amateur_cache = _new_cache(amateur) if amateur is not None else None

    def step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if amateur is None:  # early exit: the truncated amateur shares the expert's pass and cache
            out = _forward(model, x, cache, hidden=[amateur_layers])
            return out.logits[0, -1], early_exit_logits(model, out.hidden_states[amateur_layers][0, -1])
        assert amateur_cache is not None
        expert = _forward(model, x, cache).logits[0, -1]
        return expert, _forward(amateur, x.to(_device(amateur)), amateur_cache).logits[0, -1].to(device)

    with torch.inference_mode():
        expert_logits, amateur_logits = step(ids.to(device))
    for i in range(max_new_tokens):
        with torch.inference_mode():
            scores = contrastive_decoding_scores(expert_logits, amateur_logits, alpha, amateur_temperature)
            token = int(torch.argmax(scores))
        if token in eos:
            return "eos"
        yield token
        if i + 1 < max_new_tokens:
            with torch.inference_mode():
                expert_logits, amateur_logits = step(_token_tensor(token, device))
    return "length"


# ----------------------------------------------------------------------------- streams
class _Stream(Iterator[T]):
    """Runs a raw token stream through the stop-string scanner; records why it ended."""

    _text_mode = False

    def __init__(self, raw: RawTokens, tokenizer: Any, stops: Sequence[str], prompt_tokens: int) -> None:
        self._raw = raw
        self.prompt_tokens = prompt_tokens
        self.generated_tokens = 0
        self.finish_reason: str | None = None
        needs_scanner = bool(stops) or self._text_mode
        self._scanner = (
            StopScanner(tokenizer, stops, track_tokens=not self._text_mode) if needs_scanner else None
        )
        self._items = self._run()

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        """Stop generating (e.g. the client went away)."""
        self._items.close()
        self._raw.close()

    def _pick(self, tokens: list[int], text: str) -> list[T]:
        raise NotImplementedError

    def _pass_through(self, token: int) -> list[T]:
        raise NotImplementedError

    def _run(self) -> Iterator[T]:
        scanner = self._scanner
        while True:
            try:
                token = next(self._raw)
            except StopIteration as done:
                self.finish_reason = done.value or "length"
                break
            self.generated_tokens += 1
            if scanner is None:
                yield from self._pass_through(token)
                continue
            yield from self._pick(*scanner.push(token))
            if scanner.stopped:
                self.finish_reason = "stop"
                self._raw.close()
                return
        if scanner is not None:
            yield from self._pick(*scanner.flush())


class TokenStream(_Stream[int]):
    """The generated token ids, stop strings applied; ``finish_reason`` once exhausted.

    ``finish_reason``: ``"eos"`` (end-of-sequence token, not yielded), ``"stop"`` (a stop
    string; tokens from the one it starts in on are not yielded), ``"length"``
    (``max_new_tokens`` reached). ``generated_tokens`` counts what the model produced,
    including tokens trimmed by a stop string; ``prompt_tokens`` the prompt's length.
    """

    def _pick(self, tokens: list[int], text: str) -> list[int]:
        return tokens

    def _pass_through(self, token: int) -> list[int]:
        return [token]


class TextStream(_Stream[str]):
    """The generated text as deltas, cut exactly at a stop string; same attributes as TokenStream."""

    _text_mode = True

    def _pick(self, tokens: list[int], text: str) -> list[str]:
        return [text] if text else []

    @property
    def text(self) -> str:
        """The text released so far."""
        return self._scanner.text if self._scanner is not None else ""


# ----------------------------------------------------------------------------- dispatcher
def eos_token_ids(model: Any, tokenizer: Any, eos_token_id: int | Sequence[int] | None = None) -> set[int]:
    """End-of-sequence ids: ``eos_token_id`` if given, else the model's generation config's and the tokenizer's."""
    if eos_token_id is not None:
        return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(i) for i in eos_token_id}
    found: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            found.add(value)
        elif value is not None:
            found.update(int(v) for v in value)
    return found


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _build(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    method: str,
    *,
    max_new_tokens: int,
    stop: str | Sequence[str] | None,
    stop_on_eos: bool,
    eos_token_id: int | Sequence[int] | None,
    seed: int | None,
    temperature: float,
    top_k: int | None,
    top_p: float,
    penalty_alpha: float,
    cd_alpha: float,
    amateur: Any | None,
    amateur_layers: int | None,
    amateur_temperature: float,
) -> tuple[RawTokens, list[str], int]:
    """Validate every option (ValueError with a clear message), then build the raw stream."""
    if method not in DECODING_METHODS:
        raise ValueError(f"unknown decoding method {method!r}; expected one of {', '.join(DECODING_METHODS)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    _check_unit("penalty_alpha", penalty_alpha)
    _check_unit("cd_alpha", cd_alpha)
    if not amateur_temperature > 0:
        raise ValueError(f"amateur_temperature must be > 0, got {amateur_temperature}")
    stops = normalize_stops(stop)
    ids = prompt_tensor(prompt_ids)
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and ids.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"prompt ({ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
            f"context of {limit} tokens"
        )
    eos = eos_token_ids(model, tokenizer, eos_token_id) if stop_on_eos else set()

    raw: RawTokens
    if method == "greedy":
        raw = _greedy(model, ids, max_new_tokens, eos)
    elif method == "sampling":
        raw = _sampling(model, ids, max_new_tokens, eos, temperature, top_k, top_p, seed)
    elif method == "contrastive_search":
        k = DEFAULT_CS_TOP_K if top_k is None else top_k
        if k > MAX_CS_TOP_K:
            raise ValueError(f"contrastive search takes at most top_k={MAX_CS_TOP_K} candidates, got {k}")
        raw = _contrastive_search(model, ids, max_new_tokens, eos, k, penalty_alpha)
    else:
        if amateur is not None and amateur_layers is not None:
            raise ValueError("pass either an amateur model or amateur_layers, not both")
        layers = 0
        if amateur is None:
            layers = (
                amateur_layers
                if amateur_layers is not None
                else default_amateur_layers(int(model.config.num_hidden_layers))
            )
            check_amateur_layers(model, layers)
        elif getattr(amateur.config, "vocab_size", None) != getattr(model.config, "vocab_size", None):
            raise ValueError("the amateur model must share the expert's vocabulary (same tokenizer)")
        raw = _contrastive_decoding(
            model, ids, max_new_tokens, eos, cd_alpha, amateur, layers, amateur_temperature
        )
    return raw, stops, int(ids.shape[1])


def generate(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    method: str = "greedy",
    *,
    max_new_tokens: int = DEFAULT_MAX_TOKENS,
    stop: str | Sequence[str] | None = None,
    stop_on_eos: bool = True,
    eos_token_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    penalty_alpha: float = DEFAULT_PENALTY_ALPHA,
    cd_alpha: float = DEFAULT_CD_ALPHA,
    amateur: Any | None = None,
    amateur_layers: int | None = None,
    amateur_temperature: float = 1.0,
) -> TokenStream:
    """Continue one prompt with ``method``; yields new token ids one at a time.

    Options are validated here, eagerly (``ValueError``); the model runs as the stream is
    consumed. Options a method does not use are ignored. ``top_k`` is the number of
    candidates for contrastive search (default 4) and an optional filter for sampling.
    ``eos_token_id`` defaults to the model's generation config and the tokenizer's EOS;
    ``stop_on_eos=False`` ignores EOS. The tokenizer is used for stop strings only.
    """
    raw, stops, prompt_tokens = _build(**locals())  # exactly the parameters above
    return TokenStream(raw, tokenizer, stops, prompt_tokens)


def stream_text(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    method: str = "greedy",
    *,
    max_new_tokens: int = DEFAULT_MAX_TOKENS,
    stop: str | Sequence[str] | None = None,
    stop_on_eos: bool = True,
    eos_token_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    penalty_alpha: float = DEFAULT_PENALTY_ALPHA,
    cd_alpha: float = DEFAULT_CD_ALPHA,
    amateur: Any | None = None,
    amateur_layers: int | None = None,
    amateur_temperature: float = 1.0,
) -> TextStream:
    """Like :func:`generate` but yields decoded text deltas, cut exactly at a stop string."""
    raw, stops, prompt_tokens = _build(**locals())  # exactly the parameters above
    return TextStream(raw, tokenizer, stops, prompt_tokens)


def generate_text(*args: Any, **kwargs: Any) -> str:
    """The whole continuation as one string (same arguments as :func:`stream_text`)."""
    return "".join(stream_text(*args, **kwargs))
