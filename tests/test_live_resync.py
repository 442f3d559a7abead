"""Live pushes across a Redis restart: pub/sub keeps nothing, so every watcher is told to
re-read after the hub reconnects (docs/protocol.md, "After a Redis outage")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from doorstep.embedded import free_port, start_valkey
from tracking.live import RESYNC, LiveHub


async def test_watchers_are_told_to_resync_after_the_hub_reconnects(tmp_path: Path) -> None:
    """A message published while the hub was away is lost, and each watcher gets RESYNC once
    the hub is back, then the messages published after it."""
    port = free_port()
    valkey = start_valkey(tmp_path / "v1", port=port)
    redis = Redis(host="127.0.0.1", port=port)
    hub = LiveHub(redis)
    await hub.start()
    try:
        a = await hub.subscribe("resync-test:a")
        b = await hub.subscribe("resync-test:b")
        await redis.publish("resync-test:a", b"before")
        assert await asyncio.wait_for(a.get(), 5) == b"before"
        valkey.stop()
        valkey = start_valkey(tmp_path / "v2", port=port)
        # Published while the hub may not be subscribed yet: possibly lost, never an error.
        await redis.publish("resync-test:a", b"maybe lost")
        got_a = await asyncio.wait_for(a.get(), 10)
        while got_a == b"maybe lost":  # it reached the hub after all: RESYNC still follows
            got_a = await asyncio.wait_for(a.get(), 10)
        assert got_a == RESYNC
        assert await asyncio.wait_for(b.get(), 10) == RESYNC
        assert hub.reconnects >= 1
        await redis.publish("resync-test:b", b"after")
        assert await asyncio.wait_for(b.get(), 5) == b"after"
        await a.close()
        await b.close()
    finally:
        await hub.stop()
        await redis.aclose()
        valkey.stop()


async def test_a_hub_that_never_lost_redis_sends_no_resync(tmp_path: Path) -> None:
    """Without a reconnect, watchers get exactly what was published, nothing more."""
    port = free_port()
    valkey = start_valkey(tmp_path / "v", port=port)
    redis = Redis(host="127.0.0.1", port=port)
    hub = LiveHub(redis)
    await hub.start()
    try:
        sub = await hub.subscribe("resync-test:c")
        for i in range(3):
            await redis.publish("resync-test:c", str(i).encode())
        assert [await asyncio.wait_for(sub.get(), 5) for _ in range(3)] == [b"0", b"1", b"2"]
        await redis.publish("resync-test:c", b"end")
        assert await asyncio.wait_for(sub.get(), 5) == b"end"
        assert hub.reconnects == 0
        await sub.close()
    finally:
        await hub.stop()
        await redis.aclose()
        valkey.stop()
