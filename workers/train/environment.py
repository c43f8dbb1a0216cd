"""Environment defaults of a training process, set before torch, transformers, Ray or MLflow load.

Imported first by the package (``counterpoint.workers.train``); Ray Train propagates the variables
from the driver to the controller and the workers. Imports: the standard library only.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A worker imports torch + transformers before it joins the group: on 2 busy cores that can take
# longer than Ray's 60 s default, and a timed-out start counts as a failure. (Propagated by Ray Train
# from this driver to the controller and workers.)
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
# MLflow's HTTP client retries a refused connection 7 times with a doubling backoff (about 4 minutes
# per call): a training loop would stall that long at every report while its server restarts. Three
# quick retries (~7 s), then `RunLogger` buffers the metrics and training goes on.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
