"""WebSocket endpoints: the order socket and the dispatcher's city feed (ASGI).

The worker's location socket is served outside ASGI (api/worker_socket.py); its route
here only refuses connections that reached ASGI because the server was started
without Doorstep's websocket protocol.

The protocol (messages, acks, limits, close codes) is documented in docs/protocol.md.
Authentication: ``Authorization: Bearer <access token>`` on the upgrade request, or
``?access_token=`` for clients that cannot set headers (browsers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from accounts.service import authenticate, check_current
from accounts.tokens import Claims
from api.routing import ANY_ROLE, scope_for
from catalog import store as catalog_store
from dispatch import share_links, watch
from dispatch import store as dispatch_store
from dispatch.share import ENDED, verify_share
from doorstep.errors import DoorstepError
from notifications import store as notifications_store
from permissions.rules import Scope
from tracking.jobs import SHARED_STATUSES
from tracking.live import RESYNC, Subscription
from tracking.protocol import (
    PONG,
    CloseCode,
    encode_error,
)
from tracking.service import Tracking
from tracking.session import FrameLimiter, LiveSocketParams


async def _refuse(
    ws: WebSocket, code: int, error: str, message: str, field: str | None = None
) -> None:
    await ws.send_text(encode_error(error, message, field).decode())
    await ws.close(code, message[:120])


FEED_ROLES = frozenset({"dispatcher", "admin"})
ORDER_ROLES = frozenset({"customer", "dispatcher", "admin"})
#: What each socket needs, as routes declare it: (path, roles, permission). The base
#: roles' permissions (GET /v1/me/permissions) include these.
DECLARED: tuple[tuple[str, frozenset[str], str], ...] = (
    ("/v1/ws/cities/{city_id}/feed", FEED_ROLES, "dispatch.console"),
    ("/v1/ws/orders/{order_id}", ORDER_ROLES, "orders.read"),
    ("/v1/ws/me", ANY_ROLE, "self"),
)


async def _authenticate(
    ws: WebSocket, roles: frozenset[str], perm: str = "self"
) -> tuple[Claims, Scope | None] | None:
    """The caller's claims and scope (api/routing.py's ``scope_for``), or None after
    refusing the socket with 4401/4403."""
    header = ws.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    token = token or ws.query_params.get("access_token", "")
    if not token:
        await _refuse(
            ws,
            CloseCode.UNAUTHENTICATED,
            "unauthenticated",
            "send 'Authorization: Bearer <token>' or ?access_token=",
            "authorization",
        )
        return None
    state = ws.app.state
    try:
        claims = await authenticate(state.stores, state.policy, token, now=int(time.time()))
    except DoorstepError as e:
        await _refuse(ws, CloseCode.UNAUTHENTICATED, e.code, e.message, "authorization")
        return None
    scope, allowed = scope_for(claims, roles, perm)
    if not allowed:
        await _refuse(
            ws,
            CloseCode.FORBIDDEN,
            "forbidden",
            f"needs the permission {perm!r} or one of the roles: {', '.join(sorted(roles))}",
        )
        return None
    return claims, scope


async def worker_socket(ws: WebSocket) -> None:
    """``/v1/ws/worker`` reached through ASGI: refused, since it is served natively.

    ``api.wsprotocol`` takes this path before ASGI when uvicorn runs with
    ``api.serving.uvicorn_options()`` (``doorstep serve`` does); a server started
    otherwise gets here and says so.
    """
    await ws.accept()
    await _refuse(
        ws,
        CloseCode.INTERNAL_ERROR,
        "misconfigured",
        "the worker socket needs Doorstep's websocket protocol: run the server with "
        "'doorstep serve' (uvicorn option ws='api.wsprotocol:WebSocketProtocol')",
    )


async def city_feed(ws: WebSocket) -> None:
    """``/v1/ws/cities/{city_id}/feed``: every worker's position (≤ 1 Hz), state, stale alerts."""
    await ws.accept()
    found = await _authenticate(ws, FEED_ROLES, "dispatch.console")
    if found is None:
        return
    claims, scope = found
    tracking: Tracking = ws.app.state.tracking
    city_id = ws.path_params["city_id"]
    if (scope is not None and not scope.has_city(city_id)) or await catalog_store.city(
        tracking.stores.pool, city_id
    ) is None:
        await _refuse(ws, CloseCode.NOT_FOUND, "not_found", f"no city {city_id!r}", "city_id")
        return
    sub = await tracking.hub.subscribe(tracking.keys.feed(city_id))
    forget = tracking.watch_user(claims.user_id, partial(_frozen, ws))
    try:
        if not await _still_signed_in(ws, claims):
            return
        sla_s = ws.app.state.engine.match.instant_sla_s
        snapshot = await watch.feed_snapshot(tracking, city_id, sla_s)
        await ws.send_text(orjson.dumps(snapshot).decode())

        async def forward(message: bytes) -> bool:
            if message == RESYNC:  # the hub was away: the present, as on connect
                snapshot = await watch.feed_snapshot(tracking, city_id, sla_s)
                await ws.send_text(orjson.dumps(snapshot).decode())
                return True
            await ws.send_text(message.decode())
            return True

        await _pump(ws, sub, forward)
    finally:
        forget()
        await sub.close()


