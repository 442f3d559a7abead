"""Settlement's async glue: commission snapshots, settling orders after their after-sales
window, wallets, withdrawals and their payouts, reconciliation. Every money movement is a
ledger entry posted in the transaction of the state change it follows."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import asyncpg

from doorstep.db import Conn, Tx
from doorstep.stores import Stores
from events.relay import Consumer, in_runs
from events.types import Event, OrderChanged
from jobs import store as jobs_store
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from settlement import alipay_bill, reconcile, store, tradebill
from settlement import commission as cm
from settlement.bills import BillSource
from settlement.errors import (
    InvalidMoneyInput,
    NoWallet,
    WithdrawalNotFound,
    WrongState,
)
from settlement.models import (
    CommissionOut,
    Earnings,
    JobsDone,
    Payee,
    ReconciliationOut,
    RuleOut,
    Wallet,
    WithdrawalOut,
)
from settlement.payouts import (
    PayoutChannel,
    PayoutRefused,
    PayoutRequest,
    PayoutState,
    PayoutUnknown,
)
from settlement.rules import (
    SettlementParams,
    ShareFen,
    check_withdrawal,
    crew_shares,
    day_bounds,
    due_at,
    local_day,
    split_fen,
)

log = logging.getLogger("doorstep.settlement")
CONSUMER = "settlement"
_PAID = frozenset({"order.paid"})
QUEUE = "settlement"
PAYOUT_CHANNEL = "payout"
EVENT_TYPES = frozenset(
    {"order.paid", "order.assigned", "order.crew_changed", "order.completed", "order.cancelled"}
)
# The events after which the worker holding an order (a crew's lead) may be another one:
# the order's commission is taken again for the merchant the order has now.
HOLDER_CHANGES = frozenset({"order.assigned", "order.crew_changed"})


def payable(payee: Payee) -> str:
    """The ledger account of a wallet's available money."""
    return lr.worker_payable(payee.id) if payee.kind == "worker" else lr.merchant_payable(payee.id)


def receivable(payee: Payee) -> str:
    """The ledger account of what a wallet's holder owes us (a fine beyond the balance)."""
    if payee.kind == "worker":
        return lr.worker_receivable(payee.id)
    return lr.merchant_receivable(payee.id)


async def lock_wallet(tx: Tx, payee: Payee) -> None:
    """Hold the wallet's advisory lock until the transaction ends (withdrawals, fines and
    netting read the balance and move money under it, one after another)."""
    await tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", payee.lock_key)


async def available_of(db: Conn, payee: Payee) -> int:
    """The wallet's available balance (what we owe its holder now)."""
    account = payable(payee)
    return lr.normal_balance(account, await ledger.balance(db, account))


async def owed_of(db: Conn, payee: Payee) -> int:
    """What the wallet's holder owes us (fines beyond their balance, not yet recovered)."""
    account = receivable(payee)
    return lr.normal_balance(account, await ledger.balance(db, account))


async def net_owed(tx: Tx, payee: Payee, *, cause: str) -> int:
    """Net what the holder owes us against the wallet, after money came in (a settlement,
    a bonus, a returned withdrawal) or a fine was reversed; the caller holds the wallet's
    lock (:func:`lock_wallet`).

    A debt is recovered from the available balance, as much as it holds (entry
    ``recover:<cause>``, kind ``owed.recovered``); a negative debt — a fine reversed after
    part of it was recovered — is paid back into the wallet (kind ``owed.released``).
    Returns the fen taken from the wallet (negative: paid into it).
    """
    owed = await owed_of(tx, payee)
    if owed > 0:
        amount = min(owed, max(await available_of(tx, payee), 0))
        if amount == 0:
            return 0
        lines = (debit(payable(payee), amount), credit(receivable(payee), amount))
        kind, memo = "owed.recovered", f"{amount} fen owed recovered from the wallet"
    elif owed < 0:
        amount = -owed
        lines = (debit(receivable(payee), amount), credit(payable(payee), amount))
        kind, memo = "owed.released", f"{amount} fen recovered before is paid back"
    else:
        return 0
    await ledger.post(
        tx,
        Entry(
            key=f"recover:{cause}",
            kind=kind,
            lines=lines,
            memo=f"{memo} ({payee.kind} {payee.id}, after {cause})",
            data={"payee_kind": payee.kind, "payee_id": payee.id, "cause": cause},
        ),
    )
    return amount if owed > 0 else -amount


async def _net_if_owed(tx: Tx, payee: Payee, *, cause: str) -> None:
    """:func:`net_owed` when the holder owes anything (the lock only then: most don't)."""
    if await ledger.balance(tx, receivable(payee)) != 0:
        await lock_wallet(tx, payee)
        await net_owed(tx, payee, cause=cause)


