"""Which number-masking provider this process uses, and the sandbox provider's start.

With ``DOORSTEP_AXB_URL`` set, that provider with its key id, secret and pool key.
Without, the server starts the sandbox (:mod:`privacy.axb_sandbox`) on a free local
port and signs with a secret derived from the server's signing key.
"""

from __future__ import annotations

import hashlib
import hmac

from doorstep.embedded import free_port
from doorstep.settings import Settings
from notifications.sandbox import SandboxServer
from privacy.axb import AxbConfig
from privacy.axb_sandbox import POOL_KEY, AxbSandbox

SANDBOX_KEY_ID = "LTAIaxbsandbox"


def sandbox_secret(signing_key: str) -> str:
    """The sandbox account's secret, derived from the server's signing key."""
    return hmac.new(signing_key.encode(), b"doorstep axb sandbox", hashlib.sha256).hexdigest()


def configured(settings: Settings) -> AxbConfig | None:
    """The provider named by the settings; None if there is none."""
    if settings.axb_url:
        return AxbConfig(
            settings.axb_url, settings.axb_key_id, settings.axb_secret, settings.axb_pool_key
        )
    return None


async def start_sandbox(signing_key: str) -> tuple[AxbConfig, SandboxServer]:
    """Start the sandbox provider in this process; its client configuration and server."""
    secret = sandbox_secret(signing_key)
    server = SandboxServer(
        AxbSandbox(SANDBOX_KEY_ID, secret), free_port(), name="number-masking sandbox"
    )
    await server.start()
    return AxbConfig(server.url, SANDBOX_KEY_ID, secret, POOL_KEY), server
