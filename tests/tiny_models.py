"""Tiny random models for fast tests: same tokenizer as MiniLM, a 2-layer 32-d BERT."""

from __future__ import annotations

from pathlib import Path

from sentence_transformers import SentenceTransformer, models
from transformers import AutoTokenizer, BertConfig, BertModel

from counterpoint.models.paths import packaged_minilm_path


def build_tiny_bi_encoder(path: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """Write a randomly initialised sentence-transformers model to ``path`` and return it."""
    import torch

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    backbone = path / "backbone"
    BertModel(config).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    word = models.Transformer(str(backbone), max_seq_length=64)
    pooling = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling], device="cpu")
    out = path / "tiny-bi-encoder"
    model.save(str(out))
    return out


def build_tiny_cross_encoder(path: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A randomly initialised cross-encoder (tiny BERT + a fresh one-logit head) saved to ``path``."""
    import torch
    from sentence_transformers import CrossEncoder

    backbone = build_tiny_bi_encoder(path / "for-cross-encoder", hidden=hidden, seed=seed).parent / "backbone"
    torch.manual_seed(seed)
    model = CrossEncoder(str(backbone), num_labels=1, max_length=64, device="cpu")
    out = path / "tiny-cross-encoder"
    model.save(str(out))
    return out
