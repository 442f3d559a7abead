"""The inbox, notification settings, SMS login, the SMS gateway's receipts, and the
admin's view of SMS (docs/notifications.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from accounts import sms_login
from accounts.models import Registration, TokenPair
from api.bodies import Input
from api.errors import BodyTooLarge
from api.routing import ANY_ROLE, PUBLIC, Ctx, QueryParam, Router
from notifications import rules
from notifications import store as notifications_store
from notifications.models import (
    Inbox,
    Notification,
    NotificationSettings,
    QuietHoursOut,
    SmsMessage,
    Unread,
)
from notifications.service import Notifier

router = Router("notifications")

Phone = Annotated[str, msgspec.Meta(min_length=11, max_length=20, examples=["13800138000"])]
HHMM = Annotated[str, msgspec.Meta(min_length=4, max_length=5, examples=["22:00"])]


class SmsCodeIn(Input):
    """The phone to send a login code to."""

    phone: Phone


class SmsLoginIn(Input):
    """The phone and the code it received."""

    phone: Phone
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=12, examples=["123456"])]


class QuietHoursIn(Input):
    """Local times ``HH:MM``; they may wrap midnight (22:00 to 08:00)."""

    start: HHMM
    end: HHMM


class SettingsIn(Input):
    """A user's notification settings; fields left out keep their value."""

    language: Literal["zh", "en"] | None = None
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    quiet_hours: QuietHoursIn | msgspec.UnsetType | None = msgspec.UNSET
    sms: dict[str, bool] | None = None


def _notifier(ctx: Ctx) -> Notifier:
    notifier: Notifier = ctx.request.app.state.notifier
    return notifier


def _signing_key(ctx: Ctx) -> str:
    return ctx.policy.key


@router.get(
    "/v1/me/inbox",
    perm="self",
    roles=ANY_ROLE,
    returns=Inbox,
    query=(
        QueryParam("before_id", int, "keyset cursor: the last id of the previous page"),
        QueryParam("limit", int, "page size, 1–100 (default 20)"),
        QueryParam("unread", int, "1: only unread items"),
    ),
    summary="The caller's inbox, newest first, with the unread count",
)
async def inbox(ctx: Ctx) -> Inbox:
    user_id = ctx.user.user_id
    pool = ctx.stores.pool
    items = await notifications_store.inbox(
        pool,
        user_id,
        before_id=ctx.query_int("before_id", 2**62, ge=1, le=2**62),
        limit=ctx.query_int("limit", 20, ge=1, le=100),
        unread_only=bool(ctx.query_int("unread", 0, ge=0, le=1)),
    )
    return Inbox(items=items, unread=await notifications_store.unread(pool, user_id))


@router.get(
    "/v1/me/inbox/unread",
    perm="self",
    roles=ANY_ROLE,
    returns=Unread,
    summary="How many items are unread",
)
async def unread(ctx: Ctx) -> Unread:
    return Unread(unread=await notifications_store.unread(ctx.stores.pool, ctx.user.user_id))


@router.post(
    "/v1/me/inbox/{notification_id}/read",
    perm="self",
    roles=ANY_ROLE,
    returns=Notification,
    summary="Mark one inbox item read",
)
async def read_one(ctx: Ctx) -> Notification:
    return await _notifier(ctx).read(
        ctx.user.user_id, ctx.path_int("notification_id"), now=datetime.fromtimestamp(ctx.now, UTC)
    )


@router.post(
    "/v1/me/inbox/read-all",
    perm="self",
    roles=ANY_ROLE,
    returns=Unread,
    summary="Mark every item read",
)
async def read_all(ctx: Ctx) -> Unread:
    await notifications_store.mark_all_read(
        ctx.stores.pool, ctx.user.user_id, datetime.fromtimestamp(ctx.now, UTC)
    )
    return Unread(unread=0)


async def _settings_of(ctx: Ctx) -> NotificationSettings:
    who = await notifications_store.recipient(ctx.stores.pool, ctx.user.user_id)
    assert who is not None
    return NotificationSettings(
        language=who.language,
        timezone=who.timezone,
        quiet_hours=QuietHoursOut(
            rules.format_hhmm(who.quiet.start_min), rules.format_hhmm(who.quiet.end_min)
        )
        if who.quiet
        else None,
        sms={name: who.sms.get(name, default) for name, default in rules.CATEGORIES.items()},
    )


