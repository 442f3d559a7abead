"""Money after the order: wallets, earnings and withdrawals for workers and merchants;
settlements, withdrawal review and reconciliation for finance; commission rules for
admins and finance (docs/settlement.md).

Finance's routes declare ``finance.*``: the ``finance`` role template grants them with a
scope. A city-scoped grant sees the settlements, wallets, withdrawals and orders of its
cities only (another city's: 404); ``finance.platform`` (runs, reconciliation, commission
rules) is held through a platform-wide grant only (permissions/rules.py ``PLATFORM_ONLY``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import msgspec

from api.bodies import Input
from api.routing import Ctx, QueryParam, Router
from doorstep.errors import InvalidInput, NotFound
from settlement import service as settlement_service
from settlement import store
from settlement.commission import CommissionRule
from settlement.errors import InvalidMoneyInput, NoWallet, RuleNotFound, WithdrawalNotFound
from settlement.models import (
    CommissionOut,
    Earnings,
    JobsDone,
    Payee,
    ReconciliationOut,
    Reconciliations,
    RuleOut,
    Settlements,
    Wallet,
    WithdrawalOut,
    Withdrawals,
)
from settlement.service import Settlement

router = Router("settlement")
PAYEES = frozenset({"worker", "merchant"})
FINANCE = frozenset({"finance", "admin"})
REVIEWERS = frozenset({"finance"})
RULE_EDITORS = frozenset({"finance", "admin"})

Fen = Annotated[int, msgspec.Meta(ge=0, le=10**10, description="integer fen (分)")]
Reason = Annotated[str, msgspec.Meta(max_length=200)]
AS = QueryParam(
    "as",
    str,
    "whose wallet: worker or merchant (default: the caller's role)",
    choices=("worker", "merchant"),
)
LIMIT = QueryParam("limit", int, "how many, 1–200 (default 50)", ge=1, le=200)


def _svc(ctx: Ctx) -> Settlement:
    svc: Settlement = ctx.request.app.state.settlement
    return svc


def _now(ctx: Ctx) -> datetime:
    return datetime.fromtimestamp(ctx.now, UTC)


def _payee(ctx: Ctx) -> Payee:
    """The caller's wallet: ``?as=`` or the role they hold (worker first)."""
    wanted = ctx.query_str("as", choices=PAYEES)
    roles = ctx.user.roles
    kind = wanted or ("worker" if "worker" in roles else "merchant")
    if kind not in roles:
        raise NoWallet(f"the caller holds no {kind} wallet (not a {kind})", field="as")
    return Payee("worker" if kind == "worker" else "merchant", ctx.user.user_id)


# --- workers and merchants ----------------------------------------------------------


@router.get(
    "/v1/me/wallet",
    perm="settlement.read",
    roles=PAYEES,
    returns=Wallet,
    query=(AS,),
    summary="The caller's wallet: available, frozen (after-sales window), withdrawing",
)
async def my_wallet(ctx: Ctx) -> Wallet:
    return await _svc(ctx).wallet(_payee(ctx), _now(ctx))


@router.get(
    "/v1/me/earnings",
    perm="settlement.read",
    roles=PAYEES,
    returns=Earnings,
    query=(
        AS,
        QueryParam("period", str, "day (default), week or month", choices=("day", "week", "month")),
        QueryParam("buckets", int, "how many periods back, 1–120 (default 30)", ge=1, le=120),
    ),
    summary="The caller's earnings by local day, week or month",
)
async def my_earnings(ctx: Ctx) -> Earnings:
    period = ctx.query_str("period", choices=frozenset({"day", "week", "month"})) or "day"
    buckets = ctx.query_int("buckets", 30, ge=1, le=120)
    return await _svc(ctx).earnings(_payee(ctx), period, _now(ctx), buckets=buckets)


@router.get(
    "/v1/me/earnings/orders",
    perm="settlement.read",
    roles=PAYEES,
    returns=Settlements,
    query=(
        AS,
        QueryParam("status", str, "pending or settled", choices=("pending", "settled")),
        LIMIT,
    ),
    summary="The caller's earnings per order: gross, commission, net, frozen until when",
)
async def my_order_earnings(ctx: Ctx) -> Settlements:
    items = await store.settlements_of(
        ctx.stores.pool,
        _payee(ctx),
        status=ctx.query_str("status", choices=frozenset({"pending", "settled"})),
        limit=ctx.query_int("limit", 50, ge=1, le=200),
    )
    return Settlements(items=items)


