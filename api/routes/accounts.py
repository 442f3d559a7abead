"""Registration, login, tokens, the caller's profile and addresses; admin user management."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from accounts import service, store
from accounts.errors import UnknownUser
from accounts.models import Address, Registration, TokenPair, User
from accounts.rules import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    PHONE_PATTERN,
    ROLES,
    check_name,
    normalize_phone,
)
from api.bodies import Input
from api.routing import ANY_ROLE, PUBLIC, STAFF, Ctx, QueryParam, Router
from catalog import areas as city_areas
from catalog.errors import OutsideServiceArea
from doorstep.errors import NotFound
from doorstep.text import check_visible_text
from geo.coords import to_wgs84, validate_lat_lng

router = Router("accounts")

Phone = Annotated[
    str,
    msgspec.Meta(
        min_length=11,
        max_length=20,
        examples=["13800138000"],
        extra_json_schema={"pattern": PHONE_PATTERN},  # checked by accounts.rules
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# A new password's length is checked by accounts.rules.check_password (with its message).
NewPassword = Annotated[
    str,
    msgspec.Meta(extra_json_schema={"minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD}),
]
PASSWORD_RULES = (
    "a field breaks a rule; `field` names it. A password must also not be whitespace "
    "only, one character repeated, digits only, a common password or contain the phone"
)
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=200)]


class RegisterIn(Input):
    """A customer signs up with their phone."""

    phone: Phone
    password: NewPassword
    name: Name


class LoginIn(Input):
    """Phone and password."""

    phone: Phone
    password: Password


class RefreshIn(Input):
    """A refresh token to rotate."""

    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class LogoutIn(Input):
    """Optionally the refresh token of this login, to revoke it too."""

    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None


class CreateUserIn(Input):
    """An admin creates staff, workers, merchants or customers."""

    phone: Phone
    password: NewPassword
    name: Name
    roles: Annotated[list[str], msgspec.Meta(min_length=1, max_length=5)]


class StatusIn(Input):
    """Freeze, unfreeze or close an account."""

    status: Literal["active", "frozen", "closed"]


class AddressIn(Input):
    """A saved address; ``crs: "gcj02"`` for coordinates from AMap/Tencent/WeChat SDKs."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    lat: float
    lng: float
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    detail: Text = ""
    contact_name: Annotated[str, msgspec.Meta(max_length=64)] = ""
    contact_phone: Annotated[str, msgspec.Meta(max_length=20)] = ""


@router.post(
    "/v1/auth/register",
    roles=PUBLIC,
    body=RegisterIn,
    returns=Registration,
    status=202,
    errors={
        422: PASSWORD_RULES,
        429: "too many registrations from this network; Retry-After says when to try again",
    },
    summary="Register a customer account by phone; then log in (the answer does not say "
    "whether the phone already had an account)",
)
async def register(ctx: Ctx, body: RegisterIn) -> Registration:
    phone = await service.register(
        ctx.stores,
        phone=body.phone,
        name=body.name,
        password=body.password,
        now=ctx.now,
        client=ctx.client,
    )
    return Registration(
        phone=phone,
        status="accepted",
        message="if this phone had no account, it has one now: log in with it",
    )


@router.post(
    "/v1/auth/login",
    roles=PUBLIC,
    body=LoginIn,
    returns=TokenPair,
    errors={
        401: "wrong phone or password, or the account is frozen or closed",
        429: "too many tries for this phone or from this network; Retry-After says when",
    },
    summary="Log in with phone and password; returns access and refresh tokens",
)
async def login(ctx: Ctx, body: LoginIn) -> TokenPair:
    return await service.login(
        ctx.stores,
        ctx.policy,
        phone=body.phone,
        password=body.password,
        now=ctx.now,
        client=ctx.client,
    )


@router.post(
    "/v1/auth/refresh",
    roles=PUBLIC,
    body=RefreshIn,
    returns=TokenPair,
    errors={
        401: "the refresh token is invalid, expired, used already or revoked, or the "
        "account is no longer active"
    },
    summary="Rotate a refresh token for a new token pair",
)
async def refresh(ctx: Ctx, body: RefreshIn) -> TokenPair:
    return await service.refresh(
        ctx.stores, ctx.policy, refresh_token=body.refresh_token, now=ctx.now
    )


@router.post(
    "/v1/auth/logout",
    perm="self",
    roles=ANY_ROLE,
    body=LogoutIn,
    summary="Revoke this access token, and the login's refresh tokens if given",
)
async def logout(ctx: Ctx, body: LogoutIn) -> None:
    await service.logout(
        ctx.stores, ctx.policy, access=ctx.user, refresh_token=body.refresh_token, now=ctx.now
    )


@router.get("/v1/me", perm="self", roles=ANY_ROLE, returns=User, summary="The caller's account")
async def me(ctx: Ctx) -> User:
    return await service.get_user(ctx.stores, ctx.user.user_id)


