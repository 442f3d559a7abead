"""After-sales glue: tickets and their queue, outcomes that flow on (refunds through
payments, compensation and insurance claims through the ledger, a redo through dispatch,
the worker's quality), disputes and their ruling (audited), the settlement hold, the
escalation job and spot checks. Every change and the money it moves commit together."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from aftersales import rules, store
from aftersales.errors import (
    AlreadyRuled,
    InvalidAftersalesInput,
    OutsideWindow,
    SpotCheckNotFound,
    TicketNotFound,
    TicketState,
)
from aftersales.models import (
    Claim,
    Evidence,
    Insurance,
    MemberTrail,
    Sampled,
    SpotCheck,
    Ticket,
    TicketDetail,
    TimelineStep,
    TrailPoint,
)
from aftersales.rules import AftersalesParams, Resolution
from audit import store as audit_store
from dispatch import changes, offers, overrides
from dispatch import store as dispatch_store
from dispatch.booking import new_start_code
from dispatch.errors import OrderNotFound
from dispatch.models import Order
from dispatch.publisher import Publisher
from dispatch.service import Hold
from doorstep.db import Conn, Tx
from doorstep.errors import DoorstepError
from doorstep.stores import Stores
from files import store as files_store
from files.content import IMAGE_TYPES
from files.models import Caller as FileCaller
from files.models import StoredFile
from files.purposes import MB, STAFF, register_purpose
from files.service import attach
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from matching.params import MatchParams
from notifications import store as notifications_store
from payments.errors import InvalidPayment
from payments.service import Payments
from quality import store as quality_store
from settlement import store as settlement_store
from tracking import archive

log = logging.getLogger("doorstep.aftersales")
Role = Literal["customer", "worker", "staff"]
STAFF_ROLES = frozenset({"admin", "dispatcher"})


@dataclass(frozen=True, slots=True)
class Who:
    """Who acts, as after-sales needs it: the user, their side, and (staff) their reach —
    ``cities`` None is everywhere."""

    user_id: int
    role: Role
    cities: frozenset[str] | None = None
    merchants: frozenset[int] = frozenset()
    admin: bool = False

    def reaches(self, city_id: str, merchant_id: int | None) -> bool:
        """True if a staff caller's scope covers a ticket or order there."""
        if self.role != "staff":
            return False
        if self.cities is None:
            return True
        return city_id in self.cities or (merchant_id is not None and merchant_id in self.merchants)


def _subject(ticket_id: int) -> str:
    return f"aftersales:{ticket_id}"


def hold_key(ticket_id: int) -> str:
    """The settlement hold of a ticket."""
    return f"aftersales:{ticket_id}"


def refund_no(ticket_id: int) -> str:
    """The refund number of a ticket's refund (one per ticket: a retry is the same refund)."""
    return f"AS{ticket_id:08d}R"


async def evidence_readers(caller: FileCaller, file: StoredFile, db: Conn) -> bool:
    """Evidence is read by staff and by the ticket's customer and worker."""
    if STAFF.intersection(caller.roles):
        return True
    ref = file.attached_to or ""
    if not ref.startswith("aftersales:"):
        return False
    row = await db.fetchrow(
        "SELECT customer_id, worker_id, order_id FROM aftersales_tickets WHERE id = $1",
        int(ref.removeprefix("aftersales:")),
    )
    return row is not None and (
        caller.user_id in (row["customer_id"], row["worker_id"])
        or await _in_crew(db, row["order_id"], caller.user_id)
    )


def involved(worker_id: int | None, crew: Sequence[int]) -> list[int]:
    """The workers a ticket concerns: a crew order's whole crew (the lead first), else
    the order's worker (pure)."""
    if crew:
        return list(crew)
    return [worker_id] if worker_id is not None else []


async def _in_crew(db: Conn, order_id: int, user_id: int) -> bool:
    """True if the user is a member of the order's crew (docs/dispatch.md#crews: the whole
    crew sees a crew order's after-sales tickets, not only its lead)."""
    found = await db.fetchval(
        "SELECT 1 FROM order_crew WHERE order_id = $1 AND worker_id = $2 AND released_at IS NULL",
        order_id,
        user_id,
    )
    return found is not None


# After-sales owns the aftersales_evidence purpose: images only; the ticket's parties read it.
register_purpose(
    rules.EVIDENCE_PURPOSE,
    media_types=IMAGE_TYPES,
    max_bytes=10 * MB,
    may_read=evidence_readers,
    max_edge_px=2048,
)