@router.get(
    "/v1/me/earnings/jobs",
    perm="settlement.read",
    roles=frozenset({"worker"}),
    returns=JobsDone,
    summary="The caller's completed jobs today and in all, and what they count: a crew job "
    "the caller's share (and whose wallet they are paid into)",
)
async def my_jobs_done(ctx: Ctx) -> JobsDone:
    return await _svc(ctx).jobs_done(ctx.user.user_id, _now(ctx))


class WithdrawalIn(Input):
    """A withdrawal of ``amount_fen`` from the caller's available balance."""

    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=10**10, description="integer fen (分)")]
    payee: Literal["worker", "merchant"] | None = None


@router.post(
    "/v1/me/withdrawals",
    perm="settlement.write",
    roles=PAYEES,
    body=WithdrawalIn,
    returns=WithdrawalOut,
    status=201,
    summary="Ask to withdraw: the amount is set aside until finance reviews it",
    errors={
        409: "more than the available balance",
        422: "below the minimum or over the daily limit",
    },
)
async def request_withdrawal(ctx: Ctx, body: WithdrawalIn) -> WithdrawalOut:
    payee = _payee(ctx)
    if body.payee is not None and body.payee != payee.kind:
        if body.payee not in ctx.user.roles:
            raise NoWallet(f"the caller holds no {body.payee} wallet", field="payee")
        payee = Payee(body.payee, ctx.user.user_id)
    return await _svc(ctx).request_withdrawal(payee, body.amount_fen, _now(ctx))


@router.get(
    "/v1/me/withdrawals",
    perm="settlement.read",
    roles=PAYEES,
    returns=Withdrawals,
    query=(AS, LIMIT),
    summary="The caller's withdrawals, newest first",
)
async def my_withdrawals(ctx: Ctx) -> Withdrawals:
    return Withdrawals(
        items=await store.withdrawals_of(
            ctx.stores.pool, _payee(ctx), limit=ctx.query_int("limit", 50, ge=1, le=200)
        )
    )


@router.get(
    "/v1/me/withdrawals/{withdrawal_id}",
    perm="settlement.read",
    roles=PAYEES,
    returns=WithdrawalOut,
    query=(AS,),
    summary="One of the caller's withdrawals",
)
async def my_withdrawal(ctx: Ctx) -> WithdrawalOut:
    return await _svc(ctx).withdrawal_of(_payee(ctx), ctx.path_int("withdrawal_id"))


# --- finance ------------------------------------------------------------------------


@router.get(
    "/v1/finance/settlements",
    perm="finance.read",
    roles=FINANCE,
    returns=Settlements,
    query=(
        QueryParam("status", str, "pending or settled", choices=("pending", "settled")),
        QueryParam("city_id", str, "one city", max_length=64),
        LIMIT,
    ),
    summary="Settlements of every wallet, newest completion first",
)
async def settlements(ctx: Ctx) -> Settlements:
    city_id = ctx.query_str("city_id")
    if city_id is not None:
        ctx.in_city(city_id)
    return Settlements(
        items=await store.all_settlements(
            ctx.stores.pool,
            status=ctx.query_str("status", choices=frozenset({"pending", "settled"})),
            city_id=city_id,
            limit=ctx.query_int("limit", 50, ge=1, le=200),
            city_ids=_cities(ctx),
        )
    )


def _cities(ctx: Ctx) -> list[str] | None:
    """The cities a city-scoped caller sees (None: every city)."""
    return ctx.scope.city_list if ctx.scope is not None else None


async def _payee_in_scope(ctx: Ctx, payee: Payee, field: str) -> None:
    """404 unless the caller's scope reaches the wallet's holder (their city)."""
    if ctx.scope is not None and ctx.scope.platform:
        return
    if not ctx.reaches(await store.payee_city(ctx.stores.pool, payee)):
        raise NotFound(f"no {payee.kind} wallet {payee.id} in your scope", field=field)


@dataclass(frozen=True, slots=True)
class SettleRun:
    """How many orders a settlement run settled."""

    settled: int


@router.post(
    "/v1/finance/settlements/run",
    perm="finance.platform",
    roles=FINANCE,
    returns=SettleRun,
    summary="Settle now what is due (the job does it every minute)",
)
async def settle_now(ctx: Ctx) -> SettleRun:
    return SettleRun(settled=await _svc(ctx).settle_due(_now(ctx)))


