"""Exported inference backends: the transformer of a model as an ONNX Runtime or OpenVINO graph.

``torch`` is the reference (the model as sentence-transformers runs it); the others run the same
transformer exported once, through each runtime's own tools:

* ``onnx``: PyTorch's exporter (``torch.onnx.export``), run by ONNX Runtime;
* ``onnx-int8``: that file after ONNX Runtime's ``quantize_dynamic`` (int8 weights, activations
  quantized on the fly: no calibration data needed);
* ``openvino``: the ONNX file converted by OpenVINO (``convert_model``) and saved as IR;
* ``openvino-int8``: that IR after NNCF's post-training (static) quantization, calibrated on a
  sample of texts (:func:`calibration_texts`).

Only the transformer is exported. Tokenisation and everything after it (a bi-encoder's pooling and
normalisation, a cross-encoder's activation) stay the model's own sentence-transformers modules, so
every backend tokenises and pools exactly as the torch model does. sentence-transformers' own
``backend=`` needs ``optimum``, which does not install beside transformers 5; this module uses the
tools ``optimum`` itself calls.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

from counterpoint.errors import InvalidInput
from counterpoint.settings import Backend

BACKENDS: tuple[str, ...] = get_args(Backend)
GRAPH_FILE = {
    "onnx": "model.onnx",
    "onnx-int8": "model.onnx",
    "openvino": "model.xml",
    "openvino-int8": "model.xml",
}
MANIFEST = "export.json"
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Calibration = (
    Sequence[str] | Sequence[tuple[str, str]] | Callable[[], Sequence[str] | Sequence[tuple[str, str]]]
)
"""Texts (a bi-encoder) or pairs (a cross-encoder) for static int8 calibration, or a function giving them."""
Output = Literal["last_hidden_state", "logits"]
"""What the exported graph returns: a bi-encoder's token embeddings, or a cross-encoder's logits."""


def int8_accelerated(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies int8 in hardware (AVX512-VNNI, AVX-VNNI, AMX). Without it an int8
    graph is no faster than fp32 (bench_backends on an AVX2-only CPU: openvino-int8 1.0-1.1x torch)."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def auto_backend(packaged: bool) -> Backend:
    """What ``embed_backend=auto`` runs a default model with: for the packaged model, whose exports
    ``bench/bench_backends.py`` measured with no quality lost, the fastest on this CPU (openvino-int8
    with int8 instructions, openvino fp32 without); for a user's own model torch, since nobody
    checked its export."""
    if not packaged:
        return "torch"
    return "openvino-int8" if int8_accelerated() else "openvino"


def parse_backend(name: str, where: str = "backend") -> Backend:
    """``name`` as a `Backend`, or an `InvalidInput` naming ``where`` and the choices."""
    if name not in BACKENDS:
        raise InvalidInput(f"{where}: unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
    return name  # type: ignore[return-value]


def split_backend(ref: str) -> tuple[str, Backend]:
    """``"models:/x/3?backend=onnx-int8"`` -> ``("models:/x/3", "onnx-int8")``; no query: torch.

    A served model's name carries its backend as a query, so every replica (and a collection that
    remembers its model) means the same weights *and* runtime without any shared state."""
    base, sep, query = ref.partition("?")
    if not sep:
        return ref, "torch"
    key, _, value = query.partition("=")
    if key != "backend" or not value:
        raise InvalidInput(f"model '{ref}': the one option a model name takes is ?backend=NAME")
    return base, parse_backend(value, f"model '{ref}'")


def names_default(name: str | None, default_id: str) -> bool:
    """Whether ``name`` asks for the default model as served (``default_id``): no name, that id, or
    its plain name, what OpenAI-style clients send (``all-MiniLM-L6-v2`` for the default served as
    ``all-MiniLM-L6-v2?backend=openvino``)."""
    return not name or name in (default_id, split_backend(default_id)[0])


def with_backend(ref: str, backend: Backend | None) -> str:
    """The served name of ``ref`` run by ``backend`` (torch: the plain name)."""
    base, current = split_backend(ref)
    backend = backend or current
    return base if backend == "torch" else f"{base}?backend={backend}"


class _GraphModule(nn.Module):
    """The transformer with positional token inputs and one output, as the exporter wants it."""

    def __init__(self, model: nn.Module, inputs: Sequence[str], output: Output) -> None:
        super().__init__()
        self.model, self.inputs, self.output = model, tuple(inputs), output

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(**dict(zip(self.inputs, tensors, strict=True))), self.output)


def graph_inputs(model: nn.Module, tokenizer: Any) -> list[str]:
    """The token inputs both the tokenizer produces and the transformer's forward accepts."""
    produced = tokenizer(["a"], return_tensors="np")
    accepted = inspect.signature(model.forward).parameters
    return [name for name in TOKEN_INPUTS if name in produced and name in accepted]


