"""Paying for orders: the async glue between orders, the providers and the ledger.

Every change of money state runs in one transaction with its ledger entry:

- a booking of a prepaid service stores its price breakdown, waits for payment
  (待支付) and defers the job that closes it unpaid (``hold``, in the booking's transaction);
- the customer pays: a trade row, then the provider's prepay (``start``);
- a verified payment (notification or query) marks the trade paid, posts
  ``payment.captured`` and confirms the order (``apply_trade``); a payment for an order
  already closed or cancelled, or a second payment for the same purpose, is captured and
  refunded in full at once;
- a refund sets the money aside (``refund.requested``) and a job asks the provider; its
  notification (or a query) settles it (``refund.succeeded`` / ``refund.failed``);
- a cancelled order's payments are refunded less the cancellation fee (the ``payments``
  events consumer); its unpaid trades are closed at the provider.

Locks are always taken order first, then payment, then refund, so two paths never wait
on each other in the opposite order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import msgspec

from dispatch import store as dispatch_store
from dispatch.models import Order
from dispatch.service import Caller, transition_locked
from doorstep.db import Tx
from doorstep.stores import Stores
from events.relay import Consumer, in_runs
from events.types import Event, OrderChanged
from growth import service as growth
from growth import store as growth_store
from jobs import store as jobs_store
from ledger import store as ledger_store
from payments import rules
from payments import store as store
from payments.errors import (
    InvalidPayment,
    NotificationRejected,
    PaymentConflict,
    PaymentNotFound,
    ProviderRefused,
    ProviderUnavailable,
    RefundNumberReused,
)
from payments.providers import (
    Ack,
    PaymentNotice,
    PaymentProvider,
    PrepayRequest,
    Refund,
    RefundRequest,
    Trade,
)
from payments.rules import PaymentParams
from payments.store import PaymentRow, RefundRow

log = logging.getLogger("doorstep.payments")
QUEUE = "payments"
_PAID = frozenset({"order.paid"})
SYSTEM = Caller("system", None)
Outcome = Literal["applied", "duplicate", "ignored", "rejected"]


@dataclass(frozen=True, slots=True)
class Applied:
    """What became of a payment or refund report (a notification or a query's answer)."""

    outcome: Outcome
    reason: str = ""


@dataclass(slots=True)
class _Logged:
    """A notification being applied, and whether it is logged already."""

    provider: str
    notify_id: str
    done: bool = False


def _close_lock(order_id: int) -> str:
    return f"payments-close:{order_id}"


class Payments:
    """The payments of this process: its providers, and the work on orders' money."""

    def __init__(
        self,
        stores: Stores,
        providers: Mapping[str, PaymentProvider],
        *,
        notify_base: str,
        params: PaymentParams | None = None,
    ) -> None:
        self.stores = stores
        self.providers = dict(providers)
        self.notify_base = notify_base.rstrip("/")
        self.params = params or PaymentParams()

    def notify_url(self, provider: str) -> str:
        """Where a provider posts its notifications to us."""
        return f"{self.notify_base}/v1/payments/{provider}/notify"

    def provider(self, name: str) -> PaymentProvider:
        """A configured provider, or InvalidPayment naming the field."""
        found = self.providers.get(name)
        if found is None:
            raise InvalidPayment(
                f"{name!r} is not configured here; configured: {', '.join(sorted(self.providers)) or 'none'}",
                field="provider",
            )
        return found

    # --- booking ---------------------------------------------------------------------------

    async def hold(self, tx: Tx, order: Order, fees: tuple[tuple[str, str, int], ...] = ()) -> bool:
        """In the booking's transaction: store the price breakdown (with ``fees``, e.g. the
        insurance premium after-sales adds); True (and the close job deferred) if the order
        must be paid before it is dispatched."""
        mode = await store.service_mode(tx, order.service_code)
        b = rules.breakdown(
            order.price_minor,
            fees=fees,
            pay_mode=cast(rules.PayMode, mode["pay_mode"]) if mode else "after_service",
            deposit_fen=int(mode["deposit_fen"]) if mode else 0,
            inspection_fee_fen=int(mode["inspection_fee_fen"]) if mode else 0,
        )
        await store.save_price(tx, order.id, b.to_json())
        if rules.due_before_dispatch(b) is None or not self.providers:
            return False
        await jobs_store.defer(
            tx,
            "payments:close_unpaid",
            {"order_id": order.id},
            at=order.created_at + timedelta(seconds=self.params.close_after_s),
            queueing_lock=_close_lock(order.id),
            queue=QUEUE,
        )
        return True

    # --- paying ----------------------------------------------------------------------------

    async def start(
        self,
        customer_id: int,
        order_id: int,
        *,
        provider: str,
        channel: str,
        payer_openid: str | None = None,
        client_ip: str | None = None,
    ) -> PaymentRow:
        """The customer pays what the order is waiting for: a trade at the provider and
        what the app needs to pay it (a pending trade of the same channel is reused)."""
        name, chan = rules.check_channel(provider, channel)
        gateway = self.provider(name)
        if chan == "jsapi" and not payer_openid:
            raise InvalidPayment("a JSAPI payment needs the payer's openid", field="openid")
        # A pending trade of another channel, of another amount (the discount changed at
        # checkout), or past its expiry is closed at the provider first.
        async with self.stores.pool.acquire() as conn:
            seen = await dispatch_store.get(conn, order_id)
            due = await self._due_or_none(conn, seen) if seen is not None else None
        for p in await store.payments_of_order(self.stores.pool, order_id):
            if p.status == "pending" and (
                (p.provider, p.channel) != (name, chan)
                or (due is not None and p.purpose == due[0] and p.amount_fen != due[1])
                or _expired(p, datetime.now(UTC))
            ):
                # It lets go of a discount it holds before the provider closes it: the
                # provider's report of the close may land before the new trade is made
                # (Alipay's TRADE_CLOSED notice) and must not release the customer's coupon.
                async with self.stores.pool.acquire() as conn, conn.transaction():
                    await dispatch_store.get(conn, order_id, lock=True)
                    await growth.on_trade_replacing(
                        conn,
                        order_id,
                        payment_id=p.id,
                        until=datetime.now(UTC) + timedelta(seconds=self.params.close_after_s),
                    )
                await self._close_at_provider(p)
        async with self.stores.pool.acquire() as conn, conn.transaction():
            order = await dispatch_store.get(conn, order_id, lock=True)
            if order is None or order.customer_id != customer_id:
                raise PaymentNotFound(f"no order {order_id}", field="order_id")
            purpose, amount = await self._due(conn, order)
            now = datetime.now(UTC)
            payment: PaymentRow | None = None
            replaced: list[int] = []
            for p in await store.payments_of_order(conn, order_id):
                if p.purpose != purpose or p.status != "pending":
                    continue
                if (p.provider, p.channel, p.amount_fen) == (name, chan, amount) and not _expired(
                    p, now
                ):
                    payment = p
                else:
                    await store.update_payment(conn, p.id, status="closed", closed_at=now)
                    replaced.append(p.id)
            if payment is None:
                payment = await store.insert_payment(
                    conn,
                    order_id=order_id,
                    customer_id=customer_id,
                    purpose=purpose,
                    provider=name,
                    channel=chan,
                    out_trade_no=rules.new_out_trade_no(order_id, cast(rules.Purpose, purpose)),
                    amount_fen=amount,
                    expires_at=rules.trade_expires_at(
                        cast(rules.Purpose, purpose),
                        created=order.created_at,
                        now=now,
                        params=self.params,
                    ),
                )
            # The trade of the discounted amount holds the discount (growth/); a replaced
            # trade that still held it (none does once the new one took it) lets it go.
            if purpose in ("prepay", "final"):
                await growth.on_trade_made(
                    conn, order_id, payment_id=payment.id, amount_fen=payment.amount_fen
                )
            for closed_id in replaced:
                await growth.on_trade_closed(conn, order_id, payment_id=closed_id)
        if payment.prepay:
            return payment
        prepay = await gateway.prepay(
            PrepayRequest(
                out_trade_no=payment.out_trade_no,
                description=f"Doorstep 订单 {order_id} {order.service_code}"[:127],
                amount_fen=payment.amount_fen,
                channel=chan,
                notify_url=self.notify_url(name),
                expire_at=payment.expires_at,
                payer_openid=payer_openid,
                client_ip=client_ip,
            )
        )
        async with self.stores.pool.acquire() as conn, conn.transaction():
            return await store.update_payment(conn, payment.id, prepay=msgspec.to_builtins(prepay))

    async def _due(self, conn: Tx, order: Order) -> tuple[str, int]:
        """What the order waits to be paid now, or PaymentConflict."""
        due = await self._due_or_none(conn, order)
        if due is None:
            raise PaymentConflict(
                f"the order is {order.status}: nothing to pay now", field="order_id"
            )
        return due

    async def _due_or_none(self, conn: Tx, order: Order) -> tuple[str, int] | None:
        price = await store.price(conn, order.id)
        if price is None:
            return None
        b = rules.Breakdown(
            lines=(),
            total_fen=int(price["total_fen"]),
            pay_mode=price["pay_mode"],
            deposit_fen=int(price["deposit_fen"]),
            inspection_fee_fen=int(price["inspection_fee_fen"]),
        )
        extras = [
            rules.Extra(int(e["id"]), e["kind"], int(e["total_fen"]), e["status"])
            for e in await store.extras_of_order(conn, order.id)
        ]
        paid: dict[str, int] = {}
        for p in await store.payments_of_order(conn, order.id):
            if p.status == "paid":
                paid[p.purpose] = paid.get(p.purpose, 0) + p.amount_fen
        return rules.due_now(order.status, b, extras, paid)

    # --- quotes and add-ons --------------------------------------------------------------------

    async def propose(
        self, worker_id: int, order_id: int, kind: str, items: list[tuple[str, int]]
    ) -> dict[str, Any]:
        """The worker on site proposes a quote (a deposit service, arrived or in service)
        or add-on items (in service); the customer decides."""
        total = rules.check_items(list(items))
        async with self.stores.pool.acquire() as conn, conn.transaction():
            order = await dispatch_store.get(conn, order_id, lock=True)
            if order is None or order.worker_id != worker_id:
                raise PaymentNotFound(f"no order {order_id} of yours", field="order_id")
            price = await store.price(conn, order_id)
            if kind == "quote":
                if price is None or price["pay_mode"] != "deposit":
                    raise PaymentConflict("only a deposit service takes a quote", field="kind")
                if order.status not in ("arrived", "in_service"):
                    raise PaymentConflict("a quote is given on site", field="order_id")
                if any(
                    e["kind"] == "quote" and e["status"] != "declined"
                    for e in await store.extras_of_order(conn, order_id)
                ):
                    raise PaymentConflict("this order has a quote already", field="kind")
            elif order.status != "in_service":
                raise PaymentConflict("add-on items are added during the service", field="order_id")
            row = await store.insert_extra(
                conn,
                order_id=order_id,
                kind=kind,
                items=[{"name": n.strip(), "amount_fen": a} for n, a in items],
                total_fen=total,
                worker_id=worker_id,
            )
        return dict(row)

    async def decide(
        self, customer_id: int, order_id: int, extra_id: int, *, approve: bool
    ) -> dict[str, Any]:
        """The customer approves (the difference becomes due) or declines a proposal; a
        declined quote refunds the deposit less the inspection fee."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            order = await dispatch_store.get(conn, order_id, lock=True)
            if order is None or order.customer_id != customer_id:
                raise PaymentNotFound(f"no order {order_id}", field="order_id")
            extra = next(
                (e for e in await store.extras_of_order(conn, order_id) if e["id"] == extra_id),
                None,
            )
            if extra is None:
                raise PaymentNotFound(f"no proposal {extra_id} on this order", field="extra_id")
            if extra["status"] != "proposed":
                raise PaymentConflict(
                    f"the proposal is {extra['status']} already", field="extra_id"
                )
            row = await store.decide_extra(conn, extra_id, "approved" if approve else "declined")
            if extra["kind"] == "quote" and not approve:
                price = await store.price(conn, order_id)
                assert price is not None
                deposit = next(
                    (
                        p
                        for p in await store.payments_of_order(conn, order_id)
                        if p.purpose == "deposit" and p.status == "paid"
                    ),
                    None,
                )
                if deposit is not None:
                    locked = await store.payment(conn, deposit.id, lock=True)
                    assert locked is not None
                    back = (
                        locked.amount_fen - locked.reserved_fen - int(price["inspection_fee_fen"])
                    )
                    if back > 0:
                        await self._refund_in(
                            conn,
                            locked,
                            back,
                            f"{locked.out_trade_no}Q",
                            cause="quote_declined",
                            reason="quote declined: the deposit less the inspection fee",
                        )
        return dict(row)

    async def _close_at_provider(self, p: PaymentRow) -> bool:
        """Close a pending trade at the provider; False if it turned out to be paid."""
        try:
            await self.provider(p.provider).close(p.out_trade_no)
        except ProviderRefused as e:
            if e.provider_code in ("ORDER_NOT_EXIST", "ORDER_CLOSED", "TRADE_NOT_EXIST"):
                return True
            await self.sync(p.out_trade_no)  # ORDERPAID and the like: see what it holds
            return False
        return True

    # --- notifications ------------------------------------------------------------------------

    async def notification(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[Ack, Applied]:
        """An incoming notification: verified, applied, and the answer for the provider."""
        provider = self.providers.get(provider_name)
        if provider is None:
            raise PaymentNotFound(f"no provider {provider_name!r}", field="provider")
        try:
            notice = provider.parse_notification(headers, body)
        except NotificationRejected as e:
            log.warning("%s notification rejected: %s", provider_name, e.message)
            await store.log_notification(
                self.stores.pool,
                provider=provider_name,
                notify_id=None,
                kind=None,
                out_trade_no=None,
                outcome="rejected",
                reason=e.message,
            )
            return _status(provider.acknowledge(False, e.message), 401), Applied(
                "rejected", e.message
            )
        if isinstance(notice, PaymentNotice):
            no, kind = notice.trade.out_trade_no, "payment"
        else:
            no, kind = notice.refund.out_trade_no, "refund"
        # One connection. A payment report that changes nothing (an unknown or mismatched
        # trade, a trade already paid — the commonest, a redelivery) is known from one
        # read and logged in one statement; anything else is applied and logged in one
        # transaction. Either way the provider hears "taken" only once it is committed.
        async with self.stores.pool.acquire() as conn:
            seen: PaymentRow | None = None
            result: Applied | None = None
            as_duplicate = False
            if isinstance(notice, PaymentNotice):
                # A report of a paid trade on its own terms is logged as a duplicate by
                # the statement that reads our trade, if that is paid for the same amount
                # (one round trip for a redelivery); the rules below still decide.
                t = notice.trade
                seen, as_duplicate = await store.payment_by_no_or_duplicate(
                    conn,
                    no,
                    provider=t.provider,
                    amount_fen=t.amount_fen,
                    log=(provider_name, notice.notify_id) if self._paid_terms(t) else None,
                )
                result = self._unchanged(t, seen)
                if as_duplicate and result != Applied("duplicate", "already paid"):
                    log.error("%s %s logged as a duplicate but is %s", provider_name, no, result)
                    as_duplicate = False  # logged again below with what the rules say
            if result is not None:
                if not as_duplicate:
                    await self._log(conn, provider_name, notice.notify_id, kind, no, result)
            else:
                async with conn.transaction():
                    logged = _Logged(provider_name, notice.notify_id)
                    if isinstance(notice, PaymentNotice):
                        result = await self._apply_trade_in(
                            conn, notice.trade, seen=seen, log=logged
                        )
                    else:
                        result = await self._apply_refund_in(conn, notice.refund)
                    if not logged.done:
                        await self._log(conn, provider_name, notice.notify_id, kind, no, result)
        if result.outcome == "applied":
            log.info("%s %s %s applied (%s)", provider_name, kind, no, notice.notify_id)
        if result.outcome == "rejected":
            log.warning(
                "%s %s notification for %s rejected: %s", provider_name, kind, no, result.reason
            )
            return _status(provider.acknowledge(False, result.reason), 422), result
        return provider.acknowledge(True), result

    @staticmethod
    async def _log(
        conn: Tx, provider: str, notify_id: str, kind: str, no: str, result: Applied
    ) -> None:
        await store.log_notification(
            conn,
            provider=provider,
            notify_id=notify_id,
            kind=kind,
            out_trade_no=no,
            outcome=result.outcome,
            reason=result.reason,
        )

    def _paid_terms(self, trade: Trade) -> bool:
        """Whether a report says "paid" on terms of ours (a configured provider's merchant,
        our currency, the provider's trade number): then, if our trade of its number is paid
        through that provider for its amount, it is a duplicate (``_unchanged``)."""
        found = self.providers.get(trade.provider)
        return (
            trade.status == "paid"
            and bool(trade.provider_trade_no)
            and found is not None
            and trade.merchant_id == found.merchant_id
            and trade.currency == rules.CURRENCY
        )

    def _unchanged(self, trade: Trade, seen: PaymentRow | None) -> Applied | None:
        """What a payment report comes to when it can change nothing, from our trade as
        read (no lock needed: a paid trade stays paid); None if it must be applied."""
        if seen is None:
            return Applied("rejected", f"unknown out_trade_no {trade.out_trade_no!r}")
        problem = rules.notice_problem(
            trade,
            amount_fen=seen.amount_fen,
            merchant_id=self.provider(seen.provider).merchant_id,
            provider=seen.provider,
        )
        if problem is not None:
            return Applied("rejected", problem)
        if trade.status != "paid":
            if trade.status == "closed" and seen.status == "pending":
                return None  # our trade closes too
            return Applied("ignored", f"trade is {trade.provider_state}")
        if not trade.provider_trade_no:
            return Applied("rejected", "a paid trade without the provider's trade number")
        if seen.status == "paid":
            return Applied("duplicate", "already paid")
        return None

    async def apply_trade(self, trade: Trade, *, source: str) -> Applied:
        """A provider's report of a trade (notification or query), checked against our
        trade under the order's and the trade's locks, applied once."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            result = await self._apply_trade_in(conn, trade)
        if result.outcome == "applied":
            log.info("payment %s captured (%s)", trade.out_trade_no, source)
        return result

    async def _apply_trade_in(
        self,
        conn: Tx,
        trade: Trade,
        *,
        seen: PaymentRow | None = None,
        log: _Logged | None = None,
    ) -> Applied:
        """:meth:`apply_trade` in the caller's transaction (``seen``: our trade, read
        already; ``log``: the notification reporting it, logged by the statement that marks
        the trade paid if it comes to that — one round trip fewer — and then ``log.done``).

        The trade is read first without a lock: a report that does not match it is refused,
        and one for a trade already paid is a duplicate (a paid trade stays paid) — neither
        takes a lock. Only a payment to capture locks the order, then the trade (the
        module's lock order), and checks again under the locks.
        """
        if seen is None:
            seen = await store.payment_by_no(conn, trade.out_trade_no)
        unchanged = self._unchanged(trade, seen)
        if unchanged is not None:
            return unchanged
        assert seen is not None
        if trade.status != "paid":  # closed at the provider: our pending trade closes
            await dispatch_store.get(conn, seen.order_id, lock=True)
            p = await store.payment(conn, seen.id, lock=True)
            if p is not None and p.status == "pending":
                await store.update_payment(conn, p.id, status="closed", closed_at=datetime.now(UTC))
                # A coupon and points this trade holds go back to the customer (growth/).
                await growth.on_trade_closed(conn, p.order_id, payment_id=p.id)
            return Applied("ignored", f"trade is {trade.provider_state}")
        assert trade.provider_trade_no  # _unchanged refused a paid trade without one
        order = await dispatch_store.get(conn, seen.order_id, lock=True)
        assert order is not None
        now = datetime.now(UTC)
        # Locks the trade and marks it paid in one statement; None: another delivery won.
        # One statement marks the trade paid, posts its capture to the ledger and logs the
        # notification (the capture's terms are the trade's, which marking does not change).
        marked = await store.mark_paid(
            conn,
            seen.id,
            provider_trade_no=trade.provider_trade_no,
            paid_at=trade.paid_at or now,
            log=None if log is None else (log.provider, log.notify_id, trade.out_trade_no),
            entry=rules.captured(
                seen.provider, trade.provider_trade_no, seen.order_id, seen.amount_fen
            ),
            # Whether the order has a discount, read by the same statement under the
            # order's lock (none: growth's capture step has nothing to do, no round trip).
            flag=growth_store.has_discount("p.order_id"),
        )
        if log is not None:  # as "applied" (below, whatever follows) or "duplicate" (here)
            log.done = True
        if marked is None:
            return Applied("duplicate", "already paid")
        p, another, discounted = marked
        others_paid = p.purpose != "addon" and another  # add-ons: rounds
        if others_paid:
            await self._refund_in(
                conn,
                p,
                p.amount_fen,
                f"{p.out_trade_no}D",
                cause="duplicate",
                reason="paid twice: the second payment is refunded",
            )
        elif order.status == "awaiting_payment" and p.purpose in ("prepay", "deposit"):
            # A coupon or points on the order: the platform pays them in, in this
            # transaction, so the order's funds hold its full price (growth/).
            await growth.on_captured(
                conn,
                order.id,
                payment_id=p.id,
                amount_fen=p.amount_fen,
                trade=trade.provider_trade_no,
                at=now,
                discounted=discounted,
            )
            await transition_locked(
                conn,
                order,
                "pay",
                SYSTEM,
                reason=f"paid by {p.provider}",
                at=now,
                data={"out_trade_no": p.out_trade_no, "amount_fen": p.amount_fen},
            )
            # Its close job is cancelled by this module's consumer of order.paid, off the
            # notification's transaction (the job would find the order paid and do nothing).
        elif order.status == "completed":
            if p.purpose == "final":
                # A coupon or points on a pay-after-service order: the platform pays them
                # in with the final payment, so the order's funds hold its full price.
                await growth.on_captured(
                    conn,
                    order.id,
                    payment_id=p.id,
                    amount_fen=p.amount_fen,
                    trade=trade.provider_trade_no,
                    at=now,
                    discounted=discounted,
                )
            # Paid after the service (the final payment, a balance, add-ons): its points.
            await growth.on_paid_after_completion(conn, order.id, payment_id=p.id)
        elif order.status in ("cancelled", "failed"):
            await self._refund_in(
                conn,
                p,
                p.amount_fen,
                f"{p.out_trade_no}L",
                cause="closed_order",
                reason=f"paid after the order was {order.status}: refunded in full",
            )
        return Applied("applied")

    async def sync(self, out_trade_no: str) -> Applied:
        """Ask the provider about a trade and apply what it says (the active query)."""
        p = await store.payment_by_no(self.stores.pool, out_trade_no)
        if p is None:
            raise PaymentNotFound(f"no trade {out_trade_no}", field="out_trade_no")
        try:
            trade = await self.provider(p.provider).query(out_trade_no)
        except ProviderRefused as e:
            if e.provider_code in ("ORDER_NOT_EXIST", "TRADE_NOT_EXIST"):
                return Applied("ignored", "the provider has no such trade")
            raise
        return await self.apply_trade(trade, source="query")

    # --- refunds ------------------------------------------------------------------------------

    async def _refund_in(
        self,
        conn: Tx,
        p: PaymentRow,
        amount_fen: int,
        out_refund_no: str,
        *,
        cause: str,
        reason: str,
        by: int | None = None,
    ) -> RefundRow:
        """Set a refund up in the caller's transaction (which holds the payment's lock):
        the row, the ledger entry, the job that asks the provider. Idempotent by number."""
        rules.check_out_refund_no(out_refund_no)
        existing = await store.refund_by_no(conn, out_refund_no, lock=True)
        if existing is not None:
            if existing.amount_fen != amount_fen or existing.payment_id != p.id:
                raise RefundNumberReused(
                    f"refund {out_refund_no} was asked for {existing.amount_fen} fen of trade "
                    f"{existing.payment_id}; a new refund needs a new number",
                    field="out_refund_no",
                )
            return existing
        if p.status != "paid":
            raise PaymentConflict(f"the payment is {p.status}, not paid", field="payment")
        rules.check_refund(amount_fen, amount_fen=p.amount_fen, reserved_fen=p.reserved_fen)
        await store.update_payment(conn, p.id, reserved_fen=p.reserved_fen + amount_fen)
        r = await store.insert_refund(
            conn,
            payment_id=p.id,
            order_id=p.order_id,
            out_refund_no=out_refund_no,
            amount_fen=amount_fen,
            cause=cause,
            reason=reason[:200],
            requested_by=by,
        )
        await ledger_store.post(
            conn, rules.refund_requested(p.provider, out_refund_no, p.order_id, amount_fen)
        )
        # The refund's share of a coupon's subsidy and of points goes back with it (growth/).
        await growth.on_refund(
            conn,
            p.order_id,
            payment_id=p.id,
            paid_fen=p.amount_fen,
            refunded_before=p.reserved_fen,
            amount_fen=amount_fen,
            out_refund_no=out_refund_no,
        )
        await jobs_store.defer(
            conn,
            "payments:send_refund",
            {"out_refund_no": out_refund_no},
            queueing_lock=f"refund:{out_refund_no}",
            queue=QUEUE,
        )
        return r

    async def refund(
        self,
        order_id: int,
        *,
        out_refund_no: str,
        amount_fen: int,
        reason: str,
        by: int | None,
        payment_id: int | None = None,
    ) -> RefundRow:
        """A refund of an order's payment (after-sales, by finance), idempotent by number."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            return await self.refund_in(
                conn,
                order_id,
                out_refund_no=out_refund_no,
                amount_fen=amount_fen,
                reason=reason,
                by=by,
                payment_id=payment_id,
            )

    async def refund_in(
        self,
        conn: Tx,
        order_id: int,
        *,
        out_refund_no: str,
        amount_fen: int,
        reason: str,
        by: int | None,
        payment_id: int | None = None,
    ) -> RefundRow:
        """:meth:`refund` inside the caller's transaction (after-sales resolves a ticket
        and refunds in one transaction)."""
        rules.fen(amount_fen, "amount_fen")
        rules.check_out_refund_no(out_refund_no)
        order = await dispatch_store.get(conn, order_id, lock=True)
        if order is None:
            raise PaymentNotFound(f"no order {order_id}", field="order_id")
        paid = [
            p
            for p in await store.payments_of_order(conn, order_id)
            if p.status == "paid" and (payment_id is None or p.id == payment_id)
        ]
        existing = await store.refund_by_no(conn, out_refund_no)
        if existing is not None and existing.order_id != order_id:
            raise RefundNumberReused(
                f"refund {out_refund_no} belongs to another order", field="out_refund_no"
            )
        target = next((p for p in paid if existing and p.id == existing.payment_id), None)
        if target is None:
            target = next((p for p in paid if p.amount_fen - p.reserved_fen >= amount_fen), None)
        if target is None:
            left = sum(p.amount_fen - p.reserved_fen for p in paid)
            raise InvalidPayment(
                f"{amount_fen} fen is more than any payment of this order has left to refund ({left} fen in all)",
                field="amount_fen",
            )
        locked = await store.payment(conn, target.id, lock=True)
        assert locked is not None
        return await self._refund_in(
            conn, locked, amount_fen, out_refund_no, cause="after_sales", reason=reason, by=by
        )

    async def send_refund(self, out_refund_no: str) -> None:
        """The job: ask the provider for a refund (idempotent there by number)."""
        r = await store.refund_by_no(self.stores.pool, out_refund_no)
        if r is None or r.status not in ("requested", "processing"):
            return
        p = await store.payment(self.stores.pool, r.payment_id)
        assert p is not None
        provider = self.provider(p.provider)
        try:
            answer = await provider.refund(
                RefundRequest(
                    out_trade_no=p.out_trade_no,
                    out_refund_no=r.out_refund_no,
                    refund_fen=r.amount_fen,
                    total_fen=p.amount_fen,
                    reason=r.reason or r.cause,
                    notify_url=self.notify_url(p.provider),
                )
            )
        except ProviderRefused as e:
            log.warning("refund %s refused by %s: %s", out_refund_no, p.provider, e.message)
            answer = Refund(
                provider=provider.name,
                out_trade_no=p.out_trade_no,
                out_refund_no=r.out_refund_no,
                status="closed",
                provider_state=e.provider_code,
                refund_fen=r.amount_fen,
                total_fen=p.amount_fen,
                currency="CNY",
            )
        await self.apply_refund(answer, source="refund call")

    async def apply_refund(self, refund: Refund, *, source: str) -> Applied:
        """A provider's report of a refund: states only move forward; money moves once."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            result = await self._apply_refund_in(conn, refund)
        if result.outcome == "applied":
            log.info("refund %s: %s (%s)", refund.out_refund_no, refund.status, source)
        return result

    async def _apply_refund_in(self, conn: Tx, refund: Refund) -> Applied:
        """:meth:`apply_refund` in the caller's transaction."""
        seen = await store.refund_by_no(conn, refund.out_refund_no)
        if seen is None:
            return Applied("rejected", f"unknown out_refund_no {refund.out_refund_no!r}")
        await dispatch_store.get(conn, seen.order_id, lock=True)
        p = await store.payment(conn, seen.payment_id, lock=True)
        r = await store.refund_by_no(conn, refund.out_refund_no, lock=True)
        assert p is not None
        assert r is not None
        if refund.out_trade_no != p.out_trade_no:
            return Applied("rejected", "the refund names another trade")
        if refund.refund_fen != r.amount_fen:
            return Applied(
                "rejected", f"amount {refund.refund_fen} fen differs from {r.amount_fen}"
            )
        if refund.currency not in ("CNY", ""):
            return Applied("rejected", f"currency {refund.currency!r} is not CNY")
        if r.status in ("succeeded", "closed"):
            return Applied("duplicate", f"refund already {r.status}")
        if refund.status == "succeeded":
            await store.update_refund(
                conn,
                r.id,
                status="succeeded",
                succeeded_at=refund.succeeded_at or datetime.now(UTC),
                provider_refund_no=refund.provider_refund_no or r.provider_refund_no,
            )
            await ledger_store.post(
                conn,
                rules.refund_succeeded(p.provider, r.out_refund_no, r.order_id, r.amount_fen),
            )
        elif refund.status == "closed":
            await store.update_refund(conn, r.id, status="closed")
            await store.update_payment(conn, p.id, reserved_fen=p.reserved_fen - r.amount_fen)
            await ledger_store.post(
                conn, rules.refund_failed(p.provider, r.out_refund_no, r.order_id, r.amount_fen)
            )
            await growth.on_refund_failed(conn, r.order_id, r.out_refund_no)
        elif refund.status == "abnormal":
            await store.update_refund(conn, r.id, status="abnormal")
        elif r.status == "requested":
            await store.update_refund(
                conn, r.id, status="processing", provider_refund_no=refund.provider_refund_no
            )
        else:
            return Applied("duplicate", "still processing")
        return Applied("applied")

    async def sync_refund(self, out_refund_no: str) -> Applied:
        """Ask the provider about a refund and apply what it says."""
        r = await store.refund_by_no(self.stores.pool, out_refund_no)
        if r is None:
            raise PaymentNotFound(f"no refund {out_refund_no}", field="out_refund_no")
        if r.status == "requested":
            await self.send_refund(out_refund_no)
            return Applied("applied")
        p = await store.payment(self.stores.pool, r.payment_id)
        assert p is not None
        answer = await self.provider(p.provider).query_refund(p.out_trade_no, out_refund_no)
        return await self.apply_refund(answer, source="query")

    # --- closing and cancelling -----------------------------------------------------------------

    async def close_unpaid(self, order_id: int) -> bool:
        """The job: an order still waiting for its payment closes (its trades closed at the
        provider first; one found paid confirms the order instead). True if it closed."""
        order = await dispatch_store.get(self.stores.pool, order_id)
        if order is None or order.status != "awaiting_payment":
            return False
        for p in await store.payments_of_order(self.stores.pool, order_id):
            if p.status in ("pending", "failed") and not await self._close_at_provider(p):
                return False  # it was paid: apply_trade confirmed the order
        async with self.stores.pool.acquire() as conn, conn.transaction():
            order = await dispatch_store.get(conn, order_id, lock=True)
            if order is None or order.status != "awaiting_payment":
                return False
            now = datetime.now(UTC)
            for p in await store.payments_of_order(conn, order_id):
                if p.status in ("pending", "failed"):
                    await store.update_payment(conn, p.id, status="closed", closed_at=now)
            # Its coupon and points go back with the closing, not an event later (growth/).
            await growth.on_order_closing(conn, order_id)
            await transition_locked(
                conn,
                order,
                "cancel",
                SYSTEM,
                reason=f"unpaid after {int(self.params.close_after_s // 60)} min: closed",
                at=now,
                data={"closed": "unpaid"},
            )
        return True

    async def close_trade(self, out_trade_no: str) -> None:
        """The job: close a trade of a cancelled order at the provider (then mark it)."""
        p = await store.payment_by_no(self.stores.pool, out_trade_no)
        if p is None or p.status not in ("pending", "failed"):
            return
        if not await self._close_at_provider(p):
            return
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await dispatch_store.get(conn, p.order_id, lock=True)
            locked = await store.payment(conn, p.id, lock=True)
            if locked is not None and locked.status in ("pending", "failed"):
                await store.update_payment(conn, p.id, status="closed", closed_at=datetime.now(UTC))
                await growth.on_trade_closed(conn, p.order_id, payment_id=p.id)

    def consumer(self) -> Consumer:
        """The events consumer: a paid order's close job cancelled; a cancelled order's money
        (refunds less the fee, trades closed)."""
        return Consumer(
            name="payments",
            types=frozenset({"order.cancelled", "order.paid"}),
            handle=self.handle,
            handle_batch=self.handle_batch,
            # Nobody watches it live: its work after a burst of payments, in fewer batches.
            background=True,
        )

    async def handle_batch(self, tx: Tx, events: list[Event]) -> None:
        """A batch: each stretch of ``order.paid`` cancels its orders' close jobs in one
        statement; an ``order.cancelled`` is handled as by :meth:`handle`."""
        await in_runs(tx, events, _PAID, self._paid, self.handle)

    async def _paid(self, tx: Tx, events: list[Event]) -> None:
        locks = [
            _close_lock(e.payload.order_id) for e in events if isinstance(e.payload, OrderChanged)
        ]
        if locks:
            await jobs_store.cancel_waiting_locks(tx, locks)

    async def handle(self, tx: Tx, event: Event) -> None:
        """In the consumer's transaction: a paid order's close job cancelled; a cancelled
        order's payments refunded less its cancellation fee (kept from the first
        payments), its unpaid trades closed."""
        payload = event.payload
        if not isinstance(payload, OrderChanged):
            return
        if event.type == "order.paid":
            # Here rather than in the capture's transaction: a statement (and the job
            # table's index and trigger work) fewer on the notification's path. Until it
            # runs, the job, if it comes due, finds the order paid and does nothing.
            await jobs_store.cancel_waiting(tx, queueing_lock=_close_lock(payload.order_id))
            return
        order = await dispatch_store.get(tx, payload.order_id, lock=True)
        if order is None:
            return
        fee_left = order.cancel_fee_minor or 0
        for p in await store.payments_of_order(tx, order.id):
            if p.status in ("pending", "failed"):
                await jobs_store.defer(
                    tx,
                    "payments:close_trade",
                    {"out_trade_no": p.out_trade_no},
                    queueing_lock=f"close-trade:{p.out_trade_no}",
                    queue=QUEUE,
                )
                continue
            if p.status != "paid":
                continue
            locked = await store.payment(tx, p.id, lock=True)
            assert locked is not None
            left = locked.amount_fen - locked.reserved_fen
            kept, back = rules.cancellation_split(left, fee_left)
            fee_left -= kept
            if back > 0:
                await self._refund_in(
                    tx,
                    locked,
                    back,
                    f"{p.out_trade_no}C",
                    cause="cancellation",
                    reason=f"order cancelled; {kept} fen kept as the cancellation fee"
                    if kept
                    else "order cancelled",
                )

    # --- the active query ----------------------------------------------------------------------

    async def sweep(self, now: datetime) -> int:
        """The periodic job: query trades pending too long and refunds open too long."""
        n = 0
        before = now - timedelta(seconds=self.params.query_after_s)
        for no in await store.pending_older_than(self.stores.pool, before):
            try:
                await self.sync(no)
                n += 1
            except (ProviderUnavailable, ProviderRefused) as e:
                log.warning("query of %s failed: %s", no, e.message)
        before = now - timedelta(seconds=self.params.refund_query_after_s)
        for no in await store.open_refunds_older_than(self.stores.pool, before):
            try:
                await self.sync_refund(no)
                n += 1
            except (ProviderUnavailable, ProviderRefused) as e:
                log.warning("refund query of %s failed: %s", no, e.message)
        return n

    # --- reading -------------------------------------------------------------------------------

    async def summary(self, order: Order) -> dict[str, Any]:
        """What the customer (or finance) sees of an order's money: the breakdown, the
        trades, the refunds, what is due and what was paid and refunded."""
        price = await store.price(self.stores.pool, order.id)
        pays = await store.payments_of_order(self.stores.pool, order.id)
        refunds = await store.refunds_of_order(self.stores.pool, order.id)
        paid = sum(p.amount_fen for p in pays if p.status == "paid")
        refunded = sum(r.amount_fen for r in refunds if r.status == "succeeded")
        async with self.stores.pool.acquire() as conn:
            now_due = await self._due_or_none(conn, order)
            extras = await store.extras_of_order(conn, order.id)
        return {
            "due_purpose": now_due[0] if now_due else None,
            "extras": [dict(e) for e in extras],
            "order_id": order.id,
            "status": order.status,
            "breakdown": price,
            "due_fen": now_due[1] if now_due else 0,
            "paid_fen": paid,
            "refunded_fen": refunded,
            "cancel_fee_fen": order.cancel_fee_minor or 0,
            "payments": [payment_view(p) for p in pays],
            "refunds": [refund_view(r) for r in refunds],
        }


def _expired(p: PaymentRow, now: datetime) -> bool:
    """Whether a trade is past its expiry (the provider closes it then: never reused)."""
    return p.expires_at is not None and p.expires_at <= now


def _status(ack: Ack, status: int) -> Ack:
    """A failure answer with our status: 401 when the notification fails verification,
    422 when it names a trade, amount or currency we do not hold (any 4xx is a failure
    to WeChat Pay; a provider that answers failures with 200, as Alipay does, keeps it)."""
    if ack.status < 400:
        return ack
    return Ack(status=status, body=ack.body, content_type=ack.content_type)


def payment_view(p: PaymentRow) -> dict[str, Any]:
    """A trade as the API shows it."""
    return {
        "id": p.id,
        "purpose": p.purpose,
        "provider": p.provider,
        "channel": p.channel,
        "out_trade_no": p.out_trade_no,
        "amount_fen": p.amount_fen,
        "currency": p.currency,
        "status": p.status,
        "provider_trade_no": p.provider_trade_no,
        "prepay": p.prepay,
        "refunded_or_pending_fen": p.reserved_fen,
        "created_at": p.created_at,
        "expires_at": p.expires_at,
        "paid_at": p.paid_at,
        "closed_at": p.closed_at,
    }


def refund_view(r: RefundRow) -> dict[str, Any]:
    """A refund as the API shows it."""
    return {
        "out_refund_no": r.out_refund_no,
        "amount_fen": r.amount_fen,
        "cause": r.cause,
        "reason": r.reason,
        "status": r.status,
        "created_at": r.created_at,
        "succeeded_at": r.succeeded_at,
    }
