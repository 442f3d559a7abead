"""A person's rights under PIPL (个人信息保护法): export their data, ask for deletion.

Deletion is in two steps. Asking (:func:`request_deletion`) freezes the account at once
— every token revoked, as an admin's freeze does — and answers with a cancel code.
After the cooling-off (:data:`privacy.rules.COOLING_OFF`) the ``privacy.anonymise`` job
(:func:`anonymise_due`) blanks or removes the personal data and closes the account;
orders, payments, refunds and ledger entries stay for the law and the accounts, with
their personal fields emptied. Until then the cancel code (:func:`cancel_deletion`)
gives the account back. Each step is audited (``audit/``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accounts import revocations
from accounts import store as accounts_store
from accounts.service import TokenPolicy
from audit import store as audit_store
from doorstep.errors import Conflict, NotFound
from doorstep.stores import Stores
from privacy import crypto, pipl_store, rules
from privacy.pipl_store import DeletionRequest

log = logging.getLogger("doorstep.privacy")

EXPORT_FORMAT = "doorstep-export/1"


class DeletionRefused(Conflict):
    """The account may not ask for its deletion now; subclasses say why."""


class AccountNotActive(DeletionRefused):
    """Only an active account asks for its deletion."""

    code = "account_not_active"


class StaffAccount(DeletionRefused):
    """Staff and merchant accounts are closed by an admin."""

    code = "staff_account"


class OrdersOpen(DeletionRefused):
    """Orders not over yet."""

    code = "orders_open"


_REFUSALS: dict[str, tuple[type[DeletionRefused], str]] = {
    "account_not_active": (AccountNotActive, "the account is not active"),
    "staff_account": (
        StaffAccount,
        "an account with staff or merchant roles is closed by an admin, not by its owner",
    ),
    "orders_open": (
        OrdersOpen,
        "orders not over yet: wait for them to finish or cancel them first",
    ),
}


class DeletionPending(Conflict):
    """A deletion of this account is pending already."""

    code = "deletion_pending"


class DeletionNotFound(NotFound):
    """No pending deletion has this cancel code."""

    code = "deletion_not_found"


@dataclass(frozen=True, slots=True)
class DeletionAccepted:
    """What asking for deletion answers: when it happens, and the code that cancels it
    (shown once: only its hash is kept)."""

    request_id: int
    status: str
    requested_at: datetime
    due_at: datetime
    cancel_code: str


@dataclass(frozen=True, slots=True)
class DeletionCancelled:
    """What cancelling answers."""

    request_id: int
    status: str
    user_id: int


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _at(now: int) -> datetime:
    return datetime.fromtimestamp(now, UTC)


async def export(stores: Stores, user_id: int, *, now: int) -> dict[str, Any]:
    """Everything kept about the user, as one JSON document (audited)."""
    user = await accounts_store.user_by_id(stores.pool, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    async with stores.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rows = await pipl_store.export_rows(conn, user_id)
        addresses = await accounts_store.addresses_of(conn, user_id)
    async with stores.pool.acquire() as conn, conn.transaction():
        await audit_store.append(
            conn, actor_id=user_id, action="privacy.export", subject=f"user:{user_id}"
        )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _at(now).isoformat(),
        "account": {
            "id": user.id,
            "phone": user.phone,
            "name": user.name,
            "roles": list(user.roles),
            "status": user.status,
            "created_at": user.created_at.isoformat(),
        },
        "addresses": [
            {
                "id": a.id,
                "label": a.label,
                "lat": a.lat,
                "lng": a.lng,
                "detail": a.detail,
                "contact_name": a.contact_name,
                "contact_phone": a.contact_phone,
                "city_id": a.city_id,
                "created_at": a.created_at.isoformat(),
            }
            for a in addresses
        ],
        **rows,
    }


async def request_deletion(
    stores: Stores, policy: TokenPolicy, user_id: int, *, now: int
) -> DeletionAccepted:
    """Freeze the account and revoke its tokens now; anonymise it after the cooling-off."""
    at = _at(now)
    code = secrets.token_urlsafe(18)
    ttl_s = policy.access_ttl_s
    async with stores.pool.acquire() as conn, conn.transaction():
        # FOR UPDATE, not NO KEY (docs/architecture.md "Row locks"): it must conflict with
        # the FOR KEY SHARE a new row referencing the user takes (an order's customer_id),
        # so an order being booked now is waited for and then seen by open_orders below.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
        user = await accounts_store.user_by_id(conn, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        open_orders = await pipl_store.open_orders(conn, user_id)
        refused = rules.deletion_refused(user.roles, user.status, open_orders)
        if refused is not None:
            cls, message = _REFUSALS[refused]
            if refused == "orders_open":
                message += f" (orders {', '.join(map(str, open_orders))})"
            raise cls(message)
        request = await pipl_store.insert_request(
            conn, user_id=user_id, cancel_hash=_hash(code), now=at, due_at=rules.deletion_due(at)
        )
        if request is None:
            raise DeletionPending("a deletion of this account is pending already")
        await accounts_store.set_user_status(conn, user_id, "frozen")
        await accounts_store.revoke_user(conn, user_id, at)
        await audit_store.append(
            conn,
            actor_id=user_id,
            action="privacy.deletion_requested",
            subject=f"user:{user_id}",
            detail={"request_id": request.id, "due_at": request.due_at.isoformat()},
            at=at,
        )
        version = await revocations.bump_version(conn, stores, user_id, now=now, ttl_s=ttl_s)
    await revocations.after_bump(stores, user_id, version, now=now, ttl_s=ttl_s)
    try:  # open sockets close now (they are checked on open too)
        await stores.redis.publish(stores.keys.revocations(), str(user_id))
    except revocations.REDIS_ERRORS as e:
        log.warning("deletion of user %s not published to open sockets: %s", user_id, e)
    return DeletionAccepted(request.id, request.status, request.requested_at, request.due_at, code)


async def cancel_deletion(stores: Stores, code: str, *, now: int) -> DeletionCancelled:
    """Cancel a pending deletion by its code: the account is active again (its old tokens
    stay void; the owner logs in anew)."""
    at = _at(now)
    async with stores.pool.acquire() as conn, conn.transaction():
        request = await pipl_store.pending_by_code(conn, _hash(code))
        if request is None:
            raise DeletionNotFound("no pending deletion has this code", field="code")
        await pipl_store.set_request(conn, request.id, "cancelled", at)
        await conn.execute(
            "UPDATE users SET status = 'active', updated_at = now() "
            "WHERE id = $1 AND status = 'frozen'",
            request.user_id,
        )
        await audit_store.append(
            conn,
            actor_id=request.user_id,
            action="privacy.deletion_cancelled",
            subject=f"user:{request.user_id}",
            detail={"request_id": request.id},
            at=at,
        )
    return DeletionCancelled(request.id, "cancelled", request.user_id)


async def anonymise_due(stores: Stores, *, now: datetime, limit: int = 20) -> list[int]:
    """Carry out the deletions past their cooling-off; the users anonymised."""
    done: list[int] = []
    while True:
        async with stores.pool.acquire() as conn, conn.transaction():
            batch = await pipl_store.due(conn, now, 1)
            if not batch:
                return done
            request: DeletionRequest = batch[0]
            phone = await pipl_store.account_phone(conn, request.user_id)
            key = crypto.blind("phone", phone).hex() if phone else ""
            counts = await pipl_store.anonymise(
                conn, request.user_id, phone_key=key, name=rules.DELETED_NAME
            )
            await pipl_store.set_request(conn, request.id, "done", now)
            await audit_store.append(
                conn,
                actor_id=None,
                action="privacy.anonymised",
                subject=f"user:{request.user_id}",
                detail={"request_id": request.id, "rows": counts},
                at=now,
            )
        done.append(request.user_id)
        if len(done) >= limit:
            return done
