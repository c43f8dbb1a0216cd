"""Export a registered model to an inference backend, checked against torch, kept in MLflow.

What ``counterpoint models export`` and a training job's ``export:`` list run, per backend:

1. download the model version (its sentence-transformers directory);
2. export the backend into a temporary directory (:mod:`counterpoint.models.export`);
3. score the torch model and the export on the same quality check, through the classes the replicas
   run (test splits are never used):

   * a bi-encoder (``TextEmbedder``): STS-B **dev** Spearman (the shipped copy);
   * a cross-encoder (``TextReranker``): nDCG@10 reranking the base bi-encoder's top 20 for the
     SciFact dev queries carved from train (:func:`~counterpoint.datasets.is_dev_query`), over a
     2,000-abstract sample of the corpus that keeps every judged one (``sample`` queries: 10x that
     many abstracts, at least 200);

4. log both, and the loss, to the version's run (``export/torch/<metric>``,
   ``export/<backend>/<metric>``, ``export/<backend>/loss``);
5. a loss within ``tolerance`` points makes it servable: the files become the run's artifacts
   ``backends/<backend>/`` and the version is tagged ``counterpoint.export.<backend> = servable``;
   otherwise the tag says ``rejected: ...`` and nothing is uploaded, so no replica can serve it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from counterpoint.errors import InvalidInput
from counterpoint.settings import DEFAULT_EXPORT_TOLERANCE, Backend

log = logging.getLogger("counterpoint.workers.export")


@dataclass(frozen=True)
class ExportReport:
    model: str  # models:/NAME/VERSION
    backend: Backend
    metric: str  # what was compared, e.g. "STS-B dev Spearman"
    torch: float
    exported: float
    tolerance: float

    @property
    def loss(self) -> float:
        return self.torch - self.exported

    @property
    def servable(self) -> bool:
        return self.loss <= self.tolerance

    @property
    def message(self) -> str:
        verdict = (
            "servable"
            if self.servable
            else f"rejected: it loses {self.loss:.2f} points, more than the tolerance of {self.tolerance:g}"
        )
        return (
            f"{self.model} as {self.backend}: {self.metric} {self.exported:.2f} vs torch {self.torch:.2f} "
            f"({-self.loss:+.2f}); {verdict}"
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "loss": self.loss, "servable": self.servable}


def sts_dev_pairs(sample: int | None = None) -> list[tuple[str, str, float]]:
    """STS-B dev (the shipped copy), or its first ``sample`` pairs."""
    from counterpoint.datasets import default_stsb_dir, load_sts

    pairs = [(p[0], p[1], float(p[2])) for p in load_sts(default_stsb_dir() / "dev.tsv.gz")]
    return pairs[:sample] if sample else pairs


def is_cross_encoder(model_dir: str | Path) -> bool:
    """A sequence-classification head (what a trained reranker saves) rather than an encoder."""
    config = Path(model_dir) / "config.json"
    architectures = json.loads(config.read_text()).get("architectures") or [] if config.is_file() else []
    return any(a.endswith("ForSequenceClassification") for a in architectures)


class QualityCheck:
    """The metric an export is held to, scored the same way for the torch model and the export."""

    def __init__(self, model_dir: str, *, sample: int | None, max_length: int) -> None:
        self.model_dir, self.max_length = model_dir, max_length
        self.cross = is_cross_encoder(model_dir)
        if self.cross:
            from counterpoint.datasets import default_scifact_dir, is_dev_query
            from counterpoint.workers.cross_encoder import RerankTask

            self.name, self.key = "SciFact dev nDCG@10 (reranking top 20)", "scifact_dev_ndcg_at_10"
            self.task = RerankTask(
                default_scifact_dir(), "train", top_k=20, max_queries=sample, query_ids=is_dev_query,
                max_docs=2000 if sample is None else max(200, 10 * sample),  # a sample: a quick check
            )  # fmt: skip
        else:
            self.name, self.key = "STS-B dev Spearman", "sts_dev_spearman"
            self.pairs = sts_dev_pairs(sample)

    def size(self) -> str:
        return (
            f"{len(self.task.queries)} SciFact dev queries"
            if self.cross
            else f"{len(self.pairs)} STS-B dev pairs"
        )

    def load(self, backend: Backend, export_dir: Path | None = None) -> object:
        from counterpoint.models.embedder import TextEmbedder
        from counterpoint.models.reranker import TextReranker

        model_class = TextReranker if self.cross else TextEmbedder
        size = {"max_length": self.max_length} if self.cross else {"max_seq_length": self.max_length}
        return model_class(self.model_dir, **size, backend=backend, export_dir=export_dir)

    def score(self, model: object) -> float:
        from counterpoint.evaluation import evaluate_run
        from counterpoint.workers.evaluate import sts_spearman

        if not self.cross:
            return sts_spearman(lambda texts: model.embed(list(texts)).vectors, self.pairs)  # type: ignore[attr-defined]
        task = self.task
        run = {}
        for qid, hits in task.first_stage.items():
            ids = list(hits)
            scores = model.score(task.queries[qid], [task.corpus[d] for d in ids]).scores  # type: ignore[attr-defined]
            run[qid] = dict(zip(ids, scores.tolist(), strict=True))
        return evaluate_run(run, task.qrels).ndcg_at_10


def export_registered(
    ref: str,
    backend: Backend,
    *,
    tracking_uri: str,
    cache_dir: str | Path,
    tolerance: float = DEFAULT_EXPORT_TOLERANCE,
    sample: int | None = None,
    max_length: int = 256,
    on_step: Callable[[str], None] = log.info,
) -> ExportReport:
    """Export, check, log and (when it passes) store ``backend`` for the version ``ref`` names.
    ``sample`` scores on the first N dev pairs (bi-encoder) or queries (cross-encoder) only."""
    from counterpoint.infra.model_exports import SERVABLE, artifact_path, export_tag, model_version
    from counterpoint.infra.tracking import client, fetch_model

    if backend == "torch":
        raise InvalidInput("backend 'torch' is the model itself; export one of the others")
    if tolerance < 0:
        raise InvalidInput(f"tolerance must be >= 0 points, got {tolerance:g}")
    name, version, run_id = model_version(ref, tracking_uri)
    concrete = f"models:/{name}/{version}"
    on_step(f"downloading {concrete}")
    model_dir = str(fetch_model(concrete, tracking_uri, Path(cache_dir)))
    check = QualityCheck(model_dir, sample=sample, max_length=max_length)
    with tempfile.TemporaryDirectory(prefix="counterpoint-export-") as tmp:
        on_step(f"exporting {backend}")
        exported = check.load(backend, Path(tmp) / backend)
        on_step(f"scoring torch and {backend} on {check.size()}")
        report = ExportReport(
            concrete, backend, check.name, check.score(check.load("torch")), check.score(exported), tolerance
        )
        mlflow = client(tracking_uri)
        mlflow.log_metric(run_id, f"export/torch/{check.key}", report.torch)
        mlflow.log_metric(run_id, f"export/{backend}/{check.key}", report.exported)
        mlflow.log_metric(run_id, f"export/{backend}/loss", report.loss)
        if report.servable:
            on_step(f"storing the {backend} files with {concrete}")
            mlflow.log_artifacts(run_id, str(Path(tmp) / backend), artifact_path(backend))
        status = SERVABLE if report.servable else report.message.split("; ", 1)[1]
        mlflow.set_model_version_tag(name, version, export_tag(backend), status)
    return report
