"""The cross-encoder (reranker) being trained, with its two losses, and its evaluation by reranking.

A cross-encoder reads ``[CLS] query [SEP] document [SEP]`` and outputs one relevance logit. Training
starts from any transformer checkpoint (by default the MiniLM weights of the base bi-encoder) with a
fresh one-logit head, on (query, positive, hard negative) triplets, with

* ``bce``: binary cross-entropy, positive pairs labelled 1 and negative pairs 0 (monoBERT,
  Nogueira & Cho 2019);
* ``listwise``: softmax cross-entropy over each query's group [positive, its hard negatives]
  logits, i.e. InfoNCE on cross-encoder scores (Gao et al. 2021, "Rethink Training of BERT
  Rerankers in Multi-Stage Retrieval Pipeline", the localized contrastive estimation loss); with
  ``loss.in_batch_negatives`` the other queries' documents join every group (B x B(1+k) pairs a
  step instead of B(1+k): worth it with one negative per row, costly with many).

Rows may carry k hard negatives (``negative``, ``negative_2`` .. ``negative_k``); a cross-encoder
reads every (query, document) pair, so the step's cost is the number of pairs scored.

:class:`CrossEncoderModel` mirrors :class:`~counterpoint.workers.model.BiEncoder`'s interface
(:class:`~counterpoint.workers.trainable.TrainableModel`) so the training loop drives both.
:class:`RerankTask` evaluates the way the reranker is used: a first-stage bi-encoder retrieves the top
``k`` of a BEIR split, the cross-encoder reorders them, pytrec_eval scores nDCG@10 / Recall@100 / MRR@10.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers import CrossEncoder
from torch import Tensor, nn

from counterpoint.evaluation import Run, evaluate_run, exact_search
from counterpoint.fusion import fuse_scores
from counterpoint.schemas import RetrievalMode
from counterpoint.workers.config import TrainConfig
from counterpoint.workers.data import Example, Kind
from counterpoint.workers.dropout import apply_dropout_config
from counterpoint.workers.model import Batch, decay_groups

if TYPE_CHECKING:
    from counterpoint.workers.trainable import Evaluate


def _backbone_dir(path: Path) -> Path:
    """A sentence-transformers bi-encoder directory keeps its transformer in the root (new layout)
    or in ``0_Transformer``; a plain transformers checkpoint is its own backbone."""
    for candidate in (path / "0_Transformer", path):
        if (candidate / "config.json").is_file():
            return candidate
    return path


def is_cross_encoder_dir(path: Path) -> bool:
    """A directory saved by sentence-transformers' ``CrossEncoder`` (it says so in its config)."""
    config = path / "config_sentence_transformers.json"
    return config.is_file() and '"CrossEncoder"' in config.read_text(errors="ignore")


