"""Merchants (商家): apply with a business licence, review, and the merchant's back office
(staff, services and prices, orders routed to them, dispatch of their own staff,
overflow to the platform). Every back-office route takes the merchant in its path and
answers 404 for a merchant outside the caller's scope (tenant isolation)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from api.bodies import Input
from api.routing import Ctx, QueryParam, Router
from dispatch import overrides
from dispatch.models import Order
from merchants import service
from merchants.models import Merchant, MerchantService
from workforce.models import Worker

router = Router("merchants")
APPLICANTS = frozenset({"customer", "merchant"})
STAFF = frozenset({"admin", "dispatcher"})
ADMIN = frozenset({"admin"})
BACK_OFFICE = frozenset({"admin", "merchant"})
SEES_MERCHANT = frozenset({"admin", "dispatcher", "merchant"})
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class ApplyIn(Input):
    """A merchant application: the business licence's number and an upload of it
    (``POST /v1/files?purpose=business_licence``)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    city_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    licence_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    licence_file_id: Id


class ReviewIn(Input):
    """The verdict; a rejection says why."""

    approve: bool
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class StaffIn(Input):
    """A platform worker of the merchant's city to put on its team."""

    worker_id: Id


class ServiceIn(Input):
    """The merchant's price (fen) for a catalog service, within the catalog's range."""

    price_minor: Annotated[int, msgspec.Meta(ge=0, le=10**9)]
    active: bool = True


class DispatchIn(Input):
    """One of the merchant's own staff for the order."""

    worker_id: Id
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    force: bool = False  # as a dispatcher's: override the matcher's objections


class RouteIn(Input):
    """The merchant to route the order to."""

    merchant_id: Id


@router.post(
    "/v1/merchants",
    errors={
        404: "the licence file is not an unattached business_licence upload of yours",
        409: "an application of yours is pending or approved",
        422: "a bad licence number (GB 32100 check character), an unknown city",
    },
    perm="merchants.apply",
    roles=APPLICANTS,
    body=ApplyIn,
    returns=Merchant,
    status=201,
    summary="Apply to be a merchant with a business licence (or again after a rejection)",
)
async def apply(ctx: Ctx, body: ApplyIn) -> Merchant:
    return await service.apply(
        ctx.stores,
        user_id=ctx.user.user_id,
        name=body.name.strip(),
        city_id=body.city_id,
        licence_number=body.licence_number,
        licence_file_id=body.licence_file_id,
        now=ctx.now,
    )


@router.get(
    "/v1/me/merchant",
    errors={404: "the caller has not applied"},
    perm="merchants.apply",
    roles=APPLICANTS,
    returns=Merchant,
    summary="The caller's own merchant application: pending, approved, or rejected and why",
)
async def my_merchant(ctx: Ctx) -> Merchant:
    return await service.mine(ctx.stores, ctx.user.user_id)


@router.get(
    "/v1/merchants",
    perm="merchants.read",
    roles=SEES_MERCHANT,
    returns=list[Merchant],
    query=(
        QueryParam(
            "status",
            str,
            "pending, approved or rejected",
            choices=("approved", "pending", "rejected"),
        ),
    ),
    summary="Merchants: the platform all, a city operator their cities', a merchant itself",
)
async def list_merchants(ctx: Ctx) -> list[Merchant]:
    status = ctx.query_str("status", choices=frozenset({"pending", "approved", "rejected"}))
    return await service.listing(ctx.stores, ctx.viewer, status)


@router.get(
    "/v1/merchants/{merchant_id}",
    perm="merchants.read",
    roles=SEES_MERCHANT,
    returns=Merchant,
    summary="One merchant (404 outside the caller's scope)",
)
async def get_merchant(ctx: Ctx) -> Merchant:
    return await service.visible(ctx.stores, ctx.viewer, ctx.path_int("merchant_id"))


@router.post(
    "/v1/merchants/{merchant_id}/review",
    errors={409: "the application is not pending", 422: "a rejection without a reason"},
    perm="merchants.review",
    roles=ADMIN,
    body=ReviewIn,
    returns=Merchant,
    summary="Approve (merchant role, a team) or reject with a reason; audited",
)
async def review(ctx: Ctx, body: ReviewIn) -> Merchant:
    return await service.review(
        ctx.stores,
        ctx.viewer,
        ctx.path_int("merchant_id"),
        approve=body.approve,
        reason=body.reason.strip(),
        token_ttl_s=ctx.policy.access_ttl_s,
        now=ctx.now,
    )


@router.get(
    "/v1/merchants/{merchant_id}/staff",
    perm="merchant.staff",
    roles=BACK_OFFICE,
    returns=list[Worker],
    summary="The merchant's workers",
)
async def list_staff(ctx: Ctx) -> list[Worker]:
    return await service.staff(ctx.stores, ctx.viewer, ctx.path_int("merchant_id"))


