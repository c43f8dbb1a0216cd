"""In-process reranking with a cross-encoder: one relevance score per (query, document) pair.

A cross-encoder reads the query and the document together, which ranks far better than comparing two
independent embeddings, at the cost of one forward pass per pair; that is why it only reorders a first
stage's top candidates. `TextReranker` is the one piece of code that scores pairs: the Serve rerank
deployment, two-stage search and the benchmarks use it. Pairs longer than ``max_length`` tokens are
truncated (the document's end first) and reported, so a caller knows which scores saw less text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import numpy as np
import torch
from sentence_transformers import CrossEncoder

from counterpoint.models.export import Backend, calibration_pairs, graph_backend
from counterpoint.models.paths import Runtime, load_for_inference


@dataclass(frozen=True)
class Scores:
    scores: np.ndarray  # (n,) float32, higher is more relevant
    token_counts: list[int]  # tokens each pair occupied after truncation
    truncated: list[bool]  # whether the pair was cut to max_length

    @property
    def total_tokens(self) -> int:
        return int(sum(self.token_counts))


class TextReranker:
    """A sentence-transformers ``CrossEncoder`` scoring (query, document) pairs on CPU.

    ``backend`` other than ``torch`` runs the transformer as the exported graph in ``export_dir``
    (exported there first if it is empty); tokenisation and the score activation stay the model's own."""

    def __init__(
        self,
        name_or_path: str,
        *,
        max_length: int = 512,
        batch_size: int = 32,
        backend: Backend = "torch",
        export_dir: str | Path | None = None,
        **runtime: Unpack[Runtime],
    ) -> None:
        self.model: CrossEncoder = load_for_inference(
            lambda path, device: CrossEncoder(path, device=device, max_length=max_length),
            name_or_path,
            **runtime,
        )
        self.max_length = max_length
        self.batch_size = batch_size
        self.backend: Backend = backend
        self.graph = graph_backend(
            self.model[0].auto_model, self.model.tokenizer, backend, export_dir,
            threads=runtime.get("torch_threads"), output="logits", max_length=max_length,
            calibration=calibration_pairs,
        )  # fmt: skip

    def query_tokens(self, query: str) -> int:
        return len(self.model.tokenizer(query, truncation=False)["input_ids"])

    def score(self, query: str, documents: list[str]) -> Scores:
        """Scores of ``documents`` for ``query``, in input order."""
        return self.score_many([(query, documents)])[0]

    @torch.inference_mode()
    def score_many(self, calls: list[tuple[str, list[str]]]) -> list[Scores]:
        """Several queries' candidates scored in shared forward passes (pairs sorted by length, so
        each batch pads little); one `Scores` per call, in input order."""
        pairs = [(query, doc) for query, docs in calls for doc in docs]
        if not pairs:
            return [Scores(np.zeros(0, dtype=np.float32), [], []) for _ in calls]
        encoded = self.model.tokenizer(
            [q for q, _ in pairs], [d for _, d in pairs], truncation=False, verbose=False
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = np.argsort([-n for n in lengths], kind="stable")
        flat = np.empty(len(pairs), dtype=np.float32)
        flat[order] = self._predict([pairs[i] for i in order])
        out, start = [], 0
        for _, docs in calls:
            end = start + len(docs)
            out.append(
                Scores(
                    flat[start:end].copy(),
                    [min(n, self.max_length) for n in lengths[start:end]],
                    [n > self.max_length for n in lengths[start:end]],
                )
            )
            start = end
        return out

    def _predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """One score per pair: the model's own ``predict``, or the exported graph's logits through the
        model's activation (what ``predict`` applies)."""
        if self.graph is None:
            predicted = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
            return np.asarray(predicted, dtype=np.float32).reshape(len(pairs))
        out = []
        for start in range(0, len(pairs), self.batch_size):
            logits = torch.from_numpy(
                self.graph(self.model.preprocess(pairs[start : start + self.batch_size]))
            )
            scores = self.model.activation_fn(logits) if self.model.activation_fn is not None else logits
            out.append(scores.reshape(-1).float().numpy())
        return np.concatenate(out)
