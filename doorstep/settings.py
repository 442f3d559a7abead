"""Settings, read once from the environment into a frozen object passed down explicitly."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from doorstep.errors import InvalidInput

ENV_PREFIX = "DOORSTEP_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process needs to know about its environment.

    ``redis_url``/``database_url`` of ``None`` mean: start embedded servers under
    ``data_dir``. ``redis_prefix`` starts every Redis key and channel, so several
    deployments (or test runs) can share one Redis.
    """

    redis_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path(".doorstep")
    secret_key: str = ""
    redis_prefix: str = "ds:"
    host: str = "127.0.0.1"
    port: int = 8000
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    max_body_bytes: int = 256 * 1024
    db_pool_min: int = 2
    db_pool_max: int = 10
    redis_pool_max: int = 200
    log_level: str = "INFO"
    params_file: Path | None = None

    @property
    def embedded_redis(self) -> bool:
        """True when no Redis URL is configured and an embedded Valkey is used."""
        return self.redis_url is None

    @property
    def embedded_postgres(self) -> bool:
        """True when no database URL is configured and an embedded PostgreSQL is used."""
        return self.database_url is None

    def with_stores(self, *, redis_url: str, database_url: str) -> Settings:
        """A copy pointing at concrete store URLs (after embedded servers started)."""
        return replace(self, redis_url=redis_url, database_url=database_url)


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"must be an integer, got {raw!r}", field=name) from None
    if value < minimum:
        raise InvalidInput(f"must be >= {minimum}, got {value}", field=name)
    return value


def load_secret_key(data_dir: Path) -> str:
    """Read the signing key persisted under ``data_dir``, creating it on first use.

    Tokens then survive restarts of a development install. Production sets
    ``DOORSTEP_SECRET_KEY`` instead.
    """
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); the only reader of it."""
    env = os.environ if env is None else env
    p = ENV_PREFIX
    data_dir = Path(env.get(f"{p}DATA_DIR") or ".doorstep").expanduser().absolute()
    secret = env.get(f"{p}SECRET_KEY") or ""
    if secret and len(secret) < 32:
        raise InvalidInput("must be at least 32 characters", field=f"{p}SECRET_KEY")
    prefix = env.get(f"{p}REDIS_PREFIX", "ds:")
    if not prefix or any(c.isspace() for c in prefix):
        raise InvalidInput("must be non-empty and contain no spaces", field=f"{p}REDIS_PREFIX")
    return Settings(
        redis_url=env.get("REDIS_URL") or None,
        database_url=env.get("DATABASE_URL") or None,
        data_dir=data_dir,
        secret_key=secret,
        redis_prefix=prefix,
        host=env.get(f"{p}HOST") or "127.0.0.1",
        port=_int(env, f"{p}PORT", 8000, minimum=0),
        access_token_ttl_s=_int(env, f"{p}ACCESS_TOKEN_TTL_S", 15 * 60, minimum=1),
        refresh_token_ttl_s=_int(env, f"{p}REFRESH_TOKEN_TTL_S", 30 * 24 * 3600, minimum=1),
        max_body_bytes=_int(env, f"{p}MAX_BODY_BYTES", 256 * 1024, minimum=1024),
        db_pool_min=_int(env, f"{p}DB_POOL_MIN", 2, minimum=1),
        db_pool_max=_int(env, f"{p}DB_POOL_MAX", 10, minimum=1),
        redis_pool_max=_int(env, f"{p}REDIS_POOL_MAX", 200, minimum=2),
        log_level=(env.get(f"{p}LOG_LEVEL") or "INFO").upper(),
        params_file=_params_file(env.get(f"{p}PARAMS")),
    )


def _params_file(raw: str | None) -> Path | None:
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", field=f"{ENV_PREFIX}PARAMS")
    return path