def default_rule(params: SettlementParams) -> cm.CommissionRule:
    """The platform's default commission."""
    return cm.CommissionRule(id=None, rate_bps=params.default_rate_bps)


def snapshot_rule(snap: CommissionOut) -> cm.CommissionRule:
    """The rule terms an order's snapshot holds."""
    return cm.CommissionRule(
        id=snap.rule_id,
        rate_bps=snap.rate_bps,
        fixed_fen=snap.fixed_fen,
        min_fen=snap.min_fen,
        max_fen=snap.max_fen,
    )


async def quote(db: Conn, order_id: int, params: SettlementParams) -> cm.Commission | None:
    """The commission the rules in force would take from the order's price (no snapshot)."""
    facts = await store.order_facts(db, order_id)
    if facts is None:
        return None
    rules = [store.as_rule(r) for r in await store.rules(db)]
    terms = cm.OrderTerms(
        facts.city_id, facts.category, facts.service_code, facts.merchant_id, facts.price_fen
    )
    return cm.commission(rules, terms, default_rule(params))


async def snapshot_commission(
    tx: Tx, order_id: int, *, base_fen: int, params: SettlementParams, now: datetime
) -> CommissionOut:
    """Snapshot the commission of an order being paid, in the payment's transaction.

    For the payment code (or the ``order.paid`` consumer): the rule that applies now,
    its terms kept on the order; a second call keeps the first snapshot. ``base_fen`` is
    what the order's funds receive.
    """
    facts = await store.order_facts(tx, order_id)
    if facts is None:
        raise InvalidMoneyInput(f"no order {order_id}", field="order_id")
    rules = [store.as_rule(r) for r in await store.rules(tx)]
    terms = cm.OrderTerms(
        facts.city_id, facts.category, facts.service_code, facts.merchant_id, base_fen
    )
    return await store.snapshot(
        tx,
        order_id,
        cm.commission(rules, terms, default_rule(params)),
        now,
        merchant_id=facts.merchant_id,
    )


async def snapshot_paid(
    tx: Tx, paid: list[tuple[int, datetime]], *, params: SettlementParams
) -> None:
    """:func:`snapshot_commission` of several orders just paid ((order, when) each), on
    what each order's funds hold now, as the ``order.paid`` consumer takes them one by
    one; in four statements for them all (their funds, their facts, the rules, the
    snapshots) instead of four each."""
    if not paid:
        return
    ids = [order_id for order_id, _ in paid]
    accounts = {order_id: lr.order_funds(order_id) for order_id in ids}
    held = await ledger.balances(tx, sorted(set(accounts.values())))
    facts = await store.orders_facts(tx, ids)
    rules = [store.as_rule(r) for r in await store.rules(tx)]
    taken = []
    for order_id, at in paid:
        f = facts.get(order_id)
        if f is None:
            raise InvalidMoneyInput(f"no order {order_id}", field="order_id")
        account = accounts[order_id]
        base_fen = max(lr.normal_balance(account, held[account]), 0)
        terms = cm.OrderTerms(f.city_id, f.category, f.service_code, f.merchant_id, base_fen)
        taken.append(
            (order_id, cm.commission(rules, terms, default_rule(params)), at, f.merchant_id)
        )
    await store.snapshots(tx, taken)


async def commission_for(
    tx: Tx,
    order_id: int,
    *,
    merchant_id: int | None,
    base_fen: int,
    params: SettlementParams,
    now: datetime,
) -> CommissionOut:
    """The order's commission snapshot, taken for the merchant the order now has.

    The snapshot is taken at payment, usually before the order is routed to a merchant or
    assigned to a merchant's staff: then it was taken for no merchant, and a merchant's
    rule could not apply. When the order's merchant is known (its assignment; at the
    latest its completion and settlement) this takes it again for that merchant — with
    the rules as they stood when it was first taken (``rules_at``: a rule made after
    payment still changes nothing) — unless money was already settled from it (then it
    stays). No snapshot yet: one is taken now. Idempotent: the same merchant again
    changes nothing. Runs in the caller's transaction; the snapshot's row is locked.
    """
    snap = await store.snapshot_of(tx, order_id, lock=True)
    if snap is None:
        await snapshot_commission(tx, order_id, base_fen=base_fen, params=params, now=now)
        snap = await store.snapshot_of(tx, order_id, lock=True)
        assert snap is not None
    if snap.merchant_id == merchant_id or await store.is_settled(tx, order_id):
        return snap
    facts = await store.order_facts(tx, order_id)
    if facts is None:
        raise InvalidMoneyInput(f"no order {order_id}", field="order_id")
    assert snap.rules_at is not None
    rules = [store.as_rule(r) for r in await store.rules_at(tx, snap.rules_at)]
    terms = cm.OrderTerms(
        facts.city_id, facts.category, facts.service_code, merchant_id, snap.base_fen
    )
    taken = cm.commission(rules, terms, default_rule(params))
    log.info(
        "order %s: commission taken again for merchant %s (rule %s → %s)",
        order_id,
        merchant_id,
        snap.rule_id,
        taken.rule_id,
    )
    return await store.resnapshot(tx, order_id, taken, merchant_id=merchant_id, at=now)


