"""Which SMS gateway this process uses, and the sandbox gateway's start.

With ``DOORSTEP_SMS_URL`` set, that gateway with its key id and secret. Without, the
server starts the sandbox (:mod:`notifications.sandbox`) on a free local port, writes
its address to ``<data dir>/sms-sandbox.url`` (for ``doorstep worker`` and ``doorstep
sms-outbox``), and signs with a secret derived from the server's signing key.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import asyncpg

from doorstep.atomic import replace_private
from doorstep.embedded import free_port
from doorstep.settings import Settings
from notifications.sandbox import SandboxConfig, SandboxGateway, SandboxServer
from notifications.sms import GatewayConfig
from notifications.templates import SIGN_NAME

SANDBOX_KEY_ID = "LTAIsandbox"
URL_FILE = "sms-sandbox.url"


def sandbox_secret(signing_key: str) -> str:
    """The sandbox account's secret, derived from the server's signing key."""
    return hmac.new(signing_key.encode(), b"doorstep sms sandbox", hashlib.sha256).hexdigest()


def url_file(data_dir: Path) -> Path:
    """Where the running sandbox's address is written."""
    return data_dir / URL_FILE


def configured(settings: Settings, signing_key: str) -> GatewayConfig | None:
    """The gateway named by the settings, else a sandbox another process started (its
    address in the data dir); None if there is neither."""
    if settings.sms_url:
        return GatewayConfig(settings.sms_url, settings.sms_key_id, settings.sms_secret, SIGN_NAME)
    path = url_file(settings.data_dir)
    if path.exists():
        url = path.read_text().strip()
        return GatewayConfig(url, SANDBOX_KEY_ID, sandbox_secret(signing_key), SIGN_NAME)
    return None


async def start_sandbox(
    settings: Settings, signing_key: str, pool: asyncpg.Pool[Any]
) -> tuple[GatewayConfig, SandboxServer]:
    """Start the sandbox gateway in this process; its client configuration and server."""
    secret = sandbox_secret(signing_key)
    config = SandboxConfig(
        key_id=SANDBOX_KEY_ID,
        secret=secret,
        callback_url=f"{settings.base_url}/v1/sms/receipts",
    )
    server = SandboxServer(SandboxGateway(pool, config), free_port())
    await server.start()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    replace_private(url_file(settings.data_dir), (server.url + "\n").encode())
    return GatewayConfig(server.url, SANDBOX_KEY_ID, secret, SIGN_NAME), server
