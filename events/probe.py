"""The probe consumer: records each delivery of a ``system.probe`` event.

It is how the relay is checked end to end — by an admin (``POST /v1/admin/events/probe``),
by the benchmark (lag and throughput) and by the crash test (each probe's effect
recorded exactly once after a kill -9).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from doorstep.db import Conn, Tx
from events import store
from events.relay import Consumer
from events.types import Event, Probe, aggregate_key

NAME = "probe"


async def _handle(tx: Tx, event: Event) -> None:
    payload = event.payload
    assert isinstance(payload, Probe)
    if payload.hold_ms:
        await asyncio.sleep(payload.hold_ms / 1000)
    await tx.execute(
        "INSERT INTO event_probes (event_id, probe) VALUES ($1, $2)", event.id, payload.probe
    )


def consumer() -> Consumer:
    """The probe consumer."""
    return Consumer(NAME, frozenset({"system.probe"}), _handle)


async def send(tx: Tx, probe: str, *, hold_ms: int = 0) -> int:
    """Append a probe event; its id."""
    return await store.append(
        tx, "system.probe", aggregate_key("probe", probe), Probe(probe=probe, hold_ms=hold_ms)
    )


async def wait_handled(db: Conn, event_id: int, *, timeout_s: float) -> datetime | None:
    """When the probe was handled, waiting up to ``timeout_s``; None if it was not."""
    deadline = time.monotonic() + timeout_s
    while True:
        at: datetime | None = await db.fetchval(
            "SELECT min(handled_at) FROM event_probes WHERE event_id = $1", event_id
        )
        if at is not None or time.monotonic() >= deadline:
            return at.astimezone(UTC) if at is not None else None
        await asyncio.sleep(0.01)