@router.get(
    "/v1/finance/wallets/{payee_kind}/{payee_id}",
    perm="finance.read",
    roles=FINANCE,
    returns=Wallet,
    summary="Any worker's or merchant's wallet",
)
async def wallet_of(ctx: Ctx) -> Wallet:
    kind = ctx.path_str("payee_kind")
    if kind not in PAYEES:
        raise InvalidInput("must be worker or merchant", field="payee_kind")
    payee = Payee("worker" if kind == "worker" else "merchant", ctx.path_int("payee_id"))
    await _payee_in_scope(ctx, payee, "payee_id")
    return await _svc(ctx).wallet(payee, _now(ctx))


STATUSES = ("requested", "rejected", "paying", "paid", "failed")


@router.get(
    "/v1/finance/withdrawals",
    perm="finance.read",
    roles=FINANCE,
    returns=Withdrawals,
    query=(
        QueryParam("status", str, "one status (a review queue: requested)", choices=STATUSES),
        LIMIT,
    ),
    summary="Withdrawals; filtered by status the oldest come first",
)
async def withdrawals(ctx: Ctx) -> Withdrawals:
    return Withdrawals(
        items=await store.all_withdrawals(
            ctx.stores.pool,
            status=ctx.query_str("status", choices=frozenset(STATUSES)),
            limit=ctx.query_int("limit", 50, ge=1, le=200),
            city_ids=_cities(ctx),
        )
    )


class ReviewIn(Input):
    """A review's reason (required to reject; the payee reads it)."""

    reason: Reason = ""


async def _reviewable(ctx: Ctx) -> int:
    """The withdrawal's id if the caller's scope reaches its payee (else 404)."""
    withdrawal_id = ctx.path_int("withdrawal_id")
    row = await store.withdrawal(ctx.stores.pool, withdrawal_id)
    if row is not None:
        try:
            await _payee_in_scope(ctx, row.payee, "withdrawal_id")
        except NotFound:
            raise WithdrawalNotFound(
                f"no withdrawal {withdrawal_id}", field="withdrawal_id"
            ) from None
    return withdrawal_id


@router.post(
    "/v1/finance/withdrawals/{withdrawal_id}/approve",
    perm="finance.withdrawals.review",
    roles=REVIEWERS,
    body=ReviewIn,
    returns=WithdrawalOut,
    summary="Approve a requested withdrawal: the payout is queued",
    errors={409: "the withdrawal was already reviewed"},
)
async def approve(ctx: Ctx, body: ReviewIn) -> WithdrawalOut:
    return await _svc(ctx).review(
        await _reviewable(ctx),
        reviewer=ctx.user.user_id,
        approve=True,
        reason=body.reason,
        now=_now(ctx),
    )


@router.post(
    "/v1/finance/withdrawals/{withdrawal_id}/reject",
    perm="finance.withdrawals.review",
    roles=REVIEWERS,
    body=ReviewIn,
    returns=WithdrawalOut,
    summary="Reject a requested withdrawal with a reason: the money goes back to the wallet",
    errors={409: "the withdrawal was already reviewed"},
)
async def reject(ctx: Ctx, body: ReviewIn) -> WithdrawalOut:
    return await _svc(ctx).review(
        await _reviewable(ctx),
        reviewer=ctx.user.user_id,
        approve=False,
        reason=body.reason,
        now=_now(ctx),
    )


class ReconcileIn(Input):
    """Reconcile one provider's bill of one local day. If finance downloaded the bill,
    ``bill`` is its text (WeChat Pay v3 交易账单 CSV) or ``bill_base64`` the file itself
    in base64 (any provider's; Alipay's is a zip of GBK CSVs); else it is fetched."""

    provider: Literal["wechat", "alipay"]
    bill_date: date
    bill: Annotated[str, msgspec.Meta(max_length=5_000_000)] | None = None
    bill_base64: Annotated[str, msgspec.Meta(max_length=7_000_000)] | None = None


@router.post(
    "/v1/finance/reconciliations",
    perm="finance.platform",
    roles=FINANCE,
    body=ReconcileIn,
    returns=ReconciliationOut,
    status=201,
    summary="Compare a provider's daily trade bill with the ledger; every difference is listed",
)
async def run_reconciliation(ctx: Ctx, body: ReconcileIn) -> ReconciliationOut:
    svc = _svc(ctx)
    if body.bill is not None and body.bill_base64 is not None:
        raise InvalidMoneyInput("send the bill as bill or as bill_base64, not both", field="bill")
    if body.bill is not None:
        bill = body.bill.encode()
    elif body.bill_base64 is not None:
        try:
            bill = base64.b64decode(body.bill_base64, validate=True)
        except ValueError:
            raise InvalidMoneyInput("must be base64", field="bill_base64") from None
    else:
        source = svc.bills.get(body.provider)
        if source is None:
            raise InvalidMoneyInput(
                f"no bill source for {body.provider} in this server: send the bill", field="bill"
            )
        bill = await source.trade_bill(body.bill_date)
    return await svc.reconcile(body.provider, body.bill_date, bill, _now(ctx))


