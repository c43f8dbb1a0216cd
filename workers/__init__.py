"""``counterpoint.workers``: the Ray Train side — training jobs and what they train with.

Base modules: ``config`` (the job config), ``data`` (examples from files and BEIR), ``losses/`` (the
embedding losses and their registry), ``gradcache``, ``fast_dropout``/``dropout``, ``embedding_grads``,
``model`` (bi-encoder) and ``cross_encoder`` (reranker), both :class:`~.trainable.TrainableModel`;
``evaluate`` and ``mining``; on top, the ``train/`` package (the job: loop, checkpoints, tracking,
driver, ``python -m counterpoint.workers.train``).

Imports: counterpoint base (errors, settings, schemas, jsonl, textfiles, models, ...) and
``counterpoint.infra``; never ``services``, ``ui``, the CLI or the client.
"""
