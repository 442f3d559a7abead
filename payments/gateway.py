"""Which payment gateways this process uses, and the sandbox's start.

With ``DOORSTEP_WECHATPAY_CONFIG`` set, the real WeChat Pay merchant it describes (a TOML
file: ``url``, ``mchid``, ``appid``, ``merchant_serial``, ``merchant_key_file``,
``platform_public_key_file``, ``platform_key_id``, ``apiv3_key_file``). Without it, the
server starts the WeChat Pay sandbox (``payments.wechat_sandbox``) on a free local port
with fresh keys, and writes its address and keys to ``<data dir>/wechat-sandbox.json``
(mode 0600) so ``doorstep worker`` processes reach the same sandbox.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson

from doorstep.atomic import replace_private
from doorstep.embedded import free_port
from doorstep.settings import Settings
from doorstep.stores import Stores
from payments import alipay_gateway
from payments import wechat_wire as wire
from payments.errors import InvalidPayment
from payments.providers import PaymentProvider
from payments.rules import PaymentParams
from payments.service import Payments
from payments.wechat import WeChatConfig, WeChatPay
from payments.wechat_sandbox import REDELIVERY_S, SandboxKeys, WeChatSandbox, WeChatSandboxServer

SANDBOX_FILE = "wechat-sandbox.json"


def _from_file(path: Path) -> WeChatConfig:
    try:
        data = tomllib.loads(path.read_text())
        base = path.parent
        return WeChatConfig(
            url=str(data.get("url", "https://api.mch.weixin.qq.com")),
            mchid=str(data["mchid"]),
            appid=str(data["appid"]),
            merchant_serial=str(data["merchant_serial"]),
            merchant_key=wire.load_private((base / data["merchant_key_file"]).read_text()),
            platform_public_key=wire.load_public(
                (base / data["platform_public_key_file"]).read_text()
            ),
            platform_key_id=str(data["platform_key_id"]),
            apiv3_key=(base / data["apiv3_key_file"]).read_text().strip(),
        )
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
        # The message names the problem, never a key's content.
        raise InvalidPayment(
            f"WeChat Pay config {path}: {type(e).__name__} {e if isinstance(e, KeyError) else ''}",
            field="DOORSTEP_WECHATPAY_CONFIG",
        ) from None


def configured(settings: Settings) -> WeChatConfig | None:
    """The configured merchant, else a sandbox another process started; None if neither."""
    if settings.wechatpay_config is not None:
        return _from_file(settings.wechatpay_config)
    path = settings.data_dir / SANDBOX_FILE
    if not path.exists():
        return None
    data = orjson.loads(path.read_bytes())
    return WeChatConfig(
        url=data["url"],
        mchid=data["mchid"],
        appid=data["appid"],
        merchant_serial=data["merchant_serial"],
        merchant_key=wire.load_private(data["merchant_key"]),
        platform_public_key=wire.load_public(data["platform_public_key"]),
        platform_key_id=data["platform_key_id"],
        apiv3_key=data["apiv3_key"],
    )


async def start_sandbox(
    settings: Settings, *, redelivery_s: tuple[float, ...] = REDELIVERY_S
) -> tuple[WeChatConfig, WeChatSandboxServer]:
    """Start the WeChat Pay sandbox in this process; our client's configuration and the server."""
    keys = SandboxKeys.generate()
    server = WeChatSandboxServer(WeChatSandbox(keys, redelivery_s=redelivery_s), free_port())
    await server.start()
    config = WeChatConfig(
        url=server.url,
        mchid=keys.mchid,
        appid=keys.appid,
        merchant_serial=keys.merchant_serial,
        merchant_key=keys.merchant_key,
        platform_public_key=keys.platform_key.public_key(),
        platform_key_id=keys.platform_key_id,
        apiv3_key=keys.apiv3_key,
    )
    replace_private(
        settings.data_dir / SANDBOX_FILE,
        orjson.dumps(
            {
                "url": server.url,
                "mchid": keys.mchid,
                "appid": keys.appid,
                "merchant_serial": keys.merchant_serial,
                "merchant_key": wire.private_pem(keys.merchant_key),
                "platform_public_key": wire.public_pem(keys.platform_key.public_key()),
                "platform_key_id": keys.platform_key_id,
                "apiv3_key": keys.apiv3_key,
            }
        ),
    )
    return config, server


async def start_payments(
    settings: Settings, stores: Stores, params: PaymentParams
) -> tuple[Payments, WeChatSandboxServer | None]:
    """The server's payments: the configured WeChat Pay merchant, or a sandbox started here."""
    sandbox: WeChatSandboxServer | None = None
    if settings.wechatpay_config is not None:
        config = _from_file(settings.wechatpay_config)
    else:
        scaled = tuple(s * params.sandbox_redelivery_scale for s in REDELIVERY_S)
        config, sandbox = await start_sandbox(settings, redelivery_s=scaled)
    providers: dict[str, PaymentProvider] = {"wechat": WeChatPay(config)}
    return Payments(stores, providers, notify_base=settings.base_url, params=params), sandbox


async def stop_payments(payments: Payments, sandbox: WeChatSandboxServer | None) -> None:
    """Close the providers' clients and stop the sandbox."""
    for provider in payments.providers.values():
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()
    if sandbox is not None:
        await sandbox.stop()


def worker_payments(settings: Settings, stores: Stores, params: PaymentParams) -> Payments:
    """A job worker's payments (``doorstep worker``): the configured merchant or the
    sandbox a server started with the same data dir."""
    config = configured(settings)
    providers: dict[str, PaymentProvider] = {"wechat": WeChatPay(config)} if config else {}
    alipay = alipay_gateway.worker_provider(settings)
    if alipay is not None:
        providers["alipay"] = alipay
    return Payments(stores, providers, notify_base=settings.base_url, params=params)