async def funds_of(db: Conn, order_id: int) -> int:
    """What an order's funds hold now (paid, less refunds and what was settled)."""
    account = lr.order_funds(order_id)
    return lr.normal_balance(account, await ledger.balance(db, account))


async def _terms(
    tx: Tx,
    order_id: int,
    base_fen: int,
    params: SettlementParams,
    now: datetime,
    merchant_id: int | None,
) -> cm.CommissionRule:
    """The terms settlement applies: the snapshot taken for the payee's merchant (taken
    now if the order has none: paid before snapshots existed, or never paid)."""
    snap = await commission_for(
        tx, order_id, merchant_id=merchant_id, base_fen=base_fen, params=params, now=now
    )
    return snapshot_rule(snap)


async def _members(tx: Conn, order_id: int) -> list[tuple[int, Payee]]:
    """A crew order's members holding it (the lead first, then by seat), each with the
    wallet their share goes to: their merchant's if they are a merchant's staff, else
    their own. Empty for a one-worker order."""
    crew = await store.crew_of(tx, order_id)
    if len(crew) < 2:
        return []
    out = []
    for worker in crew:
        merchant = await store.merchant_of(tx, worker)
        out.append(
            (
                worker,
                Payee("merchant", merchant) if merchant is not None else Payee("worker", worker),
            )
        )
    return out


def _by_wallet(
    payee: Payee, earned_fen: int, members: list[tuple[int, Payee]], split: list[ShareFen]
) -> dict[Payee, int]:
    """Who gets the order's earnings: its payee; for a crew order each member's share
    (``settlement.rules.crew_shares``: equal whole fen, the remainder to the first seats,
    the lead first), members of one merchant adding up in its wallet."""
    if not members:
        return {payee: earned_fen}
    out: dict[Payee, int] = {}
    for (_worker, member), share in zip(members, split, strict=True):
        out[member] = out.get(member, 0) + share.net_fen
    return out


