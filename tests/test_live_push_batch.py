"""The live-push consumer's batches: one Redis pipeline for a stretch of status-only order
changes, the same messages in the same order as one event at a time."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import orjson

from doorstep.stores import Stores
from events.types import Event, OrderChanged
from tracking.order_push import live_push
from tracking.service import Tracking


def _change(
    seq: int, city: str, order_id: int, status: str, version: int, worker: int | None = None
) -> Event:
    at = datetime.now(UTC)
    return Event(
        id=seq,
        seq=seq,
        type=f"order.{status}",
        aggregate=f"order:{order_id}",
        version=version,
        payload=OrderChanged(
            order_id=order_id,
            city_id=city,
            customer_id=1,
            kind="instant",
            service_code="x",
            status=status,
            previous=None,
            action=status,
            actor="system",
            actor_id=None,
            version=version,
            worker_id=worker,
            previous_worker_id=None,
            window_start=None,
            window_end=None,
            previous_window_start=None,
            at=at,
        ),
        occurred_at=at,
    )


async def _heard(stores: Stores, channels: list[str], send: Any, n: int) -> list[tuple[str, Any]]:
    """The first ``n`` messages on ``channels`` while ``send()`` runs: (channel, message)."""
    pubsub = stores.redis.pubsub()
    await pubsub.subscribe(*channels)
    try:
        while (await pubsub.get_message(timeout=1.0)) is not None:
            pass  # the subscription confirmations
        await send()
        out: list[tuple[str, Any]] = []
        async with asyncio.timeout(5):
            while len(out) < n:
                m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if m is not None:
                    ch = m["channel"]
                    out.append(
                        (ch.decode() if isinstance(ch, bytes) else ch, orjson.loads(m["data"]))
                    )
        return out
    finally:
        await pubsub.aclose()


async def test_a_batch_publishes_what_one_by_one_publishes_in_the_same_order(
    stores: Stores,
) -> None:
    """A batch of status-only changes around one that touches a worker gives every channel the messages of handle one by one, in seq order."""
    tracking = Tracking(stores)
    try:
        consumer = live_push(tracking)
        assert consumer.handle_batch is not None
        city = f"pushcity-{secrets.token_hex(3)}"
        a, b = 1_900_000_000 + secrets.randbelow(10**6), 1_800_000_000 + secrets.randbelow(10**6)
        worker = 2_100_000_000 + secrets.randbelow(10**6)  # no socket anywhere: nothing to send
        events = [
            _change(1, city, a, "booked", 1),
            _change(2, city, b, "booked", 1),
            _change(3, city, a, "assigned", 2, worker=worker),  # not status-only
            _change(4, city, b, "paid", 2),
            _change(5, city, a, "departed", 3, worker=worker),
            _change(6, city, a, "cancelled", 4),
        ]
        channels = [
            tracking.keys.order_channel(city, a),
            tracking.keys.order_channel(city, b),
            tracking.keys.feed(city),
        ]

        async def singly() -> None:
            for e in events:
                await consumer.handle(None, e)  # type: ignore[arg-type]  # no tx used

        async def batch() -> None:
            await consumer.handle_batch(None, events)  # type: ignore[arg-type,misc]

        one_by_one = await _heard(stores, channels, singly, 12)
        batched = await _heard(stores, channels, batch, 12)
        assert batched == one_by_one
        on_a = [m["version"] for ch, m in batched if ch == channels[0]]
        on_feed = [(m["order_id"], m["version"]) for ch, m in batched if ch == channels[2]]
        assert on_a == [1, 2, 3, 4]
        assert on_feed == [(a, 1), (b, 1), (a, 2), (b, 2), (a, 3), (a, 4)]
    finally:
        await tracking.writer.close()


async def test_a_batch_longer_than_one_pipeline_keeps_its_order(stores: Stores) -> None:
    """120 status-only changes of one order, published in several pipelines, reach its channel in seq order."""
    tracking = Tracking(stores)
    try:
        consumer = live_push(tracking)
        assert consumer.handle_batch is not None
        city = f"pushcity-{secrets.token_hex(3)}"
        order = 1_700_000_000 + secrets.randbelow(10**6)
        events = [_change(i, city, order, "paid", i) for i in range(1, 121)]

        async def batch() -> None:
            await consumer.handle_batch(None, events)  # type: ignore[arg-type,misc]

        heard = await _heard(stores, [tracking.keys.order_channel(city, order)], batch, 120)
        assert [m["version"] for _, m in heard] == list(range(1, 121))
    finally:
        await tracking.writer.close()
