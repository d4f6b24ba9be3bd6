"""The one settings object, read from ``PROMENADE_*`` environment variables once and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret.key"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


class SettingsError(Exception):
    """A setting is wrong; the message is one line a person can act on."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROMENADE_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".promenade"), description="Where embedded mode keeps its files."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data directory."
    )
    amqp_url: str | None = Field(
        default=None, description="RabbitMQ URL; default: none, which means the in-process bus."
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts secret configuration values at rest.",
    )
    previous_secret_keys: str = Field(
        default="",
        description="Fernet keys (separated by commas) that open what PROMENADE_SECRET_KEY "
        "does not, while promenade rotate-key re-encrypts it.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    production: bool = Field(
        default=False, description="Turns GraphiQL, introspection and suggestions off."
    )
    introspection: bool | None = Field(
        default=None,
        description="Schema introspection and 'Did you mean' suggestions; default: on unless "
        "in production.",
    )
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="The largest request body the API reads (413), and the largest websocket "
        "message (closed with 1009).",
    )
    ws_recheck_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How often an open websocket's token and memberships are checked again.",
    )
    ws_init_wait_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long a new websocket may take to send connection_init before it is "
        "closed (4408).",
    )
    ws_per_user: int = Field(default=100, ge=1, description="Open websockets per user.")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The event loop the server processes run on: uvloop (libuv, what uvicorn "
        "picks by default) or Python's own asyncio loop.",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="The server processes' log lines on stderr: JSON lines, text, or auto "
        "(text on a terminal, JSON lines otherwise).",
    )
    ws_per_address: int = Field(
        default=200, ge=1, description="Open websockets per client address."
    )
    gateway_host: str = Field(
        default="127.0.0.1", description="Address the LOCAL_PROCESS gateway listens on."
    )
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    gateway_url: str | None = Field(
        default=None,
        description="Base of endpoint URLs; default: http://<gateway host>:<gateway port>.",
    )

    metrics_token: str | None = Field(
        default=None,
        description="When set, /metrics (API and workers) answers only a scrape that sends it "
        "as a bearer token.",
    )
    worker_host: str = Field(
        default="127.0.0.1",
        description="Address a worker serves /healthz, /readyz and /metrics on.",
    )
    worker_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port a worker serves /healthz, /readyz and /metrics on; unset: none "
        "(several workers may share a machine).",
    )

    health_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a new instance has to answer its health check.",
    )
    expiry_sweep_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the API expires promotion requests that nobody decided on.",
    )
    schedule_sweep_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the API starts the scheduled promotions whose time came.",
    )
    local_organizations: str = Field(
        default="*",
        description="Which organizations the installation's local data plane runs: * (all), "
        "or their slugs separated by commas; empty: none.",
    )
    docker_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMENADE_DOCKER_HOST", "DOCKER_HOST"),
        description="The Docker Engine of CONTAINER data planes whose settings name none.",
    )
    docker_hosts: str = Field(
        default="",
        description="Other Docker Engines (unix:// sockets, separated by commas) that a data "
        "plane's dockerHost may name; the worker's own DOCKER_HOST is always allowed.",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="The kubeconfig of KUBERNETES data planes' clusters (default: the worker's "
        "ServiceAccount when it runs in a cluster, else $KUBECONFIG or ~/.kube/config).",
    )
    kubernetes_contexts: str = Field(
        default="",
        description="The kubeconfig contexts (separated by commas) that a KUBERNETES data "
        "plane's context may name; a data plane that names none uses the current one.",
    )
    pause_after_step: str | None = Field(
        default=None,
        description="Crash testing only: a worker stops forever after this step of a change "
        "(QUEUED, APPLYING_CONFIGURATION, STARTED, ROUTED, or RESTARTING: live and VERIFYING), "
        "so a test can kill it there.",
    )

    @property
    def resolved_gateway_url(self) -> str:
        if self.gateway_url:
            return self.gateway_url.rstrip("/")
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def introspection_on(self) -> bool:
        return not self.production if self.introspection is None else self.introspection

    @property
    def runtime_dir(self) -> Path:
        """Where LOCAL_PROCESS keeps instances, their logs and the gateway's routes."""
        return self.data_dir / "runtime"

    @property
    def containers_dir(self) -> Path:
        """Where the CONTAINER runtime keeps what it knows of its containers' relays."""
        return self.data_dir / "containers"

    def allowed_kubernetes_contexts(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.kubernetes_contexts.split(",") if c.strip())

    def allowed_docker_hosts(self) -> frozenset[str]:
        """The engines a worker may use: its own, and the operator's list."""
        own = self.docker_host or DEFAULT_DOCKER_HOST
        return frozenset({own} | {h.strip() for h in self.docker_hosts.split(",") if h.strip()})

    def local_admission(self) -> frozenset[str] | None:
        """The slugs of the organizations the local data plane runs; None: every one."""
        text = self.local_organizations.strip()
        if text == "*":
            return None
        return frozenset(part.strip().lower() for part in text.split(",") if part.strip())

    def private_data_dir(self) -> Path:
        """The data directory, made if missing and readable by this user only (it holds the
        database and the secret key; integrations must not read it)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        return self.data_dir

    @field_validator("secret_key")
    @classmethod
    def _fernet_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            Fernet(value.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError("must be a Fernet key (32 url-safe base64-encoded bytes)") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return async_database_url(value)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'promenade.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def secret_keys(self) -> list[str]:
        """The current key first, then the previous ones: the setting and
        PROMENADE_PREVIOUS_SECRET_KEYS, or in embedded mode the lines of the key file (the
        first line the current key)."""
        current = self.resolved_secret_key()
        previous = [k.strip() for k in self.previous_secret_keys.split(",") if k.strip()]
        if not self.secret_key:
            path = self.data_dir / SECRET_KEY_FILE
            previous += [line.strip() for line in path.read_text().splitlines()[1:] if line.strip()]
        for key in previous:
            _check_fernet_key(key, "PROMENADE_PREVIOUS_SECRET_KEYS")
        return list(dict.fromkeys([current, *previous]))

    def resolved_secret_key(self) -> str:
        """The Fernet key: the setting, or in embedded mode one generated once into the data dir
        (its first line)."""
        if self.secret_key:
            return self.secret_key
        if not self.is_sqlite:
            raise SettingsError(
                "PROMENADE_SECRET_KEY is required when the database is PostgreSQL "
                "(generate one with: promenade secret-key)"
            )
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().split("\n", 1)[0].strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key().decode()
        # O_EXCL: two processes starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().split("\n", 1)[0].strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key


def _check_fernet_key(key: str, setting: str) -> None:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        raise SettingsError(f"{setting}: not a Fernet key") from None


def async_database_url(url: str) -> str:
    """Accept the plain URLs people paste and pick the async driver for them."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ValueError("must be a postgresql:// or sqlite:// URL")


def load_settings() -> Settings:
    """Read the settings; a bad one becomes a single line that names the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "PROMENADE_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name}: {first['msg']}") from None
