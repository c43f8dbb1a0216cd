"""``counterpoint.infra``: adapters to the outside world — database, vector stores, MLflow, processes.

``db/`` (the registry database), ``vectors/`` (the embedded Qdrant engine and a Qdrant server behind one
protocol), ``tracking`` (MLflow runs, registry, model downloads), ``processes`` and ``sparse`` (files and
pids), ``tools/`` (developer tools). They may import the counterpoint base only.

``launcher`` and ``demo`` are the local stack (``counterpoint up``): they start and drive everything, so
they sit on the top floor with the CLI and may import any package (``tests/test_layers.py``).
"""
