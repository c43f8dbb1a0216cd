"""In-process text embedding with a sentence-transformers bi-encoder.

`TextEmbedder` is the one piece of code that turns texts into vectors: the Serve embed
deployment, the ingest path and the benchmarks all use it. It sorts texts by length so
each forward pass pads little, counts tokens for usage reporting, and returns
L2-normalised float32 vectors (cosine similarity = dot product).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device

from counterpoint.errors import LimitExceeded
from counterpoint.models.export import Backend, graph_backend
from counterpoint.models.paths import Runtime, load_for_inference


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (n, d) float32, unit length
    token_counts: list[int]

    @property
    def total_tokens(self) -> int:
        return int(sum(self.token_counts))

    def split(self, sizes: Sequence[int]) -> list[Embeddings]:
        """Consecutive parts of ``sizes`` rows each: one batched pass handed back to its callers."""
        parts, start = [], 0
        for size in sizes:
            parts.append(
                Embeddings(self.vectors[start : start + size], self.token_counts[start : start + size])
            )
            start += size
        return parts


def truncate_and_normalize(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Matryoshka truncation: keep the first ``dimensions`` coordinates, then re-normalise."""
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


class TextEmbedder:
    """A bi-encoder that embeds batches of texts on CPU (or the given device).

    ``backend`` other than ``torch`` runs the transformer as the exported graph in ``export_dir``
    (exported there first if it is empty; see :mod:`counterpoint.models.export`); tokenisation and
    pooling stay the model's own."""

    def __init__(
        self,
        name_or_path: str,
        *,
        max_seq_length: int = 256,
        batch_size: int = 64,
        backend: Backend = "torch",
        export_dir: str | Path | None = None,
        **runtime: Unpack[Runtime],
    ) -> None:
        self.model: SentenceTransformer = load_for_inference(
            lambda path, device: SentenceTransformer(path, device=device), name_or_path, **runtime
        )
        self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.backend: Backend = backend
        self.graph = graph_backend(
            self.model[0].auto_model, self.model.tokenizer, backend, export_dir,
            threads=runtime.get("torch_threads"), max_length=max_seq_length,
        )  # fmt: skip

    @property
    def dimensions(self) -> int:
        dims = self.model.get_embedding_dimension()
        assert dims is not None
        return int(dims)

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens each text occupies after truncation (what the model actually reads)."""
        encoded = self.model.tokenizer(texts, truncation=True, max_length=self.max_seq_length)
        return [len(ids) for ids in encoded["input_ids"]]

    def check_token_limit(self, texts: list[str], limit: int) -> None:
        """Refuse (413) a text longer than ``limit`` tokens rather than silently embedding its start.

        Only texts that could exceed it are tokenized: a token spans at least a quarter of a
        character even for byte-level BPE, so shorter texts cannot."""
        long = [i for i, text in enumerate(texts) if 4 * len(text) > limit]
        if not long:
            return
        encoded = self.model.tokenizer([texts[i] for i in long], truncation=False, add_special_tokens=False)
        for i, ids in zip(long, encoded["input_ids"], strict=True):
            if len(ids) > limit:
                raise LimitExceeded(
                    f"text {i} has {len(ids)} tokens; the limit is {limit} tokens per text "
                    "(setting max_text_tokens): split it into passages"
                )

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> Embeddings:
        """Embed ``texts`` in length-sorted batches; output order matches input order."""
        if not texts:
            return Embeddings(np.zeros((0, self.dimensions), dtype=np.float32), [])
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        tokens = [0] * len(texts)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            features = self.model.preprocess([texts[i] for i in idx])
            mask = features["attention_mask"]
            out = self._forward(features)
            out = torch.nn.functional.normalize(out.float(), dim=-1)
            vectors[idx] = out.cpu().numpy()
            for i, n in zip(idx, mask.sum(dim=1).tolist(), strict=True):
                tokens[i] = int(n)
        return Embeddings(vectors, tokens)

    def _forward(self, features: dict) -> torch.Tensor:
        """Sentence embeddings of tokenised ``features``: the whole torch model, or the exported graph
        followed by the model's own modules after the transformer (pooling, normalisation)."""
        if self.graph is None:
            return self.model(batch_to_device(features, self.model.device))["sentence_embedding"]
        features["token_embeddings"] = torch.from_numpy(self.graph(features))
        for module in list(self.model)[1:]:
            features = module(features)
        return features["sentence_embedding"]
