"""The gateway: the one HTTP entry point (FastAPI), served as a Ray Serve ingress.

Layout, from the HTTP edge inwards:

- ``deployment.py``: the Ray Serve ingress; builds the services and hands them to ``app.create_app``.
- ``app.py``: builds the FastAPI app (handlers, middleware, routers); ``routes/``: one router per resource;
  ``dependencies.py``: the services the routes get; ``errors.py``, ``middleware.py``, ``ingest_body.py``.
- ``auth.py`` (keys, scopes, ``requires``, rate limits) and the services the routes call: ``core.py``
  (``GatewayCore``: embeddings, collections, ingest, search, rerank; with ``health.py``, ``reranking.py``,
  ``reindex.py``), ``jobs.py``, ``models.py`` (MLflow registry), ``generation.py``, ``backups.py`` +
  ``archive.py`` + ``offline.py``.

May import the counterpoint base, ``counterpoint.infra``, the other services' backends
(``services.embed``, ``services.rerank``, ``services.decode``) and ``workers.config`` (the training config a
job carries); never ``ui``, the CLI or the SDK.
Inside the gateway, only ``app.py`` imports ``routes``, and only ``deployment.py`` imports ``app.py``.
"""
