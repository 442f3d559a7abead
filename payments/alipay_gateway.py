"""Which Alipay gateway this process uses, and the sandbox gateway's start.

With ``DOORSTEP_ALIPAY_GATEWAY`` set: that gateway, with the app id, seller id and keys
of the settings. Without: the server starts the sandbox (:mod:`payments.alipay_sandbox`)
on a free local port and writes its address to ``<data dir>/alipay-sandbox.url`` (for
``doorstep worker`` and the simulator). The sandbox's two key pairs (the app's, and the
sandbox's "Alipay" pair) are made on first use and kept under
``<data dir>/alipay-sandbox/`` (mode 0600), so every process of an install signs and
verifies with the same keys.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from doorstep.atomic import create_private_once, replace_private
from doorstep.embedded import free_port
from doorstep.settings import Settings
from payments.alipay import AlipayConfig, AlipayProvider
from payments.alipay_sandbox import (
    ALIPAY_RETRY_SCHEDULE_S,
    AlipaySandbox,
    AlipaySandboxConfig,
    AlipaySandboxServer,
)
from payments.alipay_sign import load_private_key, private_pem, public_pem
from payments.rules import PaymentParams
from payments.service import Payments

SANDBOX_APP_ID = "2021000000000001"
SANDBOX_SELLER_ID = "2088000000000001"
URL_FILE = "alipay-sandbox.url"


def _keypair(path: Path) -> rsa.RSAPrivateKey:
    """The private key stored at ``path``, made (2048 bits) if there is none."""

    def make() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return private_pem(key).encode()

    return load_private_key(create_private_once(path, make).decode())


def sandbox_keys(data_dir: Path) -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """(the app's private key, the sandbox Alipay's private key) of this install."""
    folder = data_dir / "alipay-sandbox"
    return _keypair(folder / "app_private_key.pem"), _keypair(folder / "alipay_private_key.pem")


def sandbox_client_config(data_dir: Path, gateway_url: str) -> AlipayConfig:
    """How our adapter talks to the sandbox at ``gateway_url``."""
    app_key, alipay_key = sandbox_keys(data_dir)
    return AlipayConfig(
        gateway_url=gateway_url,
        app_id=SANDBOX_APP_ID,
        seller_id=SANDBOX_SELLER_ID,
        app_private_key=private_pem(app_key),
        alipay_public_key=public_pem(alipay_key.public_key()),
    )


def configured(settings: Settings) -> AlipayConfig | None:
    """The gateway named by the settings, else a sandbox another process started (its
    address in the data dir); None if there is neither."""
    if settings.alipay_gateway:
        return AlipayConfig(
            gateway_url=settings.alipay_gateway,
            app_id=settings.alipay_app_id,
            seller_id=settings.alipay_seller_id,
            app_private_key=settings.alipay_app_private_key,
            alipay_public_key=settings.alipay_public_key,
        )
    path = settings.data_dir / URL_FILE
    if path.exists():
        return sandbox_client_config(settings.data_dir, path.read_text().strip() + "gateway.do")
    return None


async def start_sandbox(
    settings: Settings, *, retry_schedule_s: tuple[float, ...] = ALIPAY_RETRY_SCHEDULE_S
) -> tuple[AlipayConfig, AlipaySandboxServer]:
    """Start the sandbox gateway in this process; the adapter's configuration and the server."""
    app_key, alipay_key = sandbox_keys(settings.data_dir)
    sandbox = AlipaySandbox(
        AlipaySandboxConfig(
            app_id=SANDBOX_APP_ID,
            seller_id=SANDBOX_SELLER_ID,
            app_public_key=app_key.public_key(),
            alipay_private_key=alipay_key,
            retry_schedule_s=retry_schedule_s,
        )
    )
    server = AlipaySandboxServer(sandbox, free_port())
    await server.start()
    replace_private(settings.data_dir / URL_FILE, (server.url + "\n").encode())
    return sandbox_client_config(settings.data_dir, sandbox.gateway_url), server


async def open_provider(
    settings: Settings,
    *,
    start: bool = True,
    retry_schedule_s: tuple[float, ...] = ALIPAY_RETRY_SCHEDULE_S,
) -> tuple[AlipayProvider | None, AlipaySandboxServer | None]:
    """The Alipay provider of this process, and the sandbox server if this process started it.

    The configured gateway if there is one; else, with ``start``, a sandbox in this
    process (the server); else the sandbox another process started (``doorstep
    worker``), or None when there is none.
    """
    if settings.alipay_gateway or not start:
        config = configured(settings)
        return (AlipayProvider(config) if config is not None else None), None
    config, server = await start_sandbox(settings, retry_schedule_s=retry_schedule_s)
    return AlipayProvider(config), server


async def add_to(
    payments: Payments, settings: Settings, params: PaymentParams
) -> AlipaySandboxServer | None:
    """The server's Alipay, registered with its payments as ``"alipay"``; the sandbox
    server if one was started here (its redelivery schedule scaled as WeChat's is)."""
    schedule = tuple(s * params.sandbox_redelivery_scale for s in ALIPAY_RETRY_SCHEDULE_S)
    provider, server = await open_provider(settings, retry_schedule_s=schedule)
    if provider is not None:
        payments.providers["alipay"] = provider
    return server


def worker_provider(settings: Settings) -> AlipayProvider | None:
    """A job worker's Alipay: the configured gateway, or the sandbox a server started."""
    config = configured(settings)
    return AlipayProvider(config) if config is not None else None
