"""Workforce operations with their object-level rules.

Who may see a worker: admins and dispatchers; staff whose grant covers the worker's
city; the merchant whose team the worker is in (and that merchant's staff); the worker
themself. Who may change availability and certificates: the worker themself, and those
the route lets in whose scope reaches the worker. Profiles (skills, city, team) only
admins.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from accounts import service as accounts
from accounts.errors import UnknownUser
from catalog import store as catalog_store
from doorstep.stores import Stores
from doorstep.text import check_visible_text
from geo.coords import Crs, to_wgs84, validate_lat_lng
from permissions.rules import Viewer
from workforce import store
from workforce.errors import InvalidWorkforceInput, TeamNotFound, WorkerNotFound
from workforce.models import Certificate, DayException, Team, Window, Worker
from workforce.schedule import check_exception, check_windows


async def check_skills(stores: Stores, skills: list[str], field: str = "skills") -> tuple[str, ...]:
    """Known skill codes, deduplicated."""
    known = {s.code for s in await catalog_store.skills(stores.pool)}
    for i, s in enumerate(skills):
        if s not in known:
            raise InvalidWorkforceInput(f"unknown skill {s!r}", field=f"{field}[{i}]")
    return tuple(dict.fromkeys(skills))


async def check_city(stores: Stores, city_id: str, field: str = "city_id") -> str:
    """An existing city id."""
    if await catalog_store.city(stores.pool, city_id) is None:
        raise InvalidWorkforceInput(f"unknown city {city_id!r}", field=field)
    return city_id


async def check_team(
    stores: Stores, team_id: int | None, city_id: str, field: str = "team_id"
) -> None:
    """An existing team in the worker's city (or None)."""
    if team_id is None:
        return
    found = await store.team(stores.pool, team_id)
    if found is None:
        raise InvalidWorkforceInput(f"unknown team {team_id}", field=field)
    if found.city_id != city_id:
        raise InvalidWorkforceInput(
            f"team {team_id} works in {found.city_id}, not {city_id}", field=field
        )


def home(lat: float, lng: float, crs: Crs) -> tuple[float, float]:
    """A validated home base in WGS-84."""
    validate_lat_lng(lat, lng, "home")
    return to_wgs84(lat, lng, crs)


async def create_worker(
    stores: Stores,
    *,
    phone: str,
    name: str,
    password: str,
    city_id: str,
    skills: list[str],
    home_lat: float,
    home_lng: float,
    team_id: int | None,
) -> Worker:
    """An account with the worker role and its profile, in one transaction."""
    await check_city(stores, city_id)
    checked = await check_skills(stores, skills)
    await check_team(stores, team_id, city_id)
    async with stores.pool.acquire() as conn, conn.transaction():
        user = await accounts.create_user(
            stores, phone=phone, name=name, password=password, roles=["worker"], db=conn
        )
        await store.upsert_worker(
            conn,
            user_id=user.id,
            city_id=city_id,
            skills=checked,
            home_lat=home_lat,
            home_lng=home_lng,
            team_id=team_id,
        )
    return await get_worker_unchecked(stores, user.id)


async def get_worker_unchecked(stores: Stores, worker_id: int) -> Worker:
    """The worker with detail, without an access check."""
    found = await store.worker(stores.pool, worker_id)
    if found is None:
        raise WorkerNotFound(f"no worker {worker_id}", field="worker_id")
    return found


async def _teams_of(stores: Stores, merchants: frozenset[int]) -> list[int]:
    found: list[int] = []
    for merchant_id in sorted(merchants):
        found += await store.team_ids_of_merchant(stores.pool, merchant_id)
    return found


async def visible_worker(stores: Stores, viewer: Viewer, worker_id: int) -> Worker:
    """The worker if the caller may see them; else :class:`WorkerNotFound` (no existence leak)."""
    found = await store.worker(stores.pool, worker_id)
    if found is None or not await _may_see(stores, viewer, found):
        raise WorkerNotFound(f"no worker {worker_id}", field="worker_id")
    return found


async def _may_see(stores: Stores, viewer: Viewer, worker: Worker) -> bool:
    """The worker themself; staff whose scope reaches the worker's city; a merchant (or
    a merchant's staff) whose team the worker is in."""
    scope = viewer.scope
    if viewer.user_id == worker.user_id:
        return True
    if scope is None:
        return False
    if scope.has_city(worker.city_id):
        return True
    return worker.team_id is not None and worker.team_id in await _teams_of(stores, scope.merchants)


