"""The rerank service: a cross-encoder on Ray Serve behind ``POST /v1/rerank`` and two-stage search."""