class Aftersales:
    """The after-sales desk of a process."""

    def __init__(
        self,
        stores: Stores,
        params: AftersalesParams,
        *,
        window_days: int,
        payments: Payments | None = None,
        tracking: Publisher | None = None,
        match: MatchParams | None = None,
    ) -> None:
        self.stores = stores
        # The server's [matching] params: a redo's assignment is judged by them, as a
        # dispatcher's is (its matcher objections, a crew's arrival window).
        self.match = match or MatchParams()
        self.params = params
        self.window_days = window_days  # [settlement] after_sales_days: one window for both
        self.payments = payments
        self.tracking = tracking

    # --- reading ----------------------------------------------------------------------

    async def _ticket(self, db: Conn, who: Who, ticket_id: int, *, lock: bool = False) -> Ticket:
        row = await store.ticket(db, ticket_id, lock=lock)
        if row is None:
            raise TicketNotFound(f"no ticket {ticket_id}", field="ticket_id")
        t = store.ticket_of(row)
        merchant = await db.fetchval(
            "SELECT merchant_id FROM aftersales_tickets WHERE id = $1", ticket_id
        )
        sees = (
            (who.role == "customer" and t.customer_id == who.user_id)
            or (who.role == "worker" and t.worker_id == who.user_id)
            or who.reaches(t.city_id, merchant)
            or (who.role == "worker" and await _in_crew(db, t.order_id, who.user_id))
        )
        if not sees:
            raise TicketNotFound(f"no ticket {ticket_id}", field="ticket_id")
        return t

    async def _order(self, db: Conn, who: Who, order_id: int, *, lock: bool = False) -> Order:
        order = await dispatch_store.get(db, order_id, lock=lock)
        sees = order is not None and (
            (who.role == "customer" and order.customer_id == who.user_id)
            or (who.role == "worker" and order.holds(who.user_id))
            or who.reaches(order.city_id, order.merchant_id)
        )
        if order is None or not sees:
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        return order

    async def detail(self, who: Who, ticket_id: int, now: datetime) -> TicketDetail:
        """A ticket with its notes, outcomes, ruling and claim (its parties, staff)."""
        db = self.stores.pool
        t = await self._ticket(db, who, ticket_id)
        row = await store.ticket(db, ticket_id)
        assert row is not None
        return TicketDetail(
            ticket=store.ticket_of(row, now),
            notes=await store.notes(db, ticket_id),
            outcomes=await store.outcomes(db, ticket_id),
            ruling=await store.ruling(db, ticket_id),
            claim=await store.claim(db, ticket_id),
            settlement_held=hold_key(t.id) in await settlement_store.holds(db, t.order_id),
        )

    async def of_order(self, who: Who, order_id: int, now: datetime) -> list[Ticket]:
        """An order's tickets (its customer, its worker, staff)."""
        order = await self._order(self.stores.pool, who, order_id)
        return [
            store.ticket_of(r, now)
            for r in await store.tickets_of_order(self.stores.pool, order.id)
        ]

    async def mine(self, who: Who, now: datetime, limit: int) -> list[Ticket]:
        """A customer's tickets, or those on a worker's jobs."""
        side = "worker" if who.role == "worker" else "customer"
        rows = await store.tickets_of(self.stores.pool, side, who.user_id, limit)
        return [store.ticket_of(r, now) for r in rows]

    async def queue(
        self, who: Who, statuses: tuple[str, ...], now: datetime, limit: int
    ) -> list[Ticket]:
        """Customer service's queue: open tickets in the caller's reach, nearest deadline first."""
        rows = await store.queue(
            self.stores.pool,
            statuses=statuses,
            cities=None if who.cities is None else sorted(who.cities),
            merchants=sorted(who.merchants),
            limit=limit,
        )
        return [store.ticket_of(r, now) for r in rows]

    async def evidence(self, who: Who, ticket_id: int) -> Evidence:
        """The photos, the order's timeline and the worker's trail during the job (staff);
        of a crew order every member's trail too (``crew_trails``, the lead first)."""
        db = self.stores.pool
        t = await self._ticket(db, who, ticket_id)
        order = await dispatch_store.get(db, t.order_id)
        assert order is not None
        steps = await dispatch_store.events(db, order.id)
        timeline = [
            TimelineStep(
                at=e.at,
                action=e.action,
                from_status=e.from_status,
                to_status=e.to_status,
                actor=e.actor,
                reason=e.reason,
            )
            for e in steps
        ]
        start = order.en_route_at or next(
            (e.at for e in steps if e.action in ("accept", "assign")), None
        )
        end = order.completed_at
        trails: list[MemberTrail] = []
        if order.worker_id is not None and start is not None and end is not None and end > start:
            end = min(end + timedelta(minutes=5), start + timedelta(days=1))
            for worker_id in involved(order.worker_id, t.crew):  # a crew: every member's
                rows = await archive.trail(db, worker_id, start, end, 5000)
                points = [
                    TrailPoint(ts=r["ts"], lat=r["lat"], lng=r["lng"], accuracy_m=r["accuracy_m"])
                    for r in rows
                ]
                trails.append(MemberTrail(worker_id=worker_id, trail=points))
        return Evidence(
            photos=await store.photos_of(db, ticket_id),
            timeline=timeline,
            trail_from=start,
            trail_to=end,
            trail=trails[0].trail if trails else [],
            crew_trails=trails if t.crew else [],
        )

    # --- photos ----------------------------------------------------------------------------

    async def _photos(
        self, tx: Tx, photos: tuple[int, ...], author: int, ticket_id: int, now: datetime
    ) -> None:
        for i, file_id in enumerate(photos):
            f = await files_store.file_by_id(tx, file_id)
            rules.check_photo(
                i,
                file_owner=f.owner_id if f is not None else None,
                purpose=f.purpose if f is not None else None,
                media_type=f.media_type if f is not None else None,
                author=author,
            )
            await attach(
                tx,
                file_id=file_id,
                owner_id=author,
                purpose=rules.EVIDENCE_PURPOSE,
                ref=_subject(ticket_id),
                now=int(now.timestamp()),
            )

    # --- opening and talking ------------------------------------------------------------

    async def open(
        self,
        who: Who,
        order_id: int,
        *,
        kind: str,
        description: str,
        asked_fen: int | None,
        photos: list[int],
        now: datetime,
    ) -> TicketDetail:
        """A customer (or customer service for them, on the phone) opens a ticket on a
        completed order within the window; the order's settlement is held until the
        ticket closes. The order is looked up first: another's is 404 whatever the body."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            order = await self._order(conn, who, order_id, lock=True)
            if who.role == "worker":
                raise OrderNotFound(f"no order {order_id} of yours", field="order_id")
            kind = rules.check_kind(kind)
            description = rules.text(description, "description")
            asked = rules.fen(asked_fen, "asked_fen", required=False)
            pics = rules.check_photos(photos, self.params)
            rules.check_window(
                order.status, order.completed_at, now=now, window_days=self.window_days
            )
            if await conn.fetchval(
                "SELECT 1 FROM aftersales_tickets WHERE order_id = $1 AND kind = $2 "
                "AND status IN ('open', 'in_progress', 'disputed')",
                order.id,
                kind,
            ):
                raise TicketState(
                    f"this order has an open {kind} ticket already; add to it", field="kind"
                )
            first, resolution = rules.deadlines(now, self.params)
            tid = await store.insert_ticket(
                conn,
                order_id=order.id,
                customer_id=order.customer_id,
                worker_id=order.worker_id,
                city_id=order.city_id,
                merchant_id=order.merchant_id,
                kind=kind,
                description=description,
                asked_fen=asked,
                first_response_due=first,
                resolution_due=resolution,
                created_at=now,
                updated_at=now,
            )
            await self._photos(conn, pics, who.user_id, tid, now)
            await store.add_note(
                conn,
                tid,
                author_id=who.user_id,
                side=who.role,
                kind="message",
                body=description,
                photos=pics,
                at=now,
            )
            for worker_id in involved(order.worker_id, order.crew):  # every member hears
                await notifications_store.add_to_inbox(
                    conn,
                    user_id=worker_id,
                    key=f"aftersales:{tid}:opened:{worker_id}",
                    kind="aftersales_opened",
                    event_id=None,
                    order_id=order.id,
                    title=f"售后工单 #{tid}（{rules.KIND_NAMES[kind][0]}）/ "
                    "an after-sales ticket on your job",
                    body=description[:500],
                )
            settled = await settlement_store.hold(conn, order.id, hold_key(tid))
            if settled == "settled":
                raise OutsideWindow(
                    "the order was settled already: its after-sales window is over",
                    field="order_id",
                )
            cover = await store.order_cover(conn, order.id)
            if kind == "damage" and cover is not None:
                await store.insert_claim(conn, tid, order.id, asked, cover[1], now)
        return await self.detail(who, tid, now)

    async def message(
        self, who: Who, ticket_id: int, body: str, photos: list[int], now: datetime
    ) -> TicketDetail:
        """A message on an open ticket; staff's first one is the first response."""
        text = rules.text(body, "body")
        pics = rules.check_photos(photos, self.params)
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await self._ticket(conn, who, ticket_id, lock=True)
            if t.status not in rules.OPEN:
                raise TicketState(f"the ticket is {t.status}", field="ticket_id")
            await self._photos(conn, pics, who.user_id, t.id, now)
            await store.add_note(
                conn,
                t.id,
                author_id=who.user_id,
                side=who.role,
                kind="message",
                body=text,
                photos=pics,
                at=now,
            )
            if who.role == "staff" and t.first_response_at is None:
                await store.update_ticket(
                    conn,
                    t.id,
                    now,
                    first_response_at=now,
                    status="in_progress" if t.status == "open" else t.status,
                )
        return await self.detail(who, ticket_id, now)

    async def statement(
        self, who: Who, ticket_id: int, body: str, photos: list[int], now: datetime
    ) -> TicketDetail:
        """A party states its case: the ticket becomes a dispute an admin rules."""
        if who.role == "staff":
            raise TicketNotFound(
                "statements are the customer's and the worker's", field="ticket_id"
            )
        text = rules.text(body, "text")
        pics = rules.check_photos(photos, self.params)
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await self._ticket(conn, who, ticket_id, lock=True)
            rules.check_statement(t.status, who.role, await store.sides_stated(conn, t.id))
            await self._photos(conn, pics, who.user_id, t.id, now)
            await store.add_note(
                conn,
                t.id,
                author_id=who.user_id,
                side=who.role,
                kind="statement",
                body=text,
                photos=pics,
                at=now,
            )
            if t.status != "disputed":
                await store.update_ticket(conn, t.id, now, status="disputed")
                await audit_store.append(
                    conn,
                    actor_id=who.user_id,
                    action="aftersales.dispute",
                    subject=_subject(t.id),
                    detail={"order_id": t.order_id, "side": who.role},
                    at=now,
                )
        return await self.detail(who, ticket_id, now)

    # --- closing ------------------------------------------------------------------------

    async def _close(
        self, tx: Tx, t: Ticket, status: str, reason: str, by: int | None, now: datetime
    ) -> None:
        fields: dict[str, Any] = {
            "status": status,
            "closed_at": now,
            "closed_by": by,
            "close_reason": reason,
        }
        if t.first_response_at is None and by is not None and status != "withdrawn":
            fields["first_response_at"] = now
        await store.update_ticket(tx, t.id, now, **fields)
        await store.add_note(
            tx, t.id, author_id=by, side="system", kind="status", body=f"{status}: {reason}", at=now
        )
        await settlement_store.release(tx, t.order_id, hold_key(t.id))
        zh = {"resolved": "已处理完毕", "rejected": "未获支持", "withdrawn": "已撤回"}.get(
            status, status
        )
        if status != "withdrawn":  # the customer hears the outcome in their inbox
            await notifications_store.add_to_inbox(
                tx,
                user_id=t.customer_id,
                key=f"aftersales:{t.id}:closed",
                kind="aftersales_closed",
                event_id=None,
                order_id=t.order_id,
                title=f"售后工单 #{t.id} {zh} / after-sales ticket {status}",
                body=reason[:500],
            )
        for worker_id in involved(t.worker_id, t.crew):  # and every worker of the job
            await notifications_store.add_to_inbox(
                tx,
                user_id=worker_id,
                key=f"aftersales:{t.id}:closed:{worker_id}",
                kind="aftersales_closed",
                event_id=None,
                order_id=t.order_id,
                title=f"售后工单 #{t.id} {zh} / after-sales ticket {status}",
                body=reason[:500],
            )

    async def resolve(
        self, who: Who, ticket_id: int, res: Resolution, now: datetime
    ) -> TicketDetail:
        """Staff resolve an open ticket: the outcomes move money, book a redo, touch the
        worker's quality — all in one transaction with the ticket's close and its audit."""
        redo_same: tuple[int, list[int]] | None = None
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await self._ticket(conn, who, ticket_id, lock=True)
            rules.check_can_resolve(t.status)
            res = rules.check_resolution(res, self.params, has_worker=t.worker_id is not None)
            redo_same = await self._apply(conn, t, res, who.user_id, now)
            await self._close(conn, t, "resolved", res.note or "resolved", who.user_id, now)
            await audit_store.append(
                conn,
                actor_id=who.user_id,
                action="aftersales.resolve",
                subject=_subject(t.id),
                detail=_res_detail(t, res),
                at=now,
            )
        await self._assign_same(redo_same, who.user_id, ticket_id, now)
        return await self.detail(who, ticket_id, now)

    async def reject(self, who: Who, ticket_id: int, reason: str, now: datetime) -> TicketDetail:
        """Staff turn a ticket down, with a reason (audited)."""
        why = rules.text(reason, "reason", limit=500)
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await self._ticket(conn, who, ticket_id, lock=True)
            rules.check_can_resolve(t.status)
            await self._close(conn, t, "rejected", why, who.user_id, now)
            await audit_store.append(
                conn,
                actor_id=who.user_id,
                action="aftersales.reject",
                subject=_subject(t.id),
                detail={"order_id": t.order_id, "reason": why},
                at=now,
            )
        return await self.detail(who, ticket_id, now)

    async def withdraw(self, who: Who, ticket_id: int, now: datetime) -> TicketDetail:
        """The customer withdraws their ticket (not once a ruling is due)."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await self._ticket(conn, who, ticket_id, lock=True)
            if who.role != "customer":
                raise TicketNotFound(f"no ticket {ticket_id} of yours", field="ticket_id")
            if t.status not in ("open", "in_progress"):
                raise TicketState(f"a {t.status} ticket cannot be withdrawn", field="ticket_id")
            await self._close(conn, t, "withdrawn", "withdrawn by the customer", who.user_id, now)
        return await self.detail(who, ticket_id, now)

    async def rule(
        self, who: Who, ticket_id: int, favour: str, reason: str, res: Resolution, now: datetime
    ) -> TicketDetail:
        """An admin rules a dispute, once: the outcomes as in a resolution (none in the
        worker's favour), the ruling and its audit entry in one transaction."""
        why = rules.text(reason, "reason", limit=1000)
        redo_same: tuple[int, list[int]] | None = None
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t = await self._ticket(conn, who, ticket_id, lock=True)
            ruled = await store.ruling(conn, t.id) is not None
            rules.check_ruling(t.status, ruled, favour, res)
            if res.gives_anything or res.worker_at_fault:
                res = rules.check_resolution(
                    Resolution(
                        res.refund_fen,
                        res.compensation_fen,
                        res.redo,
                        res.worker_at_fault,
                        res.warning,
                        res.note or why,
                    ),
                    self.params,
                    has_worker=t.worker_id is not None,
                )
            if not await store.insert_ruling(
                conn, t.id, in_favour=favour, reason=why, by=who.user_id, at=now
            ):
                raise AlreadyRuled("this dispute was ruled already", field="ticket_id")
            redo_same = await self._apply(conn, t, res, who.user_id, now)
            await self._close(
                conn,
                t,
                "rejected" if favour == "worker" else "resolved",
                f"ruling ({favour}): {why}",
                who.user_id,
                now,
            )
            await audit_store.append(
                conn,
                actor_id=who.user_id,
                action="aftersales.ruling",
                subject=_subject(t.id),
                detail={"in_favour": favour, "reason": why, **_res_detail(t, res)},
                at=now,
            )
        await self._assign_same(redo_same, who.user_id, ticket_id, now)
        return await self.detail(who, ticket_id, now)

    # --- outcomes -----------------------------------------------------------------------

    async def _apply(
        self, tx: Tx, t: Ticket, res: Resolution, by: int, now: datetime
    ) -> tuple[int, list[int]] | None:
        """Carry a resolution's outcomes out in the caller's transaction. Returns
        (redo order, its worker or whole crew) when the redo should go back to them."""
        subject = _subject(t.id)
        if res.refund_fen:
            if self.payments is None:
                raise InvalidAftersalesInput("payments are not configured here", field="refund_fen")
            number = refund_no(t.id)
            try:
                await self.payments.refund_in(
                    tx,
                    t.order_id,
                    out_refund_no=number,
                    amount_fen=res.refund_fen,
                    reason=f"售后 after-sales ticket {t.id}",
                    by=by,
                )
            except InvalidPayment as e:
                if e.field == "amount_fen":
                    raise InvalidAftersalesInput(
                        f"a refund is never more than what was paid: {e.message}",
                        field="refund_fen",
                    ) from None
                raise
            await store.add_outcome(
                tx,
                t.id,
                "refund",
                amount_fen=res.refund_fen,
                out_refund_no=number,
                by_id=by,
                at=now,
            )
            await audit_store.append(
                tx,
                actor_id=by,
                action="aftersales.refund",
                subject=subject,
                detail={
                    "order_id": t.order_id,
                    "amount_fen": res.refund_fen,
                    "out_refund_no": number,
                },
                at=now,
            )
        if res.compensation_fen:
            key = f"aftersales:{t.id}:compensation"
            await ledger.post(
                tx,
                Entry(
                    key=key,
                    kind="aftersales.compensation",
                    order_id=t.order_id,
                    lines=(
                        debit(lr.COMPENSATION_EXPENSE, res.compensation_fen),
                        credit(lr.customer_payable(t.customer_id), res.compensation_fen),
                    ),
                    memo=f"after-sales ticket {t.id}: compensation to customer {t.customer_id}",
                ),
            )
            await store.add_outcome(
                tx,
                t.id,
                "compensation",
                amount_fen=res.compensation_fen,
                ledger_key=key,
                by_id=by,
                at=now,
            )
            await audit_store.append(
                tx,
                actor_id=by,
                action="aftersales.compensation",
                subject=subject,
                detail={"order_id": t.order_id, "amount_fen": res.compensation_fen},
                at=now,
            )
        same: tuple[int, list[int]] | None = None
        if res.redo:
            redo = await self._redo(tx, t, res.redo, by, now)
            detail: dict[str, Any] = {"to": res.redo, "original_worker_id": t.worker_id}
            if t.crew:
                detail["original_crew"] = list(t.crew)
            await store.add_outcome(
                tx, t.id, "redo", redo_order_id=redo.id, detail=detail, by_id=by, at=now
            )
            if res.redo == "same" and t.worker_id is not None:
                same = (redo.id, involved(t.worker_id, t.crew))
        if res.worker_at_fault and t.worker_id is not None:
            await store.add_outcome(
                tx, t.id, "quality", detail=await self._fault(tx, t, res, by, now), by_id=by, at=now
            )
        return same

    async def _fault(
        self, tx: Tx, t: Ticket, res: Resolution, by: int, now: datetime
    ) -> dict[str, Any]:
        """An upheld ticket's quality events: a ``complaint`` for every worker the ticket
        concerns — a crew order's whole crew as it finished the job (members replaced
        before it are not on ``order_crew`` any more), the order's worker otherwise — and a
        ``warning`` each if asked. The outcome's detail: the lead's ids (as for one
        worker), and of a crew order every member's (``crew``)."""
        assert t.worker_id is not None
        members: list[dict[str, int]] = []
        for worker_id in involved(t.worker_id, t.crew):
            event = await quality_store.insert_event(
                tx,
                worker_id=worker_id,
                kind="complaint",
                passed=None,
                order_id=t.order_id,
                note=f"售后工单 {t.id}（{rules.KIND_NAMES[t.kind][0]}）after-sales ticket upheld",
                actor_id=by,
                now=now,
            )
            member = {"worker_id": worker_id, "quality_event_id": event}
            if res.warning:
                action = await quality_store.insert_action(
                    tx,
                    worker_id=worker_id,
                    kind="warning",
                    amount_fen=None,
                    starts_at=now,
                    ends_at=None,
                    reason=f"售后工单 {t.id}: {res.note or t.kind}"[:500],
                    score=None,
                    actor_id=by,
                )
                member["warning_action_id"] = action.id
            members.append(member)
        detail: dict[str, Any] = {k: v for k, v in members[0].items() if k != "worker_id"}
        if t.crew:
            detail["crew"] = members
        return detail

    async def _redo(self, tx: Tx, t: Ticket, to: str, by: int, now: datetime) -> Order:
        """A free re-service order at the same place (a crew order's needs a crew of the
        same size), confirmed and handed to dispatch; for another worker the original (every
        member of a crew) is excluded from it."""
        original = await dispatch_store.get(tx, t.order_id)
        assert original is not None
        reason = f"返工 redo of order {original.id} (after-sales ticket {t.id})"
        order = await dispatch_store.insert(
            tx,
            city_id=original.city_id,
            customer_id=original.customer_id,
            service_code=original.service_code,
            kind="instant",
            lat=original.lat,
            lng=original.lng,
            address_id=original.address_id,
            address_detail=original.address_detail,
            contact_phone=original.contact_phone,
            duration_min=original.duration_min,
            price_minor=0,
            currency=original.currency,
            notes=reason,
            start_code=new_start_code(),
            merchant_id=original.merchant_id,
            crew_size=original.crew_size,
        )
        await changes.record(
            tx, None, order, action="book", actor="system", actor_id=None, reason=reason, at=now
        )
        if self.payments is not None:
            await self.payments.hold(tx, order)  # a free order: its breakdown, nothing due
        confirmed = await dispatch_store.update(
            tx, order.id, order.version, {"status": "confirmed"}
        )
        assert confirmed is not None
        await changes.record(
            tx,
            order,
            confirmed,
            action="confirm",
            actor="system",
            actor_id=None,
            reason="after-sales redo: free of charge",
            at=now,
        )
        if to == "other":
            for worker_id in involved(original.worker_id, original.crew):
                await offers.exclude(
                    tx,
                    order.id,
                    worker_id,
                    reason="返工：换一位师傅 redo by another worker",
                    actor="admin",
                    actor_id=by,
                )
        return confirmed

    async def _assign_same(
        self, redo: tuple[int, list[int]] | None, by: int, ticket_id: int, now: datetime
    ) -> None:
        """After the commit: give a redo to the same worker (a crew order's: the same
        crew, the lead first) through the dispatcher's assignment (its checks apply); if
        that is refused, dispatch finds someone and the ticket says so."""
        if redo is None or self.tracking is None:
            return
        order_id, workers = redo
        who = (
            f"worker {workers[0]}" if len(workers) == 1 else "crew " + ", ".join(map(str, workers))
        )
        try:
            if len(workers) == 1:
                await overrides.assign(
                    self.stores,
                    self.tracking,
                    order_id,
                    workers[0],
                    actor_id=by,
                    reason="返工：原师傅 redo by the same worker",
                    force=False,
                    match=self.match,
                )
            else:
                await overrides.assign_crew(
                    self.stores,
                    self.tracking,
                    order_id,
                    workers,
                    actor_id=by,
                    reason="返工：原班组 redo by the same crew",
                    force=False,
                    match=self.match,
                )
            body = f"redo order {order_id} assigned to {who}"
        except DoorstepError as e:
            body = (
                f"redo order {order_id}: {who} not assigned ({e.message}); dispatch finds another"
            )
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await store.add_note(
                conn, ticket_id, author_id=None, side="system", kind="outcome", body=body, at=now
            )

    # --- insurance ----------------------------------------------------------------------

    async def set_insurance(
        self, service_code: str, premium_fen: int, coverage_fen: int, active: bool, by: int
    ) -> Insurance:
        """A service's insurance option (admin)."""
        rules.fen(premium_fen, "premium_fen")
        rules.fen(coverage_fen, "coverage_fen")
        if premium_fen >= coverage_fen:
            raise InvalidAftersalesInput("must be less than coverage_fen", field="premium_fen")
        async with self.stores.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT 1 FROM services WHERE code = $1", service_code):
                raise InvalidAftersalesInput(f"no service {service_code!r}", field="service_code")
            found = await store.set_insurance(conn, service_code, premium_fen, coverage_fen, active)
            await audit_store.append(
                conn,
                actor_id=by,
                action="insurance.option",
                subject=f"service:{service_code}",
                detail={"premium_fen": premium_fen, "coverage_fen": coverage_fen, "active": active},
            )
        return found

    async def insurance(self, service_code: str) -> Insurance | None:
        """A service's insurance option, if any."""
        return await store.insurance(self.stores.pool, service_code)

    async def insure_at_booking(self, tx: Tx, order: Order) -> tuple[str, str, int]:
        """In the booking's transaction: the order takes its service's cover; the fee line
        of its breakdown. 422 naming ``insured`` if the service offers none."""
        option = await store.insurance(tx, order.service_code)
        if option is None or not option.active:
            raise InvalidAftersalesInput(
                f"service {order.service_code!r} offers no insurance", field="insured"
            )
        await store.insure(tx, order.id, option.premium_fen, option.coverage_fen)
        return rules.premium_line(option.premium_fen)

    def booking_hold(self, hold: Callable[..., Awaitable[bool]]) -> Hold:
        """The booking's hold for an insured order: the cover is taken and its premium
        priced into the breakdown, in the booking's transaction."""

        async def insured(tx: Tx, order: Order) -> bool:
            line = await self.insure_at_booking(tx, order)
            return await hold(tx, order, fees=(line,))

        return insured

    async def _claim_ticket(self, conn: Tx, who: Who, ticket_id: int) -> tuple[Ticket, Claim]:
        t = await self._ticket(conn, who, ticket_id, lock=True)
        claim = await store.claim(conn, t.id, lock=True)
        if claim is None:
            raise TicketNotFound(f"ticket {ticket_id} has no insurance claim", field="ticket_id")
        return t, claim

    async def assess_claim(
        self, who: Who, ticket_id: int, assessed_fen: int, note: str, now: datetime
    ) -> TicketDetail:
        """Staff assess the damage: an amount up to the order's coverage."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t, claim = await self._claim_ticket(conn, who, ticket_id)
            status = rules.claim_next(claim.status, "assess")
            amount = rules.check_assessment(assessed_fen, claim.coverage_fen)
            await store.update_claim(
                conn,
                claim.id,
                status=status,
                assessed_fen=amount,
                assessed_by=who.user_id,
                assessed_at=now,
            )
            await store.add_note(
                conn,
                t.id,
                author_id=who.user_id,
                side="staff",
                kind="outcome",
                body=f"claim assessed at {amount} fen. {rules.text(note, 'note', required=False, limit=500)}",
                at=now,
            )
            if t.first_response_at is None:
                await store.update_ticket(
                    conn, t.id, now, first_response_at=now, status="in_progress"
                )
        return await self.detail(who, ticket_id, now)

    async def decide_claim(
        self, who: Who, ticket_id: int, pay: bool, reason: str, now: datetime
    ) -> TicketDetail:
        """Pay an assessed claim from the insurance fund to the customer (the ticket is
        resolved), or reject it with a reason (the ticket stays open for other outcomes)."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            t, claim = await self._claim_ticket(conn, who, ticket_id)
            if t.status not in rules.OPEN:
                raise TicketState(f"the ticket is {t.status}", field="ticket_id")
            status = rules.claim_next(claim.status, "pay" if pay else "reject")
            why = rules.text(reason, "reason", required=not pay, limit=500)
            if pay:
                assert claim.assessed_fen is not None
                key = f"insurance:claim:{claim.id}:paid"
                await ledger.post(
                    conn,
                    Entry(
                        key=key,
                        kind="insurance.claim_paid",
                        order_id=t.order_id,
                        lines=(
                            debit(lr.INSURANCE_FUND, claim.assessed_fen),
                            credit(lr.customer_payable(t.customer_id), claim.assessed_fen),
                        ),
                        memo=f"insurance claim {claim.id} (ticket {t.id})",
                    ),
                )
                await store.update_claim(
                    conn, claim.id, status=status, decided_by=who.user_id, decided_at=now
                )
                await store.add_outcome(
                    conn,
                    t.id,
                    "claim",
                    amount_fen=claim.assessed_fen,
                    ledger_key=key,
                    detail={"claim_id": claim.id},
                    by_id=who.user_id,
                    at=now,
                )
                await self._close(
                    conn, t, "resolved", why or "insurance claim paid", who.user_id, now
                )
            else:
                await store.update_claim(
                    conn,
                    claim.id,
                    status=status,
                    reason=why,
                    decided_by=who.user_id,
                    decided_at=now,
                )
                await store.add_note(
                    conn,
                    t.id,
                    author_id=who.user_id,
                    side="staff",
                    kind="outcome",
                    body=f"claim rejected: {why}",
                    at=now,
                )
            await audit_store.append(
                conn,
                actor_id=who.user_id,
                action="insurance.claim_paid" if pay else "insurance.claim_rejected",
                subject=_subject(t.id),
                detail={"claim_id": claim.id, "amount_fen": claim.assessed_fen, "reason": why},
                at=now,
            )
        return await self.detail(who, ticket_id, now)

    # --- escalation ------------------------------------------------------------------------

    async def escalate_due(self, now: datetime, *, batch: int = 100) -> int:
        """The periodic job: tickets past a deadline go up a level; staff hear of it in
        their inbox. Idempotent (a level is reached once; inbox items are keyed)."""
        done = 0
        while True:
            async with self.stores.pool.acquire() as conn, conn.transaction():
                rows = await store.due_escalations(conn, now, batch)
                staff = await store.staff_to_tell(conn) if rows else []
                for r in rows:
                    t = store.ticket_of(r)
                    level = rules.due_level(
                        status=t.status,
                        first_response_at=t.first_response_at,
                        first_response_due=t.first_response_due,
                        resolution_due=t.resolution_due,
                        now=now,
                    )
                    if level <= t.escalation_level:
                        continue
                    what = (
                        "首次响应超时 first response overdue"
                        if level == 1
                        else ("处理超时 resolution overdue")
                    )
                    await store.update_ticket(conn, t.id, now, escalation_level=level)
                    await store.add_note(
                        conn,
                        t.id,
                        author_id=None,
                        side="system",
                        kind="escalation",
                        body=f"升级 L{level}: {what}",
                        at=now,
                    )
                    for user_id in staff:
                        await notifications_store.add_to_inbox(
                            conn,
                            user_id=user_id,
                            key=f"aftersales:{t.id}:esc:{level}:{user_id}",
                            kind="aftersales_escalated",
                            event_id=None,
                            order_id=t.order_id,
                            title=f"售后工单升级 L{level} / after-sales ticket escalated",
                            body=f"工单 {t.id}（{rules.KIND_NAMES[t.kind][0]}）：{what}",
                        )
                    done += 1
            if len(rows) < batch:
                return done

    # --- spot checks ----------------------------------------------------------------------

    async def sample_spot_checks(self, now: datetime, *, seed: int | None = None) -> Sampled:
        """Sample the last whole period's completed orders per worker into call-back tasks
        (seeded: a rerun of the same period adds nothing)."""
        start, end = rules.period_of(now, self.params.spot_period_days)
        used = rules.seed_of(start) if seed is None else seed
        async with self.stores.pool.acquire() as conn, conn.transaction():
            pairs = await store.completed_between(conn, start, end)
            picked = rules.sample(pairs, per_worker=self.params.spot_per_worker, seed=used)
            created = await store.insert_spot_checks(
                conn, picked, period_start=start, seed=used, at=now
            )
        return Sampled(
            period_start=start, period_end=end, seed=used, sampled=len(picked), created=created
        )

    async def spot_checks(self, who: Who, status: str | None, limit: int) -> list[SpotCheck]:
        """Call-back tasks in the caller's reach."""
        return await store.spot_checks(
            self.stores.pool,
            status=status,
            cities=None if who.cities is None else sorted(who.cities),
            limit=limit,
        )

    async def record_spot_check(
        self,
        who: Who,
        spot_id: int,
        *,
        reached: bool,
        answers: dict[str, Any],
        note: str,
        now: datetime,
    ) -> SpotCheck:
        """The call-back's result: the answers' verdict becomes a spot-check quality event
        (passed or failed); a customer not reached leaves the score alone."""
        text = rules.text(note, "note", required=False, limit=500)
        checked = rules.check_answers(answers) if reached else None
        async with self.stores.pool.acquire() as conn, conn.transaction():
            spot = await store.spot_check(conn, spot_id, lock=True)
            if spot is None or not who.reaches(spot.city_id, None):
                raise SpotCheckNotFound(f"no spot check {spot_id}", field="spot_id")
            if spot.status != "pending":
                raise TicketState(f"this spot check is {spot.status} already", field="spot_id")
            if checked is None:
                await store.finish_spot_check(
                    conn, spot.id, status="unreachable", note=text, done_by=who.user_id, done_at=now
                )
            else:
                passed = rules.verdict(checked)
                await store.finish_spot_check(
                    conn,
                    spot.id,
                    status="done",
                    answers=checked,
                    passed=passed,
                    note=text,
                    done_by=who.user_id,
                    done_at=now,
                )
                await quality_store.insert_event(
                    conn,
                    worker_id=spot.worker_id,
                    kind="spot_check",
                    passed=passed,
                    order_id=spot.order_id,
                    note=f"回访抽检 {spot.id} call-back spot check: {text}"[:500],
                    actor_id=who.user_id,
                    now=now,
                )
            found = await store.spot_check(conn, spot.id)
        assert found is not None
        return found


def _res_detail(t: Ticket, res: Resolution) -> dict[str, Any]:
    return {
        "order_id": t.order_id,
        "refund_fen": res.refund_fen,
        "compensation_fen": res.compensation_fen,
        "redo": res.redo,
        "worker_at_fault": res.worker_at_fault,
        "warning": res.warning,
        "note": res.note,
    }