async def managed_worker(stores: Stores, viewer: Viewer, worker_id: int) -> Worker:
    """The worker if the caller may change their availability and certificates: the
    worker themself, or a caller whose scope on the route reaches them (an admin, the
    merchant of the worker's team, a merchant admin)."""
    return await visible_worker(stores, viewer, worker_id)


async def list_workers(
    stores: Stores,
    viewer: Viewer,
    *,
    city_id: str | None,
    team_id: int | None,
    skill: str | None,
    after_id: int,
    limit: int,
) -> list[Worker]:
    """Workers the caller may see: the platform all, a city operator their cities', a
    merchant their teams'."""
    team_ids: list[int] | None = [team_id] if team_id is not None else None
    city_ids: list[str] | None = None
    scope = viewer.scope
    if scope is None:
        return []
    if not scope.platform:
        if scope.cities:
            city_ids = sorted(scope.cities)
            if city_id is not None and city_id not in scope.cities:
                return []
        else:
            own = await _teams_of(stores, scope.merchants)
            team_ids = [t for t in (team_ids or own) if t in own]
    return await store.workers(
        stores.pool,
        city_id=city_id,
        team_ids=team_ids,
        skill=skill,
        after_id=after_id,
        limit=limit,
        city_ids=city_ids,
    )


async def update_profile(stores: Stores, worker_id: int, fields: dict[str, Any]) -> Worker:
    """Change a worker's city, skills, home or team (admin)."""
    current = await get_worker_unchecked(stores, worker_id)
    if "skills" in fields:
        fields["skills"] = await check_skills(stores, fields["skills"])
    city_id = fields.get("city_id", current.city_id)
    if "city_id" in fields:
        await check_city(stores, city_id)
    if "team_id" in fields or "city_id" in fields:
        await check_team(stores, fields.get("team_id", current.team_id), city_id)
    await store.update_worker(stores.pool, worker_id, fields)
    return await get_worker_unchecked(stores, worker_id)


async def set_availability(stores: Stores, worker_id: int, windows: list[Window]) -> Worker:
    """Replace the weekly windows."""
    checked = check_windows(windows)
    async with stores.pool.acquire() as conn, conn.transaction():
        await store.replace_availability(conn, worker_id, checked)
    return await get_worker_unchecked(stores, worker_id)


async def set_exception(stores: Stores, worker_id: int, exc: DayException) -> Worker:
    """Set one date's exception."""
    await store.put_exception(stores.pool, worker_id, check_exception(exc))
    return await get_worker_unchecked(stores, worker_id)


async def add_certificate(
    stores: Stores, worker_id: int, *, kind: str, number: str, issued_on: date, expires_on: date
) -> Certificate:
    """Register a certificate for review."""
    kinds = {k.code for k in await catalog_store.certificate_kinds(stores.pool)}
    if kind not in kinds:
        raise InvalidWorkforceInput(f"unknown certificate kind {kind!r}", field="kind")
    number = number.strip()
    if len(number) < 3:
        raise InvalidWorkforceInput("must be at least 3 characters", field="number")
    if expires_on <= issued_on:
        raise InvalidWorkforceInput("must be after issued_on", field="expires_on")
    return await store.add_certificate(
        stores.pool,
        worker_id,
        kind=kind,
        number=number,
        issued_on=issued_on,
        expires_on=expires_on,
    )


async def create_team(stores: Stores, *, name: str, city_id: str, merchant_id: int) -> Team:
    """A team managed by a user holding the merchant role."""
    await check_city(stores, city_id)
    name = check_visible_text(name, "name", max_length=64, error=InvalidWorkforceInput)
    try:
        merchant = await accounts.get_user(stores, merchant_id)
    except UnknownUser:
        raise InvalidWorkforceInput(f"no user {merchant_id}", field="merchant_id") from None
    if "merchant" not in merchant.roles:
        raise InvalidWorkforceInput(
            f"user {merchant_id} does not hold the merchant role", field="merchant_id"
        )
    team_id = await store.insert_team(
        stores.pool, name=name, city_id=city_id, merchant_id=merchant_id, upsert=False
    )
    found = await store.team(stores.pool, team_id)
    assert found is not None
    return found


async def visible_team(stores: Stores, viewer: Viewer, team_id: int) -> Team:
    """The team if the caller's scope reaches its city or its merchant."""
    found = await store.team(stores.pool, team_id)
    scope = viewer.scope
    if (
        found is None
        or scope is None
        or not (scope.has_city(found.city_id) or scope.has_merchant(found.merchant_id))
    ):
        raise TeamNotFound(f"no team {team_id}", field="team_id")
    return found
