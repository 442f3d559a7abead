"""Merchants: apply with a business licence, get reviewed, run a back office.

A merchant is its owner's account (its id is the user's id, as ``teams.merchant_id``
always was). Applying needs a ``business_licence`` upload of one's own; approval gives
the account the ``merchant`` role (its tokens are renewed: the token version is bumped,
as for a grant) and a team in the merchant's city. Every application and review is in
the permission audit.

Tenant isolation: every back-office operation takes the caller's :class:`Viewer` and
answers :class:`MerchantNotFound` (404) for a merchant outside its scope — the same
answer as for a merchant that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime

from accounts import revocations
from catalog import service as catalog_service
from catalog import store as catalog_store
from dispatch import store as dispatch_store
from dispatch.errors import OrderNotFound
from dispatch.models import Order
from doorstep.db import Conn, Tx
from doorstep.stores import Stores
from files import service as files_service
from files import store as files_store
from files.content import DOCUMENT_TYPES
from files.models import Caller as FileCaller
from files.models import StoredFile
from files.purposes import MB, STAFF
from merchants import rules, store
from merchants.errors import InvalidMerchantInput, MerchantNotFound, MerchantState
from merchants.models import Merchant, MerchantService
from permissions import store as permissions_store
from permissions.rules import Viewer
from workforce import store as workforce_store
from workforce.errors import DuplicateTeam, WorkerNotFound
from workforce.models import Worker


async def licence_readers(caller: FileCaller, file: StoredFile, db: Conn) -> bool:
    """Staff, and whoever holds ``merchants.read`` by a grant (reviewers, city operators)."""
    if STAFF.intersection(caller.roles):
        return True
    perm_map = getattr(caller, "perm_map", None)
    return perm_map is not None and bool(perm_map().get("merchants.read"))


files_service.register_purpose(
    "business_licence",
    media_types=DOCUMENT_TYPES,
    max_bytes=10 * MB,
    may_read=licence_readers,
    max_edge_px=3000,
)


def _ref(merchant_id: int) -> str:
    return f"merchant:{merchant_id}"


async def apply(
    stores: Stores,
    *,
    user_id: int,
    name: str,
    city_id: str,
    licence_number: str,
    licence_file_id: int,
    now: int,
) -> Merchant:
    """Apply (or apply again after a rejection) to be a merchant."""
    code = rules.check_licence_number(licence_number)
    if await catalog_store.city(stores.pool, city_id) is None:
        raise InvalidMerchantInput(f"no city {city_id!r}", field="city_id")
    async with stores.pool.acquire() as conn, conn.transaction():
        holder = await store.by_licence(conn, code)
        if holder is not None and holder.id != user_id:
            raise InvalidMerchantInput(
                "another merchant registered this licence number", field="licence_number"
            )
        found = await store.upsert_application(
            conn,
            user_id=user_id,
            name=name,
            city_id=city_id,
            licence_number=code,
            file_id=licence_file_id,
        )
        if found is None:
            raise MerchantState("you have an application pending or approved already")
        file = await files_store.file_by_id(conn, licence_file_id)
        if file is None or file.attached_to != _ref(user_id):
            await files_service.attach(
                conn,
                file_id=licence_file_id,
                owner_id=user_id,
                purpose="business_licence",
                ref=_ref(user_id),
                now=now,
            )
        await permissions_store.audit(
            conn,
            actor_id=user_id,
            action="merchant.apply",
            user_id=user_id,
            scope=f"city:{city_id}",
            detail={"name": name, "licence_number": code, "file_id": licence_file_id},
        )
    return found


async def visible(stores: Stores, viewer: Viewer, merchant_id: int) -> Merchant:
    """The merchant if the caller's scope reaches it (its own staff, its city's
    operators, the platform); else :class:`MerchantNotFound`."""
    found = await store.get(stores.pool, merchant_id)
    scope = viewer.scope
    if (
        found is None
        or scope is None
        or not (scope.has_merchant(found.id) or scope.has_city(found.city_id))
    ):
        raise MerchantNotFound(f"no merchant {merchant_id}", field="merchant_id")
    return found


async def own(stores: Stores, viewer: Viewer, merchant_id: int) -> Merchant:
    """The merchant if the caller works for it (or is the platform): its back office."""
    found = await store.get(stores.pool, merchant_id)
    scope = viewer.scope
    if found is None or scope is None or not scope.has_merchant(found.id):
        raise MerchantNotFound(f"no merchant {merchant_id}", field="merchant_id")
    return found


async def approved(stores: Stores, viewer: Viewer, merchant_id: int) -> Merchant:
    """:func:`own`, and approved."""
    found = await own(stores, viewer, merchant_id)
    if found.status != "approved":
        raise MerchantState(f"merchant {merchant_id} is {found.status}, not approved")
    return found


async def listing(stores: Stores, viewer: Viewer, status: str | None) -> list[Merchant]:
    """The merchants the caller may see."""
    scope = viewer.scope
    if scope is None:
        return []
    return await store.listing(
        stores.pool,
        status=status,
        city_ids=scope.city_list,
        merchant_ids=sorted(scope.merchants),
    )


async def review(
    stores: Stores,
    viewer: Viewer,
    merchant_id: int,
    *,
    approve: bool,
    reason: str,
    token_ttl_s: int,
    now: int,
) -> Merchant:
    """Approve (the account gets the merchant role and a team) or reject with a reason."""
    found = await visible(stores, viewer, merchant_id)
    if not approve and not reason:
        raise InvalidMerchantInput("say why the application is rejected", field="reason")
    at = datetime.fromtimestamp(now, UTC)
    version = None
    async with stores.pool.acquire() as conn, conn.transaction():
        current = await store.get(conn, merchant_id, lock=True)
        assert current is not None
        if current.status != "pending":
            raise MerchantState(f"merchant {merchant_id} is {current.status}, not pending")
        done = await store.set_review(
            conn,
            merchant_id,
            status="approved" if approve else "rejected",
            reason=reason,
            by=viewer.user_id,
            at=at,
        )
        if approve:
            await conn.execute(
                "UPDATE users SET roles = array_append(roles, 'merchant'), updated_at = now() "
                "WHERE id = $1 AND NOT 'merchant' = ANY(roles)",
                merchant_id,
            )
            await _team_for(conn, found)
            version = await revocations.bump_version(
                conn, stores, merchant_id, now=now, ttl_s=token_ttl_s
            )
        await permissions_store.audit(
            conn,
            actor_id=viewer.user_id,
            action="merchant.approve" if approve else "merchant.reject",
            user_id=merchant_id,
            scope=f"merchant:{merchant_id}",
            detail={"reason": reason},
        )
    if version is not None:
        await revocations.after_bump(stores, merchant_id, version, now=now, ttl_s=token_ttl_s)
    return done


async def _team_for(conn: Tx, merchant: Merchant) -> None:
    """A team of the merchant in its city (named after it; another merchant's team of that
    name is never taken over: the merchant's id is added to the name instead)."""
    teams = await workforce_store.teams(conn, merchant_id=merchant.id)
    if any(t.city_id == merchant.city_id for t in teams):
        return
    try:
        async with conn.transaction():
            await workforce_store.insert_team(
                conn,
                name=merchant.name,
                city_id=merchant.city_id,
                merchant_id=merchant.id,
                upsert=False,
            )
    except DuplicateTeam:
        await workforce_store.insert_team(
            conn,
            name=f"{merchant.name} · {merchant.id}",
            city_id=merchant.city_id,
            merchant_id=merchant.id,
            upsert=False,
        )


async def mine(stores: Stores, user_id: int) -> Merchant:
    """The caller's own application or merchant."""
    found = await store.get(stores.pool, user_id)
    if found is None:
        raise MerchantNotFound("you have not applied to be a merchant")
    return found


async def staff(stores: Stores, viewer: Viewer, merchant_id: int) -> list[Worker]:
    """The merchant's workers (every team of theirs)."""
    await own(stores, viewer, merchant_id)
    teams = await workforce_store.team_ids_of_merchant(stores.pool, merchant_id)
    return await workforce_store.workers(
        stores.pool, city_id=None, team_ids=teams, skill=None, after_id=0, limit=500
    )


async def _team_of(stores: Stores, merchant: Merchant) -> int:
    teams = await workforce_store.teams(stores.pool, merchant_id=merchant.id)
    for t in teams:
        if t.city_id == merchant.city_id:
            return t.id
    raise MerchantState(f"merchant {merchant.id} has no team in {merchant.city_id}")


async def add_staff(stores: Stores, viewer: Viewer, merchant_id: int, worker_id: int) -> Worker:
    """Put a platform worker of the merchant's city, on no team yet, on its team (their
    vetting stays the platform's)."""
    merchant = await approved(stores, viewer, merchant_id)
    worker = await workforce_store.worker(stores.pool, worker_id, detail=False)
    if worker is None or worker.city_id != merchant.city_id:
        raise WorkerNotFound(f"no worker {worker_id} in {merchant.city_id}", field="worker_id")
    if worker.team_id is not None:
        raise MerchantState(f"worker {worker_id} is on a team already")
    await store.set_team(stores.pool, worker_id, await _team_of(stores, merchant))
    found = await workforce_store.worker(stores.pool, worker_id)
    assert found is not None
    return found


async def remove_staff(stores: Stores, viewer: Viewer, merchant_id: int, worker_id: int) -> None:
    """Take a worker off the merchant's teams (404 for another merchant's worker)."""
    await own(stores, viewer, merchant_id)
    worker = await workforce_store.worker(stores.pool, worker_id, detail=False)
    teams = await workforce_store.team_ids_of_merchant(stores.pool, merchant_id)
    if worker is None or worker.team_id not in teams:
        raise WorkerNotFound(f"no worker {worker_id} on your teams", field="worker_id")
    await store.set_team(stores.pool, worker_id, None)


async def services(stores: Stores, viewer: Viewer, merchant_id: int) -> list[MerchantService]:
    """The services the merchant offers."""
    await own(stores, viewer, merchant_id)
    return await store.services(stores.pool, merchant_id)


async def put_service(
    stores: Stores, viewer: Viewer, merchant_id: int, code: str, *, price_minor: int, active: bool
) -> MerchantService:
    """Offer a catalog service at the merchant's price, within the catalog's range."""
    await approved(stores, viewer, merchant_id)
    svc = await catalog_service.get_service(stores.pool, code)
    rules.check_price(price_minor, svc.price_minor)
    await store.put_service(stores.pool, merchant_id, code, price_minor=price_minor, active=active)
    return MerchantService(merchant_id, code, price_minor, svc.price_minor, active)


async def orders(stores: Stores, viewer: Viewer, merchant_id: int, limit: int) -> list[Order]:
    """The orders routed to the merchant, newest first."""
    await own(stores, viewer, merchant_id)
    return await dispatch_store.list_for(
        stores.pool,
        customer_id=None,
        worker_id=None,
        city_id=None,
        status=None,
        before_id=2**62,
        limit=limit,
        city_ids=[],
        merchant_ids=[merchant_id],
    )


async def routed_order(stores: Stores, viewer: Viewer, merchant_id: int, order_id: int) -> Order:
    """An order routed to the merchant (404 for any other)."""
    await own(stores, viewer, merchant_id)
    order = await dispatch_store.get(stores.pool, order_id)
    if order is None or order.merchant_id != merchant_id:
        raise OrderNotFound(f"no order {order_id} of yours", field="order_id")
    return order


async def team_worker(stores: Stores, merchant_id: int, worker_id: int) -> Worker:
    """A worker on the merchant's teams (404 for another's)."""
    worker = await workforce_store.worker(stores.pool, worker_id, detail=False)
    teams = await workforce_store.team_ids_of_merchant(stores.pool, merchant_id)
    if worker is None or worker.team_id not in teams:
        raise WorkerNotFound(f"no worker {worker_id} on your teams", field="worker_id")
    return worker


async def route(stores: Stores, viewer: Viewer, order_id: int, merchant_id: int) -> Order:
    """Platform staff route an order of their city to an approved merchant of that city
    that offers its service; the engine then leaves it to the merchant."""
    order = await dispatch_store.get(stores.pool, order_id)
    scope = viewer.scope
    if order is None or scope is None or not scope.has_city(order.city_id):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    merchant = await store.get(stores.pool, merchant_id)
    if merchant is None or merchant.status != "approved" or merchant.city_id != order.city_id:
        raise InvalidMerchantInput(
            f"no approved merchant {merchant_id} in {order.city_id}", field="merchant_id"
        )
    if not await store.offers(stores.pool, merchant_id, order.service_code):
        raise InvalidMerchantInput(
            f"merchant {merchant_id} does not offer {order.service_code}", field="merchant_id"
        )
    return await _reroute(
        stores, viewer, order, merchant_id, "route", f"routed to merchant {merchant_id}"
    )


async def overflow(stores: Stores, viewer: Viewer, merchant_id: int, order_id: int) -> Order:
    """The merchant's staff cannot serve it: back to the platform's workers."""
    order = await routed_order(stores, viewer, merchant_id, order_id)
    return await _reroute(
        stores,
        viewer,
        order,
        None,
        "overflow",
        f"merchant {merchant_id} handed it to the platform's workers",
    )


async def _reroute(
    stores: Stores,
    viewer: Viewer,
    order: Order,
    merchant_id: int | None,
    action: str,
    reason: str,
) -> Order:
    async with stores.pool.acquire() as conn, conn.transaction():
        locked = await dispatch_store.get(conn, order.id, lock=True)
        assert locked is not None
        if locked.status not in rules.ROUTABLE or locked.worker_id is not None:
            raise MerchantState(
                f"order {order.id} is {locked.status}: only an order waiting for a worker moves"
            )
        actor = "merchant" if action == "overflow" else "staff"
        return await store.route_order(
            conn,
            locked,
            merchant_id,
            action=action,
            actor=actor,
            actor_id=viewer.user_id,
            reason=reason,
        )
