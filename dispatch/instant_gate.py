"""Refuse an instant booking nobody can serve, at booking, with the next bookable slots.

Before issue 20 such a booking was confirmed and failed an hour later ("no worker could
be found within the service time"). Now, before the booking's transaction, the city's
active workers are read (skills, certificates valid today, availability today and
tomorrow) and :func:`dispatch.dayplan.instant_refusal` (pure) says whether anyone with
the service's skills is on shift long enough to start within the instant SLA and finish.
A crew service (``crew_size`` > 1) needs that many qualified workers on shift.
If not, the booking is refused with 409 ``nobody_can_serve`` naming the rule
(``no_skilled_worker`` or ``not_working_now``) and, for services also bookable ahead,
the next windows ``GET /v1/slots`` would offer (today, then the next days).

Whether a qualified worker is *online* is not checked: workers come and go within
minutes, and the engine's SLA still fails an order nobody took.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from catalog.models import Service
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, instant_refusal, required_skills
from dispatch.errors import DispatchError
from dispatch.plan_inputs import midnight
from dispatch.plans import DayPlans
from doorstep.db import Conn
from doorstep.errors import Conflict
from workforce.models import DayException, Window
from workforce.schedule import windows_on

NEXT_SLOTS = 3  # how many bookable windows a refusal suggests
SLOT_DAYS = 3  # looked for today and the next days


class NobodyCanServe(Conflict, DispatchError):
    """An instant booking no worker of the city can serve now; ``details`` has the rule
    and the next bookable windows."""

    code = "nobody_can_serve"

    def __init__(self, message: str, *, field: str | None, details: dict[str, Any]) -> None:
        super().__init__(message, field=field)
        self.details = details


@dataclass(frozen=True, slots=True)
class InstantGate:
    """The check :func:`dispatch.service.book` runs for an instant booking."""

    plans: DayPlans
    sla_s: int

    async def __call__(
        self, city_id: str, service: Service, lat: float, lng: float, now: datetime
    ) -> None:
        """Raise :class:`NobodyCanServe` if nobody can serve the booking now."""
        pool = self.plans.stores.pool
        zone = await self.plans.zone(city_id)
        today = now.astimezone(zone).date()
        epoch = int(midnight(today, zone).timestamp())
        async with pool.acquire() as conn:
            workers = await _workers(conn, city_id, today, zone_epochs(today, zone))
        now_s = int(now.timestamp()) - epoch
        skills = required_skills(service.required_skills, service.required_certificates)
        job = DayJob(0, lat, lng, service.duration_min * 60, (now_s, now_s + self.sla_s), skills)
        inputs = DayInputs(city_id, today, epoch, now_s, tuple(workers), ())
        why = instant_refusal(inputs, job, crew_size=service.crew_size)
        if why is None:
            return
        slots: list[dict[str, str]] = []
        if service.scheduled:
            for d in range(SLOT_DAYS):
                found = await self.plans.slots(
                    city_id=city_id,
                    service_code=service.code,
                    skills=skills,
                    duration_min=service.duration_min,
                    lat=lat,
                    lng=lng,
                    day=today + timedelta(days=d),
                    now=now,
                    earliest=now + timedelta(minutes=30),
                    staff=False,
                    crew_size=service.crew_size,
                )
                slots += [
                    {
                        "window_start": s.window_start.isoformat(),
                        "window_end": s.window_end.isoformat(),
                    }
                    for s in found.slots
                ]
                if len(slots) >= NEXT_SLOTS:
                    break
        slots = slots[:NEXT_SLOTS]
        hint = (
            "; book ahead: next open windows " + ", ".join(s["window_start"] for s in slots)
            if slots
            else (
                "; no window is open in the next days either"
                if service.scheduled
                else "; this service cannot be booked ahead"
            )
        )
        raise NobodyCanServe(
            f"nobody can come now ({why.code}): {why.message}{hint}",
            field="service_code",
            details={"rule": why.code, "next_slots": slots, "crew_size": service.crew_size},
        )


def zone_epochs(today: Any, zone: Any) -> tuple[int, int]:
    """Local midnight of today and of tomorrow, in unix seconds."""
    tomorrow = today + timedelta(days=1)
    return int(midnight(today, zone).timestamp()), int(midnight(tomorrow, zone).timestamp())


async def _workers(db: Conn, city_id: str, today: Any, epochs: tuple[int, int]) -> list[WorkerDay]:
    """The city's active workers: skills (certificates as ``cert:`` skills) and their
    availability today and tomorrow, in seconds since today's midnight."""
    days = [today, today + timedelta(days=1)]
    rows = await db.fetch(
        "SELECT w.user_id, w.skills, w.home_lat, w.home_lng FROM workers w JOIN users u "
        "ON u.id = w.user_id WHERE w.city_id = $1 AND u.status = 'active' ORDER BY w.user_id",
        city_id,
    )
    ids = [r["user_id"] for r in rows]
    certs = await db.fetch(
        "SELECT worker_id, kind FROM worker_certificates WHERE worker_id = ANY($1) "
        "AND status = 'verified' AND issued_on <= $2 AND expires_on >= $2",
        ids,
        today,
    )
    weekly = await db.fetch(
        "SELECT worker_id, weekday, start_min, end_min FROM worker_availability "
        "WHERE worker_id = ANY($1)",
        ids,
    )
    exceptions = await db.fetch(
        "SELECT worker_id, on_date, available, start_min, end_min, reason FROM "
        "worker_availability_exceptions WHERE worker_id = ANY($1) AND on_date = ANY($2)",
        ids,
        days,
    )
    cert_map: dict[int, set[str]] = {}
    for r in certs:
        cert_map.setdefault(r["worker_id"], set()).add(f"cert:{r['kind']}")
    weekly_map: dict[int, list[Window]] = {}
    for r in weekly:
        weekly_map.setdefault(r["worker_id"], []).append(
            Window(r["weekday"], r["start_min"], r["end_min"])
        )
    exc_map: dict[int, list[DayException]] = {}
    for r in exceptions:
        exc_map.setdefault(r["worker_id"], []).append(
            DayException(r["on_date"], r["available"], r["start_min"], r["end_min"], r["reason"])
        )
    out = []
    for r in rows:
        w = r["user_id"]
        windows: list[tuple[int, int]] = []
        for day, epoch in zip(days, epochs, strict=True):
            offset = epoch - epochs[0]
            for a, b in windows_on(day, weekly_map.get(w, []), exc_map.get(w, [])):
                windows.append((offset + a * 60, offset + b * 60))
        merged: list[tuple[int, int]] = []
        for a, b in sorted(windows):  # today's 24:00 meets tomorrow's 00:00
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        out.append(
            WorkerDay(
                worker_id=w,
                skills=frozenset(r["skills"]) | frozenset(cert_map.get(w, ())),
                windows=tuple(merged),
                start=(float(r["home_lat"]), float(r["home_lng"])),
            )
        )
    return out
