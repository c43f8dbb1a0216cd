"""Counterpoint: train, serve and search contrastive embedding models."""

from __future__ import annotations

__version__ = "0.1.0"
