"""Number masking's I/O: the events consumer that binds and releases, and the lookup
behind ``GET /v1/orders/{order_id}/contact``.

The ``number-masking`` consumer follows every order event: an order held by a worker
and under way (:data:`privacy.rules.CALLABLE`) gets a binding of its customer (A) and
worker (B); a change of worker, completion, cancellation or failure releases it. The
provider is called inside the consumer's transaction, before the row is written: a
failure rolls the delivery back and the relay retries it (events/relay.py), and a
retried bind with the same ``OutId`` answers the same binding, a retried release of one
already gone counts as done, so nothing is bound twice or left bound. A refusal that a
retry cannot fix (a number the provider does not take) is logged and the order has no
masked number (the route says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from dispatch import store as dispatch_store
from doorstep.db import Conn, Tx
from doorstep.errors import Conflict, NotFound
from events.relay import Consumer
from events.types import ORDER_EVENTS, Event, OrderChanged
from privacy import crypto, rules, store
from privacy.axb import Binding, MaskingFailed, NumberMasking
from privacy.store import NumberBinding

log = logging.getLogger("doorstep.privacy")


class NoContact(Conflict):
    """The order has no masked number now (the job is not under way)."""

    code = "no_contact"


class ContactOrderNotFound(NotFound):
    """No such order among the caller's."""

    code = "order_not_found"


@dataclass(frozen=True, slots=True)
class Contact:
    """The number to dial to reach the other party of a job, and until when."""

    order_id: int
    number: str
    calls: str  # "worker" or "customer": whom the number reaches for this caller
    expires_at: datetime


class Masking:
    """The consumer and the lookups, over one provider."""

    def __init__(self, provider: NumberMasking) -> None:
        self.provider = provider

    def consumer(self) -> Consumer:
        """The ``number-masking`` events consumer."""
        return Consumer(
            "number-masking",
            frozenset(ORDER_EVENTS.values()),
            self.handle,
            handle_batch=self.handle_batch,
            background=True,  # a binding a moment later: nobody is on the phone yet
        )

    async def handle(self, tx: Tx, event: Event) -> None:
        """Bind or release as the order's new status asks, inside the delivery's transaction."""
        p = event.payload
        assert isinstance(p, OrderChanged)
        await self._apply(tx, p, await store.live(tx, p.order_id))

    async def handle_batch(self, tx: Tx, events: list[Event]) -> None:
        """A batch of events, as :meth:`handle` one by one, with the live bindings of their
        orders read in one statement (most events, e.g. ``order.paid``, change none); an
        order whose binding changed in the batch is read again for its later events."""
        changes = [e.payload for e in events if isinstance(e.payload, OrderChanged)]
        known = await store.live_of(tx, sorted({p.order_id for p in changes}))
        changed: set[int] = set()
        for p in changes:
            current = (
                await store.live(tx, p.order_id) if p.order_id in changed else known.get(p.order_id)
            )
            if await self._apply(tx, p, current):
                changed.add(p.order_id)

    async def _apply(self, tx: Tx, p: OrderChanged, current: NumberBinding | None) -> bool:
        """Bind or release for one change, given the order's live binding; True if a
        binding was released or made."""
        want = rules.wanted(p.status, p.worker_id)
        now = datetime.now(UTC)
        wrote = False
        if current is not None and (not want or current.worker_id != p.worker_id):
            await self.provider.unbind(Binding(current.subs_id, current.secret_no))
            await store.released(tx, current.id, now)
            current, wrote = None, True
        if not want or current is not None:
            return wrote
        assert p.worker_id is not None
        # A is the order's contact (who is at home: the booking may be for someone else),
        # else the customer's own phone; B the worker's.
        row = await tx.fetchrow(
            "SELECT nullif(o.contact_phone, '') AS a, c.phone AS customer, w.phone AS b "
            "FROM orders o JOIN users c ON c.id = o.customer_id, users w "
            "WHERE o.id = $1 AND w.id = $2",
            p.order_id,
            p.worker_id,
        )
        a = b = None
        if row is not None:  # encrypted at rest (privacy/crypto.py)
            a = crypto.reveal("orders.contact_phone", row["a"] or "") or crypto.reveal(
                "users.phone", row["customer"]
            )
            b = crypto.reveal("users.phone", row["b"])
        if a is None or b is None:
            log.warning(
                "order %s: no phone for its customer or worker; no masked number", p.order_id
            )
            return wrote
        expires = rules.expires_at(now, p.window_end)
        out_id = rules.out_id(p.order_id, p.worker_id)
        try:
            binding = await self.provider.bind(a=a, b=b, expires=expires, out_id=out_id)
        except MaskingFailed as e:
            if e.retryable:
                raise  # the relay tries the delivery again later
            log.warning("order %s: the provider refused a masked number: %s", p.order_id, e)
            return wrote
        await store.record(
            tx,
            order_id=p.order_id,
            worker_id=p.worker_id,
            out_id=out_id,
            subs_id=binding.subs_id,
            secret_no=binding.secret_no,
            expires_at=expires,
        )
        return True


async def contact(db: Conn, order_id: int, user_id: int) -> Contact:
    """The masked number of ``order_id`` for its customer or its worker (``user_id``).

    Anyone else gets 404 (the order is not theirs to see); a job not under way, or one
    whose number is not bound yet, gets 409 ``no_contact`` saying why."""
    order = await dispatch_store.get(db, order_id)
    if order is None or user_id not in (order.customer_id, order.worker_id):
        raise ContactOrderNotFound(f"no order {order_id}", field="order_id")
    if not rules.wanted(order.status, order.worker_id):
        raise NoContact(
            f"the job is {order.status}: the customer and the worker can call each other "
            "from assignment until the job ends",
            field="order_id",
        )
    binding = await store.live(db, order_id)
    if binding is None or binding.worker_id != order.worker_id:
        raise NoContact("the masked number is not ready yet; try again shortly", field="order_id")
    return Contact(
        order_id=order_id,
        number=binding.secret_no,
        calls="worker" if user_id == order.customer_id else "customer",
        expires_at=binding.expires_at,
    )
