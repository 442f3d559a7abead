"""Growth: customers' coupons and points, checkout with a discount; operators' coupon
templates, grants and their stats (docs/growth.md). Thin: growth.service decides."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from api.bodies import Input
from api.routing import Ctx, QueryParam, Router
from growth.rules import TemplateSpec
from growth.service import PLATFORM, Growth, Reach, template_view

router = Router("growth")
CUSTOMER = frozenset({"customer"})
OPERATORS = frozenset({"admin"})
READERS = frozenset({"admin", "finance"})

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CouponOut(msgspec.Struct, kw_only=True):
    """A customer's coupon: its terms and state (available, locked, used, expired)."""

    id: int
    template_id: int
    name_zh: str
    name_en: str
    kind: str
    amount_fen: int
    percent_off: int
    cap_fen: int | None
    min_spend_fen: int
    categories: list[str]
    services: list[str]
    cities: list[str]
    status: str
    source: str
    valid_from: datetime
    valid_until: datetime
    order_id: int | None
    issued_at: datetime
    used_at: datetime | None


class TemplateOut(msgspec.Struct, kw_only=True):
    """A coupon template."""

    id: int
    name_zh: str
    name_en: str
    kind: str
    amount_fen: int
    percent_off: int
    cap_fen: int | None
    min_spend_fen: int
    categories: list[str]
    services: list[str]
    cities: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    total_stock: int
    issued: int
    stock_left: int
    per_user_limit: int
    claimable: bool
    auto_event: str | None
    active: bool
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class ClaimableOut(TemplateOut, kw_only=True):
    """A template the customer may claim, with how many of it they hold."""

    held: int


class ClaimIn(Input):
    """Which coupon to claim."""

    template_id: Annotated[int, msgspec.Meta(ge=1)]


class AppliedOut(msgspec.Struct, kw_only=True):
    """The discount applied to the order now."""

    coupon_id: int | None
    coupon_fen: int
    points: int
    points_fen: int
    payable_fen: int
    status: str


class OptionOut(CouponOut, kw_only=True):
    """One of the customer's coupons against the order."""

    discount_fen: int
    applicable: bool
    reason: str | None
    max_points: int


class PointsOfferOut(msgspec.Struct, kw_only=True):
    """The customer's points at checkout."""

    balance: int
    available: int
    max_points: int
    fen_per_100_points: int


class CheckoutOut(msgspec.Struct, kw_only=True):
    """Checkout: price, what is payable, the coupons (best first), the suggestion, points."""

    order_id: int
    status: str
    open: bool
    price_fen: int
    payable_fen: int
    applied: AppliedOut | None
    suggested_coupon_id: int | None
    coupons: list[OptionOut]
    points: PointsOfferOut


class CheckoutIn(Input):
    """The coupon (null: none) and the points to spend on the order."""

    coupon_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    points: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


class PointsLineOut(msgspec.Struct, kw_only=True):
    """One change of the points balance."""

    id: int
    kind: str
    points: int
    balance_after: int
    order_id: int | None
    at: datetime


class PointsOut(msgspec.Struct, kw_only=True):
    """A customer's points and their history, newest first."""

    balance: int
    held: int
    available: int
    fen_per_100_points: int
    history: list[PointsLineOut]


class PackItemOut(msgspec.Struct, kw_only=True):
    """Coupons of a level's monthly pack."""

    amount_fen: int
    min_spend_fen: int
    valid_days: int
    count: int


class LevelOut(msgspec.Struct, kw_only=True):
    """A membership level and its benefits."""

    code: str
    name_zh: str
    name_en: str
    min_points: int
    multiplier_bps: int
    pack: list[PackItemOut]


class PackCouponOut(msgspec.Struct, kw_only=True):
    """A coupon of this month's pack."""

    id: int
    status: str
    amount_fen: int
    min_spend_fen: int
    valid_until: datetime


class MembershipOut(msgspec.Struct, kw_only=True):
    """A customer's membership (会员): level from points earned over the window, progress
    toward the next level, benefits, this month's pack."""

    level: LevelOut
    points: int
    window_days: int
    since: datetime | None
    next_level: LevelOut | None
    points_to_next: int
    progress_bps: int
    levels: list[LevelOut]
    month: str
    pack_coupons: list[PackCouponOut]