@router.post(
    "/v1/users",
    perm="users.create",
    roles=frozenset({"admin"}),
    body=CreateUserIn,
    returns=User,
    status=201,
    errors={409: "the phone already has an account", 422: PASSWORD_RULES},
    summary="Create an account with any roles (admin)",
)
async def create_user(ctx: Ctx, body: CreateUserIn) -> User:
    return await service.create_user(
        ctx.stores, phone=body.phone, name=body.name, password=body.password, roles=body.roles
    )


@router.get(
    "/v1/users",
    perm="users.read",
    roles=STAFF,
    returns=list[User],
    query=(
        QueryParam("role", str, "only users holding this role", choices=tuple(sorted(ROLES))),
        QueryParam(
            "after_id", int, "keyset cursor: the last id of the previous page", ge=0, le=2**62
        ),
        QueryParam("limit", int, "page size, 1–500 (default 100)", ge=1, le=500),
    ),
    summary="List accounts (dispatchers and admins)",
)
async def list_users(ctx: Ctx) -> list[User]:
    return await store.list_users(
        ctx.stores.pool,
        role=ctx.query_str("role", choices=ROLES),
        after_id=ctx.query_int("after_id", 0, ge=0, le=2**62),
        limit=ctx.query_int("limit", 100, ge=1, le=500),
    )


@router.get(
    "/v1/users/{user_id}",
    perm="users.read",
    roles=ANY_ROLE,
    returns=User,
    summary="One account: staff see any, others only themselves",
)
async def get_user(ctx: Ctx) -> User:
    user_id = ctx.path_int("user_id")
    if user_id != ctx.user.user_id and not ctx.staff:
        raise UnknownUser(f"no user {user_id}")
    return await service.get_user(ctx.stores, user_id)


@router.put(
    "/v1/users/{user_id}/status",
    perm="users.freeze",
    roles=frozenset({"admin"}),
    body=StatusIn,
    returns=User,
    errors={409: "the account is the caller's own (`own_status`)"},
    summary="Freeze, unfreeze or close an account (admin)",
)
async def set_status(ctx: Ctx, body: StatusIn) -> User:
    return await service.set_status(
        ctx.stores,
        ctx.policy,
        ctx.path_int("user_id"),
        body.status,
        now=ctx.now,
        by=ctx.user.user_id,
    )


@router.get(
    "/v1/me/addresses",
    perm="addresses.own",
    roles=frozenset({"customer"}),
    returns=list[Address],
    summary="The customer's saved addresses",
)
async def my_addresses(ctx: Ctx) -> list[Address]:
    return await store.addresses_of(ctx.stores.pool, ctx.user.user_id)


@router.post(
    "/v1/me/addresses",
    perm="addresses.own",
    roles=frozenset({"customer"}),
    body=AddressIn,
    returns=Address,
    status=201,
    summary="Save an address (WGS-84, or GCJ-02 with crs=gcj02)",
)
async def add_address(ctx: Ctx, body: AddressIn) -> Address:
    label = check_visible_text(body.label, "label", max_length=32)
    detail = check_visible_text(body.detail, "detail", max_length=200, required=False)
    contact_name = check_name(body.contact_name, "contact_name", required=False)
    validate_lat_lng(body.lat, body.lng)
    lat, lng = to_wgs84(body.lat, body.lng, body.crs)
    contact_phone = (
        normalize_phone(body.contact_phone, "contact_phone") if body.contact_phone else ""
    )
    city = await city_areas.city_at(ctx.stores.pool, lat, lng)
    if city is None:  # refused now, not only when booking
        raise OutsideServiceArea(
            "this address is outside every city's service area; nothing can be booked there",
            field="lat",
        )
    return await store.insert_address(
        ctx.stores.pool,
        user_id=ctx.user.user_id,
        label=label,
        lat=lat,
        lng=lng,
        source_crs=body.crs,
        detail=detail,
        contact_name=contact_name,
        contact_phone=contact_phone,
        city_id=city,
    )


@router.get(
    "/v1/addresses/{address_id}",
    perm="addresses.read",
    roles=frozenset({"customer", "dispatcher", "admin"}),
    returns=Address,
    summary="One address: its owner or staff",
)
async def get_address(ctx: Ctx) -> Address:
    address_id = ctx.path_int("address_id")
    address = await store.address_by_id(ctx.stores.pool, address_id)
    if address is None or (address.user_id != ctx.user.user_id and not ctx.staff):
        raise NotFound(f"no address {address_id}", field="address_id")
    return address


@router.delete(
    "/v1/me/addresses/{address_id}",
    perm="addresses.own",
    roles=frozenset({"customer"}),
    summary="Delete one of the customer's addresses",
)
async def delete_address(ctx: Ctx) -> None:
    address_id = ctx.path_int("address_id")
    if not await store.delete_address(ctx.stores.pool, address_id, ctx.user.user_id):
        raise NotFound(f"no address {address_id}", field="address_id")