async def me_socket(ws: WebSocket) -> None:
    """``/v1/ws/me``: the signed-in user's own live messages (any role): first
    ``{"type": "inbox", "unread": n}``, then each new inbox item as
    ``{"type": "notification", "notification": {…}}`` (docs/notifications.md)."""
    await ws.accept()
    found = await _authenticate(ws, ANY_ROLE)
    if found is None:
        return
    claims = found[0]
    tracking: Tracking = ws.app.state.tracking
    sub = await tracking.hub.subscribe(tracking.keys.user_channel(claims.user_id))
    forget = tracking.watch_user(claims.user_id, partial(_frozen, ws))
    try:
        if not await _still_signed_in(ws, claims):
            return
        unread = await notifications_store.unread(tracking.stores.pool, claims.user_id)
        await ws.send_text(orjson.dumps({"type": "inbox", "unread": unread}).decode())

        async def forward(message: bytes) -> bool:
            if message == RESYNC:  # items pushed while the hub was away: a fresh count
                unread = await notifications_store.unread(tracking.stores.pool, claims.user_id)
                await ws.send_text(orjson.dumps({"type": "inbox", "unread": unread}).decode())
                return True
            await ws.send_text(message.decode())
            return True

        await _pump(ws, sub, forward)
    finally:
        forget()
        await sub.close()


def _nothing() -> None:
    pass


async def _still_signed_in(ws: WebSocket, claims: Claims) -> bool:
    """Check the token once more now that the socket is registered for revocations (a
    freeze published while it was opening found nothing to close); refuse it if not."""
    try:
        await check_current(ws.app.state.stores, claims)
    except DoorstepError as e:
        await _refuse(ws, CloseCode.UNAUTHENTICATED, e.code, e.message, "authorization")
        return False
    return True


async def _share_ended(
    ws: WebSocket, message: str = "the customer's account is not active"
) -> None:
    """Close a socket opened through a share link that no longer holds."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await _refuse(ws, CloseCode.UNAUTHENTICATED, "share_ended", message, "share")


async def _frozen(ws: WebSocket) -> None:
    """Close a signed-in user's socket: their account was frozen or closed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await _refuse(
            ws, CloseCode.UNAUTHENTICATED, "account_frozen", "this account was frozen or closed"
        )