class TemplateIn(Input, kw_only=True):
    """A coupon template: amount off (amount_fen) or percent off (percent_off, cap_fen);
    minimum spend; where it applies (empty: anywhere); valid until a time or valid_days
    after issue; stock and the per-customer limit; claimable in the app and/or issued on
    an event (account.created)."""

    name_zh: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    name_en: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    kind: Literal["amount", "percent"]
    amount_fen: Annotated[int, msgspec.Meta(ge=0)] = 0
    percent_off: Annotated[int, msgspec.Meta(ge=0, le=99)] = 0
    cap_fen: Annotated[int, msgspec.Meta(ge=1)] | None = None
    min_spend_fen: Annotated[int, msgspec.Meta(ge=0)] = 0
    categories: Annotated[list[Code], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    services: Annotated[list[Code], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    cities: Annotated[list[Code], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: Annotated[int, msgspec.Meta(ge=1, le=366)] | None = None
    total_stock: Annotated[int, msgspec.Meta(ge=0)]
    per_user_limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    claimable: bool = True
    auto_event: Literal["account.created"] | None = None


class TemplatePatch(Input):
    """What may change on a template: names, stock, the end of its window, on/off, claims."""

    name_zh: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | None = None
    name_en: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | None = None
    total_stock: Annotated[int, msgspec.Meta(ge=0)] | None = None
    valid_until: datetime | None = None
    active: bool | None = None
    claimable: bool | None = None


class GrantIn(Input):
    """Customers to grant one coupon each."""

    user_ids: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(min_length=1, max_length=500)
    ]


class SkippedOut(msgspec.Struct, kw_only=True):
    """A customer who got no coupon, and why."""

    user_id: int
    reason: str


class GrantOut(msgspec.Struct, kw_only=True):
    """How many coupons were granted, and who was skipped."""

    template_id: int
    issued: int
    skipped: list[SkippedOut]


class StatsOut(msgspec.Struct, kw_only=True):
    """One template's numbers: stock, issued, used, returned, and the subsidy they cost."""

    template_id: int
    name_zh: str
    name_en: str
    total_stock: int
    issued: int
    used: int
    returned: int
    cost_fen: int
    active: bool
    cities: list[str]


def _growth(ctx: Ctx) -> Growth:
    found: Growth = ctx.request.app.state.growth
    return found


def _now() -> datetime:
    return datetime.now(UTC)


def _reach(ctx: Ctx) -> Reach:
    if ctx.scope is None or ctx.scope.platform:
        return PLATFORM
    return Reach(frozenset(ctx.scope.cities))


# --- customers ---------------------------------------------------------------------------


@router.get(
    "/v1/coupons/claimable",
    perm="growth.own",
    roles=CUSTOMER,
    returns=list[ClaimableOut],
    summary="Coupons the customer may claim now (in stock, below their limit)",
)
async def claimable(ctx: Ctx) -> list[ClaimableOut]:
    found = await _growth(ctx).claimable(ctx.user.user_id, _now())
    return msgspec.convert(found, list[ClaimableOut])


@router.post(
    "/v1/coupons/claim",
    perm="growth.own",
    roles=CUSTOMER,
    body=ClaimIn,
    returns=CouponOut,
    status=201,
    errors={
        404: "no such claimable coupon",
        409: "out of stock, the per-customer limit reached, the offer ended or switched off",
    },
    summary="Claim a coupon (领券): one of the template's stock, within the per-customer limit",
)
async def claim(ctx: Ctx, body: ClaimIn) -> CouponOut:
    found = await _growth(ctx).claim(ctx.user.user_id, body.template_id, _now())
    return msgspec.convert(found, CouponOut)


@router.get(
    "/v1/me/coupons",
    perm="growth.own",
    roles=CUSTOMER,
    returns=list[CouponOut],
    summary="The customer's coupons (available, locked to an unpaid order, used, expired)",
)
async def my_coupons(ctx: Ctx) -> list[CouponOut]:
    return msgspec.convert(await _growth(ctx).coupons(ctx.user.user_id, _now()), list[CouponOut])


@router.get(
    "/v1/me/points",
    perm="growth.own",
    roles=CUSTOMER,
    returns=PointsOut,
    query=(QueryParam("limit", int, "history lines, 1–200 (default 50)", ge=1, le=200),),
    summary="The customer's points (积分): balance, held for unpaid orders, and history",
)
async def my_points(ctx: Ctx) -> PointsOut:
    limit = ctx.query_int("limit", 50, ge=1, le=200)
    return msgspec.convert(await _growth(ctx).points(ctx.user.user_id, limit=limit), PointsOut)


@router.get(
    "/v1/me/membership",
    perm="growth.own",
    roles=CUSTOMER,
    returns=MembershipOut,
    summary="The customer's membership (会员): level, progress, benefits, this month's coupon pack",
)
async def my_membership(ctx: Ctx) -> MembershipOut:
    found = await _growth(ctx).members.status(ctx.user.user_id, _now())
    return msgspec.convert(found, MembershipOut)


@router.get(
    "/v1/orders/{order_id}/checkout",
    perm="growth.own",
    roles=CUSTOMER,
    returns=CheckoutOut,
    errors={404: "no such order of yours", 409: "the order has no price"},
    summary="Checkout preview: each coupon against the order (the best suggested), points to spend, what is applied",
)
async def preview(ctx: Ctx) -> CheckoutOut:
    found = await _growth(ctx).preview(ctx.user.user_id, ctx.path_int("order_id"), _now())
    return msgspec.convert(found, CheckoutOut)


@router.put(
    "/v1/orders/{order_id}/checkout",
    perm="growth.own",
    roles=CUSTOMER,
    body=CheckoutIn,
    returns=CheckoutOut,
    errors={
        404: "no such order or coupon of yours",
        409: "the order is not a prepaid one awaiting payment, or the coupon is used",
        422: "the coupon does not apply (city, category, service, minimum spend, validity) or too many points",
    },
    summary="Apply a coupon (one per order) and points to an order awaiting payment: the payable amount becomes price − discount (then POST …/pay)",
)
async def checkout(ctx: Ctx, body: CheckoutIn) -> CheckoutOut:
    found = await _growth(ctx).checkout(
        ctx.user.user_id,
        ctx.path_int("order_id"),
        coupon_id=body.coupon_id,
        points=body.points,
        now=_now(),
    )
    return msgspec.convert(found, CheckoutOut)


# --- operators ---------------------------------------------------------------------------


def _spec(body: TemplateIn) -> TemplateSpec:
    return TemplateSpec(
        name_zh=body.name_zh,
        name_en=body.name_en,
        kind=body.kind,
        amount_fen=body.amount_fen,
        percent_off=body.percent_off,
        cap_fen=body.cap_fen,
        min_spend_fen=body.min_spend_fen,
        categories=tuple(body.categories),
        services=tuple(body.services),
        cities=tuple(body.cities),
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        valid_days=body.valid_days,
        total_stock=body.total_stock,
        per_user_limit=body.per_user_limit,
        claimable=body.claimable,
        auto_event=body.auto_event,
    )


@router.get(
    "/v1/admin/coupon-templates",
    perm="growth.read",
    roles=READERS,
    returns=list[TemplateOut],
    summary="Coupon templates (a city's operator: those limited to their cities)",
)
async def list_templates(ctx: Ctx) -> list[TemplateOut]:
    found = [template_view(t) for t in await _growth(ctx).templates(_reach(ctx))]
    return msgspec.convert(found, list[TemplateOut])


@router.post(
    "/v1/admin/coupon-templates",
    perm="growth.write",
    roles=OPERATORS,
    body=TemplateIn,
    returns=TemplateOut,
    status=201,
    errors={422: "a rule of templates broken (the field is named)"},
    summary="Create a coupon template: amount or percent off, minimum spend, where, validity, stock, per-customer limit",
)
async def create_template(ctx: Ctx, body: TemplateIn) -> TemplateOut:
    t = await _growth(ctx).create_template(
        _spec(body), by=ctx.user.user_id, reach=_reach(ctx), now=_now()
    )
    return msgspec.convert(template_view(t), TemplateOut)


@router.get(
    "/v1/admin/coupon-templates/{template_id}",
    perm="growth.read",
    roles=READERS,
    returns=TemplateOut,
    errors={404: "no such template in your reach"},
    summary="One coupon template",
)
async def get_template(ctx: Ctx) -> TemplateOut:
    t = await _growth(ctx).template(ctx.path_int("template_id"), _reach(ctx))
    return msgspec.convert(template_view(t), TemplateOut)


@router.patch(
    "/v1/admin/coupon-templates/{template_id}",
    perm="growth.write",
    roles=OPERATORS,
    body=TemplatePatch,
    returns=TemplateOut,
    errors={404: "no such template in your reach", 422: "stock below what was issued, a past end"},
    summary="Change a template's names, stock, end, switch it on or off, open or close it to claims (its terms stay)",
)
async def patch_template(ctx: Ctx, body: TemplatePatch) -> TemplateOut:
    changes: dict[str, Any] = {
        k: v for k, v in msgspec.structs.asdict(body).items() if v is not None
    }
    t = await _growth(ctx).update_template(
        ctx.path_int("template_id"), changes, reach=_reach(ctx), now=_now()
    )
    return msgspec.convert(template_view(t), TemplateOut)


@router.delete(
    "/v1/admin/coupon-templates/{template_id}",
    perm="growth.write",
    roles=OPERATORS,
    errors={404: "no such template in your reach"},
    summary="Switch a template off (its coupons already issued stay usable); 204",
)
async def delete_template(ctx: Ctx) -> None:
    await _growth(ctx).update_template(
        ctx.path_int("template_id"), {"active": False}, reach=_reach(ctx), now=_now()
    )


@router.post(
    "/v1/admin/coupon-templates/{template_id}/grants",
    perm="growth.write",
    roles=OPERATORS,
    body=GrantIn,
    returns=GrantOut,
    errors={404: "no such template in your reach"},
    summary="Grant one coupon of the template to each customer listed (stock and per-customer limit apply)",
)
async def grant(ctx: Ctx, body: GrantIn) -> GrantOut:
    found = await _growth(ctx).grant(
        ctx.path_int("template_id"),
        body.user_ids,
        by=ctx.user.user_id,
        reach=_reach(ctx),
        now=_now(),
    )
    return msgspec.convert(found, GrantOut)


@router.get(
    "/v1/admin/growth/stats",
    perm="growth.read",
    roles=READERS,
    returns=list[StatsOut],
    summary="Per coupon template: stock, issued, used, returned and the subsidy they cost (net of refunds)",
)
async def stats(ctx: Ctx) -> list[StatsOut]:
    return msgspec.convert(await _growth(ctx).stats(_reach(ctx)), list[StatsOut])
