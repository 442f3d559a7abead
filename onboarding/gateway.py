"""Which verification provider this process uses, and the sandbox's start.

There is no production provider configured yet (it would be a URL, a SecretId and a
SecretKey, as for the SMS gateway): the server starts the sandbox
(:mod:`onboarding.sandbox`) on a free local port, signing with a secret derived from
the server's signing key.
"""

from __future__ import annotations

import hashlib
import hmac

from doorstep.embedded import free_port
from onboarding.provider import ProviderConfig, TencentLikeClient
from onboarding.sandbox import SandboxConfig, SandboxProvider, SandboxServer

SANDBOX_SECRET_ID = "AKIDsandbox"


def sandbox_secret(signing_key: str) -> str:
    """The sandbox account's secret, derived from the server's signing key."""
    return hmac.new(signing_key.encode(), b"doorstep verify sandbox", hashlib.sha256).hexdigest()


async def start_sandbox(
    signing_key: str, *, timeout_s: float = 5.0
) -> tuple[TencentLikeClient, SandboxServer]:
    """Start the sandbox in this process; a client for it and the server."""
    secret = sandbox_secret(signing_key)
    server = SandboxServer(
        SandboxProvider(SandboxConfig(SANDBOX_SECRET_ID, secret, hang_s=timeout_s * 3)),
        free_port(),
    )
    await server.start()
    client = TencentLikeClient(
        ProviderConfig(server.url, SANDBOX_SECRET_ID, secret, timeout_s=timeout_s)
    )
    return client, server
