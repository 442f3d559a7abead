"""The payment sandboxes of a server with several worker processes (``serve --workers N``).

A process without a configured WeChat Pay merchant or Alipay gateway starts that
provider's sandbox in itself (:mod:`payments.gateway`, :mod:`payments.alipay_gateway`).
With several worker processes behind one port, each would have its own sandbox, with its
own keys and its own trades: a notification from one worker's sandbox reaches whichever
worker the kernel picks, and a query asks the asker's sandbox, which does not know the
trade. So the supervisor starts the sandboxes once, on a thread of its own with its own
event loop, and hands them to the workers as *configured* gateways (the environment the
workers read their settings from): one sandbox per provider, every worker a client of it,
the notifications to the shared port. Their bill downloads are mounted as the single
process mounts them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from doorstep.settings import Settings
from payments import alipay_gateway
from payments import gateway as wechat_gateway
from payments import wechat_wire as wire
from payments.alipay_sandbox import ALIPAY_RETRY_SCHEDULE_S, AlipaySandboxServer
from payments.rules import PaymentParams
from payments.wechat import WeChatConfig
from payments.wechat_sandbox import REDELIVERY_S, WeChatSandboxServer
from settlement import alipay_bills, wechat_bills

CONFIG_DIR = "wechat-sandbox-shared"


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_wechat_config(config: WeChatConfig, folder: Path) -> Path:
    """``config`` as the TOML file and key files ``DOORSTEP_WECHATPAY_CONFIG`` names."""
    folder.mkdir(parents=True, exist_ok=True)
    _private(folder / "apiclient_key.pem", wire.private_pem(config.merchant_key))
    _private(folder / "pub_key.pem", wire.public_pem(config.platform_public_key))
    _private(folder / "apiv3.key", config.apiv3_key)
    path = folder / "wechatpay.toml"
    _private(
        path,
        f'url = "{config.url}"\nmchid = "{config.mchid}"\nappid = "{config.appid}"\n'
        f'merchant_serial = "{config.merchant_serial}"\n'
        'merchant_key_file = "apiclient_key.pem"\nplatform_public_key_file = "pub_key.pem"\n'
        f'platform_key_id = "{config.platform_key_id}"\napiv3_key_file = "apiv3.key"\n',
    )
    return path


class SharedSandboxes:
    """The sandboxes of the providers the settings leave unconfigured, on their own thread."""

    def __init__(self, settings: Settings, params: PaymentParams) -> None:
        self.settings = settings
        self.params = params
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="payment-sandboxes", daemon=True
        )
        self.servers: list[WeChatSandboxServer | AlipaySandboxServer] = []

    def start(self) -> dict[str, str]:
        """Start them; the environment that makes the workers their clients."""
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)

    async def _start(self) -> dict[str, str]:
        env: dict[str, str] = {}
        scale = self.params.sandbox_redelivery_scale
        if self.settings.wechatpay_config is None:
            config, server = await wechat_gateway.start_sandbox(
                self.settings, redelivery_s=tuple(s * scale for s in REDELIVERY_S)
            )
            wechat_bills.mount(server.sandbox)
            self.servers.append(server)
            folder = self.settings.data_dir / CONFIG_DIR
            env["DOORSTEP_WECHATPAY_CONFIG"] = str(write_wechat_config(config, folder))
        if self.settings.alipay_gateway is None:
            alipay, a_server = await alipay_gateway.start_sandbox(
                self.settings,
                retry_schedule_s=tuple(s * scale for s in ALIPAY_RETRY_SCHEDULE_S),
            )
            alipay_bills.mount(a_server.sandbox)
            self.servers.append(a_server)
            env |= {
                "DOORSTEP_ALIPAY_GATEWAY": alipay.gateway_url,
                "DOORSTEP_ALIPAY_APP_ID": alipay.app_id,
                "DOORSTEP_ALIPAY_SELLER_ID": alipay.seller_id,
                "DOORSTEP_ALIPAY_APP_PRIVATE_KEY": alipay.app_private_key,
                "DOORSTEP_ALIPAY_PUBLIC_KEY": alipay.alipay_public_key,
            }
        return env

    def stop(self) -> None:
        """Stop the servers and the thread."""

        async def stop_all() -> None:
            for server in self.servers:
                await server.stop()

        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
