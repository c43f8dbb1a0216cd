"""Fixtures of the decoding tests: a tiny random Llama with the MiniLM tokenizer."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from counterpoint.models.paths import packaged_minilm_path
from tests.decoding.tiny_lm import tiny_llama


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(packaged_minilm_path()))


@pytest.fixture(scope="session")
def model(tokenizer) -> LlamaForCausalLM:
    return tiny_llama(tokenizer.vocab_size)


@pytest.fixture(scope="session")
def prompts(tokenizer) -> list[list[int]]:
    texts = ["the quick brown fox jumps over", "once upon a time", "contrastive search is"]
    return [tokenizer(t)["input_ids"] for t in texts]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine they spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