class CrossEncoderModel(nn.Module):
    """A sentence-transformers ``CrossEncoder`` plus its training loss (``bce`` or ``listwise``)."""

    def __init__(
        self, model: CrossEncoder, loss: str, *, in_batch_negatives: bool = True, head_lr: float | None = None
    ) -> None:
        super().__init__()
        if loss not in ("bce", "listwise"):
            raise ValueError(f"cross-encoders train with 'bce' or 'listwise', not {loss!r}")
        self.model = model
        self.loss_name = loss
        self.in_batch_negatives = in_batch_negatives
        self.head_lr = head_lr

    @classmethod
    def from_config(
        cls, config: TrainConfig, world_size: int = 1, *, model_path: str | None = None, device: str = "cpu"
    ) -> CrossEncoderModel:
        """Load ``config.model``: a saved cross-encoder as it is, anything else with a fresh head."""
        from counterpoint.models.paths import resolve_model_path

        path = Path(model_path or resolve_model_path(config.model))
        if is_cross_encoder_dir(path):
            model = CrossEncoder(str(path), device=device, max_length=config.max_seq_length)
        else:
            model = CrossEncoder(
                str(_backbone_dir(path)), num_labels=1, device=device, max_length=config.max_seq_length
            )
        apply_dropout_config(model.model, config)
        return cls(
            model, config.loss.name, in_batch_negatives=config.loss.in_batch_negatives, head_lr=config.head_lr
        )

    @classmethod
    def build_evaluator(cls, config: TrainConfig, kind: Kind, examples: list[Example]) -> Evaluate | None:
        """Reranking of ``config.eval.rerank``'s first stage (:class:`RerankTask`); None without it."""
        spec = config.eval.rerank
        if spec is None:
            return None
        return RerankTask(
            spec.path, spec.split, retriever=spec.retriever, top_k=spec.top_k, max_docs=spec.max_docs,
            max_queries=spec.max_queries, seed=config.seed, fusion_weights=spec.fusion_weights,
            mode=spec.mode,
        )  # fmt: skip

    def evaluate(self, evaluator: Evaluate) -> dict[str, float]:
        return evaluator(self)

    @property
    def temperature(self) -> float | None:
        return None  # bce and listwise score raw logits

    def log_model(self, name: str = "model") -> str:
        """Log the saved ``CrossEncoder`` directory as the run's artifact ``name``; its URI."""
        from counterpoint.infra.tracking import log_model_directory

        return log_model_directory(self.model, name=name)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def logits(self, queries: Sequence[str], documents: Sequence[str]) -> Tensor:
        """``(n,)`` relevance logits of the pairs, with a graph when gradients are enabled."""
        features = self.model.preprocess(list(zip(queries, documents, strict=True)))
        features = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in features.items()}
        return self.model(features)["scores"].reshape(-1)

    def compute_loss(self, batch: Batch) -> Tensor:
        if batch.kind != "triplets":
            raise ValueError(
                f"a cross-encoder trains on triplets (query, positive, negative), not {batch.kind}"
            )
        queries, positives, *negatives = batch.columns
        n, k = len(queries), len(negatives)
        # each query's group: its positive first, then its k negatives
        if self.loss_name == "bce" or not self.in_batch_negatives:
            groups = [[positives[i]] + [column[i] for column in negatives] for i in range(n)]
            own = self.logits([q for q in queries for _ in range(k + 1)], [d for g in groups for d in g])
            if self.loss_name == "bce":
                labels = torch.zeros(n, k + 1)
                labels[:, 0] = 1.0
                return F.binary_cross_entropy_with_logits(own, labels.reshape(-1).to(own.device))
            targets = torch.zeros(n, dtype=torch.long, device=own.device)
            return F.cross_entropy(own.view(n, k + 1), targets)
        # with in-batch negatives: each query against every document of the batch
        docs = list(positives) + [column[i] for column in negatives for i in range(n)]
        logits = self.logits([q for q in queries for _ in docs], docs * n).view(n, len(docs))
        return F.cross_entropy(logits, torch.arange(n, device=logits.device))

    def forward(self, batch: Batch) -> Tensor:
        return self.compute_loss(batch)

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups; with ``head_lr`` the classification head gets its own learning rate."""
        if self.head_lr is None:
            return decay_groups(self, weight_decay)
        head = self.head()
        body = nn.ModuleList([m for m in self.model.model.children() if m not in head])
        groups = decay_groups(body, weight_decay)
        return groups + [{**g, "lr": self.head_lr} for g in decay_groups(nn.ModuleList(head), weight_decay)]

    def head(self) -> list[nn.Module]:
        """The modules on top of the transformer (``classifier``, DistilBERT's ``pre_classifier``,
        decoder models' ``score``): what a fresh head consists of."""
        found = [getattr(self.model.model, n, None) for n in ("pre_classifier", "classifier", "score")]
        modules = [m for m in found if isinstance(m, nn.Module)]
        if not modules:
            raise ValueError(f"{type(self.model.model).__name__} has no classifier/score head for head_lr")
        return modules


class RerankTask:
    """A BEIR split's first-stage top-``k``, loaded once, reranked by each evaluated cross-encoder.

    ``query_ids`` keeps the queries it accepts (e.g. :func:`~counterpoint.datasets.is_dev_query`).
    ``mode`` picks the first stage as a collection search would: ``dense`` (exact search with
    ``retriever``), ``lexical`` (BM25) or ``hybrid`` (both fused by DBSF in the platform's own store);
    its scores are what the fused rows interpolate with the cross-encoder's."""

    def __init__(
        self,
        path: str | Path,
        split: str = "test",
        *,
        retriever: str = "all-MiniLM-L6-v2",
        top_k: int = 100,
        max_docs: int | None = None,
        max_queries: int | None = None,
        max_seq_length: int = 256,
        seed: int = 0,
        fusion_weights: Sequence[float] = (),
        mode: RetrievalMode = "dense",
        query_ids: Callable[[str], bool] | None = None,
    ) -> None:
        from counterpoint.models.embedder import TextEmbedder
        from counterpoint.workers.evaluate import RetrievalTask, store_runs

        task = RetrievalTask(path, split, max_docs, seed=seed, query_ids=query_ids, max_queries=max_queries)
        qids = list(task.queries)
        self.qrels, self.queries, self.corpus = task.qrels, task.queries, task.corpus
        embedder = TextEmbedder(retriever, max_seq_length=max_seq_length, batch_size=32)
        doc_ids = list(self.corpus)
        docs = embedder.embed([self.corpus[d] for d in doc_ids]).vectors
        queries = embedder.embed([self.queries[q] for q in qids]).vectors
        if mode == "dense":
            self.first_stage: Run = exact_search(queries, docs, qids, doc_ids, top_k)
        else:
            self.first_stage = store_runs(self.queries, queries, self.corpus, docs, [mode], top_k)[mode]
        self.mode = mode
        self.top_k = top_k
        self.fusion_weights = list(fusion_weights)

    def __call__(self, model: CrossEncoderModel, *, batch_size: int = 32) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            run: Run = {}
            with torch.no_grad():
                for qid, hits in self.first_stage.items():
                    doc_ids = list(hits)
                    scores = model.model.predict(
                        [(self.queries[qid], self.corpus[d]) for d in doc_ids],
                        batch_size=batch_size,
                        show_progress_bar=False,
                    )
                    run[qid] = {
                        d: float(s) for d, s in zip(doc_ids, np.asarray(scores).reshape(-1), strict=True)
                    }
        finally:
            model.train(was_training)
        results = self._scores(self.first_stage, "first_stage")
        results.update(self._scores(run, "rerank"))
        for weight in self.fusion_weights:
            results.update(self._scores(self.fused(run, weight), f"fused_w{weight:g}"))
        return results

    def fused(self, reranked: Run, weight: float) -> Run:
        """Each query's candidates scored by `fuse_scores` of the first stage and ``reranked``."""
        fused: Run = {}
        for qid, hits in self.first_stage.items():
            doc_ids = list(hits)
            scores = fuse_scores([hits[d] for d in doc_ids], [reranked[qid][d] for d in doc_ids], weight)
            fused[qid] = dict(zip(doc_ids, scores.tolist(), strict=True))
        return fused

    def _scores(self, run: Run, prefix: str) -> dict[str, float]:
        metrics = evaluate_run(run, self.qrels).as_dict()
        metrics.pop("n_queries", None)
        return {f"{prefix}_{k}": v for k, v in metrics.items()}
