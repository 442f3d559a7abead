"""One change of an order, recorded twice in the caller's transaction: a row of the
order's history (``order_events``, what the timeline shows) and a domain event
(``events``, what other capabilities react to: the live pushes, the day plans, the ETA
statistics, notifications, later money).

The caller holds the order's row lock (or is creating the order), so the order's
events are appended in the order of its changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from dispatch import store
from dispatch.models import Order
from doorstep.db import Tx
from events.types import OrderChanged, aggregate_key, encode_payload, order_event_type


def payload(
    before: Order | None,
    after: Order,
    *,
    action: str,
    actor: str,
    actor_id: int | None,
    reason: str,
    at: datetime,
    withdrawn: Sequence[tuple[int, int]] = (),
    eta_predicted_s: float | None = None,
) -> OrderChanged:
    """The event's payload: the order after the change, and what it was before."""
    return OrderChanged(
        order_id=after.id,
        city_id=after.city_id,
        customer_id=after.customer_id,
        kind=after.kind,
        service_code=after.service_code,
        status=after.status,
        previous=before.status if before is not None else None,
        action=action,
        actor=actor,
        actor_id=actor_id,
        version=after.version,
        worker_id=after.worker_id,
        previous_worker_id=before.worker_id if before is not None else None,
        window_start=after.window_start,
        window_end=after.window_end,
        previous_window_start=before.window_start if before is not None else None,
        at=at,
        reason=reason,
        withdrawn_offers=[{"offer_id": o, "worker_id": w} for o, w in withdrawn],
        eta_predicted_s=eta_predicted_s,
        en_route_at=after.en_route_at,
        arrived_at=after.arrived_at,
        crew=list(after.crew),
        previous_crew=list(before.crew) if before is not None else [],
    )


async def record(
    tx: Tx,
    before: Order | None,
    after: Order,
    *,
    action: str,
    actor: str,
    actor_id: int | None,
    reason: str,
    at: datetime,
    data: dict[str, Any] | None = None,
    withdrawn: Sequence[tuple[int, int]] = (),
    eta_predicted_s: float | None = None,
) -> None:
    """The history row and the domain event of one lifecycle action (one statement)."""
    event = payload(
        before,
        after,
        action=action,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        at=at,
        withdrawn=withdrawn,
        eta_predicted_s=eta_predicted_s,
    )
    await store.add_event(
        tx,
        after.id,
        action=action,
        from_status=before.status if before is not None else None,
        to_status=after.status,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        data=data,
        at=at,
        outbox=_outbox(action, after, event),
    )


def _outbox(action: str, after: Order, event: OrderChanged) -> tuple[str, str, int, dict[str, Any]]:
    """The domain event of ``action`` leaving the order as ``after``, as the outbox row
    the history statement writes with it: (type, aggregate, version, encoded payload)."""
    event_type = order_event_type(action)
    return (
        event_type,
        aggregate_key("order", after.id),
        after.version,
        encode_payload(event_type, event),
    )


async def update_recorded(
    tx: Tx,
    before: Order,
    fields: dict[str, Any],
    *,
    action: str,
    actor: str,
    actor_id: int | None,
    reason: str,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> Order | None:
    """Set ``fields`` on an order whose row lock the caller holds, with its history row
    and domain event, in one statement; None (nothing written) if its version moved.

    The event is built beforehand from the order as the update will leave it: ``fields``
    set and the version one up (what :func:`record` would read back)."""
    expected = replace(before, **fields, version=before.version + 1)
    event = payload(
        before, expected, action=action, actor=actor, actor_id=actor_id, reason=reason, at=at
    )
    return await store.update_recorded(
        tx,
        before.id,
        before.version,
        fields,
        action=action,
        from_status=before.status,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        data=data,
        at=at,
        outbox=_outbox(action, expected, event),
    )
