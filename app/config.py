"""One Settings object for the whole service (pydantic-settings, prefix REAL_)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "changethis", "secret", "dev-insecure-secret-key", "placeholder"}
)
DEV_SECRET_KEY = "dev-insecure-secret-key"


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to change."""


class Settings(BaseSettings):
    """Every knob of the service; read once from the environment (REAL_*) or a .env file."""

    model_config = SettingsConfigDict(env_prefix="REAL_", env_file=".env", extra="ignore")

    env: Environment = Environment.DEV
    database_url: str = "sqlite:///./real-align.db"
    broker_url: str | None = None
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    bootstrap_admin_key: SecretStr | None = None
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)
    # On CPU a model batch also stops at this many padded tokens (its texts × its longest text): texts are
    # embedded shortest first, so long answers go a few at a time and short ones embedding_batch_size at a
    # time, which CPU caches like (long AlpacaEval answers 1.1–1.2× faster than batches of 32: docs/
    # benchmarks.md). 0: embedding_batch_size texts a batch, whatever their length. Accelerators ignore it.
    embedding_batch_tokens: int = Field(default=1536, ge=0)
    # Tokens kept per response when a causal LM embeds (the paper used 128 and 512); further capped by the
    # model's positions. Sentence-transformers models keep their own max_seq_length. Vectors are keyed by
    # (model, text), so change this together with the model name, or old vectors are reused.
    embedding_max_length: int = Field(default=512, ge=1, le=1_000_000)
    embedding_threads: int = Field(default=2, ge=1, le=256)
    # Where the sentence-transformers model runs: cpu, cuda, cuda:N, mps, or auto (cuda when there is one).
    # A GPU worker sets this with a larger REAL_EMBEDDING_BATCH_SIZE (256-1024) and may run in half
    # precision (float16/bfloat16; same vectors, cosine 1.0 to float32; ignored on cpu): docs/benchmarks.md.
    embedding_device: str = Field(default="cpu", pattern=r"^(cpu|auto|mps|cuda(:[0-9]+)?)$")
    embedding_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    # Threads that tokenize a task's texts (each with its own tokenizer copy); more than 1 pays off on a
    # GPU worker, where one thread cannot tokenize as fast as the GPU embeds.
    embedding_tokenizer_threads: int = Field(default=1, ge=1, le=256)
    # ONNX exports and distilled static models of a project's model (app/embeddings/backends.py).
    embedding_cache_dir: Path = Path("./models")
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    # A pooled connection that sat idle in the pool longer than this many seconds gets a liveness round trip
    # on checkout (app/db/session.py), so one the server dropped meanwhile (a restart) is replaced before a
    # request uses it. A busy process checks its connections back out within milliseconds and never pings;
    # a quiet one pays one round trip per request. 0 pings every checkout (as db_pool_pre_ping); negative or
    # None never pings, and then a dropped connection fails one request with 503, which invalidates the
    # pool so the next ones reconnect. Not used on SQLite (no server to drop a connection).
    db_ping_after_idle_s: float | None = 1.0
    # A liveness round trip before every checkout, whatever the idle time (SQLAlchemy's pool_pre_ping);
    # when on, db_ping_after_idle_s adds nothing. For where connections are cut often (some proxies).
    db_pool_pre_ping: bool = False
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    export_dir: Path = Path("./exports")
    # An fsspec URL (e.g. s3://bucket/prefix; `pip install real-align[s3]`) to write exports to instead of
    # export_dir. Credentials come from the filesystem's own environment (AWS_* for s3fs).
    export_url: str | None = None
    # A running export whose heartbeat is older than this is taken as dead and queued again.
    export_stale_after_seconds: int = Field(default=45, ge=1)
    export_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # An export reads its snapshot only once no label stamped by it can still commit: this long after
    # snapshot_at (a label is written within moments of its stamp), and on Postgres once no transaction that
    # began by then and has written is open, waiting at most the statement timeout (app/exports/snapshot.py).
    export_settle_seconds: float = Field(default=0.25, ge=0, le=60)
    # Rows per Parquet row group (and per batch buffered before it is written).
    export_row_group_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    # How often exports.run_schedules looks for due export schedules (a cron slot runs up to this late).
    export_schedule_check_seconds: float = Field(default=60.0, gt=0)
    # Export webhooks: per-attempt timeout, attempts before a delivery fails, and the backoff between
    # attempts (doubling from webhook_backoff_seconds, capped); the sweep re-sends due retries.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_seconds: float = Field(default=30.0, ge=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    webhook_sweep_interval_seconds: float = Field(default=30.0, gt=0)
    # Refuse webhook targets that resolve to loopback, private, link-local or other non-global addresses, so
    # a data-team key cannot make workers call internal services (SSRF). On for a trusted internal receiver.
    webhook_allow_private_targets: bool = False
    # Cross-prompt neighbour indexes, versioned per project and model; shared by the API and the workers.
    index_dir: Path = Path("./indexes")
    # Below this many distinct vectors the index is an exact numpy matrix (as fast as HNSW at that size and
    # exact); at or above it, hnswlib (see docs/benchmarks.md).
    neighbors_hnsw_threshold: int = Field(default=50_000, ge=0)
    # HNSW search breadth; 100 keeps recall@10 at or above 0.98 on MiniLM vectors.
    neighbors_ef_search: int = Field(default=100, ge=100, le=10_000)
    # While a project still has prompts waiting for embeddings, rebuild its index at most this often.
    neighbors_rebuild_interval_seconds: float = Field(default=300.0, ge=0)
    # With no index file yet, the API ranks exactly from the database up to this many vectors, else 409.
    neighbors_on_the_fly_max_vectors: int = Field(default=5_000, ge=0)
    neighbors_keep_versions: int = Field(default=3, ge=1)
    # How often projects with skip_redundant_pairs re-check their queued pairs against new labels.
    redundant_sweep_interval_seconds: float = Field(default=300.0, gt=0)
    # Prompts per embedding task: small enough that several workers share one big ingest.
    embed_chunk_prompts: int = Field(default=64, ge=1, le=10_000)
    max_items_per_batch: int = Field(default=500, ge=1)
    max_responses_per_prompt: int = Field(default=16, ge=2)
    max_text_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # POST /v1/projects/{id}/prompts:upload streams its JSONL body (max_body_bytes caps each line instead):
    # no cap on the whole body unless this is set; lines are stored upload_batch_lines at a time, one
    # transaction each, and at most upload_max_errors refused lines are kept (all are counted).
    max_upload_bytes: int | None = Field(default=None, ge=1024)
    upload_batch_lines: int = Field(default=1_000, ge=1, le=100_000)
    upload_max_errors: int = Field(default=10_000, ge=0)
    # A prompt's free-form metadata: at most this many bytes (compact UTF-8 JSON) and keys (nested count).
    max_metadata_bytes: int = Field(default=64 * 1024, ge=2)
    max_metadata_keys: int = Field(default=256, ge=0)
    # Budget simulations (POST /v1/simulations) are CPU-heavy: inputs over these are refused (422), a gzipped
    # upload may unpack to at most simulation_max_input_bytes, and a running one whose worker stopped
    # heartbeating for simulation_stale_after_seconds is marked failed by maintenance.reconcile.
    simulation_max_prompts: int = Field(default=5_000, ge=2)
    simulation_max_responses: int = Field(default=50_000, ge=2)
    simulation_max_input_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    simulation_heartbeat_seconds: float = Field(default=15.0, gt=0)
    simulation_stale_after_seconds: int = Field(default=600, ge=1)
    # A prompt still waiting for embeddings after this long is re-enqueued by the reconciler.
    reconcile_after_seconds: int = Field(default=120, ge=1)
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    # The task outbox (app/outbox/service.py): how often outbox.relay looks for tasks to send again, how
    # often a Celery worker marks a running task alive, when a run that stopped beating is taken as dead,
    # and when a sent task that no run took, while its queue is empty, is taken as lost.
    outbox_relay_interval_seconds: float = Field(default=5.0, gt=0)
    outbox_heartbeat_seconds: float = Field(default=5.0, gt=0)
    outbox_stale_after_seconds: float = Field(default=15.0, gt=0)
    outbox_lost_after_seconds: float = Field(default=20.0, gt=0)
    # Requests per minute per API key, and failed authentications per minute per client address.
    rate_limit_per_minute: int = Field(default=1200, ge=1)
    auth_failures_per_minute: int = Field(default=20, ge=1)
    # Where rate-limit counters live: Redis when set (or when the broker is Redis), else this process.
    rate_limit_redis_url: str | None = None
    # Proxies (comma-separated IPs or CIDRs) whose X-Forwarded-For / X-Forwarded-Proto are believed: uvicorn's
    # forwarded_allow_ips. The client address (what failed authentications are counted against) is the
    # rightmost hop not among them. Default none: the socket peer, whatever the headers say.
    trusted_proxies: str = ""
    max_active_leases_per_annotator: int = Field(default=10, ge=1)
    # Claims and labels a server process works on at once; the others wait on its event loop, holding no
    # thread and no database connection (more threads only fight over the GIL and the database's CPU).
    queue_concurrency: int = Field(default=8, ge=1, le=500)
    # An annotator's claim or label with its own key on Postgres as one statement (app/queue/fastlane.py);
    # off, it takes the unit-of-work path, which calls the same SQL functions (bench/queue.py --lane).
    queue_fastlane: bool = True
    max_lease_renewals: int = Field(default=5, ge=0)
    # How long an annotator may withdraw their last label.
    undo_window_seconds: int = Field(default=60, ge=0)
    # Labels ask for a quality aggregation of their project at most this often (0: after every label);
    # the periodic sweep, every quality_aggregate_interval_seconds, catches the labels in between.
    quality_aggregate_debounce_seconds: float = Field(default=10.0, ge=0)
    quality_aggregate_interval_seconds: float = Field(default=60.0, gt=0)
    # The reward model (app/active): refit after this many new decided pairs (each quality aggregation
    # checks), once at least reward_min_pairs are decided; its L2 strength and cross-validation folds.
    reward_refit_every_pairs: int = Field(default=25, ge=1)
    # ... and at least this fraction of the pairs the newest fit used: a fit's cost grows with the pairs it
    # reads, so refits space out as a project grows (all refits together cost a few full fits, not one per
    # 25 labels; at 0.1 a fit of 10,000 pairs is followed by one at 11,000).
    reward_refit_growth: float = Field(default=0.1, ge=0)
    reward_min_pairs: int = Field(default=10, ge=2)
    reward_l2: float = Field(default=1.0, gt=0)
    reward_cv_folds: int = Field(default=5, ge=2, le=20)
    # Browser sign-in (/sign-in): how long a session cookie lasts (the key's own expiry and revocation
    # still apply on every request), and whether it is Secure (None: when the request came over https;
    # set true behind a TLS-terminating proxy that forwards plain http).
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    session_cookie_secure: bool | None = None
    log_level: str = "INFO"
    # JSON log lines (app/logging.py); unset: JSON in prod, key=value elsewhere.
    log_json: bool | None = None
    # GET /metrics (Prometheus) on the API port: on by default; off answers 404, and with a token set a
    # scrape must send `Authorization: Bearer <token>` (docs/design.md, "Observability").
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    # SQLite is one file on one machine; a broker means workers elsewhere. Allowed only for tests.
    allow_sqlite_with_broker: bool = False

    @model_validator(mode="after")
    def _check_safe(self) -> Settings:
        if self.env is Environment.PROD:
            if self.secret_key.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("REAL_SECRET_KEY is a placeholder; set a long random value in prod")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("REAL_SECRET_KEY must be at least 32 characters in prod")
            key = self.bootstrap_admin_key.get_secret_value() if self.bootstrap_admin_key else ""
            if key and (key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 24):
                raise ValueError("REAL_BOOTSTRAP_ADMIN_KEY is a placeholder or shorter than 24 characters")
        if self.is_sqlite and self.broker_url and not self.allow_sqlite_with_broker:
            raise ValueError(
                "REAL_DATABASE_URL is SQLite but REAL_BROKER_URL is set: SQLite is a single local file and "
                "cannot be shared with Celery workers on other machines. "
                "Use Postgres with a broker, or unset "
                "REAL_BROKER_URL to run tasks in-process."
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"REAL_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from None
        return ",".join(entries)

    @property
    def is_sqlite(self) -> bool:
        """True when the database is a SQLite file (the embedded default)."""
        return self.database_url.startswith("sqlite")

    @property
    def rate_limit_backend_url(self) -> str | None:
        """The Redis URL for shared rate-limit counters, or None for in-process counters."""
        if self.rate_limit_redis_url:
            return self.rate_limit_redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def embedded_tasks(self) -> bool:
        """True when tasks run in a thread of the API process instead of Celery workers."""
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