def calibration_texts(n: int = 300) -> list[str]:
    """A fixed sample for static int8 calibration: STS-B train sentences and SciFact abstracts
    (shipped with the package), so short and long inputs both set the activation ranges."""
    from counterpoint.datasets import (
        default_scifact_dir,
        default_stsb_dir,
        iter_corpus,
        load_sts,
        passage_text,
    )

    sentences = list(
        dict.fromkeys(s for a, b, _ in load_sts(default_stsb_dir() / "train.tsv.gz") for s in (a, b))
    )
    abstracts = [
        passage_text(d["title"], d["text"])
        for _, d in zip(range(n // 3), iter_corpus(default_scifact_dir()), strict=False)
    ]
    return sentences[: n - len(abstracts)] + abstracts


def calibration_pairs(n: int = 300) -> list[tuple[str, str]]:
    """Static int8 calibration for cross-encoders: STS-B train sentence pairs and (title, abstract)
    pairs of SciFact, a short and a long kind of pair."""
    from counterpoint.datasets import default_scifact_dir, default_stsb_dir, iter_corpus, load_sts

    sentences = [(a, b) for a, b, _ in load_sts(default_stsb_dir() / "train.tsv.gz")]
    abstracts = [
        (d["title"], d["text"])
        for _, d in zip(range(n // 3), iter_corpus(default_scifact_dir()), strict=False)
    ]
    return sentences[: n - len(abstracts)] + abstracts


def export_graph(
    model: nn.Module,
    tokenizer: Any,
    backend: Backend,
    out_dir: Path,
    *,
    output: Output = "last_hidden_state",
    max_length: int = 256,
    calibration: Calibration = calibration_texts,
) -> Path:
    """Write ``backend``'s graph of ``model`` (a Hugging Face transformer) into ``out_dir``, with a
    manifest naming its inputs and output; returns ``out_dir``."""
    if backend == "torch":
        raise InvalidInput("backend 'torch' runs the model itself; there is nothing to export")
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = graph_inputs(model, tokenizer)
    onnx_file = out_dir / "model.onnx" if backend.startswith("onnx") else out_dir / "source.onnx"
    _export_onnx(model, tokenizer, inputs, output, onnx_file)
    if backend == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = out_dir / "fp32.onnx"
        onnx_file.rename(fp32)
        quantize_dynamic(str(fp32), str(onnx_file), weight_type=QuantType.QInt8)
        fp32.unlink()
    elif backend.startswith("openvino"):
        import openvino as ov

        graph = ov.convert_model(str(onnx_file))
        if backend == "openvino-int8":
            graph = _nncf_int8(
                graph,
                tokenizer,
                inputs,
                list(calibration() if callable(calibration) else calibration),
                max_length,
            )
        ov.save_model(graph, str(out_dir / "model.xml"), compress_to_fp16=False)
        onnx_file.unlink()
    (out_dir / MANIFEST).write_text(json.dumps({"backend": backend, "inputs": inputs, "output": output}))
    return out_dir


def _export_onnx(model: nn.Module, tokenizer: Any, inputs: list[str], output: Output, path: Path) -> None:
    sample = tokenizer(["a sentence", "another, longer sentence"], padding=True, return_tensors="pt")
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "tokens"} for name in inputs}
    axes[output] = {0: "batch", 1: "tokens"} if output == "last_hidden_state" else {0: "batch"}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(
                _GraphModule(model, inputs, output),
                tuple(sample[name] for name in inputs),
                str(path),
                input_names=inputs,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,  # the TorchScript exporter: dynamic axes for any transformer, no onnxscript
            )
    finally:
        model.train(was_training)


def _nncf_int8(graph: Any, tokenizer: Any, inputs: list[str], texts: list[str], max_length: int) -> Any:
    """NNCF's static post-training quantization, activation ranges from ``texts`` in batches of 8."""
    import nncf

    batches = []
    for start in range(0, len(texts), 8):
        enc = tokenizer(
            texts[start : start + 8],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        batches.append({name: enc[name].astype(np.int64) for name in inputs})
    return nncf.quantize(
        graph, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches)
    )


def ensure_exported(
    model: nn.Module, tokenizer: Any, backend: Backend, directory: Path, **options: Any
) -> Path:
    """``directory`` holding ``backend``'s export of ``model``, exported now unless it already is.

    Exports into a sibling temporary directory first and renames it, so an interrupted export never
    leaves a directory that looks complete."""
    if (directory / MANIFEST).is_file():
        return directory
    import os
    import shutil

    partial = directory.with_name(f"{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        export_graph(model, tokenizer, backend, partial, **options)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.rename(directory)
    except OSError:  # another process finished the same export first
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def graph_backend(
    model: nn.Module,
    tokenizer: Any,
    backend: Backend,
    export_dir: str | Path | None,
    *,
    threads: int | None = None,
    **options: Any,
) -> GraphRunner | None:
    """What an embedder or reranker runs ``backend`` with: None for torch, otherwise the graph in
    ``export_dir`` (exported there first if needed), after which torch's copy of the weights is freed."""
    if backend == "torch":
        return None
    if export_dir is None:
        raise InvalidInput(f"backend '{backend}' needs the directory of its exported graph")
    runner = GraphRunner(
        ensure_exported(model, tokenizer, backend, Path(export_dir), **options), threads=threads
    )
    model.to("meta")  # the graph holds the weights now
    return runner


class GraphRunner:
    """Runs an exported graph (:func:`export_graph`'s directory): token arrays in, its output out.

    A runtime fixes its thread count when the graph is loaded, so `set_threads` keeps one loaded
    copy per count asked for (the query lane switches between one thread and all cores)."""

    def __init__(self, directory: str | Path, *, threads: int | None = None) -> None:
        directory = Path(directory)
        manifest_file = directory / MANIFEST
        if not manifest_file.is_file():
            raise InvalidInput(f"{directory} holds no exported model ({MANIFEST} is missing)")
        manifest = json.loads(manifest_file.read_text())
        self.backend: Backend = parse_backend(manifest["backend"])
        self.inputs: list[str] = manifest["inputs"]
        self.graph = str(directory / GRAPH_FILE[self.backend])
        self._loaded: dict[int | None, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}
        self.threads = threads
        self._run = self._load(threads)

    def _load(self, threads: int | None) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        if threads not in self._loaded:
            load = self._onnx_runtime if self.backend.startswith("onnx") else self._openvino
            self._loaded[threads] = load(threads)
        return self._loaded[threads]

    def _onnx_runtime(self, threads: int | None) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(self.graph, options, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)[0]

    def _openvino(self, threads: int | None) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        import openvino as ov

        # f32 unless the graph itself says int8: OpenVINO would otherwise run bf16 on CPUs that have
        # it (AVX512-BF16, AMX), which is a different backend than the one named here
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(self.graph, "CPU", config)
        return lambda feeds: compiled(feeds)[0]

    def set_threads(self, threads: int | None) -> None:
        """Run the next calls on ``threads`` threads (None: the runtime's default), loading the graph
        again for a count not used before."""
        if threads != self.threads:
            self._run = self._load(threads)
            self.threads = threads

    def __call__(self, features: dict[str, Any]) -> np.ndarray:
        """The graph's output for tokenizer ``features`` (tensors or arrays; extra keys ignored)."""
        feeds = {}
        for name in self.inputs:
            value = features[name]
            feeds[name] = (value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)).astype(
                np.int64
            )
        return np.asarray(self._run(feeds))
