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


PAD_SLACK = 1.25
"""Padded tokens a forward pass may compute per real token before the rest goes to a new pass."""
MIN_PASS = 8
"""A pass is never cut below this many texts: a pass has a fixed cost of its own."""


def padded_passes(lengths: Sequence[int], max_size: int, slack: float = PAD_SLACK) -> list[np.ndarray]:
    """Indices of ``lengths`` (tokens per text) grouped into forward passes, longest texts first.

    A pass pads every text to its longest, so a mixed batch of short texts computes up to twice the
    tokens it holds (64 STS-B sentences: 1.7x). Sorting alone fixes that for one big call, but a
    server's batch is a few requests: so a pass also ends where its padded tokens would pass
    ``slack`` times its real ones (never below `MIN_PASS` texts), as well as at ``max_size``."""
    order = np.argsort([-n for n in lengths], kind="stable")
    passes: list[np.ndarray] = []
    start, real = 0, 0
    for end, i in enumerate(order):
        size = end - start
        padded = (size + 1) * lengths[order[start]]
        if size == max_size or (size >= MIN_PASS and padded > slack * (real + lengths[i])):
            passes.append(order[start:end])
            start, real = end, 0
        real += lengths[i]
    passes.append(order[start:])
    return passes


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
        pad_slack: float = PAD_SLACK,
        backend: Backend = "torch",
        export_dir: str | Path | None = None,
        **runtime: Unpack[Runtime],
    ) -> None:
        self.model: SentenceTransformer = load_for_inference(
            lambda path, device: SentenceTransformer(path, device=device), name_or_path, **runtime
        )
        self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.pad_slack = pad_slack
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

    @property
    def threads(self) -> int:
        """Threads a forward pass uses: torch's, or those the exported graph was loaded with."""
        if self.graph is not None and self.graph.threads is not None:
            return self.graph.threads
        return torch.get_num_threads()

    def set_threads(self, threads: int) -> None:
        """Run the next forward passes on ``threads`` threads (torch's pool, or the graph's)."""
        if self.graph is not None:
            self.graph.set_threads(threads)
        elif torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> Embeddings:
        """Embed ``texts`` in passes of similar length (:func:`padded_passes`); output order matches
        input order."""
        if not texts:
            return Embeddings(np.zeros((0, self.dimensions), dtype=np.float32), [])
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        tokens = self.count_tokens(texts)
        for idx in padded_passes(tokens, self.batch_size, self.pad_slack):
            features = self.model.preprocess([texts[i] for i in idx])
            out = self._forward(features)
            vectors[idx] = torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy()
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