class Settlement:
    """The settlement service of a process."""

    def __init__(
        self,
        stores: Stores,
        params: SettlementParams,
        channel: PayoutChannel | None = None,
        *,
        appid: str = "",
        bills: Mapping[str, BillSource] | None = None,
    ) -> None:
        self.stores = stores
        self.params = params
        self.channel = channel
        self.appid = appid
        self.bills: dict[str, BillSource] = dict(bills or {})

    # --- events: completion opens a settlement ------------------------------------

    def consumer(self) -> Consumer:
        """The events consumer: a completed order gets its pending settlement."""
        return Consumer(
            CONSUMER, EVENT_TYPES, self.handle, handle_batch=self.handle_batch, background=True
        )

    async def handle_batch(self, tx: Tx, events: list[Event]) -> None:
        """A batch, as :meth:`handle` one by one, but each stretch of ``order.paid`` is
        snapshotted at once (:func:`snapshot_paid`: four statements for the stretch)."""
        await in_runs(tx, events, _PAID, self._paid, self.handle)

    async def _paid(self, tx: Tx, events: list[Event]) -> None:
        paid = [
            (e.payload.order_id, e.payload.at)
            for e in events
            if isinstance(e.payload, OrderChanged)
        ]
        await snapshot_paid(tx, paid, params=self.params)

    async def handle(self, tx: Tx, event: Event) -> None:
        """React to one event, in the consumer's transaction: a paid order's commission is
        snapshotted; an assignment, or a crew change (a crew's lead replaced), takes it
        again for the merchant of the worker holding the order now (the lead's merchant,
        or none); a completed order (or a cancelled one a worker had, whose fee was kept)
        gets its pending settlement."""
        payload = event.payload
        if not isinstance(payload, OrderChanged):
            return
        if event.type == "order.paid":
            funds = await funds_of(tx, payload.order_id)
            await snapshot_commission(
                tx, payload.order_id, base_fen=max(funds, 0), params=self.params, now=payload.at
            )
        elif event.type in HOLDER_CHANGES and payload.worker_id is not None:
            await self.follow_holder(tx, payload.order_id, at=payload.at)
        elif event.type == "order.completed":
            await self.open_settlement(tx, payload.order_id, completed_at=payload.at)
        elif event.type == "order.cancelled":
            worker = payload.worker_id or payload.previous_worker_id
            if worker is not None:
                await self.open_settlement(
                    tx, payload.order_id, completed_at=payload.at, worker_id=worker
                )

    async def follow_holder(self, tx: Tx, order_id: int, *, at: datetime) -> None:
        """Take a paid order's commission again for the merchant of the worker who holds
        it now (of a crew order, its lead: ``orders.worker_id``), or for no merchant.

        Read from the order, not from the event that called: a late or redelivered event
        (an ``order.assigned`` of a lead replaced since) leaves the snapshot as the order
        is now, and the same merchant again changes nothing (:func:`commission_for`). An
        order nobody holds, not paid yet, or settled already is left alone."""
        if await store.snapshot_of(tx, order_id) is None:  # not paid yet: taken at payment
            return
        facts = await store.order_facts(tx, order_id)
        if facts is None or facts.worker_id is None:  # unassigned since: the next one says
            return
        await commission_for(
            tx,
            order_id,
            merchant_id=facts.merchant_id,
            base_fen=0,  # unused: the order has its snapshot
            params=self.params,
            now=at,
        )

    async def open_settlement(
        self, tx: Tx, order_id: int, *, completed_at: datetime, worker_id: int | None = None
    ) -> bool:
        """A pending settlement for an order that ended (completed, or cancelled with a fee
        kept for the worker who had it), due after the after-sales window. The payee is the
        worker, or the merchant of the worker's team."""
        facts = await store.order_facts(tx, order_id)
        worker = worker_id or (facts.worker_id if facts else None)
        if facts is None or worker is None:
            return False
        merchant = (
            facts.merchant_id if worker == facts.worker_id else await store.merchant_of(tx, worker)
        )
        payee = Payee("merchant", merchant) if merchant is not None else Payee("worker", worker)
        gross = await funds_of(tx, order_id)
        rule = await _terms(tx, order_id, gross, self.params, completed_at, merchant)
        fee = cm.amount(rule, gross)
        opened = await store.add_settlement(
            tx,
            order_id=order_id,
            payee=payee,
            worker_id=worker,
            city_id=facts.city_id,
            completed_at=completed_at,
            due_at=due_at(completed_at, self.params),
            gross_fen=gross,
            commission_fen=fee,
        )
        members = await _members(tx, order_id)
        if opened and members:  # a crew order: each member's share, frozen till T+N
            split = crew_shares(gross, fee, len(members))
            await store.put_shares(
                tx, order_id, [(w, p, f) for (w, p), f in zip(members, split, strict=True)]
            )
        return opened

    # --- settling -----------------------------------------------------------------

    async def settle_due(self, now: datetime, *, batch: int = 100) -> int:
        """Settle every order whose after-sales window is over by ``now``; how many."""
        done = 0
        while True:
            async with self.stores.pool.acquire() as conn, conn.transaction():
                ids = await store.due_settlements(conn, now, batch)
                for order_id in ids:
                    await self._settle(conn, order_id, now)
            done += len(ids)
            if len(ids) < batch:
                return done

    async def _settle(self, tx: Tx, order_id: int, now: datetime) -> None:
        s = await store.lock_settlement(tx, order_id)
        if s is None or s.status != "pending" or s.due_at > now:
            return
        if await store.holds(tx, order_id):  # an open after-sales ticket: not now
            return
        remaining = await funds_of(tx, order_id)
        premium = min(await store.premium_of(tx, order_id), max(remaining, 0))
        if premium > 0:  # an insured order: its premium goes to the insurance fund first
            await ledger.post(
                tx,
                Entry(
                    key=f"insurance:premium:{order_id}",
                    kind="insurance.premium",
                    order_id=order_id,
                    lines=(
                        debit(lr.order_funds(order_id), premium),
                        credit(lr.INSURANCE_FUND, premium),
                    ),
                    memo=f"service insurance premium of order {order_id}",
                ),
            )
            remaining -= premium
        merchant = s.payee_id if s.payee_kind == "merchant" else None
        rule = await _terms(tx, order_id, remaining, self.params, now, merchant)
        fee = cm.amount(rule, max(remaining, 0))
        payee = Payee(s.payee_kind, s.payee_id)
        members = await _members(tx, order_id)
        split = crew_shares(max(remaining, 0), fee, len(members)) if members else []
        if remaining > 0:
            shares = _by_wallet(payee, max(remaining - fee, 0), members, split)
            lines = [debit(lr.order_funds(order_id), remaining)]
            lines += [credit(payable(p), fen) for p, fen in shares.items() if fen > 0]
            if fee > 0:
                lines.append(credit(lr.COMMISSION_REVENUE, fee))
            data: dict[str, object] = {
                "rule_id": rule.id,
                "rate_bps": rule.rate_bps,
                "fee_fen": fee,
            }
            to = f"{payee.kind} {payee.id}"
            if len(shares) > 1 or next(iter(shares)) != payee:
                data["crew_shares"] = [
                    {"payee_kind": p.kind, "payee_id": p.id, "fen": fen}
                    for p, fen in shares.items()
                ]
                to = "the crew: " + ", ".join(
                    f"{p.kind} {p.id} {fen} fen" for p, fen in shares.items()
                )
            await ledger.post(
                tx,
                Entry(
                    key=f"settle:order:{order_id}",
                    kind="order.settled",
                    order_id=order_id,
                    lines=tuple(lines),
                    memo=f"T+{self.params.after_sales_days} settlement to {to}",
                    data=data,
                ),
            )
            for p, fen in shares.items():  # earnings in: what a payee owes us is netted first
                if fen > 0:
                    await _net_if_owed(tx, p, cause=f"settle:order:{order_id}")
        await store.mark_settled(
            tx, order_id, gross_fen=max(remaining, 0), commission_fen=fee, at=now
        )
        # The wallets' views of a crew order: the shares just paid (the crew and the
        # members' merchants of T+N, which may differ from those kept at completion).
        await store.put_shares(
            tx, order_id, [(w, p, f) for (w, p), f in zip(members, split, strict=True)]
        )

    # --- wallets ------------------------------------------------------------------

    async def wallet(self, payee: Payee, now: datetime) -> Wallet:
        """The wallet's balances, derived from the ledger (available: the payable account;
        frozen: what the pending orders' funds hold, less their commission — of a crew
        order, the wallet's shares of that)."""
        db = self.stores.pool
        available = await available_of(db, payee)
        fines, bonuses = await store.discipline_sums(db, payable(payee), receivable(payee))
        frozen = 0
        for p in await store.pending_funds(db, payee):
            rule = p.terms or default_rule(self.params)
            fee = cm.amount(rule, max(p.held_fen, 0))
            if p.crew_size == 1:
                frozen += p.held_fen - fee
            else:  # the wallet's shares of a crew order's earnings, as T+N will split them
                earned = split_fen(max(p.held_fen - fee, 0), p.crew_size)
                frozen += sum(earned[i] for i in p.parts)
        withdrawing, withdrawn = await store.withdrawal_sums(db, payee)
        start, end = day_bounds(local_day(now, self.params), self.params)
        use = await store.day_use(db, payee, start, end)
        return Wallet(
            payee_kind=payee.kind,
            payee_id=payee.id,
            available_fen=available,
            frozen_fen=frozen,
            withdrawing_fen=withdrawing,
            withdrawn_fen=withdrawn,
            today_withdrawn_fen=use.total_fen,
            today_withdrawals=use.count,
            min_withdrawal_fen=self.params.withdrawal_min_fen,
            daily_limit_fen=self.params.withdrawal_daily_limit_fen,
            daily_count=self.params.withdrawal_daily_count,
            owed_fen=await owed_of(db, payee),
            fines_fen=fines,
            bonuses_fen=bonuses,
        )

    async def earnings(self, payee: Payee, period: str, now: datetime, *, buckets: int) -> Earnings:
        """Earnings by local day, week or month: the last ``buckets`` periods."""
        days = {"day": 1, "week": 7, "month": 31}[period] * buckets
        since = now - timedelta(days=days)
        rows = await store.earnings(
            self.stores.pool, payee, period=period, timezone=self.params.timezone, since=since
        )
        return Earnings(period=period, buckets=rows[:buckets])

    async def jobs_done(self, worker_id: int, now: datetime) -> JobsDone:
        """A worker's completed jobs today (the local day of ``now``) and in all, and what
        they count: a one-worker job its price; a crew job the worker's share of it as
        settlement splits it — :func:`crew_shares` of the price and the commission the
        order's snapshot takes (the default without one), the worker's place in the crew
        that finished it — which is the gross of their share in the earnings by order
        when nothing was refunded. Computed from the orders, so the same before the
        settlement opens and after. A merchant's staff member's jobs count the same, and
        say whose wallet they are paid into."""
        db = self.stores.pool
        start, _ = day_bounds(local_day(now, self.params), self.params)
        solo = await store.solo_jobs(db, worker_id, start)
        today_jobs, today_fen = solo.since_jobs, solo.since_fen
        total_jobs, total_fen = solo.total_jobs, solo.total_fen
        for job in await store.crew_jobs(db, worker_id):
            fee = cm.amount(job.terms or default_rule(self.params), max(job.price_fen, 0))
            share = crew_shares(job.price_fen, fee, len(job.crew))[job.crew.index(worker_id)]
            total_jobs, total_fen = total_jobs + 1, total_fen + share.gross_fen
            if job.completed_at is not None and job.completed_at >= start:
                today_jobs, today_fen = today_jobs + 1, today_fen + share.gross_fen
        merchant = await store.merchant_named(db, worker_id)
        return JobsDone(
            today_jobs=today_jobs,
            today_fen=today_fen,
            total_jobs=total_jobs,
            total_fen=total_fen,
            merchant_id=merchant[0] if merchant else None,
            merchant_name=merchant[1] if merchant else None,
        )

    # --- withdrawals --------------------------------------------------------------

    def openid(self, payee: Payee) -> str:
        """The payee's openid under our app (sandbox: derived from the user id; binding a
        real WeChat openid at sign-in is not built)."""
        digest = hashlib.sha256(f"{self.appid}:{payee.kind}:{payee.id}".encode()).hexdigest()
        return "o" + digest[:27]

    async def request_withdrawal(
        self, payee: Payee, amount_fen: int, now: datetime
    ) -> WithdrawalOut:
        """Set ``amount_fen`` aside for a payout, if the rules allow; waits for review.

        The wallet is locked (an advisory lock on its name) while its balance and the day's
        withdrawals are read and the money is moved: two requests at once are serialised,
        and the second sees the first's effect.
        """
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await lock_wallet(conn, payee)
            account = payable(payee)
            available = await available_of(conn, payee)
            start, end = day_bounds(local_day(now, self.params), self.params)
            use = await store.day_use(conn, payee, start, end)
            check_withdrawal(amount_fen, available_fen=available, today=use, params=self.params)
            row = await store.insert_withdrawal(conn, payee, amount_fen, self.openid(payee), now)
            await ledger.post(
                conn,
                Entry(
                    key=f"withdrawal:{row.out.id}:requested",
                    kind="withdrawal.requested",
                    lines=(
                        debit(account, amount_fen),
                        credit(lr.payout_clearing(PAYOUT_CHANNEL), amount_fen),
                    ),
                    memo=f"withdrawal {row.out.id} of {payee.kind} {payee.id}",
                ),
            )
            return row.out

    async def withdrawal_of(self, payee: Payee, withdrawal_id: int) -> WithdrawalOut:
        """One of the wallet's withdrawals (another's is not found)."""
        row = await store.withdrawal(self.stores.pool, withdrawal_id)
        if row is None or row.payee != payee:
            raise WithdrawalNotFound(f"no withdrawal {withdrawal_id}", field="withdrawal_id")
        return row.out

    async def review(
        self, withdrawal_id: int, *, reviewer: int, approve: bool, reason: str, now: datetime
    ) -> WithdrawalOut:
        """Approve (the payout is queued) or reject (the money goes back) a withdrawal."""
        if not approve and not reason.strip():
            raise InvalidMoneyInput(
                "a rejection needs a reason the payee will read", field="reason"
            )
        async with self.stores.pool.acquire() as conn, conn.transaction():
            row = await store.withdrawal(conn, withdrawal_id, lock=True)
            if row is None:
                raise WithdrawalNotFound(f"no withdrawal {withdrawal_id}", field="withdrawal_id")
            if row.out.status != "requested":
                raise WrongState(
                    f"withdrawal {withdrawal_id} is {row.out.status}; only a requested one is reviewed",
                    field="withdrawal_id",
                )
            if approve:
                out = await store.update_withdrawal(
                    conn,
                    withdrawal_id,
                    status="paying",
                    reviewed_by=reviewer,
                    reviewed_at=now,
                    reason=reason.strip(),
                )
                await jobs_store.defer(
                    conn,
                    "settlement:pay_out",
                    {"withdrawal_id": withdrawal_id},
                    queue=QUEUE,
                    queueing_lock=f"payout:{withdrawal_id}",
                )
                return out.out
            out = await store.update_withdrawal(
                conn,
                withdrawal_id,
                status="rejected",
                reviewed_by=reviewer,
                reviewed_at=now,
                reason=reason.strip(),
                finished_at=now,
            )
            await self._return_money(conn, row, why="rejected")
            return out.out

    async def _return_money(self, tx: Tx, row: store.WithdrawalRow, *, why: str) -> None:
        await ledger.post(
            tx,
            Entry(
                key=f"withdrawal:{row.out.id}:returned",
                kind="withdrawal.returned",
                lines=(
                    debit(lr.payout_clearing(PAYOUT_CHANNEL), row.out.amount_fen),
                    credit(payable(row.payee), row.out.amount_fen),
                ),
                memo=f"withdrawal {row.out.id} {why}: the money is back in the wallet",
            ),
        )
        await _net_if_owed(tx, row.payee, cause=f"withdrawal:{row.out.id}:returned")

    # --- payouts (the jobs') ------------------------------------------------------

    def _request(self, row: store.WithdrawalRow) -> PayoutRequest:
        return PayoutRequest(
            out_batch_no=row.out.out_batch_no,
            out_detail_no=row.out_detail_no,
            amount_fen=row.out.amount_fen,
            openid=row.openid,
            remark=f"Doorstep 提现 {row.out.id}",
        )

    async def pay_out(self, withdrawal_id: int, now: datetime) -> str:
        """Hand an approved withdrawal to the payout channel; then poll until it is final.
        Returns the withdrawal's status afterwards."""
        assert self.channel is not None, "no payout channel in this process"
        row = await store.withdrawal(self.stores.pool, withdrawal_id)
        if row is None or row.out.status != "paying":
            return row.out.status if row else "missing"
        try:
            state = await self.channel.transfer(self._request(row))
        except PayoutRefused as e:
            return await self.finish(withdrawal_id, PayoutState("failed", e.code, e.message), now)
        except PayoutUnknown as e:  # taken or not: the query will tell
            log.warning(
                "withdrawal %s: payout answer unknown (%s); querying later", withdrawal_id, e
            )
            state = PayoutState("processing", "UNKNOWN")
        await self._note_state(withdrawal_id, state)
        await self._poll_later(withdrawal_id, now)
        return "paying"

    async def poll_payout(self, withdrawal_id: int, now: datetime) -> str:
        """Ask the channel how a payout stands; finish it when it is final."""
        assert self.channel is not None, "no payout channel in this process"
        row = await store.withdrawal(self.stores.pool, withdrawal_id)
        if row is None or row.out.status != "paying":
            return row.out.status if row else "missing"
        try:
            state = await self.channel.query(row.out.out_batch_no, row.out_detail_no)
        except PayoutUnknown as e:
            log.warning("withdrawal %s: payout query failed (%s)", withdrawal_id, e)
            await self._poll_later(withdrawal_id, now)
            return "paying"
        if state.status == "not_found":  # the transfer never reached them: hand it over again
            return await self.pay_out(withdrawal_id, now)
        if state.status in ("succeeded", "failed"):
            return await self.finish(withdrawal_id, state, now)
        await self._note_state(withdrawal_id, state)
        await self._poll_later(withdrawal_id, now)
        return "paying"

    async def _note_state(self, withdrawal_id: int, state: PayoutState) -> None:
        async with self.stores.pool.acquire() as conn, conn.transaction():
            row = await store.withdrawal(conn, withdrawal_id, lock=True)
            if row is not None and row.out.status == "paying":
                await store.update_withdrawal(
                    conn, withdrawal_id, provider_state=state.provider_state
                )

    async def _poll_later(self, withdrawal_id: int, now: datetime) -> None:
        async with self.stores.pool.acquire() as conn, conn.transaction():
            await jobs_store.defer(
                conn,
                "settlement:poll_payout",
                {"withdrawal_id": withdrawal_id},
                at=now + timedelta(seconds=self.params.payout_poll_s),
                queue=QUEUE,
                queueing_lock=f"payout-poll:{withdrawal_id}",
            )

    async def finish(self, withdrawal_id: int, state: PayoutState, now: datetime) -> str:
        """A payout's final state: paid (the money left us) or failed (back to the wallet)."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            row = await store.withdrawal(conn, withdrawal_id, lock=True)
            if row is None or row.out.status != "paying":
                return row.out.status if row else "missing"
            if state.status == "succeeded":
                await store.update_withdrawal(
                    conn,
                    withdrawal_id,
                    status="paid",
                    provider_state=state.provider_state,
                    finished_at=now,
                )
                await ledger.post(
                    conn,
                    Entry(
                        key=f"withdrawal:{withdrawal_id}:paid",
                        kind="withdrawal.paid",
                        lines=(
                            debit(lr.payout_clearing(PAYOUT_CHANNEL), row.out.amount_fen),
                            credit(lr.BANK, row.out.amount_fen),
                        ),
                        memo=f"withdrawal {withdrawal_id} paid out ({row.out.out_batch_no})",
                    ),
                )
                return "paid"
            await store.update_withdrawal(
                conn,
                withdrawal_id,
                status="failed",
                provider_state=state.provider_state,
                fail_reason=state.fail_reason,
                finished_at=now,
            )
            await self._return_money(conn, row, why=f"failed ({state.fail_reason})")
            return "failed"

    # --- reconciliation -----------------------------------------------------------

    async def reconcile(
        self, provider: str, bill_date: date, bill: bytes, now: datetime
    ) -> ReconciliationOut:
        """Compare a provider's bill for ``bill_date`` with the ledger; store every difference.
        The bill is in the provider's own format: WeChat Pay's trade bill (UTF-8 CSV), or
        Alipay's 业务账单 (the zip of GBK CSVs, or its 业务明细 file)."""
        bill_rows, theirs = bill_items(provider, bill)
        start, end = day_bounds(bill_date, self.params)
        async with self.stores.pool.acquire() as conn, conn.transaction():
            ours = await ledger_items(conn, provider, start, end)
            diffs = reconcile.compare(theirs, ours)
            run_id = await store.save_reconciliation(
                conn,
                provider=provider,
                bill_date=bill_date,
                ran_at=now,
                bill_rows=bill_rows,
                bill_sha1=hashlib.sha1(bill).hexdigest(),
                ledger_items=len(ours),
                differences=diffs,
            )
        if diffs:
            log.warning("reconciliation %s %s: %d differences", provider, bill_date, len(diffs))
        out = await store.reconciliation(self.stores.pool, run_id)
        assert out is not None
        return out


