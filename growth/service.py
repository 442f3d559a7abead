"""Growth's async glue: templates, issuing coupons, checkout, points, and the money they
move — posted in the transaction of the payment or refund it follows.

- ``Growth`` (one per process) serves the routes and is the ``growth`` events consumer:
  coupons issued on ``account.created``, points earned on ``order.completed``, a coupon
  released or given back on ``order.cancelled`` / ``order.failed``.
- ``on_captured``, ``on_trade_made``, ``on_trade_replacing``, ``on_trade_closed``,
  ``on_order_closing``, ``on_refund`` and ``on_refund_failed`` are called by
  ``payments.service`` inside its own transaction (a command that must share the payment's
  fate): the discount's ledger entry is written with the capture (a late one takes the
  coupon and points again or the platform honours them), the discount is held by one trade
  and released with that trade's closing, its share goes back with a refund.
- ``release_unheld`` / ``release_expired`` (the ``growth:holds`` sweep): a discount no
  trade holds is released at the end of its hold.

Locks are taken in one order: the order, the order's discount, the coupon (or the
template), the points account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatch import store as dispatch_store
from doorstep.db import Conn, Tx
from doorstep.stores import Stores
from events.relay import Consumer
from events.types import AccountChanged, Event, OrderChanged
from growth import entries, store
from growth import rules as gr
from growth.errors import CheckoutConflict, CouponUnavailable, GrowthNotFound, InvalidGrowth
from growth.levels import MembershipParams
from growth.members import Members
from growth.rules import GrowthParams, OrderFacts, TemplateSpec
from growth.store import CouponRow, DiscountRow, TemplateRow
from ledger import rules as lr
from ledger import store as ledger_store
from payments import store as payments_store

log = logging.getLogger("doorstep.growth")
CONSUMER = "growth"
EVENT_TYPES = frozenset({"account.created", "order.completed", "order.cancelled", "order.failed"})
MAX_GRANT = 500


@dataclass(frozen=True, slots=True)
class Reach:
    """Where an operator acts: the platform (``cities`` None) or some cities. A city's
    operator sees and makes only templates limited to their cities."""

    cities: frozenset[str] | None = None

    def sees(self, t: TemplateRow) -> bool:
        """True if the template is within reach."""
        return self.cities is None or (bool(t.cities) and set(t.cities) <= self.cities)


PLATFORM = Reach()


def coupon_state(c: CouponRow, now: datetime) -> str:
    """available, locked, used or expired (an available coupon past its validity)."""
    if c.status == "available" and now >= c.valid_until:
        return "expired"
    return c.status


def coupon_view(c: CouponRow, now: datetime) -> dict[str, Any]:
    """A coupon as the API shows it."""
    return {
        "id": c.id,
        "template_id": c.template_id,
        "name_zh": c.name_zh,
        "name_en": c.name_en,
        "kind": c.kind,
        "amount_fen": c.amount_fen,
        "percent_off": c.percent_off,
        "cap_fen": c.cap_fen,
        "min_spend_fen": c.min_spend_fen,
        "categories": c.categories,
        "services": c.services,
        "cities": c.cities,
        "status": coupon_state(c, now),
        "source": c.source,
        "valid_from": c.valid_from,
        "valid_until": c.valid_until,
        "order_id": c.order_id,
        "issued_at": c.issued_at,
        "used_at": c.used_at,
    }


def template_view(t: TemplateRow) -> dict[str, Any]:
    """A template as the API shows it."""
    out = {f: getattr(t, f) for f in TemplateRow.__slots__}
    out["stock_left"] = t.total_stock - t.issued
    return out


async def order_facts(db: Conn, order_id: int, price_fen: int) -> OrderFacts | None:
    """What eligibility looks at (the order's city, service and category)."""
    r = await db.fetchrow(
        "SELECT o.city_id, o.service_code, s.category FROM orders o "
        "JOIN services s ON s.code = o.service_code WHERE o.id = $1",
        order_id,
    )
    if r is None:
        return None
    return OrderFacts(price_fen, r["category"], r["service_code"], r["city_id"])


class Growth:
    """Coupons and points of a process."""

    def __init__(
        self,
        stores: Stores,
        params: GrowthParams | None = None,
        membership: MembershipParams | None = None,
    ) -> None:
        self.stores = stores
        self.params = params or GrowthParams()
        self.members = Members(stores, membership or MembershipParams(), self)

    # --- templates (operators) ----------------------------------------------------------

    async def create_template(
        self, spec: TemplateSpec, *, by: int, reach: Reach, now: datetime
    ) -> TemplateRow:
        """A new template within the operator's reach."""
        spec = gr.check_template(spec, now=now)
        if reach.cities is not None and (not spec.cities or not set(spec.cities) <= reach.cities):
            raise InvalidGrowth(
                f"a city's operator names cities among theirs: {', '.join(sorted(reach.cities))}",
                field="cities",
            )
        async with self.stores.pool.acquire() as conn, conn.transaction():
            return await store.insert_template(conn, spec, by)

    async def template(self, template_id: int, reach: Reach) -> TemplateRow:
        """One template within reach, or GrowthNotFound."""
        t = await store.template(self.stores.pool, template_id)
        if t is None or not reach.sees(t):
            raise GrowthNotFound(f"no coupon template {template_id}", field="template_id")
        return t

    async def templates(self, reach: Reach) -> list[TemplateRow]:
        """The templates within reach."""
        return [t for t in await store.templates(self.stores.pool) if reach.sees(t)]

    async def update_template(
        self, template_id: int, changes: dict[str, Any], *, reach: Reach, now: datetime
    ) -> TemplateRow:
        """Rename, restock (never below what was issued), end earlier or later, switch on
        or off, open or close to claims. Terms of coupons already issued do not change
        (they are read from the template: so the terms cannot be changed)."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await store.template(conn, template_id, lock=True)
            if t is None or not reach.sees(t):
                raise GrowthNotFound(f"no coupon template {template_id}", field="template_id")
            if "total_stock" in changes:
                stock = changes["total_stock"]
                if type(stock) is not int or not t.issued <= stock <= gr.MAX_STOCK:
                    raise InvalidGrowth(
                        f"must be between what was issued ({t.issued}) and {gr.MAX_STOCK}",
                        field="total_stock",
                    )
            if "valid_until" in changes:
                if t.valid_until is None:
                    raise InvalidGrowth(
                        "this template's coupons last valid_days after issue", field="valid_until"
                    )
                until = changes["valid_until"]
                if until.tzinfo is None or until <= now:
                    raise InvalidGrowth(
                        "must be in the future, with an offset", field="valid_until"
                    )
            for name in ("name_zh", "name_en"):
                if name in changes:
                    changes[name] = changes[name].strip()
                    if not 1 <= len(changes[name]) <= 40:
                        raise InvalidGrowth("must be 1 to 40 characters", field=name)
            if not changes:
                return t
            return await store.update_template(conn, template_id, changes)

    async def stats(self, reach: Reach) -> list[dict[str, Any]]:
        """Per template within reach: issued, used, returned, cost."""
        rows = await store.stats(self.stores.pool)
        return [
            r
            for r in rows
            if reach.cities is None or (r["cities"] and set(r["cities"]) <= reach.cities)
        ]

    # --- issuing ------------------------------------------------------------------------

    async def _issue(
        self,
        tx: Tx,
        template_id: int,
        customer_id: int,
        *,
        source: str,
        now: datetime,
        source_key: str | None = None,
        by: int | None = None,
        per_user: bool = True,
    ) -> tuple[int | None, str | None]:
        """One coupon of the template to the customer in the caller's transaction:
        (coupon id, None), or (None, why not). The stock is taken by one conditional
        update that locks the template's row until commit, so two claims never both take
        the last one, and the per-user count is read under that lock."""
        t = await store.template(tx, template_id)
        if t is None:
            return None, "no_template"
        held = await store.held_by(tx, template_id, customer_id) if per_user else 0
        why = gr.issuable(
            active=t.active,
            issued=t.issued,
            total_stock=t.total_stock,
            valid_until=t.valid_until,
            held_by_user=held,
            per_user_limit=t.per_user_limit,
            now=now,
        )
        if why is not None:
            return None, why
        taken = await store.take_one(tx, template_id)
        if taken is None:
            return None, "out_of_stock"
        # Counted again under the template's row lock: a concurrent claim committed first.
        # (A membership pack's coupons are limited by their source_key, not per user.)
        held = await store.held_by(tx, template_id, customer_id) if per_user else 0
        if held >= taken.per_user_limit:
            return None, "limit_reached"
        valid_from, valid_until = gr.validity(
            issued_at=now,
            valid_from=taken.valid_from,
            valid_until=taken.valid_until,
            valid_days=taken.valid_days,
        )
        coupon_id = await store.insert_coupon(
            tx,
            template_id=template_id,
            customer_id=customer_id,
            source=source,
            valid_from=valid_from,
            valid_until=valid_until,
            issued_at=now,
            source_key=source_key,
            granted_by=by,
        )
        if coupon_id is None:  # this event issued it before: give the stock back
            await store.update_template(tx, template_id, {"issued": taken.issued - 1})
            return None, "issued_before"
        return coupon_id, None

    async def claim(self, customer_id: int, template_id: int, now: datetime) -> dict[str, Any]:
        """The customer claims a coupon of a claimable template."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await store.template(conn, template_id)
            if t is None or not t.claimable:
                raise GrowthNotFound(f"no claimable coupon {template_id}", field="template_id")
            coupon_id, why = await self._issue(
                conn, template_id, customer_id, source="claim", now=now
            )
            if coupon_id is None:
                raise CouponUnavailable(_WHY.get(why or "", why or ""), field="template_id")
            found = await store.coupon(conn, coupon_id)
        assert found is not None
        return coupon_view(found, now)

    async def grant(
        self, template_id: int, user_ids: list[int], *, by: int, reach: Reach, now: datetime
    ) -> dict[str, Any]:
        """An operator grants one coupon of the template to each customer listed (the
        template's stock and per-user limit apply; those who cannot get one are listed
        with why)."""
        if not 1 <= len(user_ids) <= MAX_GRANT:
            raise InvalidGrowth(f"list 1 to {MAX_GRANT} customers", field="user_ids")
        issued: list[int] = []
        skipped: list[dict[str, Any]] = []
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await store.template(conn, template_id)
            if t is None or not reach.sees(t):
                raise GrowthNotFound(f"no coupon template {template_id}", field="template_id")
            customers = {
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM users WHERE id = ANY($1) AND 'customer' = ANY(roles)",
                    list(set(user_ids)),
                )
            }
            for uid in dict.fromkeys(user_ids):
                if uid not in customers:
                    skipped.append({"user_id": uid, "reason": "not_a_customer"})
                    continue
                coupon_id, why = await self._issue(
                    conn, template_id, uid, source="grant", now=now, by=by
                )
                if coupon_id is None:
                    skipped.append({"user_id": uid, "reason": why})
                else:
                    issued.append(coupon_id)
        return {"template_id": template_id, "issued": len(issued), "skipped": skipped}

    async def issue_once(
        self, tx: Tx, template_id: int, customer_id: int, *, key: str, now: datetime
    ) -> int | None:
        """A granted coupon, in the caller's transaction, once ever per ``key`` (a seeded
        campaign: the demo grants each demo customer one); its id, or None if ``key``
        issued one before or the template cannot issue it (stock, limit, switched off)."""
        coupon_id, _ = await self._issue(
            tx, template_id, customer_id, source="grant", now=now, source_key=key
        )
        return coupon_id

    async def claimable(self, customer_id: int, now: datetime) -> list[dict[str, Any]]:
        """Templates the customer may claim now, with how many they hold."""
        async with self.stores.pool.acquire() as conn:
            found = await store.claimable(conn, now)
            held = await store.held_counts(conn, customer_id)
        return [
            {**template_view(t), "held": held.get(t.id, 0)}
            for t in found
            if held.get(t.id, 0) < t.per_user_limit
        ]

    async def coupons(self, customer_id: int, now: datetime) -> list[dict[str, Any]]:
        """The customer's coupons."""
        return [coupon_view(c, now) for c in await store.coupons_of(self.stores.pool, customer_id)]

    # --- checkout -----------------------------------------------------------------------

    async def _checkout_facts(
        self, conn: Conn, customer_id: int, order_id: int, *, lock: bool
    ) -> tuple[Any, dict[str, Any], DiscountRow | None, int, OrderFacts]:
        order = await dispatch_store.get(conn, order_id, lock=lock)
        if order is None or order.customer_id != customer_id:
            raise GrowthNotFound(f"no order {order_id}", field="order_id")
        price = await payments_store.price(conn, order_id)
        if price is None:
            raise CheckoutConflict("this order has no price to discount", field="order_id")
        d = await store.discount(conn, order_id, lock=lock)
        gross = d.price_fen if d is not None else int(price["total_fen"])
        facts = await order_facts(conn, order_id, gross)
        assert facts is not None
        return order, price, d, gross, facts

    async def preview(self, customer_id: int, order_id: int, now: datetime) -> dict[str, Any]:
        """What checkout offers: each coupon against the order (applicable first, the best
        suggested), the points the customer may spend, what is applied now."""
        async with self.stores.pool.acquire() as conn:
            order, price, d, gross, facts = await self._checkout_facts(
                conn, customer_id, order_id, lock=False
            )
            mine = await store.coupons_of(conn, customer_id)
            account = await store.points_account(conn, customer_id)
        applied = d is not None and d.status == "applied"
        usable = [
            c
            for c in mine
            if c.status == "available" or (applied and d is not None and c.id == d.coupon_id)
        ]
        opts = gr.options(
            (gr.Candidate(c.id, c.terms, c.valid_from, c.valid_until) for c in usable),
            facts,
            now=now,
            params=self.params,
        )
        by_id = {c.id: c for c in usable}
        available = account.available + (d.points if applied and d is not None else 0)
        suggested = gr.best(opts)
        return {
            "order_id": order_id,
            "status": order.status,
            "open": await _checkout_open(self.stores.pool, order, price),
            "price_fen": gross,
            "payable_fen": int(price["total_fen"]),
            "applied": _applied(d),
            "suggested_coupon_id": suggested.coupon_id if suggested else None,
            "coupons": [
                {
                    **coupon_view(by_id[o.coupon_id], now),
                    "discount_fen": o.discount_fen,
                    "applicable": o.reason is None,
                    "reason": o.reason,
                    "max_points": gr.max_points(available, gross - o.discount_fen, self.params),
                }
                for o in opts
            ],
            "points": {
                "balance": account.balance,
                "available": available,
                "max_points": gr.max_points(available, gross, self.params),
                "fen_per_100_points": self.params.fen_per_100_points,
            },
        }

    async def checkout(
        self, customer_id: int, order_id: int, *, coupon_id: int | None, points: int, now: datetime
    ) -> dict[str, Any]:
        """Apply a coupon (one per order; None: none) and points to an order waiting for its
        prepayment: the coupon is locked to the order, the points held, the discount
        snapshotted and the price's discount lines rewritten, so the payment is for
        price − discount. The money moves when the payment is captured (``on_captured``)."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            order, price, d, gross, facts = await self._checkout_facts(
                conn, customer_id, order_id, lock=True
            )
            if not await _checkout_open(conn, order, price):
                raise CheckoutConflict(
                    f"coupons and points apply to a prepaid order awaiting payment or a "
                    f"completed pay-after-service order whose price is not paid yet; this one "
                    f"is {order.status} ({price['pay_mode']})",
                    field="order_id",
                )
            if d is not None and d.status == "applied":
                await _release_applied(conn, d, keep_coupon=coupon_id)
            coupon_fen = 0
            if coupon_id is not None:
                c = await store.coupon(conn, coupon_id, lock=True)
                if c is None or c.customer_id != customer_id:
                    raise GrowthNotFound(f"no coupon {coupon_id} of yours", field="coupon_id")
                if c.status != "available" and not (
                    c.status == "locked" and c.order_id == order_id
                ):
                    raise CouponUnavailable(f"the coupon is {c.status}", field="coupon_id")
                why = gr.why_not(
                    c.terms, facts, valid_from=c.valid_from, valid_until=c.valid_until, now=now
                )
                if why is not None:
                    raise InvalidGrowth(
                        f"the coupon does not apply to this order: {_WHY.get(why, why)}",
                        field="coupon_id",
                    )
                coupon_fen = gr.discount_fen(
                    c.terms, gross, min_payable_fen=self.params.min_payable_fen
                )
                await store.set_coupon(conn, c.id, status="locked", order_id=order_id)
            account = await store.points_account(conn, customer_id, lock=True)
            allowed = gr.max_points(account.available, gross - coupon_fen, self.params)
            gr.check_points(points, available=account.available, allowed=allowed)
            points_fen = gr.points_value_fen(points, self.params)
            if points:
                await store.hold_points(conn, customer_id, points)
            saved = await store.save_discount(
                conn,
                order_id=order_id,
                customer_id=customer_id,
                price_fen=gross,
                coupon_id=coupon_id,
                coupon_fen=coupon_fen,
                points=points,
                points_fen=points_fen,
            )
            await _discount_lines(conn, saved, coupon_fen=coupon_fen, points_fen=points_fen)
            # No trade holds it yet: released at the hold's end unless a trade takes it.
            await store.set_hold(
                conn,
                order_id,
                trade_id=None,
                hold_until=now + timedelta(seconds=self.params.hold_s),
            )
        return await self.preview(customer_id, order_id, now)

    async def release_unheld(self, order_id: int, now: datetime) -> bool:
        """An applied discount no trade holds (none was made, or the one that held it was
        replaced and no new one took it) whose hold has ended is released in this
        transaction (``_void``); a discount a trade holds is left to that trade's closing.
        True if it was released (once: the discount's status is read under its lock)."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await dispatch_store.get(conn, order_id, lock=True)
            d = await store.discount(conn, order_id, lock=True)
            if d is None or d.status != "applied" or d.trade_id is not None:
                return False
            if d.hold_until is None or d.hold_until > now:
                return False
            log.info(
                "order %s: discount applied and never paid: coupon and points released", order_id
            )
            await _void(conn, d)
            return True

    async def release_expired(self, now: datetime) -> int:
        """The sweep (``growth:holds``): every discount whose hold has ended, each in its
        own transaction; how many were released."""
        n = 0
        for order_id in await store.unheld_until(self.stores.pool, now):
            n += await self.release_unheld(order_id, now)
        return n

    # --- points -------------------------------------------------------------------------

    async def points(self, customer_id: int, *, limit: int) -> dict[str, Any]:
        """A customer's points and their history."""
        async with self.stores.pool.acquire() as conn:
            account = await store.points_account(conn, customer_id)
            history = await store.points_history(conn, customer_id, limit)
        return {
            "balance": account.balance,
            "held": account.held,
            "available": account.available,
            "fen_per_100_points": self.params.fen_per_100_points,
            "history": history,
        }

    # --- events -------------------------------------------------------------------------

    def consumer(self) -> Consumer:
        """The events consumer (see the module's docstring)."""
        return Consumer(name=CONSUMER, types=EVENT_TYPES, handle=self.handle)

    async def handle(self, tx: Tx, event: Event) -> None:
        """One event, in the consumer's transaction (redelivery writes nothing twice:
        each effect is keyed by the event or the order)."""
        payload = event.payload
        if isinstance(payload, AccountChanged):
            if event.type == "account.created" and "customer" in payload.roles:
                for t in await store.auto_templates(tx, event.type):
                    _, why = await self._issue(
                        tx,
                        t.id,
                        payload.user_id,
                        source="event",
                        now=payload.at,
                        source_key=f"event:{event.id}:{t.id}",
                    )
                    if why is not None and why != "issued_before":
                        log.info("template %s not issued to %s: %s", t.id, payload.user_id, why)
            return
        if not isinstance(payload, OrderChanged):
            return
        if event.type == "order.completed":
            await self._earn(tx, payload.order_id, payload.customer_id, payload.at)
        elif event.type in ("order.cancelled", "order.failed"):
            await self._order_ended(tx, payload.order_id, payload.at)

    async def _earn(self, tx: Tx, order_id: int, customer_id: int, at: datetime) -> None:
        """A completed order: its points terms are fixed (the rate with the customer's level
        multiplier now), then it earns on the cash paid so far; what is paid later earns
        as it is captured (``on_paid_after_completion``)."""
        await dispatch_store.get(tx, order_id, lock=True)
        multiplier, level = await self.multiplier(tx, customer_id, at)
        await store.save_order_points(
            tx,
            store.OrderPoints(
                order_id=order_id,
                customer_id=customer_id,
                rate_bps=gr.earn_rate_bps(self.params, multiplier),
                fen_per_100_points=self.params.fen_per_100_points,
                level=level,
                completed_at=at,
            ),
        )
        await reconcile_points(tx, order_id, key=str(order_id))
        # The points may lift the customer to a level (its pack issued now).
        await self.members.check(tx, customer_id, at)

    async def multiplier(self, tx: Tx, customer_id: int, at: datetime) -> tuple[int, str]:
        """The points multiplier (bps) and level of a customer now (before this order)."""
        level = await self.members.level_now(tx, customer_id, at)
        return level.multiplier_bps, level.code

    async def _order_ended(self, tx: Tx, order_id: int, at: datetime) -> None:
        """A cancelled or failed order: an unpaid discount releases its coupon and points;
        a paid one gives the coupon back if it is still valid (the refund gives the
        subsidy and the points back in proportion, ``on_refund``)."""
        await dispatch_store.get(tx, order_id, lock=True)
        d = await store.discount(tx, order_id, lock=True)
        if d is None:
            return
        if d.status == "applied":
            await _void(tx, d)
        elif d.status == "captured":
            await _settle_coupon(tx, order_id, at)


_WHY = {
    "inactive": "the coupon is no longer offered",
    "out_of_stock": "all of these coupons have been given out",
    "ended": "the offer has ended",
    "limit_reached": "you hold as many of these coupons as one customer may",
    "issued_before": "issued before",
    "no_template": "no such coupon",
    "not_yet_valid": "not valid yet",
    "expired": "expired",
    "city": "not valid in this city",
    "category": "not valid for this category",
    "service": "not valid for this service",
    "min_spend": "the order is below the coupon's minimum spend",
}


async def _checkout_open(db: Conn, order: Any, price: dict[str, Any]) -> bool:
    """Whether a coupon and points may be applied now: a prepaid order awaiting its
    prepayment, or a pay-after-service order completed and its price (the final payment)
    not paid yet. Deposit orders: not yet (docs/growth.md says why)."""
    if price["pay_mode"] == "prepaid":
        return bool(order.status == "awaiting_payment")
    if price["pay_mode"] == "after_service" and order.status == "completed":
        paid = await db.fetchval(
            "SELECT 1 FROM payments WHERE order_id = $1 AND purpose = 'final' AND status = 'paid'",
            order.id,
        )
        return paid is None
    return False


def _applied(d: DiscountRow | None) -> dict[str, Any] | None:
    if d is None or d.status == "void":
        return None
    return {
        "coupon_id": d.coupon_id,
        "coupon_fen": d.coupon_fen,
        "points": d.points,
        "points_fen": d.points_fen,
        "payable_fen": d.payable_fen,
        "status": d.status,
    }


async def _release_applied(tx: Tx, d: DiscountRow, *, keep_coupon: int | None) -> None:
    """An unpaid discount lets its coupon (unless it is applied again) and points go."""
    if d.coupon_id is not None and d.coupon_id != keep_coupon:
        c = await store.coupon(tx, d.coupon_id, lock=True)
        if c is not None and c.status == "locked" and c.order_id == d.order_id:
            await store.set_coupon(tx, c.id, status="available", order_id=None)
    if d.points:
        await store.points_account(tx, d.customer_id, lock=True)
        await store.hold_points(tx, d.customer_id, -d.points)


async def _void(tx: Tx, d: DiscountRow) -> None:
    """An applied discount no payment will capture: the coupon and points go back to the
    customer, the discount is void and the order's price loses its discount lines (a new
    payment asks the full price; the customer may apply a coupon again)."""
    await _release_applied(tx, d, keep_coupon=None)
    await store.set_discount(tx, d.order_id, status="void")
    await store.set_hold(tx, d.order_id, trade_id=None, hold_until=None)
    price = await payments_store.price(tx, d.order_id)
    if price is not None:
        lines = [x for x in price["lines"] if not str(x["code"]).startswith("discount:")]
        await payments_store.set_price_lines(tx, d.order_id, lines, d.price_fen)


async def _discount_lines(tx: Tx, d: DiscountRow, *, coupon_fen: int, points_fen: int) -> None:
    """The order's price with the discount's lines (what the platform pays, what the points
    pay), so its total is what the customer pays."""
    price = await payments_store.price(tx, d.order_id)
    if price is None:
        return
    lines = [x for x in price["lines"] if not str(x["code"]).startswith("discount:")]
    if coupon_fen:
        lines.append(
            {"code": "discount:coupon", "label": "优惠券 coupon", "amount_fen": -coupon_fen}
        )
    if points_fen:
        lines.append(
            {"code": "discount:points", "label": "积分抵扣 points", "amount_fen": -points_fen}
        )
    await payments_store.set_price_lines(
        tx, d.order_id, lines, d.price_fen - coupon_fen - points_fen
    )


async def _settle_coupon(tx: Tx, order_id: int, at: datetime) -> None:
    """The coupon of a paid order that ended (cancelled or failed) follows the money: it is
    given back (if still valid) while the order's money is on its way back — no refund asked,
    or the latest one not closed — and taken back when the provider closes that refund
    (unless the customer has used it again since). The order's lock is held by the caller."""
    d = await store.discount(tx, order_id, lock=True)
    if d is None or d.status != "captured" or d.coupon_id is None:
        return
    status = await tx.fetchval("SELECT status FROM orders WHERE id = $1", order_id)
    if status not in ("cancelled", "failed"):
        return
    latest = await tx.fetchval(
        "SELECT status FROM refunds WHERE order_id = $1 ORDER BY id DESC LIMIT 1", order_id
    )
    c = await store.coupon(tx, d.coupon_id, lock=True)
    if c is None:
        return
    if latest != "closed":
        if c.status == "used" and c.order_id == order_id and at < c.valid_until:
            await store.set_coupon(tx, c.id, status="available", order_id=None, returned_at=at)
    elif c.status == "available" and c.order_id is None and c.returned_at is not None:
        await store.take_back_coupon(tx, c.id, order_id)
    elif c.status != "used" or c.order_id != order_id:
        log.warning(
            "order %s: refund closed but coupon %s was used again (%s): left with the customer",
            order_id,
            c.id,
            c.status,
        )


# --- called by payments in its transaction ---------------------------------------------


async def on_captured(
    tx: Tx,
    order_id: int,
    *,
    payment_id: int,
    amount_fen: int,
    trade: str,
    at: datetime,
    discounted: bool = True,
) -> None:
    """A prepayment or final payment was captured (payments holds the order's lock). If it
    paid the discounted amount, the platform pays the discount into the order's funds (one
    balanced entry, beside the capture), the coupon is used and the points spent; a payment
    of the full price (a trade made before the discount) voids an applied discount.

    A **late capture** — a payment of less than the price whose discount is no longer the
    one applied (its trade was closed and the discount released, or the customer changed
    it since) — is kept and made whole (``_capture_late``): the service is done or the
    order confirmed, and the customer paid the price we asked. A serious platform honours
    that price rather than refund it and ask again.

    ``discounted=False``: the caller read, under the order's lock, that the order has no
    discount (``store.has_discount``; it cannot get one while that lock is held): nothing
    to do, and no statement to find that out."""
    if not discounted:
        return
    d = await store.discount(tx, order_id, lock=True)
    if d is None or d.status == "captured":
        return
    if d.status == "applied" and d.payable_fen == amount_fen:
        entry = entries.discount_paid(
            order_id,
            d.customer_id,
            coupon_fen=d.coupon_fen,
            points_fen=d.points_fen,
            payment=trade,
        )
        if entry is not None:
            await ledger_store.post(tx, entry)
        if d.coupon_id is not None:
            await store.set_coupon(tx, d.coupon_id, status="used", order_id=order_id, used_at=at)
        if d.points:
            await store.points_account(tx, d.customer_id, lock=True)
            await store.move_points(
                tx,
                d.customer_id,
                -d.points,
                kind="redeem",
                key=f"redeem:{order_id}",
                order_id=order_id,
                release_held=d.points,
            )
        await store.set_discount(tx, order_id, status="captured", payment_id=payment_id)
        return
    if amount_fen >= d.price_fen:  # the full price: no discount to pay in
        if d.status == "applied":
            log.info("order %s paid the full %s fen: discount void", order_id, amount_fen)
            await _void(tx, d)
        return
    await _capture_late(tx, d, payment_id=payment_id, amount_fen=amount_fen, trade=trade, at=at)


async def _capture_late(
    tx: Tx, d: DiscountRow, *, payment_id: int, amount_fen: int, trade: str, at: datetime
) -> None:
    """A payment of ``amount_fen`` < the price captured after its discount was released.

    If the discount on record is the one the trade was made for (void, of that payable
    amount), its coupon is used again if it is still free and its points spent again if the
    customer still has them; whatever was used elsewhere since, the platform pays as subsidy
    (``honoured`` says why) — the customer is never charged twice for one coupon or one
    point. If the discount was changed since (another is applied, or none of that amount),
    that one is released and the platform pays the whole difference. Either way the order's
    funds hold its full price, its price's total is what was paid, and refunds give back the
    share of what was posted (``on_refund``)."""
    order_id = d.order_id
    why: list[str] = []
    subsidy_fen = points = points_fen = 0
    if d.status == "void" and d.payable_fen == amount_fen:
        subsidy_fen = d.coupon_fen
        if d.coupon_id is not None:
            c = await store.coupon(tx, d.coupon_id, lock=True)
            if c is not None and c.status == "available" and c.order_id is None:
                await store.set_coupon(tx, c.id, status="used", order_id=order_id, used_at=at)
            else:
                state = "gone" if c is None else f"{c.status} (order {c.order_id})"
                why.append(f"coupon {d.coupon_id} {state} since its trade closed")
        if d.points:
            account = await store.points_account(tx, d.customer_id, lock=True)
            if account.available >= d.points:
                await store.move_points(
                    tx,
                    d.customer_id,
                    -d.points,
                    kind="redeem",
                    key=f"redeem:{order_id}",
                    order_id=order_id,
                )
                points, points_fen = d.points, d.points_fen
            else:
                subsidy_fen += d.points_fen
                why.append(f"{d.points} points no longer free ({account.available} available)")
    else:
        if d.status == "applied":
            await _release_applied(tx, d, keep_coupon=None)
        subsidy_fen = d.price_fen - amount_fen
        why.append(f"the discount was changed after this trade was made ({d.status})")
    honoured = "; ".join(why) or None
    log.warning(
        "order %s: %s fen captured after its discount was released: subsidy %s fen, points %s%s",
        order_id,
        amount_fen,
        subsidy_fen,
        points,
        f" (honoured: {honoured})" if honoured else "",
    )
    entry = entries.discount_paid(
        order_id,
        d.customer_id,
        coupon_fen=subsidy_fen,
        points_fen=points_fen,
        payment=trade,
        note=f"late capture; honoured: {honoured}" if honoured else "late capture",
    )
    if entry is not None:
        await ledger_store.post(tx, entry)
    await store.capture_late(
        tx,
        order_id,
        coupon_fen=subsidy_fen,
        points=points,
        points_fen=points_fen,
        payment_id=payment_id,
        honoured=honoured,
    )
    await _discount_lines(tx, d, coupon_fen=subsidy_fen, points_fen=points_fen)


async def on_trade_made(tx: Tx, order_id: int, *, payment_id: int, amount_fen: int) -> None:
    """A trade was made (or reused) for what the order waits for (payments' transaction, the
    order's lock held): if it asks the applied discount's amount, it holds the discount —
    only its closing releases it from now on."""
    d = await store.discount(tx, order_id, lock=True)
    if (
        d is not None
        and d.status == "applied"
        and d.payable_fen == amount_fen
        and d.trade_id != payment_id
    ):
        await store.set_hold(tx, order_id, trade_id=payment_id, hold_until=None)


async def on_trade_replacing(tx: Tx, order_id: int, *, payment_id: int, until: datetime) -> None:
    """A trade is about to be closed at the provider because the customer pays anew (another
    channel, an expired trade): it lets go of the discount first, so the provider's report
    of its closing — which may land before the new trade is made (Alipay's TRADE_CLOSED
    notice) — releases nothing. The discount waits for the new trade until ``until``."""
    d = await store.discount(tx, order_id, lock=True)
    if d is not None and d.status == "applied" and d.trade_id == payment_id:
        await store.set_hold(tx, order_id, trade_id=None, hold_until=until)


async def on_trade_closed(tx: Tx, order_id: int, *, payment_id: int) -> bool:
    """A trade of the order was closed unpaid — at the provider (its report or our query),
    by a close job, or replaced by a new trade (payments' transaction, the order's lock
    held). The discount is let go (``_void``: coupon available, points no longer held, the
    price back to full) only if this very trade holds it: a close never releases what
    another trade holds. The discount's status, read under its lock, makes this happen
    once however many closings report it. True if it was let go."""
    d = await store.discount(tx, order_id, lock=True)
    if d is None or d.status != "applied" or d.trade_id != payment_id:
        return False
    log.info("order %s: trade %s closed unpaid: coupon and points released", order_id, payment_id)
    await _void(tx, d)
    return True


async def on_order_closing(tx: Tx, order_id: int) -> bool:
    """The order closes unpaid (``payments:close_unpaid``, in its transaction): an applied
    discount is let go whatever holds it. True if it was."""
    d = await store.discount(tx, order_id, lock=True)
    if d is None or d.status != "applied":
        return False
    await _void(tx, d)
    return True


async def on_refund(
    tx: Tx,
    order_id: int,
    *,
    payment_id: int,
    paid_fen: int,
    refunded_before: int,
    amount_fen: int,
    out_refund_no: str,
) -> None:
    """A refund of ``amount_fen`` was set aside (payments' transaction, after its
    ``refund.requested`` entry): the same share of the discount goes back — the subsidy
    reversed, the points returned — and of the points earned on the order, taken back.
    Never more than the order's funds still hold."""
    d = await store.discount(tx, order_id, lock=True)
    if d is not None and d.status == "captured" and d.payment_id == payment_id:
        shares = {
            "refunded_before": refunded_before,
            "refunded_now": amount_fen,
            "paid_fen": paid_fen,
        }
        coupon_back = gr.share_back(d.coupon_fen, **shares)
        points_fen_back = gr.share_back(d.points_fen, **shares)
        points_back = gr.share_back(d.points, **shares)
        account = lr.order_funds(order_id)
        funds = lr.normal_balance(account, await ledger_store.balance(tx, account))
        coupon_back = max(0, min(coupon_back, funds))
        if points_fen_back > funds - coupon_back:
            points_fen_back = max(0, funds - coupon_back)
            points_back = points_fen_back * d.points // d.points_fen if d.points_fen else 0
        entry = entries.discount_back(
            order_id,
            d.customer_id,
            out_refund_no,
            coupon_fen=coupon_back,
            points_fen=points_fen_back,
        )
        if entry is not None:
            await ledger_store.post(tx, entry)
        if points_back:
            await store.points_account(tx, d.customer_id, lock=True)
            await store.move_points(
                tx,
                d.customer_id,
                points_back,
                kind="return",
                key=f"return:{out_refund_no}",
                order_id=order_id,
            )
    # The points earned on a completed order follow its cash net of refunds.
    await reconcile_points(tx, order_id, key=out_refund_no)
    await _settle_coupon(tx, order_id, datetime.now(UTC))


async def on_refund_failed(tx: Tx, order_id: int, out_refund_no: str) -> None:
    """The provider closed a refund (its money is the order's again): what ``on_refund``
    gave back for it is undone — its entries reversed, the points moved back, and a coupon
    given back with the order's cancellation taken back (``_settle_coupon``)."""
    for key, hist in (
        (f"growth:refund:{out_refund_no}", f"return:{out_refund_no}"),
        (f"growth:unearn:{out_refund_no}", f"unearn:{out_refund_no}"),
    ):
        if await ledger_store.get(tx, key) is None:
            continue
        await ledger_store.reverse(
            tx, key, reversal_key=f"{key}:failed", memo=f"refund {out_refund_no} closed"
        )
        row = await tx.fetchrow(
            "SELECT customer_id, points FROM points_history WHERE key = $1", hist
        )
        if row is not None and row["points"]:
            await store.points_account(tx, row["customer_id"], lock=True)
            await store.move_points(
                tx,
                row["customer_id"],
                -row["points"],
                kind="restore",
                key=f"restore:{hist}",
                order_id=order_id,
            )
    await _settle_coupon(tx, order_id, datetime.now(UTC))


async def on_paid_after_completion(tx: Tx, order_id: int, *, payment_id: int) -> None:
    """A payment of a completed order was captured (payments' transaction, the order's lock
    held): the final payment of a pay-after-service order, a deposit order's balance, an
    add-on. It earns its points now, on the order's terms."""
    await reconcile_points(tx, order_id, key=f"{order_id}:{payment_id}")


async def reconcile_points(tx: Tx, order_id: int, *, key: str) -> None:
    """Bring the points a completed order has given to what it owes: ``points_owed`` on the
    cash paid net of refunds, at the rate fixed at completion. More owed: earned
    (``earn:<key>``, Dr points_expense / Cr points_liability); less: taken back
    (``unearn:<key>``, the mirror). Nothing before completion (no terms yet)."""
    terms = await store.order_points(tx, order_id)
    if terms is None:
        return
    net = await store.net_paid(tx, order_id)
    delta = gr.points_owed(net, terms.rate_bps) - await store.points_on(tx, order_id)
    if delta == 0:
        return
    customer = terms.customer_id
    value = abs(delta) * terms.fen_per_100_points // 100
    await store.points_account(tx, customer, lock=True)
    if delta > 0:
        moved = await store.move_points(
            tx, customer, delta, kind="earn", key=f"earn:{key}", order_id=order_id, basis_fen=net
        )
        if moved is not None and value > 0:
            await ledger_store.post(
                tx,
                entries.points_earned(
                    order_id, customer, value, key=None if key == str(order_id) else key
                ),
            )
    else:
        moved = await store.move_points(
            tx, customer, delta, kind="reverse", key=f"unearn:{key}", order_id=order_id
        )
        if moved is not None and value > 0:
            await ledger_store.post(tx, entries.points_taken_back(order_id, customer, key, value))
