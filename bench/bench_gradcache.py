"""Peak memory of one contrastive training step at batch 256: GradCache (chunk 32) vs the plain loss.

Reference: the plain step — InfoNCE (MNRL, scale 20) over 256 (query, positive abstract) pairs
from SciFact's train split, one forward + backward over the whole batch — with the same model
(all-MiniLM-L6-v2, max length 128), the same tokenised batch, in this same run.
Target: GradCache's step peak <= 0.5x the plain step's peak, with equal gradients (max |diff| printed).

How memory is measured: each variant runs in a fresh subprocess that loads the model, tokenises the
batch, then resets Linux's peak-RSS counter (``echo 5 > /proc/self/clear_refs``, which resets
``VmHWM``) and runs exactly one step. The reported number is ``VmHWM - VmRSS`` from just before the
step: the step's own high-water mark above the loaded process, i.e. activations kept for backward,
temporaries, and the parameter gradients (~87 MiB, present in both variants). Model weights,
libraries and the tokenised batch are excluded since they are identical in both. RSS is what the
OS had to provide, so it is honest for tensors from torch's C++ allocator; ``tracemalloc`` would
miss them (it traces Python-object allocations only). Where ``clear_refs`` is not writable, a thread
samples ``VmRSS`` every millisecond instead (the method used is printed).

Dropout is switched off (p = 0, train mode) so both variants compute the same function and the
gradients can be compared; ``--dropout`` keeps it on (memory only: the masks then differ between the
two variants' forward passes, so the gradients legitimately differ).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_KIB = 1024


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field} not in /proc/self/status")
    return int(match.group(1))


class PeakRss:
    """Peak resident memory of a code region above the RSS at its start (bytes)."""

    def __enter__(self) -> PeakRss:
        self.before = _status_kib("VmRSS") * _KIB
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM reset via /proc/self/clear_refs"
            self._sampler = None
        except OSError:
            self.method = "VmRSS sampled every 1 ms"
            self._peak = self.before
            self._stop = threading.Event()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _status_kib("VmRSS") * _KIB)
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        if self._sampler is None:
            self.peak = _status_kib("VmHWM") * _KIB
        else:
            self._stop.set()
            self._sampler.join()
            self.peak = self._peak

    @property
    def delta(self) -> int:
        return self.peak - self.before


def _pairs(n: int) -> tuple[list[str], list[str]]:
    from counterpoint.datasets import default_scifact, passage_text

    data = default_scifact()
    queries: list[str] = []
    docs: list[str] = []
    for query_id, judged in data.qrels("train").items():
        for doc_id, grade in judged.items():
            if grade > 0 and doc_id in data.corpus and len(queries) < n:
                doc = data.corpus[doc_id]
                queries.append(data.queries[query_id])
                docs.append(passage_text(doc["title"], doc["text"]))
    if len(queries) < n:
        raise SystemExit(f"only {len(queries)} training pairs available, asked for {n}")
    return queries, docs


def run_worker(args: argparse.Namespace) -> None:
    """One variant, one step, in this (fresh) process; prints one JSON line, saves the gradients."""
    import torch
    from sentence_transformers import SentenceTransformer

    from counterpoint.models.paths import resolve_model_path
    from counterpoint.workers.gradcache import GradCache
    from counterpoint.workers.losses import InfoNCELoss

    if args.threads:
        torch.set_num_threads(args.threads)
    model = SentenceTransformer(str(resolve_model_path(args.model)), device="cpu")
    model.max_seq_length = args.max_seq_length
    if not args.dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    model.train()
    queries, docs = _pairs(args.batch_size)
    anchors, positives = model.preprocess(queries), model.preprocess(docs)
    loss_fn = InfoNCELoss(scale=20.0)

    def encode(features: dict) -> torch.Tensor:
        return model(dict(features))["sentence_embedding"]

    torch.manual_seed(0)
    with PeakRss() as memory:
        start = time.perf_counter()
        if args.worker == "plain":
            loss = loss_fn(encode(anchors), encode(positives))
        else:
            loss = GradCache(encode, chunk_size=args.chunk_size)(loss_fn, anchors, positives)
        loss.backward()
        seconds = time.perf_counter() - start
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    torch.save(grads, args.out)
    print(
        json.dumps(
            {
                "variant": args.worker,
                "loss": loss.item(),
                "step_peak_bytes": memory.delta,
                "rss_before_bytes": memory.before,
                "method": memory.method,
                "seconds": seconds,
                "anchor_shape": list(anchors["input_ids"].shape),
                "positive_shape": list(positives["input_ids"].shape),
                "grad_bytes": sum(g.numel() * g.element_size() for g in grads.values()),
            }
        )
    )


def _spawn(variant: str, args: argparse.Namespace, out: Path) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        variant,
        "--out",
        str(out),
        "--model",
        args.model,
        "--batch-size",
        str(args.batch_size),
        "--chunk-size",
        str(args.chunk_size),
        "--max-seq-length",
        str(args.max_seq_length),
        "--threads",
        str(args.threads),
    ] + (["--dropout"] if args.dropout else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="packaged name or local directory")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--dropout", action="store_true", help="keep dropout on (gradients then differ)")
    parser.add_argument("--worker", choices=["plain", "gradcache"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return

    import torch

    mib = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-gradcache-") as tmp:
        results = {v: _spawn(v, args, Path(tmp) / f"{v}.pt") for v in ("plain", "gradcache")}
        plain_grads = torch.load(Path(tmp) / "plain.pt")
        cached_grads = torch.load(Path(tmp) / "gradcache.pt")
    max_diff = max((plain_grads[n] - cached_grads[n]).abs().max().item() for n in plain_grads)
    max_grad = max(g.abs().max().item() for g in plain_grads.values())
    plain, cached = results["plain"], results["gradcache"]
    ratio = cached["step_peak_bytes"] / plain["step_peak_bytes"]

    print(
        f"model {args.model}, batch {args.batch_size} pairs, max_seq_length {args.max_seq_length}, "
        f"dropout {'on' if args.dropout else 'off'}, torch threads {torch.get_num_threads() if not args.threads else args.threads}"
    )
    print(
        f"tokenised anchors {plain['anchor_shape']}, positives {plain['positive_shape']}; "
        f"memory: {plain['method']}; parameter gradients {plain['grad_bytes'] / mib:.0f} MiB (in both)"
    )
    print(f"{'variant':<28}{'step peak MiB':>14}{'seconds':>10}{'loss':>12}")
    print(
        f"{'plain (reference)':<28}{plain['step_peak_bytes'] / mib:>14.0f}{plain['seconds']:>10.1f}{plain['loss']:>12.6f}"
    )
    label = f"GradCache chunk {args.chunk_size}"
    print(
        f"{label:<28}{cached['step_peak_bytes'] / mib:>14.0f}{cached['seconds']:>10.1f}{cached['loss']:>12.6f}"
    )
    print(
        f"ratio GradCache/plain: {ratio:.3f}x (target <= 0.5x: {'met' if ratio <= 0.5 else 'NOT met'}); "
        f"time ratio {cached['seconds'] / plain['seconds']:.2f}x"
    )
    print(
        f"gradients: max |diff| {max_diff:.2e} (largest |grad| {max_grad:.2e}); "
        f"allclose(atol=1e-5): {max_diff <= 1e-5}"
        + (" (dropout on: masks differ by design)" if args.dropout else "")
    )


if __name__ == "__main__":
    main()
