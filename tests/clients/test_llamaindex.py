"""LlamaIndex (`llama-index-embeddings-openai`, `llama-index-llms-openai`'s `OpenAILike`) against a real
stack. Its OpenAI integrations pin openai<3 while the rest of the suite tests openai 3, so the scenario
runs in its own environment, `.venv-llamaindex`, made by `make install`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
PYTHON = HERE.parents[1] / ".venv-llamaindex" / "bin" / "python"
LM = "SmolLM2-135M-Instruct"
EMBED = "all-MiniLM-L6-v2"


def test_llamaindex_retrieves_completes_and_chats(stack: Stack) -> None:
    if not PYTHON.exists():
        pytest.fail(
            f"{PYTHON} is missing: `make install` creates it from {HERE / 'llamaindex-requirements.txt'}"
        )
    run = subprocess.run(
        [str(PYTHON), str(HERE / "llamaindex_scenario.py"), stack.url, stack.api_key, EMBED, LM],
        capture_output=True, text=True, timeout=300, env={**stack.env, "PYTHONPATH": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert got["top_hit"] == "Sourdough bread rises with wild yeast."
    ours = stack.client().embed(["Bicycles have two wheels and pedals."]).data[0].embedding
    np.testing.assert_allclose(got["vector"], ours, atol=1e-5)
    assert got["complete"] and got["stream_complete"] == got["complete"]  # temperature 0: greedy
    assert got["chat"] and got["stream_chat"] == got["chat"]
