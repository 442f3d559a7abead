"""Which payout channel this process uses, and the payout sandbox's start.

Without a configured channel the server starts the payout sandbox
(:mod:`settlement.payout_sandbox`) on a free local port with fresh keys: a merchant key
pair (ours) and the sandbox's platform key. It writes the channel's configuration to
``<data dir>/payout-sandbox.json`` (mode 0600) so that ``doorstep worker`` processes pay
out through the same sandbox. Production would read the merchant id, the app id, the
certificate serial, the private key and WeChat Pay's public key from settings instead.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from doorstep.atomic import replace_private
from doorstep.embedded import free_port
from doorstep.settings import Settings
from payments import wechat_wire as wire
from settlement.payout_sandbox import PayoutSandbox, PayoutSandboxConfig, PayoutSandboxServer
from settlement.payouts import WeChatTransferConfig

SANDBOX_MCHID = "1900000109"
SANDBOX_APPID = "wxd678efh567hg6787"
CONFIG_FILE = "payout-sandbox.json"


def config_file(data_dir: Path) -> Path:
    """Where the running sandbox's channel configuration is written."""
    return data_dir / CONFIG_FILE


def configured(settings: Settings) -> WeChatTransferConfig | None:
    """The channel a server of this data dir started, if any."""
    path = config_file(settings.data_dir)
    if not path.exists():
        return None
    data = orjson.loads(path.read_bytes())
    return WeChatTransferConfig(
        base_url=data["url"],
        mchid=data["mchid"],
        appid=data["appid"],
        serial_no=data["serial_no"],
        private_key=wire.load_private(data["private_key"]),
        platform_public=wire.load_public(data["platform_public"]),
        platform_serial=data["platform_serial"],
    )


async def start_sandbox(
    settings: Settings, pool: asyncpg.Pool[Any], **options: Any
) -> tuple[WeChatTransferConfig, PayoutSandboxServer]:
    """Start the payout sandbox in this process; the client's configuration and the server."""
    merchant = wire.new_key_pair()
    serial = secrets.token_hex(20).upper()
    sandbox_config = PayoutSandboxConfig(
        mchid=SANDBOX_MCHID,
        appid=SANDBOX_APPID,
        merchant_serial=serial,
        merchant_public=merchant.public_key(),
        **options,
    )
    server = PayoutSandboxServer(PayoutSandbox(pool, sandbox_config), free_port())
    await server.start()
    config = WeChatTransferConfig(
        base_url=server.url,
        mchid=SANDBOX_MCHID,
        appid=SANDBOX_APPID,
        serial_no=serial,
        private_key=merchant,
        platform_public=sandbox_config.platform_key.public_key(),
        platform_serial=sandbox_config.platform_serial,
    )
    replace_private(
        config_file(settings.data_dir),
        orjson.dumps(
            {
                "url": server.url,
                "mchid": SANDBOX_MCHID,
                "appid": SANDBOX_APPID,
                "serial_no": serial,
                "private_key": wire.private_pem(merchant),
                "platform_public": wire.public_pem(sandbox_config.platform_key.public_key()),
                "platform_serial": sandbox_config.platform_serial,
            }
        ),
    )
    return config, server
