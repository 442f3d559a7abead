"""Day plans at run time: plan, store, fit bookings in, release jobs, push to workers.

One :class:`DayPlans` per process. A full solve (``matching.planner.plan``, OR-Tools)
runs in a planning process of its own, one at a time (OR-Tools holds the GIL while it
searches, so a thread would stall the event loop: see ``dispatch/plan_worker.py``);
fitting one booking in (``matching.planner.insertions``, pure Python, milliseconds)
runs in a thread (``asyncio.to_thread``). Either way the event loop keeps serving
sockets and ingest while the planner thinks.

- **Re-plan** (:meth:`DayPlans.replan`): read the city's day, solve, store a new version
  (refused if someone stored one since the read — then read and solve again), push a
  ``plan`` message to every worker whose route changed. :meth:`DayPlans.request` does
  it in the background, coalescing a burst of requests for the same city and day.
- **Bookings** (:meth:`DayPlans.reserve`): inside the booking's transaction, under the
  plan's lock: the cheapest feasible insertion into the stored plan is stored as a new
  version, or the booking is refused (409 ``slot_unavailable`` naming the rule). A
  background re-plan then improves the whole day.
- **Release** (:meth:`DayPlans.release_due`, from the engine's tick): a planned job is
  assigned to its worker through the order's ``assign`` transition — audited, pushed
  as a ``job`` message — once it is the first open stop of their route, they hold no
  other job, they are online, and its planned arrival is less than
  ``release_ahead_s`` away. Until then the order stays ``confirmed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from catalog import store as catalog_store
from dispatch import plan_inputs, plan_store, plan_worker, service, store
from dispatch.dayplan import (
    Built,
    DayInputs,
    DayJob,
    DayPlanParams,
    Refusal,
    TravelFn,
    apply_crew,
    apply_insertion,
    build,
    current_plan,
    fit_crew,
    order_of,
    refusal,
    required_skills,
    search_note,
    slot_grid,
)
from dispatch.errors import DispatchError
from dispatch.lifecycle import TERMINAL
from dispatch.models import Order
from dispatch.plan_store import PlannedRoute, PlannedStop, StalePlan, StoredPlan
from dispatch.plan_views import worker_plan
from dispatch.plan_worker import Travel, road_graph_city
from dispatch.publisher import Publisher
from dispatch.service import Caller, Reserve
from doorstep.db import Conn, Tx
from doorstep.errors import Conflict
from doorstep.stores import Stores
from events.relay import Consumer
from events.types import ORDER_EVENTS, Event, OrderChanged
from matching import planner
from matching.planner import Insertion, Plan, PlannerParams
from merchants import rules as merchant_rules
from merchants import store as merchant_store

log = logging.getLogger("doorstep.dispatch.plans")
SYSTEM = Caller("system", None)
REPLAN_ON = frozenset(
    {
        "cancel",
        "reschedule",
        "unassign",
        "fail",
        "decline",
        "assign",
        "route",
        "overflow",
        "crew_change",
    }
)


class SlotUnavailable(Conflict, DispatchError):
    """No worker can take a scheduled booking in its window without breaking their plan."""

    code = "slot_unavailable"


class PlanningFailed(Conflict, DispatchError):
    """The planner could not plan the day (the stored plan stays as it was)."""

    code = "planning_failed"


@dataclass(frozen=True, slots=True)
class Slot:
    """An arrival window in which at least one qualified worker can come."""

    window_start: datetime
    window_end: datetime
    workers: int  # how many workers could take it
    options: list[dict[str, Any]] | None = None  # staff only: who, where, at what added travel


@dataclass(frozen=True, slots=True)
class Slots:
    """The bookable windows of a service at an address on one day."""

    city_id: str
    service_code: str
    date: date
    window_min: int
    slots: list[Slot]


class DayPlans:
    """The per-process day-plans runtime."""

    def __init__(
        self,
        stores: Stores,
        tracking: Publisher,
        *,
        params: DayPlanParams | None = None,
        planner_params: PlannerParams | None = None,
        merchant_overflow_s: int = 300,
    ) -> None:
        self.stores = stores
        # [engine] merchant_overflow_s: a merchant's order none of its staff can fit in
        # their plans goes to the platform's workers this long after it was routed.
        self.merchant_overflow_s = merchant_overflow_s
        self.tracking = tracking
        self.params = params or DayPlanParams()
        self.planner_params = planner_params or PlannerParams()
        self._running: dict[tuple[str, date], asyncio.Task[None]] = {}
        self._again: dict[tuple[str, date], str] = {}
        self._solve = asyncio.Semaphore(1)
        self._pool: ProcessPoolExecutor | None = None
        self._checked: dict[str, datetime] = {}  # city → last ensure_planned check
        self._zones: dict[str, ZoneInfo] = {}
        self._road: dict[str, str | None] = {}  # city → its bundled road network, if any
        self.solves = 0  # full solves run by this process (for tests and metrics)

    # --- reading ----------------------------------------------------------------------

    async def zone(self, city_id: str, db: Conn | None = None) -> ZoneInfo:
        """The city's time zone (read once per process, like the ETAs' zones). Inside a
        transaction pass its connection: never wait for a second one while holding one."""
        zone = self._zones.get(city_id)
        if zone is None:
            zone = await plan_inputs.zone_of(db or self.stores.pool, city_id)
            self._zones[city_id] = zone
        return zone

    async def _inputs(
        self,
        db: Any,
        city_id: str,
        day: date,
        now: datetime,
        leave_out: int | None = None,
        until: datetime | None = None,
    ) -> tuple[DayInputs, StoredPlan | None]:
        return await plan_inputs.load(
            self.stores,
            db,
            city_id,
            day,
            now=now,
            zone=await self.zone(city_id, db),
            live_max_age_s=self.params.live_max_age_s,
            leave_out=leave_out,
            merchant_overflow_s=self.merchant_overflow_s,
            until=until,
        )

    async def travel(self, city_id: str, db: Conn | None = None) -> Travel:
        """Travel times for a city: on the bundled road graph if it covers part of the
        city (off-graph points walk to the nearest node), else the straight-line
        fallback of the ETAs — the ETAs' rule (``tracking.eta_store``)."""
        if city_id not in self._road:
            city = await catalog_store.city(db or self.stores.pool, city_id)
            self._road[city_id] = None if city is None else road_graph_city(city.bbox)
        graph_city = self._road[city_id]
        eta = self.tracking.eta_params
        return Travel(
            road=graph_city is not None,
            graph_city=graph_city or "",
            access_speed_mps=eta.access_speed_mps,
            speed_mps=eta.fallback_speed_mps,
            detour_factor=eta.detour_factor,
        )

    def _routes(self, inputs: DayInputs, plan: Plan, new_order: int = 0) -> list[PlannedRoute]:
        out = []
        for r in plan.routes:
            if not r.stops:
                continue
            out.append(
                PlannedRoute(
                    worker_id=int(r.worker_id),
                    travel_s=r.travel_s,
                    distance_m=r.distance_m,
                    breaks=[{"start_at": _at(inputs, b), "duration_s": d} for b, d in r.breaks],
                    stops=[
                        PlannedStop(
                            order_id=order_of(s.job_id) or new_order,
                            arrival_at=_at(inputs, s.arrival_s),
                            start_at=_at(inputs, s.start_s),
                            departure_at=_at(inputs, s.departure_s),
                            slack_s=s.slack_s,
                        )
                        for s in r.stops
                    ],
                )
            )
        return out

    # --- re-planning ------------------------------------------------------------------

    async def replan(
        self,
        city_id: str,
        day: date,
        *,
        reason: str,
        actor_id: int | None = None,
        now: datetime | None = None,
    ) -> StoredPlan:
        """Plan the city's day from scratch (held jobs stay first) and store it. A
        merchant's order is planned onto its staff; one they cannot fit that is due to
        overflow is handed to the platform and the day is solved again at once."""
        tries = 0
        while tries < 3:
            moment = now or datetime.now(UTC)
            async with self.stores.pool.acquire() as conn:
                inputs, previous = await self._inputs(conn, city_id, day, moment)
            travel = await self.travel(city_id)
            async with self._solve:
                result, ms = await self._solve_elsewhere(inputs, travel)
            self.solves += 1
            if await self._overflow_dropped(inputs, result):
                continue  # each order overflows once: this ends
            tries += 1
            dropped = [{"order_id": order_of(d.job_id), "reason": d.reason} for d in result.dropped]
            note = search_note(result, self.planner_params.time_limit_s)
            if note:  # the cap, not the budget, stopped it: say so where dispatchers look
                log.warning("the %s plan of %s: %s (%d ms)", day, city_id, note, ms)
            try:
                async with self.stores.pool.acquire() as conn, conn.transaction():
                    await plan_store.lock_around(conn, city_id, day)
                    await self._check_neighbours(conn, inputs)
                    stored = await plan_store.store(
                        conn,
                        city_id=city_id,
                        day=day,
                        after_version=inputs.version,
                        kind="solve",
                        reason=f"{reason} [{note}]" if note else reason,
                        actor_id=actor_id,
                        objective=result.objective,
                        solve_ms=ms,
                        dropped=dropped,
                        routes=self._routes(inputs, result),
                        keep_versions=self.params.keep_versions,
                    )
            except StalePlan:
                continue  # a booking landed meanwhile: plan again with it
            await self._push(previous, stored)
            await self._follow_overnight(previous, stored)
            return stored
        raise StalePlan(
            f"the {day} plan of {city_id} kept changing while it was being planned; try again",
            field="date",
        )

    async def _follow_overnight(self, previous: StoredPlan | None, stored: StoredPlan) -> None:
        """If the new version changed what a worker does past the next midnight (an
        overnight job moved to another worker or time, added or gone), re-plan the next
        day in the background, when it has a plan: it was solved with the old promise
        (when and where each overnight worker is free, ``plan_inputs.neighbours``). The
        evening keeps the next day's first stops, so that plan stays feasible, but its
        starts, times and travel figures are stale until re-planned."""
        zone = await self.zone(stored.city_id)
        nxt = stored.plan_date + timedelta(days=1)
        after = plan_inputs.midnight(nxt, zone)
        if overnight_work(previous, after) == overnight_work(stored, after):
            return
        if await plan_store.has_plan(self.stores.pool, stored.city_id, nxt):
            self.request(
                stored.city_id, nxt, f"overnight work of the {stored.plan_date} plan changed"
            )

    async def _check_neighbours(self, conn: Tx, inputs: DayInputs) -> None:
        """Under the plan's locks: StalePlan if what the neighbouring days' plans promise
        of this day's overnight workers changed since ``inputs`` were read (a plan solved
        against the old promises could put a worker in two places after midnight)."""
        now = await plan_inputs.neighbours(
            conn,
            inputs.city_id,
            inputs.day,
            await self.zone(inputs.city_id, conn),
            plan_inputs.overnight_ends(
                {w.worker_id: w.windows for w in inputs.workers}, inputs.day_s
            ),
        )
        if now != dict(inputs.neighbours):
            raise StalePlan(
                f"the plans next to {inputs.day} of {inputs.city_id} changed overnight work",
                field="date",
            )

    async def _overflow_dropped(self, inputs: DayInputs, result: Plan) -> int:
        """Merchants' orders the solve could not give to any of their staff, routed
        ``merchant_overflow_s`` ago or more: handed to the platform's workers (the
        merchant's overflow rule, as the engine applies it), each with an ``overflow``
        event. How many moved."""
        due = {j.order_id: j for j in inputs.jobs if j.merchant_id is not None and j.overflow_due}
        moved = 0
        for d in result.dropped:
            job = due.get(order_of(d.job_id))
            if job is None:
                continue
            async with self.stores.pool.acquire() as conn, conn.transaction():
                locked = await store.get(conn, job.order_id, lock=True)
                if (
                    locked is None
                    or locked.merchant_id != job.merchant_id
                    or locked.worker_id is not None
                    or locked.status not in merchant_rules.ROUTABLE
                ):
                    continue
                await merchant_store.route_order(
                    conn,
                    locked,
                    None,
                    action="overflow",
                    actor="system",
                    actor_id=None,
                    reason=f"none of merchant {job.merchant_id}'s staff can fit it in their "
                    f"{inputs.day} day plans ({d.reason}), {self.merchant_overflow_s} s after "
                    "it was routed: planned onto the platform's workers",
                    data={"source": "day_plan"},
                )
            moved += 1
        return moved

    async def _solve_elsewhere(self, inputs: DayInputs, travel: Travel) -> tuple[Plan, int]:
        """Solve in the planning process (started on first use, restarted if it died)."""
        if self._pool is None:
            self._pool = plan_worker.new_pool()
        loop = asyncio.get_running_loop()
        args = (inputs, travel, self.params.continuity_penalty_s, self.planner_params)
        try:
            solved = await loop.run_in_executor(self._pool, plan_worker.solve, *args)
        except BrokenProcessPool:
            self._pool = None
            raise PlanningFailed("the planning process died; try again", field="date") from None
        if solved.plan is None:
            raise PlanningFailed(
                f"the {inputs.day} plan of {inputs.city_id} could not be computed: {solved.error}",
                field="date",
            )
        return solved.plan, solved.ms

    def request(self, city_id: str, day: date, reason: str) -> None:
        """Re-plan in the background; requests during a run make one more run after it."""
        key = (city_id, day)
        if key in self._running:
            self._again[key] = reason
            return
        self._running[key] = asyncio.create_task(self._run(key, reason), name=f"replan {key}")

    async def _run(self, key: tuple[str, date], reason: str) -> None:
        try:
            next_reason: str | None = reason
            while next_reason is not None:
                try:
                    await self.replan(*key, reason=next_reason)
                except Exception:  # logged; the next change asks again
                    log.exception("re-planning %s failed", key)
                next_reason = self._again.pop(key, None)
        finally:
            self._running.pop(key, None)

    async def idle(self) -> None:
        """Wait until no background re-plan is running (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel background re-plans and stop the planning process."""
        for task in list(self._running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def consumer(self) -> Consumer:
        """The ``day-plans`` consumer of order events (events/relay.py)."""
        return Consumer("day-plans", frozenset(ORDER_EVENTS[a] for a in REPLAN_ON), self._on_event)

    async def _on_event(self, _tx: Tx, event: Event) -> None:
        p = event.payload
        assert isinstance(p, OrderChanged)
        await self.on_order_change(p)

    async def on_order_change(self, change: OrderChanged) -> None:
        """An order changed: re-plan the day(s) it touches when it matters.

        A scheduled order cancelled, failed, moved, unassigned or assigned by hand
        re-plans its day (the plan's own releases do not). An instant job taken by a
        worker with planned stops today re-plans today: their later stops may have to
        move to someone else. The re-plan itself runs in the background of this
        process (``request``); a crash before it ends loses it, and the engine's
        ``ensure_planned`` check finds the orders it leaves out of the plan."""
        action = change.action
        if not self.params.enabled or action not in REPLAN_ON:
            return
        if action == "assign" and change.actor == "system":
            return
        days = set()
        zone = await self.zone(change.city_id)
        if change.kind == "scheduled":
            for start in (change.previous_window_start, change.window_start):
                if start is not None:
                    days.add((change.city_id, start.astimezone(zone).date()))
        if change.kind == "instant" and action == "assign" and change.worker_id is not None:
            today = datetime.now(zone).date()
            plan = await plan_store.latest(
                self.stores.pool, change.city_id, today, worker_id=change.worker_id
            )
            if plan is not None and plan.route_of(change.worker_id) is not None:
                days.add((change.city_id, today))
        for city_id, day in sorted(days):
            self.request(city_id, day, f"order {change.order_id}: {action}")

    async def ensure_planned(self, city_id: str, now: datetime) -> int:
        """Re-plan today and tomorrow (in the background) if an open scheduled order of
        that day is neither in the plan nor among its dropped jobs — e.g. booked while
        day plans were off, or a background re-plan failed — or is a merchant's order
        dropped (none of its staff could fit it) that is now due to overflow. Yesterday
        too, for its orders whose window has not closed yet (an overnight booking of
        yesterday evening, after midnight). At most once per minute per city. Returns
        how many days were asked for."""
        last = self._checked.get(city_id)
        if last is not None and (now - last).total_seconds() < self.params.check_every_s:
            return 0
        self._checked[city_id] = now
        zone = await self.zone(city_id)
        today = now.astimezone(zone).date()
        asked = 0
        yesterday = today - timedelta(days=1)
        for day in (yesterday, today, today + timedelta(days=1)):
            missing = await self.stores.pool.fetchval(
                "SELECT count(*) FROM orders o WHERE o.city_id = $1 AND o.kind = 'scheduled' "
                "AND o.crew_size = 1 AND o.window_start >= $2 AND o.window_start < $3 "
                "AND ($6::timestamptz IS NULL OR o.window_end > $6) "
                "AND o.status IN ('confirmed', 'dispatching') AND NOT EXISTS ("
                "SELECT 1 FROM day_plans p WHERE p.city_id = $1 AND p.plan_date = $4 "
                "AND p.version = (SELECT max(version) FROM day_plans q WHERE q.city_id = $1 "
                "AND q.plan_date = $4) AND (EXISTS (SELECT 1 FROM day_plan_stops s WHERE "
                "s.plan_id = p.id AND s.order_id = o.id) OR (p.dropped @> "
                "jsonb_build_array(jsonb_build_object('order_id', o.id)) AND NOT "
                "(o.merchant_id IS NOT NULL AND coalesce(o.merchant_routed_at, o.created_at) "
                "<= $5))))",
                city_id,
                plan_inputs.midnight(day, zone),
                plan_inputs.midnight(day + timedelta(days=1), zone),
                day,
                now - timedelta(seconds=self.merchant_overflow_s),
                now if day == yesterday else None,  # yesterday's that can still start
            )
            if missing:
                self.request(city_id, day, f"{missing} open order(s) not in the plan")
                asked += 1
        return asked

    # --- bookings ---------------------------------------------------------------------

    def reserver(self, reservation: Reservation) -> Reserve:
        """The ``reserve`` step for :func:`dispatch.service.book`: fits a scheduled order
        into its day's plan and notes in ``reservation`` what to push after the commit."""

        async def reserve(conn: Tx, order: Order) -> None:
            if order.kind == "scheduled" and self.params.enabled:
                await self.reserve(conn, order, reservation)

        return reserve

    async def reserve(self, conn: Tx, order: Order, reservation: Reservation) -> None:
        """Fit a new scheduled order into its day's plan, or refuse it (SlotUnavailable).
        Runs inside the booking's transaction, under the plan's lock. A crew order takes
        ``crew_size`` workers who can all start it at one moment (``dayplan.fit_crew``),
        each with a stop in their route (docs/dispatch.md#crews)."""
        assert order.window_start is not None
        assert order.window_end is not None
        zone = await self.zone(order.city_id, conn)
        day = order.window_start.astimezone(zone).date()  # the day its window opens
        await plan_store.lock_around(conn, order.city_id, day)
        inputs, previous = await self._inputs(
            conn,
            order.city_id,
            day,
            datetime.now(UTC),
            leave_out=order.id,
            until=order.window_end + timedelta(minutes=order.duration_min),
        )
        needs = await conn.fetchrow(
            "SELECT required_skills, required_certificates FROM services WHERE code = $1",
            order.service_code,
        )
        assert needs is not None
        job = replace(
            order_job(inputs, order, needs), prefer_worker_id=reservation.prefer_worker_id
        )
        travel = await self.travel(order.city_id, conn)
        built, current, options = await asyncio.to_thread(self._fit, inputs, travel, job)
        crew = fit_crew(built, current, options, order.crew_size) if order.crew_size > 1 else None
        if not options or (order.crew_size > 1 and crew is None):
            why = refusal(inputs, job, crew_size=order.crew_size)
            reservation.refusal = why
            who = "no worker" if order.crew_size == 1 else f"no crew of {order.crew_size}"
            raise SlotUnavailable(
                f"{who} can come in this window ({why.code}): {why.message}; "
                "GET /v1/slots lists the windows that are open",
                field="window_start",
            )
        if crew is not None:
            chosen = crew.insertions[0]
            plan = apply_crew(built, current, crew)
            reservation.crew = [int(i.worker_id) for i in crew.insertions]
        else:
            prefer = str(reservation.prefer_worker_id)
            chosen = next((o for o in options if o.worker_id == prefer), options[0])
            plan = apply_insertion(built, current, chosen)
        stored = await plan_store.store(
            conn,
            city_id=order.city_id,
            day=day,
            after_version=inputs.version,
            kind="insert",
            reason=f"booked order {order.id}",
            actor_id=None,
            objective=plan.objective,
            solve_ms=0,
            dropped=previous.dropped if previous else [],
            routes=self._routes(inputs, plan, new_order=order.id),
            keep_versions=self.params.keep_versions,
        )
        reservation.worker_id = int(chosen.worker_id)
        reservation.workers = sorted({int(o.worker_id) for o in options})
        reservation.pushes.append((previous, stored))

    def _fit(
        self, inputs: DayInputs, travel: TravelFn, job: DayJob
    ) -> tuple[Built, Plan, list[Insertion]]:
        built = build(
            inputs, travel, extra=job, continuity_penalty_s=self.params.continuity_penalty_s
        )
        current = current_plan(built, inputs.routes)
        assert built.new_job is not None
        return built, current, planner.insertions(built.problem, current, built.new_job)

    async def survey(
        self, city_id: str, day: date, job: DayJob, now: datetime
    ) -> tuple[DayInputs, list[Insertion]]:
        """Where ``job`` (a booking not made yet) would fit in the stored plan of ``day``."""
        zone = await self.zone(city_id)
        until = plan_inputs.midnight(day, zone) + timedelta(seconds=job.window[1] + job.service_s)
        async with self.stores.pool.acquire() as conn:
            inputs, _ = await self._inputs(conn, city_id, day, now, until=until)
        travel = await self.travel(city_id)
        _, _, options = await asyncio.to_thread(self._fit, inputs, travel, job)
        return inputs, options

    async def after_booking(self, order: Order, reservation: Reservation) -> None:
        """After the booking committed: push the changed routes, improve the day later."""
        for previous, stored in reservation.pushes:
            await self._push(previous, stored)
            await self._follow_overnight(previous, stored)
            self.request(stored.city_id, stored.plan_date, f"order {order.id}: booked")
        reservation.pushes.clear()

    # --- slots ------------------------------------------------------------------------

    async def slots(
        self,
        *,
        city_id: str,
        service_code: str,
        skills: frozenset[str],
        duration_min: int,
        lat: float,
        lng: float,
        day: date,
        now: datetime,
        earliest: datetime,
        staff: bool,
        crew_size: int = 1,
    ) -> Slots:
        """The arrival windows of ``slot_window_min`` in which someone can come (a crew
        service: in which a whole crew can start together, ``dayplan.fit_crew``)."""
        zone = await self.zone(city_id)
        # a late window may run past midnight: the day's overnight shifts count that far
        until = plan_inputs.midnight(day + timedelta(days=1), zone) + timedelta(
            minutes=self.params.slot_window_min + duration_min
        )
        async with self.stores.pool.acquire() as conn:
            inputs, _ = await self._inputs(conn, city_id, day, now, until=until)
        template = DayJob(0, lat, lng, duration_min * 60, (0, 0), skills)
        travel = await self.travel(city_id)
        window_s = self.params.slot_window_min * 60
        grid = slot_grid(
            inputs,
            window_s=window_s,
            step_s=self.params.slot_step_min * 60,
            earliest_s=int(earliest.timestamp()) - inputs.epoch,
        )

        def compute() -> list[tuple[int, int, list[Insertion]]]:
            built, current, _ = self._fit(inputs, travel, template)
            assert built.new_job is not None
            out = []
            for a, b in grid:
                # Arriving on the stroke of the window's end would be a poor offer.
                job = replace(built.new_job, window=(a, b - 60))
                options = planner.insertions(built.problem, current, job)
                if options and crew_size > 1:
                    crew = fit_crew(replace(built, new_job=job), current, options, crew_size)
                    options = list(crew.insertions) if crew is not None else []
                if options:
                    out.append((a, b, options))
            return out

        found = await asyncio.to_thread(compute)
        slots = []
        for a, b, options in found:
            detail = None
            if staff:
                detail = [
                    {
                        "worker_id": int(o.worker_id),
                        "position": o.position,
                        "added_travel_s": o.added_travel_s,
                        "arrival_at": datetime.fromtimestamp(inputs.epoch + o.arrival_s, zone),
                        "start_at": datetime.fromtimestamp(inputs.epoch + o.start_s, zone),
                    }
                    for o in options
                ]
            slots.append(
                Slot(
                    window_start=datetime.fromtimestamp(inputs.epoch + a, zone),
                    window_end=datetime.fromtimestamp(inputs.epoch + b, zone),
                    workers=len({o.worker_id for o in options}),
                    options=detail,
                )
            )
        return Slots(city_id, service_code, day, self.params.slot_window_min, slots)

    # --- release ----------------------------------------------------------------------

    async def release_due(self, city_id: str, now: datetime) -> int:
        """Assign each worker's next planned job when it is time (see the module doc)."""
        zone = await self.zone(city_id)
        today = now.astimezone(zone).date()
        released = 0
        horizon = now + timedelta(seconds=self.params.release_ahead_s)
        # yesterday's plan too: its overnight jobs are released after midnight
        days = (today - timedelta(days=1), today, today + timedelta(days=1))
        found = await plan_store.due_stops(self.stores.pool, city_id, days, horizon)
        for day, (version, due) in sorted(found.items()):
            workers = sorted(due)
            orders = await store.by_ids(self.stores.pool, [o for ids in due.values() for o in ids])
            merchants = sorted({o.merchant_id for o in orders.values() if o.merchant_id})
            staff = {
                m: set(ws)
                for m, ws in (await merchant_store.staff_of(self.stores.pool, merchants)).items()
            }
            held = {
                r["worker_id"]
                for r in await self.stores.pool.fetch(
                    "SELECT worker_id FROM orders WHERE worker_id = ANY($1) "
                    "AND status IN ('assigned', 'en_route', 'arrived', 'in_service')",
                    workers,
                )
            }
            seen = await self.stores.redis.zmscore(
                self.stores.keys.presence(city_id), [str(w) for w in workers]
            )
            for worker_id, last in zip(workers, seen, strict=True):
                online = last is not None and now.timestamp() * 1000 - last <= (
                    self.params.live_max_age_s * 1000
                )
                if worker_id in held or not online:
                    continue
                # the first stop not done (or cancelled) is the next job
                order = next(
                    (
                        orders[o]
                        for o in due[worker_id]
                        if o in orders and orders[o].status not in TERMINAL
                    ),
                    None,
                )
                if order is None or order.status not in ("confirmed", "dispatching"):
                    continue
                if order.pinned or order.crew_size > 1:  # a crew is offered together (engine)
                    continue
                if order.merchant_id is not None and worker_id not in staff[order.merchant_id]:
                    continue  # planned before it was routed: the re-plan moves it to the team
                with contextlib.suppress(Conflict, DispatchError):
                    await service.act(
                        self.stores,
                        self.tracking,
                        order.id,
                        "assign",
                        SYSTEM,
                        worker_id=worker_id,
                        reason=f"day plan {day} v{version}",
                        expected_version=order.version,
                        data={"source": "day_plan", "plan_version": version},
                    )
                    released += 1
        return released

    # --- pushing ----------------------------------------------------------------------

    async def _push(self, previous: StoredPlan | None, stored: StoredPlan) -> None:
        """Send a ``plan`` message to every worker whose stops or times changed."""
        workers = {r.worker_id for r in stored.routes}
        if previous is not None:
            workers |= {r.worker_id for r in previous.routes}
        for w in sorted(workers):
            old = previous.route_of(w) if previous else None
            if not changed(old, stored.route_of(w)):
                continue
            view = await worker_plan(self.stores, stored, w, viewer=Caller("worker", w))
            try:
                await self.tracking.send_to_worker(w, {"type": "plan", **view.to_json()})
            except Exception:  # the plan is stored; the worker can read it over REST
                log.exception("could not push the plan to worker %s", w)


@dataclass
class Reservation:
    """What fitting one booking into a day plan decided (filled inside the transaction)."""

    prefer_worker_id: int | None = None  # recurring: the series' worker, if they can
    worker_id: int | None = None  # who the booking was fitted to
    workers: list[int] = field(default_factory=list)  # everyone who could have taken it
    crew: list[int] = field(default_factory=list)  # a crew order: the members it reserved
    refusal: Refusal | None = None
    pushes: list[tuple[StoredPlan | None, StoredPlan]] = field(default_factory=list)


def changed(old: PlannedRoute | None, new: PlannedRoute | None, *, tolerance_s: int = 60) -> bool:
    """True if a worker would notice: other stops, another order, or a time moved."""
    a = old.stops if old else []
    b = new.stops if new else []
    if [s.order_id for s in a] != [s.order_id for s in b]:
        return True
    return any(
        abs((x.start_at - y.start_at).total_seconds()) >= tolerance_s
        for x, y in zip(a, b, strict=True)
    )


def overnight_work(plan: StoredPlan | None, after: datetime) -> dict[int, tuple[int, datetime]]:
    """Worker → (order, departure) of their last stop in ``plan`` that ends after
    ``after`` (the next midnight): what the next day's plan is built around."""
    out: dict[int, tuple[int, datetime]] = {}
    for r in plan.routes if plan else []:
        late = [s for s in r.stops if s.departure_at > after]
        if late:
            last = max(late, key=lambda s: s.departure_at)
            out[r.worker_id] = (last.order_id, last.departure_at)
    return out


def _at(inputs: DayInputs, s: int) -> datetime:
    return plan_store.utc(inputs.epoch + s)


def order_job(inputs: DayInputs, order: Order, row: Any) -> DayJob:
    """The booking being considered, as a day job (order id 0 until it is stored)."""
    assert order.window_start is not None
    assert order.window_end is not None
    return DayJob(
        order_id=0,
        lat=order.lat,
        lng=order.lng,
        service_s=order.duration_min * 60,
        window=(
            int(order.window_start.timestamp()) - inputs.epoch,
            int(order.window_end.timestamp()) - inputs.epoch,
        ),
        skills=required_skills(row["required_skills"], row["required_certificates"]),
    )
