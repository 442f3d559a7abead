"""Settings, read once from the environment into a frozen object passed down explicitly."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from doorstep.errors import InvalidInput

ENV_PREFIX = "DOORSTEP_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    # Peers whose X-Forwarded-For is believed (reverse proxies); everyone else's client
    # address is the socket peer. ``DOORSTEP_TRUSTED_PROXIES``: comma-separated CIDRs.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Client networks exempt from login and registration limits (load testers on
    # loopback). ``DOORSTEP_RATE_LIMIT_EXEMPT``: comma-separated CIDRs.
    rate_limit_exempt: tuple[IPNetwork, ...] = ()
    # A bearer token that may read /metrics (Prometheus); admins may read it with their
    # access token. Empty: admins only. ``DOORSTEP_METRICS_TOKEN`` (≥ 32 characters).
    metrics_token: str = ""
    # The SMS gateway (Aliyun-SMS-shaped, docs/notifications.md). No URL: the server
    # starts the sandbox gateway in its process. ``DOORSTEP_SMS_URL``,
    # ``DOORSTEP_SMS_KEY_ID``, ``DOORSTEP_SMS_SECRET``.
    sms_url: str | None = None
    sms_key_id: str = ""
    sms_secret: str = ""
    # The number-masking provider (Aliyun-Dyplsapi-shaped, docs/privacy.md). No URL: the
    # server starts the sandbox provider in its process. ``DOORSTEP_AXB_URL``,
    # ``DOORSTEP_AXB_KEY_ID``, ``DOORSTEP_AXB_SECRET``, ``DOORSTEP_AXB_POOL_KEY``.
    axb_url: str | None = None
    axb_key_id: str = ""
    axb_secret: str = ""
    axb_pool_key: str = ""
    # WeChat Pay: a TOML file naming the merchant's ids and key files (docs/payments.md).
    # None: the server starts the WeChat Pay sandbox. ``DOORSTEP_WECHATPAY_CONFIG``.
    wechatpay_config: Path | None = None
    # How the SMS gateway reaches this server (delivery receipts). Empty: from host and port.
    # ``DOORSTEP_PUBLIC_URL``.
    public_url: str = ""
    # Alipay (docs/payments-alipay.md). No gateway: the server starts the sandbox gateway
    # in its process. ``DOORSTEP_ALIPAY_GATEWAY`` (https://openapi.alipay.com/gateway.do),
    # ``DOORSTEP_ALIPAY_APP_ID``, ``DOORSTEP_ALIPAY_SELLER_ID`` (2088…),
    # ``DOORSTEP_ALIPAY_APP_PRIVATE_KEY``, ``DOORSTEP_ALIPAY_PUBLIC_KEY`` (PEM or base64).
    alipay_gateway: str | None = None
    alipay_app_id: str = ""
    alipay_seller_id: str = ""
    alipay_app_private_key: str = field(default="", repr=False)
    alipay_public_key: str = field(default="", repr=False)
    # Personal data at rest (docs/privacy.md): ``DOORSTEP_DATA_KEYS`` (``kid:base64,…``,
    # the first encrypts, all decrypt) and ``DOORSTEP_BLIND_INDEX_KEY`` (base64). Empty:
    # derived from the secret key (a development default).
    data_keys: str = field(default="", repr=False)
    blind_index_key: str = field(default="", repr=False)

    @property
    def base_url(self) -> str:
        """This server's address for callbacks."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

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
    from doorstep.atomic import create_private_once

    made = create_private_once(data_dir / "secret_key", lambda: secrets.token_urlsafe(48).encode())
    return made.decode().strip()


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
    if env.get(f"{p}SMS_URL") and not (env.get(f"{p}SMS_KEY_ID") and env.get(f"{p}SMS_SECRET")):
        raise InvalidInput(
            "a gateway needs DOORSTEP_SMS_KEY_ID and DOORSTEP_SMS_SECRET too", field=f"{p}SMS_URL"
        )
    alipay = ("APP_ID", "SELLER_ID", "APP_PRIVATE_KEY", "PUBLIC_KEY")
    if env.get(f"{p}ALIPAY_GATEWAY") and not all(env.get(f"{p}ALIPAY_{k}") for k in alipay):
        raise InvalidInput(
            "a gateway needs DOORSTEP_ALIPAY_APP_ID, _SELLER_ID, _APP_PRIVATE_KEY and "
            "_PUBLIC_KEY too",
            field=f"{p}ALIPAY_GATEWAY",
        )
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
        wechatpay_config=Path(env[f"{p}WECHATPAY_CONFIG"]).expanduser()
        if env.get(f"{p}WECHATPAY_CONFIG")
        else None,
        params_file=_params_file(env.get(f"{p}PARAMS")),
        trusted_proxies=networks(env.get(f"{p}TRUSTED_PROXIES", ""), f"{p}TRUSTED_PROXIES"),
        rate_limit_exempt=networks(env.get(f"{p}RATE_LIMIT_EXEMPT", ""), f"{p}RATE_LIMIT_EXEMPT"),
        metrics_token=_metrics_token(env.get(f"{p}METRICS_TOKEN") or ""),
        sms_url=env.get(f"{p}SMS_URL") or None,
        sms_key_id=env.get(f"{p}SMS_KEY_ID") or "",
        sms_secret=env.get(f"{p}SMS_SECRET") or "",
        axb_url=env.get(f"{p}AXB_URL") or None,
        axb_key_id=env.get(f"{p}AXB_KEY_ID") or "",
        axb_secret=env.get(f"{p}AXB_SECRET") or "",
        axb_pool_key=env.get(f"{p}AXB_POOL_KEY") or "",
        public_url=env.get(f"{p}PUBLIC_URL") or "",
        alipay_gateway=env.get(f"{p}ALIPAY_GATEWAY") or None,
        alipay_app_id=env.get(f"{p}ALIPAY_APP_ID") or "",
        alipay_seller_id=env.get(f"{p}ALIPAY_SELLER_ID") or "",
        alipay_app_private_key=env.get(f"{p}ALIPAY_APP_PRIVATE_KEY") or "",
        alipay_public_key=env.get(f"{p}ALIPAY_PUBLIC_KEY") or "",
        data_keys=_data_keys(env.get(f"{p}DATA_KEYS") or ""),
        blind_index_key=_blind_index_key(env.get(f"{p}BLIND_INDEX_KEY") or ""),
    )


def networks(raw: str, field: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDRs (``10.0.0.0/8, ::1``) as networks."""
    out: list[IPNetwork] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise InvalidInput(f"not an IP address or CIDR: {part!r}", field=field) from None
    return tuple(out)


def _metrics_token(raw: str) -> str:
    if raw and len(raw) < 32:
        raise InvalidInput("must be at least 32 characters", field=f"{ENV_PREFIX}METRICS_TOKEN")
    return raw


def _params_file(raw: str | None) -> Path | None:
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", field=f"{ENV_PREFIX}PARAMS")
    return path


def _data_keys(raw: str) -> str:
    if raw:
        from privacy.crypto import parse_data_keys

        parse_data_keys(raw, f"{ENV_PREFIX}DATA_KEYS")  # an error names the rule
    return raw


def _blind_index_key(raw: str) -> str:
    if raw:
        from privacy.crypto import parse_index_key

        parse_index_key(raw, f"{ENV_PREFIX}BLIND_INDEX_KEY")
    return raw