async def order_socket(ws: WebSocket) -> None:
    """``/v1/ws/orders/{order_id}``: one order's status, worker position and ETA, live.

    Open to the order's customer and staff (access token), or to anyone holding a share
    token for this order (``?share=``) until it expires.
    """
    await ws.accept()
    tracking: Tracking = ws.app.state.tracking
    raw_id = ws.path_params["order_id"]
    if not (raw_id.isascii() and raw_id.isdigit()) or not 1 <= int(raw_id) < 2**63:
        await _refuse(
            ws,
            CloseCode.NOT_FOUND,
            "invalid_field",
            "must be a positive 64-bit integer",
            "order_id",
        )
        return
    order_id = int(raw_id)
    share = ws.query_params.get("share")
    expires_at: int | None = None
    viewer = "share"
    claims: Claims | None = None
    if share:
        pool = tracking.stores.pool
        try:
            expires_at = verify_share(
                share,
                order_id=order_id,
                now=int(time.time()),
                key=ws.app.state.policy.key,
                revoked_iat=await share_links.revoked_iat(pool, order_id),
            )
        except DoorstepError as e:
            await _refuse(ws, CloseCode.UNAUTHENTICATED, e.code, e.message, "share")
            return
        order = await dispatch_store.get(pool, order_id)
        ended = await share_links.why_not(pool, order) if order is not None else None
        if ended is not None:
            await _refuse(ws, CloseCode.UNAUTHENTICATED, "share_ended", ended, "share")
            return
    else:
        found = await _authenticate(ws, ORDER_ROLES, "orders.read")
        if found is None:
            return
        claims, scope = found
        viewer = "staff" if scope is not None else "customer"
        order = await dispatch_store.get(tracking.stores.pool, order_id)
        if order is not None and viewer == "customer" and order.customer_id != claims.user_id:
            order = None
        if order is not None and scope is not None and not scope.has_city(order.city_id):
            order = None
    if order is None:
        await _refuse(
            ws, CloseCode.NOT_FOUND, "order_not_found", f"no order {order_id}", "order_id"
        )
        return
    sub = await tracking.hub.subscribe(tracking.keys.order_channel(order.city_id, order.id))
    forget = _nothing
    if claims is not None:
        forget = tracking.watch_user(claims.user_id, partial(_frozen, ws))
    else:  # a link ends when its customer is frozen
        forget = tracking.watch_user(order.customer_id, partial(_share_ended, ws))
    try:
        if claims is not None and not await _still_signed_in(ws, claims):
            return
        # Subscribed first, read again after: no change can fall between snapshot and updates.
        order = await dispatch_store.get(tracking.stores.pool, order_id) or order
        snapshot = await watch.order_snapshot(
            tracking, order, show_code=viewer != "share", exact_home=viewer != "share"
        )
        status = snapshot["order"]["status"]
        holder = order.worker_id
        version = order.version
        await ws.send_text(orjson.dumps(snapshot).decode())

        async def forward(message: bytes) -> bool:
            nonlocal status, holder, version
            if expires_at is not None and time.time() >= expires_at:
                await _refuse(
                    ws,
                    CloseCode.UNAUTHENTICATED,
                    "invalid_share_token",
                    "this share link has expired",
                )
                return False
            if message == RESYNC:  # a status pushed while the hub was away is re-read
                fresh = await _status_since(tracking, order_id, version)
                if fresh is None:
                    return True
                message = orjson.dumps(fresh)
            update = orjson.loads(message)
            if update.get("type") == "share_revoked":
                if viewer != "share":
                    return True
                await _share_ended(ws, "the customer revoked this share link")
                return False
            if update.get("type") == "status":
                # Status pushes come from the order's events, at least once and possibly
                # after the snapshot already showed them: only newer versions go out.
                if int(update.get("version", 0)) <= version:
                    return True
                status, holder = update["status"], update.get("worker_id")
                version = int(update["version"])
            elif update.get("type") == "position" and (
                status not in SHARED_STATUSES or update.get("worker_id") != holder
            ):
                return True  # privacy: only the job's current worker, assignment → completion
            elif update.get("type") == "chained" and (
                status != "assigned" or update.get("worker_id") != holder
            ):
                return True  # the worker left the job before, or another holds this one
            await ws.send_text(message.decode())
            if viewer == "share" and status in ENDED:
                await _share_ended(ws, f"the job is over ({status}); share links end with it")
                return False
            return True

        await _pump(ws, sub, forward)
    finally:
        forget()
        await sub.close()