@router.get(
    "/v1/me/notification-settings",
    perm="self",
    roles=ANY_ROLE,
    returns=NotificationSettings,
    summary="The caller's language, time zone, quiet hours and SMS choices",
)
async def get_settings(ctx: Ctx) -> NotificationSettings:
    return await _settings_of(ctx)


@router.put(
    "/v1/me/notification-settings",
    perm="self",
    roles=ANY_ROLE,
    body=SettingsIn,
    returns=NotificationSettings,
    summary="Change the caller's notification settings (fields left out stay)",
)
async def put_settings(ctx: Ctx, body: SettingsIn) -> NotificationSettings:
    who = await notifications_store.recipient(ctx.stores.pool, ctx.user.user_id)
    assert who is not None
    timezone = body.timezone if body.timezone is not None else who.timezone
    rules.zone(timezone, "timezone")
    quiet = who.quiet
    if body.quiet_hours is None:
        quiet = None
    elif isinstance(body.quiet_hours, QuietHoursIn):
        quiet = rules.QuietHours(
            rules.parse_hhmm(body.quiet_hours.start, "quiet_hours.start"),
            rules.parse_hhmm(body.quiet_hours.end, "quiet_hours.end"),
        )
    sms = {**who.sms, **rules.check_choices(body.sms or {})}
    await notifications_store.save_settings(
        ctx.stores.pool,
        ctx.user.user_id,
        language=body.language or who.language,
        timezone=timezone,
        quiet=quiet,
        sms=sms,
    )
    return await _settings_of(ctx)


@router.post(
    "/v1/auth/sms-code",
    roles=PUBLIC,
    body=SmsCodeIn,
    returns=Registration,
    status=202,
    errors={429: "more codes asked for this phone or network than the limits allow"},
    summary="Send a one-time login code to a phone by SMS (the answer does not say whether "
    "the phone has an account); 429 when asked too often",
)
async def sms_code(ctx: Ctx, body: SmsCodeIn) -> Registration:
    phone = await sms_login.request_code(
        ctx.stores,
        _notifier(ctx),
        phone=body.phone,
        signing_key=_signing_key(ctx),
        now=ctx.now,
        client=ctx.client,
    )
    return Registration(
        phone=phone,
        status="accepted",
        message="if this phone has an account, a code is on its way; it is valid for 5 minutes",
    )


@router.post(
    "/v1/auth/sms-login",
    roles=PUBLIC,
    body=SmsLoginIn,
    returns=TokenPair,
    errors={
        409: "the code was used already",
        422: "the code is wrong, expired or was never sent",
        429: "too many wrong codes: ask for a new one",
    },
    summary="Log in with the code sent by SMS (once, within 5 minutes)",
)
async def sms_login_route(ctx: Ctx, body: SmsLoginIn) -> TokenPair:
    return await sms_login.login_with_code(
        ctx.stores,
        ctx.policy,
        phone=body.phone,
        code=body.code,
        signing_key=_signing_key(ctx),
        now=ctx.now,
    )


class ReceiptsOut(msgspec.Struct, frozen=True):
    """How many receipts were ours (the gateway stops retrying on 200)."""

    Code: str
    accepted: int


@router.post(
    "/v1/sms/receipts",
    roles=PUBLIC,
    returns=ReceiptsOut,
    summary="Delivery receipts from the SMS gateway (signed: X-Sms-Timestamp, X-Sms-Signature)",
)
async def receipts(ctx: Ctx) -> ReceiptsOut:
    request = ctx.request
    body = await request.body()
    if len(body) > ctx.settings.max_body_bytes:
        raise BodyTooLarge(f"body is larger than {ctx.settings.max_body_bytes} bytes")
    found = await _notifier(ctx).receipts(
        body,
        timestamp=request.headers.get("x-sms-timestamp", ""),
        signature=request.headers.get("x-sms-signature", ""),
        now=ctx.now,
    )
    return ReceiptsOut(Code="OK", accepted=found)


@router.get(
    "/v1/admin/sms",
    perm="sms.read",
    roles=frozenset({"admin"}),
    returns=list[SmsMessage],
    query=(
        QueryParam("phone", str, "only to this phone"),
        QueryParam("limit", int, "1–500 (default 50)"),
    ),
    summary="SMS messages sent or waiting, newest first (admin)",
)
async def admin_sms(ctx: Ctx) -> list[SmsMessage]:
    return await notifications_store.sms_messages(
        ctx.stores.pool,
        phone=ctx.query_str("phone"),
        limit=ctx.query_int("limit", 50, ge=1, le=500),
    )
