"""Settings shared by every service.

Each service subclasses `ServiceSettings` with its own env prefix (`CRM_CUSTOMER_`, ...). A value not
set under the service's prefix falls back to the platform-wide `CRM_` prefix, so one `CRM_AMQP_URL`
serves every process while `CRM_CUSTOMER_DATABASE_URL` can still point one service elsewhere.
"""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from crm_common.db import NUMBERING_LOCK_TIMEOUT_SECONDS

# Where `crm up` runs serving workers beside its main process, every process writes its metrics to
# files in this folder (prometheus_client's multiprocess mode; crm_common.observability adds them up
# at a scrape, crm_gateway.cli sets it before the metrics exist).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class PlatformSettings(BaseSettings):
    """The platform-wide `CRM_` values the `crm` command reads for its whole process (where it binds,
    where its files are, logging, tracing, what `crm demo` loads into): only these names, as no one
    service's prefix applies to the process that hosts them all. Each service reads its own settings
    (`ServiceSettings`) beside these."""

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    # `crm up`'s processes serving requests beside the main one (crm_gateway.workers); 0: the one
    # process does it all; unset: 1 on a machine with two cores or more, else 0.
    workers: int | None = None
    # Set: the distributed mode's Postgres (no SQLite files to check, back up or restore here).
    database_url: str | None = None
    log_level: str = "INFO"
    # Unset: JSON unless stderr is a terminal (crm_common.observability.json_logs_wanted).
    log_json: str | None = None
    # An OTLP/HTTP collector; unset or empty, tracing is off (crm_common.tracing).
    otlp_endpoint: str | None = None
    # `crm demo`: the running CRM it loads a sample company into, and the admin it signs in as.
    url: str = "http://127.0.0.1:8000"
    admin_email: str = "admin@example.com"
    admin_password: str | None = None

    @property
    def local_url(self) -> str:
        """This process's own address (the embedded default's gateway)."""
        return f"http://{self.host}:{self.port}"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    service_name: ClassVar[str] = "service"

    # Where SQLite files, generated keys and the like live in the embedded default.
    data_dir: Path = Path("data")
    # Unset: a SQLite file `<data_dir>/<service>.db`. Postgres: `postgresql://user@host/db`.
    database_url: str | None = None
    # Postgres schema owned by this service; defaults to the service name.
    db_schema: str | None = None
    db_pool_size: int = 10
    # Unset: the in-process bus (embedded default). Set: RabbitMQ.
    amqp_url: str | None = None
    # Prefix for the exchange and queue names, so tests (or tenants) can share one broker.
    events_namespace: str = ""
    # How many times a consumer sees a failing event before it is dead-lettered.
    event_delivery_limit: int = 5
    # Unacknowledged events a consumer holds, i.e. handlers running at once: with the admission
    # budgets below, within the database pool (10 + 5 overflow) so nothing waits on (or churns)
    # connections.
    event_prefetch: int = 3
    # Most events one handler transaction applies when a backlog is waiting (RabbitMQ: the broker
    # hands each consumer up to event_prefetch x event_batch_size unacknowledged events).
    event_batch_size: int = Field(default=16, ge=1)
    relay_batch_size: int = 200
    relay_poll_interval: float = 1.0
    relay_publish_timeout: float = 5.0
    # How long a graceful stop keeps publishing what the outbox holds before closing (the rest goes
    # out at the next start).
    outbox_drain_seconds: float = Field(default=5.0, ge=0)
    # Published outbox rows are kept this long (for audit and replay), then purged.
    outbox_retention_hours: int = 168
    # Processed-event inbox rows are kept this long, then purged (crm_common.events.inbox explains the
    # default: twice the outbox's retention, longer than any redelivery or replay of a sent event).
    inbox_retention_days: int = Field(default=14, ge=1)
    # How often each consuming service purges its inbox.
    inbox_purge_interval_seconds: float = Field(default=3600.0, gt=0)
    # Archived records (crm_common.archive) stay restorable this long, then are purged; the purge runs
    # this often.
    archive_retention_days: int = Field(default=30, ge=1)
    archive_purge_interval_seconds: float = Field(default=3600.0, gt=0)
    # SQLite only (the embedded default): how often the planner's statistics are refreshed (ANALYZE,
    # crm_common.planner_statistics). Postgres keeps its own.
    sqlite_analyze_interval_seconds: float = Field(default=600.0, gt=0)
    migrate_on_start: bool = True
    # Off in the serving workers of `crm up --workers N` (crm_gateway.workers): such a process serves
    # requests and writes its outbox; the main process relays it, consumes the events and runs the
    # periodic jobs (retention, archive purge, escalations, webhook deliveries).
    background_work: bool = True
    # `crm up --workers N`'s N (it sets CRM_WORKERS for every process): from 1, the SQLite files have
    # writers in several processes, who take turns on a lock file (crm_common.db), and the gateway's
    # in-memory limits are shared out between the serving workers (crm_gateway.settings).
    # `crm serve --workers N` sets it too: N replicas of one service.
    workers: int = Field(default=0, ge=0)

    # PEM public key (or a file holding it) that verifies the gateway's access tokens.
    jwt_public_key: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "crm-gateway"
    jwt_audience: str = "crm"

    # Admission control (crm_common.admission): requests served at once per process, reads and
    # writes apart; more wait in order while their turn is due within `admission_max_wait_seconds`
    # (from the running mean of how long a request is served); while the oldest waiting request has
    # waited longer than `admission_target_wait_seconds` (sustained overload, not a burst) no one
    # joins the queue; the rest get 503 OVERLOADED at once.
    # Sized from the database pool: reads + writes + `event_prefetch` handlers = 15 = the pool's 10 +
    # 5 overflow, so a request does not wait for a connection (beyond, more concurrency only queues on connections and locks, and overflow
    # connections are opened and closed per use). A request waits only when its turn is due within
    # 0.25 s (estimated; at most 2 s whatever the estimate), which keeps served p99 under a second
    # at 4x (bench/overload.py: 0.5 s gave ~1.2 s). The queue length only caps memory.
    admission_read_limit: int = 8
    admission_write_limit: int = 4
    admission_queue: int = 256
    admission_max_wait_seconds: float = 2.0
    admission_target_wait_seconds: float = 0.25
    # Postgres: how long a create waits for its year's number (the counter row another create holds
    # until it commits, crm_common.numbering); past it, 503 OVERLOADED with nothing written. A holder
    # keeps the row for milliseconds: a wait this long means the creates of a year queue deeper than
    # the admission budgets let them, or a holder is stuck.
    numbering_lock_timeout_seconds: float = Field(default=NUMBERING_LOCK_TIMEOUT_SECONDS, gt=0)

    # When set, GET /metrics needs `Authorization: Bearer <this>` (Prometheus: `authorization` in the
    # scrape config).
    metrics_token: str | None = None

    # customer-svc's base URL, for contexts that look up a customer they have not heard of yet
    # (crm_common.customer_lookup); unset in the embedded default, which calls it in process.
    customer_url: str | None = None
    # How long a reference waits for that lookup before it is refused (503, nothing written).
    customer_lookup_timeout_seconds: float = Field(default=5.0, gt=0)
    # The credential services present to each other's internal endpoints (a shared secret); unset,
    # a lookup passes on the caller's access token instead.
    service_token: str | None = None

    # A request carrying CRM-Consistency-Token waits at most this long for the events it names
    # (crm_common.consistency), then is answered with `CRM-Consistency: stale`.
    consistency_wait_seconds: float = 5.0

    log_level: str = "INFO"
    log_json: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        platform_env = EnvSettingsSource(settings_cls, env_prefix="CRM_")
        return (init_settings, env_settings, platform_env, dotenv_settings, file_secret_settings)

    @property
    def schema_name(self) -> str:
        return self.db_schema or self.service_name

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}"

    def public_key_pem(self) -> str | None:
        if self.jwt_public_key:
            return self.jwt_public_key
        path = self.jwt_public_key_file or self.data_dir / "jwt-public.pem"
        return path.read_text() if path.exists() else None
