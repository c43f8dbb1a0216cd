"""``counterpoint.services``: the Ray Serve side — the gateway and the model deployments.

``embed/`` (bi-encoder), ``rerank/`` (cross-encoder), ``decode/`` (causal LM), ``gateway/`` (the FastAPI
ingress and the services its routes call), ``model_loading`` (how embed and rerank load models),
``outages`` (dead replicas and lost connections as 503s) and ``app`` (the Serve graph the launcher and
the Helm chart run). May import the counterpoint base, ``counterpoint.infra`` and ``workers.config``
(the training config a job carries); never ``ui``, the CLI or the SDK (``tests/test_layers.py``).
"""
