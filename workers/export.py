"""Export a registered bi-encoder to an inference backend, checked against torch, kept in MLflow.

What ``counterpoint models export`` and a training job's ``export:`` list run, per backend:

1. download the model version (its sentence-transformers directory);
2. export the backend into a temporary directory (:mod:`counterpoint.models.export`);
3. score the torch model and the export on the same quality check: STS-B **dev** Spearman (the
   shipped copy; test is never used), through the same ``TextEmbedder`` the embed replica runs;
4. log both, and the loss, to the version's run (``export/torch/sts_dev_spearman``,
   ``export/<backend>/sts_dev_spearman``, ``export/<backend>/loss``);
5. a loss within ``tolerance`` points makes it servable: the files become the run's artifacts
   ``backends/<backend>/`` and the version is tagged ``counterpoint.export.<backend> = servable``;
   otherwise the tag says ``rejected: ...`` and nothing is uploaded, so no replica can serve it.
"""

from __future__ import annotations

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
    metric: str
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


def export_registered(
    ref: str,
    backend: Backend,
    *,
    tracking_uri: str,
    cache_dir: str | Path,
    tolerance: float = DEFAULT_EXPORT_TOLERANCE,
    sample: int | None = None,
    max_seq_length: int = 256,
    on_step: Callable[[str], None] = log.info,
) -> ExportReport:
    """Export, check, log and (when it passes) store ``backend`` for the version ``ref`` names."""
    from counterpoint.infra.model_exports import SERVABLE, artifact_path, export_tag, model_version
    from counterpoint.infra.tracking import client, fetch_model
    from counterpoint.models.embedder import TextEmbedder
    from counterpoint.workers.evaluate import sts_spearman

    if backend == "torch":
        raise InvalidInput("backend 'torch' is the model itself; export one of the others")
    if tolerance < 0:
        raise InvalidInput(f"tolerance must be >= 0 points, got {tolerance:g}")
    name, version, run_id = model_version(ref, tracking_uri)
    concrete = f"models:/{name}/{version}"
    on_step(f"downloading {concrete}")
    model_dir = str(fetch_model(concrete, tracking_uri, Path(cache_dir)))
    pairs = sts_dev_pairs(sample)
    with tempfile.TemporaryDirectory(prefix="counterpoint-export-") as tmp:
        on_step(f"exporting {backend}")
        exported = TextEmbedder(
            model_dir, max_seq_length=max_seq_length, backend=backend, export_dir=Path(tmp) / backend
        )
        on_step(f"scoring torch and {backend} on {len(pairs)} STS-B dev pairs")
        reference = TextEmbedder(model_dir, max_seq_length=max_seq_length)
        report = ExportReport(
            concrete,
            backend,
            "STS-B dev Spearman",
            sts_spearman(lambda texts: reference.embed(list(texts)).vectors, pairs),
            sts_spearman(lambda texts: exported.embed(list(texts)).vectors, pairs),
            tolerance,
        )
        mlflow = client(tracking_uri)
        mlflow.log_metric(run_id, "export/torch/sts_dev_spearman", report.torch)
        mlflow.log_metric(run_id, f"export/{backend}/sts_dev_spearman", report.exported)
        mlflow.log_metric(run_id, f"export/{backend}/loss", report.loss)
        if report.servable:
            on_step(f"storing the {backend} files with {concrete}")
            mlflow.log_artifacts(run_id, str(Path(tmp) / backend), artifact_path(backend))
        status = SERVABLE if report.servable else report.message.split("; ", 1)[1]
        mlflow.set_model_version_tag(name, version, export_tag(backend), status)
    return report
