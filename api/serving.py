"""How a Doorstep app runs under uvicorn: the options every server passes.

``doorstep serve``, the tests' in-process servers and the benchmarks use these, so the
worker socket is served by :mod:`api.wsprotocol` everywhere.
"""

from __future__ import annotations

from typing import Any

# An import path rather than the class, so that ``--workers N`` can pass it to its
# worker processes.
WS_PROTOCOL = "api.wsprotocol:WebSocketProtocol"


def uvicorn_options(**options: Any) -> dict[str, Any]:
    """uvicorn's keyword arguments for a Doorstep app: ``options`` plus the websocket
    protocol and the lifespan (which starts the runtime the worker socket needs). Open
    connections get ``timeout_graceful_shutdown`` (5 s unless given) to finish when the
    server stops; after that they are cancelled rather than holding the stop forever."""
    return {"timeout_graceful_shutdown": 5, **options, "ws": WS_PROTOCOL, "lifespan": "on"}
