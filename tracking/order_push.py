"""Order changes, from their domain events to the live sockets and the ETA statistics.

Two consumers of the ``order.*`` events (events/relay.py):

- ``live-push`` tells everyone watching: the order's channel and the city's dispatcher
  feed get a ``status`` message, each worker the change touches gets a ``job`` message
  and has their job reloaded (their ETA and arrival geofence follow the new job), and
  workers whose offers the change withdrew get ``offer_withdrawn``. These effects are
  outside PostgreSQL, so at least once: after a failure (Redis down) the event is retried
  until Redis is back, and a watcher may see a ``status`` twice (same ``version``).
- ``eta-learning`` folds an arrival's observed trip into the city's ETA statistics, in
  the consumer's transaction (exactly once).

Tracking never imports dispatch: the events carry what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from doorstep.db import Tx
from events.relay import Consumer
from events.types import ORDER_EVENTS, AlertChanged, Event, OrderChanged
from tracking.eta_store import EtaStore


class LivePush(Protocol):
    """What the live-push consumer needs of the tracking runtime."""

    async def publish_order(self, city_id: str, order_id: int, payload: dict[str, Any]) -> None: ...

    async def publish_orders(self, updates: Sequence[tuple[str, int, dict[str, Any]]]) -> None: ...

    async def send_to_worker(self, worker_id: int, payload: dict[str, Any]) -> bool: ...

    async def job_changed(self, worker_id: int) -> None: ...


def status_message(p: OrderChanged) -> dict[str, Any]:
    """The ``status`` message of docs/protocol.md."""
    return {
        "type": "status",
        "order_id": p.order_id,
        "status": p.status,
        "previous": p.previous,
        "action": p.action,
        "version": p.version,
        "worker_id": p.worker_id,
        "crew": p.crew,
        "at": p.at.isoformat(),
    }


def _status_only(p: OrderChanged) -> bool:
    """Whether an order change's only push is its ``status`` (no worker touched, no offer
    withdrawn): e.g. ``order.booked``, ``order.paid``."""
    return not p.withdrawn_offers and not (
        {p.previous_worker_id, p.worker_id, *p.crew, *p.previous_crew} - {None}
    )


def live_push(push: LivePush) -> Consumer:
    """The consumer that pushes order changes to sockets."""

    async def handle(_tx: Tx, event: Event) -> None:
        p = event.payload
        assert isinstance(p, OrderChanged)
        await push.publish_order(p.city_id, p.order_id, status_message(p))
        await _to_workers(p)

    async def handle_batch(_tx: Tx, events: list[Event]) -> None:
        """A batch, as ``handle`` one by one: each stretch of changes whose only push is
        their ``status`` is published in one pipeline (one Redis round trip for, say, a
        stretch of ``order.paid``), the others one by one between, in seq order."""
        stretch: list[tuple[str, int, dict[str, Any]]] = []
        for event in events:
            p = event.payload
            assert isinstance(p, OrderChanged)
            if _status_only(p):
                stretch.append((p.city_id, p.order_id, status_message(p)))
                continue
            await push.publish_orders(stretch)
            stretch = []
            await handle(_tx, event)
        await push.publish_orders(stretch)

    async def _to_workers(p: OrderChanged) -> None:
        for offer in p.withdrawn_offers:
            await push.send_to_worker(
                offer["worker_id"],
                {
                    "type": "offer_withdrawn",
                    "offer_id": offer["offer_id"],
                    "order_id": p.order_id,
                    "reason": f"order {p.action}",
                },
            )
        touched = {p.previous_worker_id, p.worker_id, *p.crew, *p.previous_crew}
        for worker_id in sorted(w for w in touched if w is not None):
            await push.job_changed(worker_id)
            holds = worker_id == p.worker_id or worker_id in p.crew
            await push.send_to_worker(
                worker_id,
                {
                    "type": "job",
                    "order_id": p.order_id,
                    "status": p.status if holds else "withdrawn",
                    "action": p.action,
                    "version": p.version,
                },
            )

    return Consumer(
        "live-push", frozenset(ORDER_EVENTS.values()), handle, handle_batch=handle_batch
    )


class FeedPush(Protocol):
    """What the alert-push consumer needs: the city's dispatcher feed."""

    async def publish_feed(self, city_id: str, payload: dict[str, Any]) -> None: ...


def alert_message(p: AlertChanged) -> dict[str, Any]:
    """The feed's ``alert`` message (docs/protocol.md)."""
    return {
        "type": "alert",
        "alert_id": p.alert_id,
        "order_id": p.order_id,
        "kind": p.kind,
        "message": p.message,
        "raised_at": p.raised_at.isoformat(),
        "resolved": p.resolved,
    }


def alert_push(push: FeedPush) -> Consumer:
    """The consumer that tells the city's dispatchers of alerts raised and resolved."""

    async def handle(_tx: Tx, event: Event) -> None:
        p = event.payload
        assert isinstance(p, AlertChanged)
        await push.publish_feed(p.city_id, alert_message(p))

    return Consumer("alert-push", frozenset({"alert.raised", "alert.resolved"}), handle)


def eta_learning(eta: EtaStore) -> Consumer:
    """The consumer that learns from arrivals how the road ETA errs."""

    async def handle(_tx: Tx, event: Event) -> None:
        p = event.payload
        assert isinstance(p, OrderChanged)
        if (
            p.previous != "en_route"
            or p.en_route_at is None
            or p.arrived_at is None
            or not p.eta_predicted_s
        ):
            return
        observed = (p.arrived_at - p.en_route_at).total_seconds()
        if observed < 0:
            return
        await eta.learn(
            p.city_id,
            p.order_id,
            int(p.en_route_at.timestamp() * 1000),
            observed,
            float(p.eta_predicted_s),
        )

    return Consumer("eta-learning", frozenset({"order.arrived"}), handle)