async def _status_since(tracking: Tracking, order_id: int, version: int) -> dict[str, Any] | None:
    """The order's ``status`` message (docs/protocol.md) if it changed after ``version``."""
    pool = tracking.stores.pool
    order = await dispatch_store.get(pool, order_id)
    if order is None or order.version <= version:
        return None
    last = await dispatch_store.last_event(pool, order_id)
    return {
        "type": "status",
        "order_id": order.id,
        "status": order.status,
        "previous": last.from_status if last is not None else None,
        "action": last.action if last is not None else "",
        "version": order.version,
        "worker_id": order.worker_id,
        "crew": list(order.crew),
        "at": (last.at if last is not None else order.updated_at).isoformat(),
    }


async def _pump(
    ws: WebSocket, sub: Subscription, forward: Callable[[bytes], Awaitable[bool]]
) -> None:
    """Forward the subscription's messages until the client leaves or ``forward`` says stop.

    One task reads the client's side (pings, and the disconnect) and ends the
    subscription when it leaves; this loop just awaits the next message, with no task
    or ``asyncio.wait`` per message.
    """
    closed = asyncio.create_task(_until_disconnect(ws))
    closed.add_done_callback(lambda _: sub.end())
    try:
        while (message := await sub.get()) is not None:
            if not await forward(message):
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        closed.cancel()


async def _until_disconnect(ws: WebSocket) -> None:
    """Read the client's side until it leaves: ``{"type": "ping"}`` is answered with a pong
    (browsers cannot send websocket pings, and a page must notice a dead connection);
    anything else with an error frame.

    The client's messages are rate limited like the worker socket's (``[live_socket]``):
    over the rate, a message is dropped with one ``rate_limited`` error until one is taken
    again; refusing more than the rate allows within ``flood_close_after_s`` closes with
    1008. (The message size is bounded below ASGI: api/wsprotocol.py.)
    """
    limits: LiveSocketParams = ws.app.state.live_limits
    limiter = FrameLimiter(limits.frames_per_s, limits.burst_frames, limits.flood_close_after_s)
    warned = False
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            verdict = limiter.admit(time.monotonic())
            if verdict == "close":
                await _refuse(
                    ws,
                    CloseCode.POLICY_VIOLATION,
                    "flood",
                    "rate limit exceeded for too long; reconnect later",
                )
                return
            if verdict == "throttle":
                if not warned:
                    warned = True
                    await ws.send_text(
                        encode_error(
                            "rate_limited",
                            f"more than {limits.frames_per_s:g} messages/s; "
                            "messages are dropped unread, and sending on closes the socket",
                        ).decode()
                    )
                continue
            warned = False
            text = message.get("text")
            if text is None:
                await ws.send_text(encode_error("binary_frame", "send JSON text frames").decode())
                continue
            try:
                kind = orjson.loads(text).get("type")
            except (orjson.JSONDecodeError, AttributeError):
                await ws.send_text(encode_error("invalid_frame", "not a JSON object").decode())
                continue
            if kind == "ping":
                await ws.send_text(PONG.decode())
            else:
                await ws.send_text(
                    encode_error(
                        "unknown_type", 'this socket takes only {"type": "ping"}', "type"
                    ).decode()
                )


ROUTES = [
    WebSocketRoute("/v1/ws/orders/{order_id}", order_socket, name="order_socket"),
    WebSocketRoute("/v1/ws/worker", worker_socket, name="worker_socket"),
    WebSocketRoute("/v1/ws/cities/{city_id}/feed", city_feed, name="city_feed"),
    WebSocketRoute("/v1/ws/me", me_socket, name="me_socket"),
]