@router.get(
    "/v1/finance/reconciliations",
    perm="finance.platform",
    roles=FINANCE,
    returns=Reconciliations,
    query=(LIMIT,),
    summary="Reconciliation runs, newest first",
)
async def reconciliations(ctx: Ctx) -> Reconciliations:
    return Reconciliations(
        items=await store.reconciliations(
            ctx.stores.pool, limit=ctx.query_int("limit", 50, ge=1, le=200)
        )
    )


@router.get(
    "/v1/finance/reconciliations/{reconciliation_id}",
    perm="finance.platform",
    roles=FINANCE,
    returns=ReconciliationOut,
    summary="One run with every difference it found",
)
async def reconciliation(ctx: Ctx) -> ReconciliationOut:
    run_id = ctx.path_int("reconciliation_id")
    found = await store.reconciliation(ctx.stores.pool, run_id)
    if found is None:
        raise NotFound(f"no reconciliation {run_id}", field="reconciliation_id")
    return found


# --- commission rules -----------------------------------------------------------------


class RuleIn(Input):
    """A commission rule; a dimension left out matches every order."""

    rate_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000, description="basis points: 1500 = 15 %")]
    fixed_fen: Fen = 0
    min_fen: Fen = 0
    max_fen: Fen | None = None
    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    service_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    merchant_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    note: Reason = ""


@dataclass(frozen=True, slots=True)
class Rules:
    """Commission rules, newest first."""

    items: list[RuleOut]


@router.get(
    "/v1/admin/commission-rules",
    perm="finance.platform",
    roles=RULE_EDITORS,
    returns=Rules,
    query=(QueryParam("all", bool, "true: switched-off rules too"),),
    summary="Commission rules, newest first",
)
async def commission_rules(ctx: Ctx) -> Rules:
    everything = ctx.request.query_params.get("all") == "true"
    return Rules(items=await store.rules(ctx.stores.pool, active_only=not everything))


@router.post(
    "/v1/admin/commission-rules",
    perm="finance.platform",
    roles=RULE_EDITORS,
    body=RuleIn,
    returns=RuleOut,
    status=201,
    summary="Add a commission rule (the most specific matching rule applies to an order)",
)
async def add_commission_rule(ctx: Ctx, body: RuleIn) -> RuleOut:
    rule = CommissionRule(
        id=None,
        rate_bps=body.rate_bps,
        fixed_fen=body.fixed_fen,
        min_fen=body.min_fen,
        max_fen=body.max_fen,
        city_id=body.city_id,
        category=body.category,
        service_code=body.service_code,
        merchant_id=body.merchant_id,
    )
    return await settlement_service.create_rule(ctx.stores.pool, rule, body.note, ctx.user.user_id)


@router.post(
    "/v1/admin/commission-rules/{rule_id}/deactivate",
    perm="finance.platform",
    roles=RULE_EDITORS,
    returns=RuleOut,
    summary="Switch a commission rule off (orders already paid keep their snapshot)",
)
async def deactivate_rule(ctx: Ctx) -> RuleOut:
    rule_id = ctx.path_int("rule_id")
    async with ctx.stores.pool.acquire() as conn, conn.transaction():
        out = await store.set_rule_active(conn, rule_id, False)
    if out is None:
        raise RuleNotFound(f"no commission rule {rule_id}", field="rule_id")
    return out


@router.get(
    "/v1/finance/orders/{order_id}/commission",
    perm="finance.read",
    roles=FINANCE,
    returns=CommissionOut,
    summary="An order's commission: the snapshot taken at payment, else what the rules give now",
)
async def order_commission(ctx: Ctx) -> CommissionOut:
    order_id = ctx.path_int("order_id")
    if not await ctx.reaches_order(order_id):
        raise NotFound(f"no order {order_id}", field="order_id")
    snap = await store.snapshot_of(ctx.stores.pool, order_id)
    if snap is not None:
        return snap
    c = await settlement_service.quote(ctx.stores.pool, order_id, _svc(ctx).params)
    if c is None:
        raise NotFound(f"no order {order_id}", field="order_id")
    return CommissionOut(
        order_id,
        c.rule_id,
        c.rate_bps,
        c.fixed_fen,
        c.min_fen,
        c.max_fen,
        c.base_fen,
        c.commission_fen,
        c.payee_fen,
        None,
    )
