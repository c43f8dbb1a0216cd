"""Counterpoint: train, serve and search contrastive embedding models.

This folder is the base floor every other package builds on — ``settings``, ``errors``, ``schemas/``,
``jsonl``, ``textfiles``, ``datasets``, ``evaluation``, ``fusion``, ``models/``, ``decoding/`` — which
imports nothing above it; and, on top of everything, what drives the platform: the SDK (``client/``,
which needs only the base) and the CLI (``cli/``). ``infra``, ``workers``, ``services`` and ``ui`` are
installed as subpackages of this one (``setup.py``); README's "Floors" and ``tests/test_layers.py``
give the import rules.
"""

from __future__ import annotations

__version__ = "0.1.0"