def bill_items(provider: str, bill: bytes) -> tuple[int, list[reconcile.Item]]:
    """How many rows a provider's bill has, and the payments and refunds it lists, read in
    that provider's format."""
    if provider == "alipay":
        rows, _totals = alipay_bill.read(bill)
        return len(rows), alipay_bill.items(rows)
    wechat_rows, _summary = tradebill.read(bill)
    return len(wechat_rows), reconcile.bill_items(wechat_rows)


async def ledger_items(
    db: Conn, provider: str, start: datetime, end: datetime
) -> list[reconcile.Item]:
    """The payments captured and refunds confirmed through ``provider`` in ``[start, end)``,
    as the ledger holds them: the amount is the entry's line on the provider's gateway
    account; our number and the provider's time come from the payments' own rows
    (``payments.out_trade_no``/``paid_at`` by the entry key's trade number,
    ``refunds.out_refund_no``/``succeeded_at``), else from the entry's data
    (``out_trade_no``, ``out_refund_no``, ``provider_at``), else its key and posting time."""
    rows = await db.fetch(
        "SELECT e.kind, e.key, sum(l.debit_fen - l.credit_fen)::bigint AS moved, "
        "coalesce(p.out_trade_no, r.out_refund_no, e.data->>'out_trade_no', "
        "e.data->>'out_refund_no', e.key) AS ref "
        "FROM ledger_entries e JOIN ledger_lines l ON l.entry_id = e.id AND l.account = $1 "
        "LEFT JOIN payments p ON e.kind = 'payment.captured' "
        "AND e.key = p.provider || ':pay:' || p.provider_trade_no "
        "LEFT JOIN refunds r ON e.kind = 'refund.succeeded' "
        "AND e.key = 'refund:' || r.out_refund_no || ':succeeded' "
        "WHERE e.kind IN ('payment.captured', 'refund.succeeded') "
        "AND coalesce(p.paid_at, r.succeeded_at, (e.data->>'provider_at')::timestamptz, "
        "e.posted_at) >= $2 "
        "AND coalesce(p.paid_at, r.succeeded_at, (e.data->>'provider_at')::timestamptz, "
        "e.posted_at) < $3 "
        "GROUP BY e.id, p.out_trade_no, r.out_refund_no",
        lr.gateway(provider),
        start,
        end,
    )
    return [
        reconcile.Item("payment", str(r["ref"]), int(r["moved"]))
        if r["kind"] == "payment.captured"
        else reconcile.Item("refund", str(r["ref"]), -int(r["moved"]))
        for r in rows
    ]


def utcnow() -> datetime:
    """The time now, aware."""
    return datetime.now(UTC)


__all__ = ["NoWallet", "Settlement", "commission_for", "quote", "snapshot_commission"]


async def create_rule(pool: Conn, rule: cm.CommissionRule, note: str, created_by: int) -> RuleOut:
    """Store a commission rule after checking that what it names exists."""
    checks = (
        ("city_id", rule.city_id, "SELECT 1 FROM cities WHERE id = $1"),
        ("category", rule.category, "SELECT 1 FROM categories WHERE code = $1"),
        ("service_code", rule.service_code, "SELECT 1 FROM services WHERE code = $1"),
        (
            "merchant_id",
            rule.merchant_id,
            "SELECT 1 FROM users WHERE id = $1 AND 'merchant' = ANY(roles)",
        ),
    )
    for field, value, sql in checks:
        if value is not None and await pool.fetchval(sql, value) is None:
            raise InvalidMoneyInput(f"no such {field.replace('_', ' ')}: {value!r}", field=field)
    assert isinstance(pool, asyncpg.Pool)
    async with pool.acquire() as conn, conn.transaction():
        return await store.insert_rule(conn, rule, note, created_by)