@router.post(
    "/v1/merchants/{merchant_id}/staff",
    errors={409: "the worker is on a team already, or the merchant is not approved"},
    perm="merchant.staff",
    roles=BACK_OFFICE,
    body=StaffIn,
    returns=Worker,
    status=201,
    summary="Put a platform worker of the merchant's city on its team",
)
async def add_staff(ctx: Ctx, body: StaffIn) -> Worker:
    return await service.add_staff(
        ctx.stores, ctx.viewer, ctx.path_int("merchant_id"), body.worker_id
    )


@router.delete(
    "/v1/merchants/{merchant_id}/staff/{worker_id}",
    perm="merchant.staff",
    roles=BACK_OFFICE,
    summary="Take a worker off the merchant's team",
)
async def remove_staff(ctx: Ctx) -> None:
    await service.remove_staff(
        ctx.stores, ctx.viewer, ctx.path_int("merchant_id"), ctx.path_int("worker_id")
    )


@router.get(
    "/v1/merchants/{merchant_id}/services",
    perm="merchant.services",
    roles=BACK_OFFICE,
    returns=list[MerchantService],
    summary="The services the merchant offers, its prices beside the catalog's",
)
async def list_services(ctx: Ctx) -> list[MerchantService]:
    return await service.services(ctx.stores, ctx.viewer, ctx.path_int("merchant_id"))


@router.put(
    "/v1/merchants/{merchant_id}/services/{service_code}",
    errors={
        409: "the merchant is not approved",
        422: "the price is outside the catalog's range",
    },
    perm="merchant.services",
    roles=BACK_OFFICE,
    body=ServiceIn,
    returns=MerchantService,
    summary="Offer a catalog service at the merchant's price (70%–150% of the catalog's)",
)
async def put_service(ctx: Ctx, body: ServiceIn) -> MerchantService:
    return await service.put_service(
        ctx.stores,
        ctx.viewer,
        ctx.path_int("merchant_id"),
        ctx.path_str("service_code"),
        price_minor=body.price_minor,
        active=body.active,
    )


@router.get(
    "/v1/merchants/{merchant_id}/orders",
    perm="merchant.orders",
    roles=BACK_OFFICE,
    returns=list[Order],
    query=(QueryParam("limit", int, "1–200 (default 50)", ge=1, le=200),),
    summary="The orders routed to the merchant, newest first",
)
async def list_orders(ctx: Ctx) -> list[Order]:
    return await service.orders(
        ctx.stores,
        ctx.viewer,
        ctx.path_int("merchant_id"),
        ctx.query_int("limit", 50, ge=1, le=200),
    )


@router.post(
    "/v1/merchants/{merchant_id}/orders/{order_id}/assign",
    errors={
        409: "the order's status does not allow this",
        422: "the worker cannot take this order (busy, lacks a skill)",
    },
    perm="merchant.dispatch",
    roles=BACK_OFFICE,
    body=DispatchIn,
    returns=Order,
    summary="Give a routed order to one of the merchant's own staff (audited as an override)",
)
async def assign(ctx: Ctx, body: DispatchIn) -> Order:
    merchant_id = ctx.path_int("merchant_id")
    order = await service.routed_order(
        ctx.stores, ctx.viewer, merchant_id, ctx.path_int("order_id")
    )
    await service.team_worker(ctx.stores, merchant_id, body.worker_id)
    done, _ = await overrides.assign(
        ctx.stores,
        ctx.request.app.state.tracking,
        order.id,
        body.worker_id,
        actor_id=ctx.user.user_id,
        reason=body.reason.strip() or f"merchant {merchant_id} dispatch",
        force=body.force,
        match=ctx.request.app.state.engine.match,
    )
    return done


@router.post(
    "/v1/merchants/{merchant_id}/orders/{order_id}/overflow",
    errors={409: "the order has a worker already, or is not waiting"},
    perm="merchant.dispatch",
    roles=BACK_OFFICE,
    returns=Order,
    summary="Hand a routed order back to the platform's workers (its staff cannot serve it)",
)
async def overflow(ctx: Ctx) -> Order:
    return await service.overflow(  # the engine's next tick offers it
        ctx.stores, ctx.viewer, ctx.path_int("merchant_id"), ctx.path_int("order_id")
    )


@router.put(
    "/v1/orders/{order_id}/merchant",
    errors={
        409: "the order has a worker already, or is not waiting",
        422: "no approved merchant of the order's city offering its service",
    },
    perm="orders.override",
    roles=STAFF,
    body=RouteIn,
    returns=Order,
    summary="Route a waiting order to a merchant of its city (its staff serve it)",
)
async def route(ctx: Ctx, body: RouteIn) -> Order:
    return await service.route(ctx.stores, ctx.viewer, ctx.path_int("order_id"), body.merchant_id)
