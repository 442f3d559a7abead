"""The dispatch engine: one per city at a time, ticking every few seconds.

Each process runs an engine loop; for every city it tries to hold a short Redis lease
(``SET NX PX``, renewed by the holder), so exactly one process ticks a given city and two
processes never double-dispatch. A tick:

1. times out pending offers (the order goes back to dispatching without that worker,
   for the offers' cooldown);
2. fails orders past their SLA or out of attempts, with the reason (the customer is told);
   takes back jobs whose worker went silent, or is predicted to miss the window, or
   alerts the dispatchers (active reassignment, ``dispatch/at_risk.py``);
3. releases planned scheduled jobs to their workers when it is time (day plans,
   ``dispatch/plans.py``), and gathers the open orders: instant ones (scheduled ones
   too, when their window comes near, only if day plans are switched off);
4. brings its copy of the city's available workers up to date from the geo set's change
   log (``tracking.geo_log``: only the new entries, not the whole set; rebuilt from the
   set when entries were lost) and its copy of workers' skills (``dispatch.worker_skills``:
   the profiles changed since its last read), builds an in-memory index over them, takes
   each order's nearest candidates holding the order's skills
   (docs/matching-index.md#skills), loads their state — with ``[matching] chain_s`` > 0 (batch only),
   also the workers whose job on site ends within it, from its address, the time left
   added to their ETA (chained orders, ``dispatch/chains.py``) — and asks
   the matcher (batch assignment, or the greedy baseline) — recording every decision
   with the candidates and their score terms;
5. sends offers (one worker in direct mode, the top few in grab mode; to a crew order,
   the crew ``matching.crew.pick_crew`` chose among its feasible candidates not taken by
   the tick's other orders: members arriving within ``crew_window_s`` of each other,
   earliest last arrival first, docs/dispatch.md#crews); to a crew order on offer whose
   member declined or timed out, a replacement arriving within ``crew_window_s`` of the
   members kept (``matching.crew.refill_crew``), or, if nobody fits, the round ends and
   the next tick forms a new crew.

An order routed to a merchant (``orders.merchant_id``) is dispatched within the merchant's
team: its candidates are the merchant's staff only (the nearest of them, within the same
radius). If none of them can take it for ``merchant_overflow_s`` after it was routed, or
its staff used up its ``[offers] max_attempts`` rounds of offers, the engine overflows it
to the platform (the merchant is cleared, its rounds start again, an ``overflow`` order
event says why) and the order is offered to every nearby worker; it fails only when
those cannot serve it either (their rounds, or the service time, run out).

Pinned orders are never moved. A paused city only has its offers timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from dispatch import at_risk, chains, offers, service, store
from dispatch.candidates import load_candidates, order_job, order_jobs
from dispatch.models import Order
from dispatch.offers import OfferParams
from dispatch.plans import DayPlans
from dispatch.publisher import Publisher
from dispatch.service import Caller
from dispatch.worker_rows import WorkerRows
from dispatch.worker_skills import WorkerSkills
from doorstep.outage import Outage
from doorstep.stores import STORE_ERRORS, Stores
from geo.coords import haversine_m
from geo.roadgraph import RoadGraph
from matching.assign import decide_batch, decide_greedy
from matching.crew import CrewPick, pick_crew, refill_crew
from matching.feasibility import chained_eta_s
from matching.index import CandidateIndex
from matching.model import Candidate, Decision, Job
from matching.params import MatchParams
from merchants import rules as merchant_rules
from merchants import store as merchant_store
from tracking import positions
from tracking.eta import DestinationCache, EtaParams, eta_many_jobs, straight_eta_s
from tracking.geo_log import AvailableWorkers

log = logging.getLogger("doorstep.dispatch.engine")
SYSTEM = Caller("system", None)

_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "end return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0"
)


@dataclass(frozen=True, slots=True)
class EngineParams:
    """How often the engine ticks and how far ahead scheduled work is dispatched (``[engine]``)."""

    enabled: bool = True  # run the loop in every server process (off: tick by hand, e.g. tests)
    tick_s: float = 2.0
    lease_ms: int = 6000
    batch_max: int = 500
    scheduled_ahead_s: int = 2 * 3600  # only when day plans are off ([plans] enabled = false)
    stale_reassign_s: int = 300
    # With day plans on: a scheduled order still without a worker this long before its
    # window opens (its planned worker never came online) is offered like an instant one.
    unreleased_fallback_s: int = 900
    # Active reassignment (dispatch/at_risk.py): this often, held jobs not yet on site are
    # judged by their ETA range and the worker's last fix; reassigned or alerted.
    risk_every_s: float = 30.0
    risk_stale_s: float = 180.0
    # An order routed to a merchant that none of its staff could take this long after it
    # was routed is handed to the platform's workers (overflow).
    merchant_overflow_s: int = 300

    def __post_init__(self) -> None:
        if self.tick_s <= 0 or self.lease_ms < self.tick_s * 1000 * 2 or self.batch_max < 1:
            raise ValueError("engine: tick_s > 0, lease_ms >= 2 ticks, batch_max >= 1")
        if self.unreleased_fallback_s < 0:
            raise ValueError("engine: unreleased_fallback_s >= 0")
        if self.risk_every_s < 0 or self.risk_stale_s <= 0:
            raise ValueError("engine: risk_every_s >= 0 (0: off), risk_stale_s > 0")
        if self.merchant_overflow_s < 0:
            raise ValueError("engine: merchant_overflow_s >= 0")


@dataclass
class TickReport:
    """What one tick did (for logs, tests and benchmarks)."""

    city_id: str
    expired: int = 0
    failed: int = 0
    open_orders: int = 0
    offered: int = 0
    unmatched: int = 0
    reassigned: int = 0
    released: int = 0
    at_risk: dict[str, int] = field(default_factory=dict)  # active reassignment: by action
    decisions: list[Decision] = field(default_factory=list)
    seconds: float = 0.0
    index_rebuilt: bool = False  # the available workers were read whole (else from the log)
    index_changes: int = 0  # workers changed by the log's new entries
    overflowed: int = 0  # merchants' orders handed to the platform (no staff could serve)
    replaced: int = 0  # crew orders whose missing member(s) were offered to another worker
    reformed: int = 0  # crew orders whose round ended: nobody fitted the missing seat(s)
    chained: int = 0  # offers to workers still on a job ending soon (chained orders)


class Engine:
    """The per-process engine loop."""

    def __init__(
        self,
        stores: Stores,
        tracking: Publisher,
        *,
        match: MatchParams | None = None,
        offer: OfferParams | None = None,
        engine: EngineParams | None = None,
        plans: DayPlans | None = None,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        self.stores = stores
        # With day plans on, scheduled orders are theirs: the engine releases planned
        # jobs to their workers and offers only instant orders.
        self.plans = plans if plans is not None and plans.params.enabled else None
        self.tracking = tracking
        self.match = match or MatchParams()
        self.offer = offer or OfferParams()
        self.params = engine or EngineParams()
        self._renew = stores.redis.register_script(_RENEW)
        self.available = AvailableWorkers(stores.redis, stores.keys)
        self.skills = WorkerSkills()  # every worker's skills, for skill-aware retrieval
        # the candidates' profiles, kept between ticks (dispatch/worker_rows.py)
        self.rows = WorkerRows()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.on_tick = on_tick  # told of every tick (the app counts them on /metrics)
        self.outage = Outage(log, "dispatch engine (PostgreSQL or Redis)")
        self._risk_checked: dict[str, datetime] = {}  # city → last active-reassignment check
        # Per city: each open order's reverse road search, kept while it waits (ticks
        # match it again at the same address).
        self._destinations: dict[str, DestinationCache] = {}

    def start(self) -> None:
        """Tick in the background."""
        self._task = asyncio.create_task(self._loop(), name="dispatch-engine")

    async def stop(self) -> None:
        """Stop ticking and let another process take the cities."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                cities = await self.stores.pool.fetch(
                    "SELECT id FROM cities WHERE active ORDER BY id"
                )
                for row in cities:
                    if await self.lease(row["id"]):
                        await self.tick(row["id"], datetime.now(UTC))
            except STORE_ERRORS as e:  # an outage: one line, then a count (doorstep/outage.py)
                self.outage.failed(e, time.monotonic())
            except Exception:  # a bad tick must not stop dispatch; it is logged with its trace
                log.exception("dispatch tick failed")
            else:
                self.outage.succeeded(time.monotonic())
            await asyncio.sleep(max(0.0, self.params.tick_s - (time.monotonic() - started)))

    async def lease(self, city_id: str) -> bool:
        """Hold (or renew) the city's engine lease; True if this process holds it."""
        key = self.stores.keys.city(city_id, "engine-lease")
        got = await self._renew(keys=[key], args=[self.tracking.process_id, self.params.lease_ms])
        return bool(got)

    async def tick(self, city_id: str, now: datetime) -> TickReport:
        """One round of dispatch for a city (the caller holds the lease)."""
        t0 = time.perf_counter()
        report = TickReport(city_id)
        report.expired = await offers.expire_due(
            self.stores, self.tracking, city_id, now, cooldown_s=self.offer.cooldown_s
        )
        paused = await self.stores.pool.fetchval(
            "SELECT dispatch_paused FROM cities WHERE id = $1", city_id
        )
        if not paused:
            await self._recover_orphaned_offers(city_id)
            report.failed, report.overflowed = await self._fail_overdue(city_id, now)
            report.reassigned = await self._reassign_vanished(city_id, now)
            report.at_risk = await self._check_risk(city_id, now)
            if self.plans is not None:
                await self.plans.ensure_planned(city_id, now)
                report.released = await self.plans.release_due(city_id, now)
            orders = await self._open_orders(city_id, now)
            report.open_orders = len(orders)
            short = await offers.short_crews(self.stores.pool, city_id)
            if short:  # crew orders on offer with a seat to fill
                found = await store.by_ids(self.stores.pool, sorted(short))
                orders += [found[o] for o in sorted(short) if o in found]
            # A tick may outlast the lease: check before sending anything.
            if orders and await self.lease(city_id):
                await self._dispatch(city_id, orders, now, report, t0, short)
        self.ticks += 1
        report.seconds = time.perf_counter() - t0
        if self.on_tick is not None:
            self.on_tick(report)
        return report

    async def _open_orders(self, city_id: str, now: datetime) -> list[Order]:
        return await store.open_orders(
            self.stores.pool,
            city_id,
            due_before=now + timedelta(seconds=self.params.scheduled_ahead_s),
            limit=self.params.batch_max,
            instant_only=self.plans is not None,
            unreleased_before=now + timedelta(seconds=self.params.unreleased_fallback_s),
        )

    async def _check_risk(self, city_id: str, now: datetime) -> dict[str, int]:
        """Active reassignment (dispatch/at_risk.py), at most every ``risk_every_s``."""
        last = self._risk_checked.get(city_id)
        every = self.params.risk_every_s
        if not every or (last is not None and (now - last).total_seconds() < every):
            return {}
        self._risk_checked[city_id] = now
        params = at_risk.RiskParams(
            self.params.risk_stale_s, self.match.instant_sla_s, self.offer.cooldown_s
        )
        return await at_risk.check(self.stores, self.tracking, city_id, now, params)

    async def _recover_orphaned_offers(self, city_id: str) -> None:
        """Orders left ``offered`` with no pending offer (a failed accept) go back to dispatch."""
        rows = await self.stores.pool.fetch(
            "SELECT id FROM orders o WHERE city_id = $1 AND status = 'offered' AND NOT EXISTS "
            "(SELECT 1 FROM offers f WHERE f.order_id = o.id AND f.status = 'pending')",
            city_id,
        )
        for r in rows:
            await offers.back_to_dispatch(self.stores, self.tracking, r["id"], "no offer left open")

    async def _fail_overdue(self, city_id: str, now: datetime) -> tuple[int, int]:
        """Orders nobody took in time, or after too many rounds of offers: failed, except a
        merchant's order whose staff used up its rounds in time, which overflows to the
        platform's workers (they get rounds of their own). (failed, overflowed)."""
        rows = await self.stores.pool.fetch(
            "SELECT id, dispatch_attempts, merchant_id, ((window_start IS NULL AND created_at < $3) "
            "OR (window_end IS NOT NULL AND window_end < $4)) AS late FROM orders WHERE city_id = $1 "
            "AND status IN ('confirmed', 'dispatching') AND NOT pinned AND (dispatch_attempts >= $2 OR "
            "(window_start IS NULL AND created_at < $3) OR (window_end IS NOT NULL AND window_end < $4))",
            city_id,
            self.offer.max_attempts,
            now - timedelta(seconds=self.match.instant_sla_s),
            now,
        )
        failed = overflowed = 0
        for r in rows:
            attempts = r["dispatch_attempts"]
            if r["merchant_id"] is not None and not r["late"]:
                why = (
                    f"none of merchant {r['merchant_id']}'s staff took it after {attempts} "
                    "rounds of offers: offered to the platform's workers"
                )
                overflowed += await self._to_platform(r["id"], why, {"attempts": attempts})
                continue
            why = (
                f"no worker took it after {attempts} rounds of offers"
                if attempts >= self.offer.max_attempts
                else "no worker could be found within the service time"
            )
            with contextlib.suppress(Exception):
                await service.act(self.stores, self.tracking, r["id"], "fail", SYSTEM, reason=why)
            failed += 1
        if overflowed:
            log.info("overflowed %d merchant orders out of rounds to the platform", overflowed)
        return failed, overflowed

    async def _reassign_vanished(self, city_id: str, now: datetime) -> int:
        """Assigned orders whose worker (any member of a crew) went silent before setting
        off go back to dispatch."""
        rows = await self.stores.pool.fetch(
            "SELECT o.id, coalesce(c.worker_id, o.worker_id) AS worker_id FROM orders o "
            "LEFT JOIN order_crew c ON c.order_id = o.id AND o.crew_size > 1 "
            "AND c.released_at IS NULL WHERE o.city_id = $1 AND o.status = 'assigned' "
            "AND NOT o.pinned AND o.updated_at < $2 ORDER BY o.id, c.seat",
            city_id,
            now - timedelta(seconds=self.params.stale_reassign_s),
        )
        moved = 0
        if not rows:
            return 0
        cutoff_ms = (now.timestamp() - self.params.stale_reassign_s) * 1000
        # The hash's 'seen' survives the stale sweep and disconnects (presence does not).
        live = await positions.read_many(
            self.stores.redis, self.stores.keys, city_id, list({r["worker_id"] for r in rows})
        )
        for r in rows:
            state = live.get(r["worker_id"])
            last = state.seen_ms if state is not None else None
            if last is None or last < cutoff_ms:
                with contextlib.suppress(Exception):
                    await service.act(
                        self.stores,
                        self.tracking,
                        r["id"],
                        "unassign",
                        SYSTEM,
                        reason=f"worker {r['worker_id']} went silent before setting off",
                    )
                    async with self.stores.pool.acquire() as conn, conn.transaction():
                        await offers.exclude(
                            conn,
                            r["id"],
                            r["worker_id"],
                            reason="went silent",
                            actor="system",
                            actor_id=None,
                        )
                    moved += 1
        return moved

    async def available_workers(self, city_id: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Every available worker of the city with their position, from this process's
        copy of the city's geo set (``tracking.geo_log``: the log's new entries are read,
        not the whole set; the copy is rebuilt from the set when the log cannot be trusted)."""
        live, _ = await self.available.refresh(city_id)
        ids, lats, lngs = live.positions()
        return [int(w) for w in ids], lats, lngs

    async def _offer_holders(self, city_id: str) -> np.ndarray:
        """Workers of the city holding an open offer, or waiting for their crew to accept
        (they are not offered another job)."""
        rows = await self.stores.pool.fetch(
            "SELECT DISTINCT f.worker_id FROM offers f JOIN orders o ON o.id = f.order_id "
            "WHERE (f.status = 'pending' OR (f.mode = 'crew' AND f.status = 'accepted' "
            "AND o.status = 'offered')) AND o.city_id = $1",
            city_id,
        )
        return np.array(sorted(r["worker_id"] for r in rows), dtype=np.int64)

    async def _dispatch(
        self,
        city_id: str,
        orders: Sequence[Order],
        now: datetime,
        report: TickReport,
        t0: float,
        short: dict[int, dict[int, float]] | None = None,
    ) -> None:
        short = short or {}
        live, refreshed = await self.available.refresh(city_id)
        report.index_rebuilt = refreshed.rebuilt
        report.index_changes = refreshed.changes
        await self.skills.refresh(self.stores.pool)
        # A worker with an offer still open is not offered another job.
        holders = await self._offer_holders(city_id)
        # Chained orders (dispatch/chains.py): workers whose job ends soon, batch only.
        on_site: dict[int, chains.OnSite] = {}
        if self.match.chain_s > 0 and self.match.policy == "batch":
            on_site = await chains.ending_soon(
                self.stores.pool, city_id, now, self.match.chain_s, exclude=holders.tolist()
            )
        exclude = np.union1d(holders, np.array(sorted(on_site), dtype=np.int64))
        index = live.index(exclude=exclude, skills=self.skills.aligned(live))
        jobs = await order_jobs(self.stores, orders, now=now, params=self.match)
        if not len(index) and not on_site:
            for order in orders:
                if order.id in short:
                    await self._reform(order, "no worker is free to replace the missing member")
                    report.reformed += 1
            report.unmatched = len([o for o in orders if o.id not in short])
            report.overflowed += await self._overflow([o for o in orders if o.id not in short], now)
            return
        lats, lngs = np.array([j.lat for j in jobs]), np.array([j.lng for j in jobs])
        required = np.array([self.skills.required(j.required_skills) for j in jobs], np.uint64)
        if len(index):
            found_rows, _ = index.nearest_many(
                lats, lngs, self.match.k, self.match.radius_m, required
            )
            per_job = [row[row >= 0] for row in found_rows]
        else:
            per_job = [np.empty(0, dtype=np.int64) for _ in jobs]
        if any(o.merchant_id is not None for o in orders):
            per_job = await self._within_teams(orders, jobs, index, per_job)
        ids = index.worker_ids
        union = np.unique(np.concatenate(per_job)) if per_job else np.empty(0, dtype=np.int64)
        positions = {
            int(ids[p]): (float(index.lat[p]), float(index.lng[p])) for p in union.tolist()
        }
        chained = self._chained_near(orders, lats, lngs, required, on_site)
        positions.update({w: (on_site[w].lat, on_site[w].lng) for row in chained for w in row})
        cands = await load_candidates(
            self.stores,
            city_id,
            positions,
            now=now,
            customer_ids=[j.customer_id for j in jobs],
            chains={w: s.chain for w, s in on_site.items()},
            rows=self.rows,
        )
        graph = await self.tracking.eta.graph_for(city_id)
        eta_params = self.tracking.eta_params
        candidate_lists = [
            [cands[w] for w in [*ids[found].tolist(), *more] if w in cands]
            for found, more in zip(per_job, chained, strict=True)
        ]
        etas = self._etas(jobs, candidate_lists, graph, eta_params, self._destinations_of(city_id))
        now_s = int(now.timestamp())
        if on_site:  # a chained candidate sets off when their job ends: the time left first
            for row in etas:
                for w in row.keys() & on_site.keys():
                    row[w] = chained_eta_s(cands[w], row[w], now_s)
        decide = decide_batch if self.match.policy == "batch" else decide_greedy
        decisions = decide(jobs, candidate_lists, etas, now_s, self.match)
        decisions, crew_of, refills = self._crews(orders, decisions, short)
        report.decisions = list(decisions)
        await self._record(decisions)
        unserved: list[Order] = []
        # Each order's ETAs by position (``jobs.index(job)`` compared Jobs field by field:
        # ~25 ms a tick at 500 orders).
        for order, job, decision, job_etas in zip(orders, jobs, decisions, etas, strict=True):
            if order.id in short:
                sent = now + timedelta(seconds=time.perf_counter() - t0)
                refill = refills.get(order.id)
                made = []
                if refill:
                    made = await offers.add_to_crew(
                        self.stores,
                        self.tracking,
                        order,
                        [(w, job_etas.get(w), None) for w in refill],
                        params=self.offer,
                        now=sent,
                    )
                if made:
                    report.replaced += 1
                else:
                    await self._reform(order, decision.reason or "the replacement was not offered")
                    report.reformed += 1
                continue
            picks = self._picks(job, decision, job_etas)
            mode = self.offer.mode
            if order.crew_size > 1:
                crew = crew_of.get(order.id)
                picks = [(w, job_etas.get(w), None) for w in crew.worker_ids] if crew else []
                mode = "crew"
            if not picks:
                report.unmatched += 1
                unserved.append(order)
                continue
            # An offer's window starts when it is sent, not when the tick started: a tick
            # that took longer than the window must not send offers already expired.
            sent = now + timedelta(seconds=time.perf_counter() - t0)
            made = await offers.make_offers(
                self.stores,
                self.tracking,
                order,
                picks,
                mode=mode,
                params=self.offer,
                now=sent,
                after={w: on_site[w].chain.order_id for w, _, _ in picks if w in on_site},
            )
            report.offered += bool(made)
            report.chained += sum(1 for o in made if o.after_order_id is not None)
        report.overflowed += await self._overflow(unserved, now)

    def _chained_near(
        self,
        orders: Sequence[Order],
        lats: np.ndarray,
        lngs: np.ndarray,
        required: np.ndarray,
        on_site: dict[int, chains.OnSite],
    ) -> list[list[int]]:
        """Per order, the workers ending a job soon (``on_site``) nearest to it: the ``k``
        nearest within the radius holding the order's skills (``required``: its mask), by
        the job's address. Not for crew orders (a crew is offered together) nor merchants'
        orders (their own staff)."""
        if not on_site:
            return [[] for _ in orders]
        workers = np.array(sorted(on_site), dtype=np.int64)
        index = CandidateIndex.build(
            workers,
            np.array([on_site[w].lat for w in workers.tolist()]),
            np.array([on_site[w].lng for w in workers.tolist()]),
            self.skills.masks.masks_for(workers),
        )
        rows, _ = index.nearest_many(lats, lngs, self.match.k, self.match.radius_m, required)
        return [
            []
            if order.crew_size > 1 or order.merchant_id is not None
            else index.worker_ids[row[row >= 0]].tolist()
            for order, row in zip(orders, rows, strict=True)
        ]

    async def _reform(self, order: Order, why: str) -> None:
        """End a short crew's round: the next tick forms a new crew."""
        reason = f"crew-mate not replaced ({why}): crew re-formed"
        await offers.release_round(self.stores, self.tracking, order.id, reason)
        await offers.back_to_dispatch(self.stores, self.tracking, order.id, reason)

    def _crews(
        self,
        orders: Sequence[Order],
        decisions: Sequence[Decision],
        short: dict[int, dict[int, float]],
    ) -> tuple[list[Decision], dict[int, CrewPick], dict[int, tuple[int, ...]]]:
        """The crew of each crew order (oldest first), among its feasible candidates not
        taken by the tick's one-worker orders nor an earlier crew; its decision names the
        lead (earliest arrival), or why no crew could be formed. A crew order with a seat
        open (``short``: the members kept and their ETAs) gets replacements instead."""
        taken = {
            d.worker_id
            for o, d in zip(orders, decisions, strict=True)
            if o.crew_size == 1 and d.worker_id is not None
        }
        out = list(decisions)
        picked: dict[int, CrewPick] = {}
        refills: dict[int, tuple[int, ...]] = {}
        for i, (order, decision) in enumerate(zip(orders, decisions, strict=True)):
            if order.crew_size == 1:
                continue
            kept = short.get(order.id, {})
            options = [
                (c.worker_id, c.eta_s, c.breakdown.total)
                for c in decision.candidates
                if c.feasible
                and c.breakdown is not None
                and c.eta_s is not None
                and c.worker_id not in taken
                and c.worker_id not in kept
            ]
            if kept:
                need = order.crew_size - len(kept)
                refill = refill_crew(list(kept.values()), options, need, self.match.crew_window_s)
                if refill is None:
                    why = (
                        f"no worker among {len(options)} free feasible one(s) arrives within "
                        f"{self.match.crew_window_s:.0f} s of the crew kept "
                        f"({', '.join(map(str, kept))})"
                    )
                    out[i] = replace(decision, worker_id=None, reason=why)
                    continue
                taken.update(refill)
                refills[order.id] = refill
                out[i] = replace(decision, worker_id=refill[0], reason=None)
                continue
            crew = pick_crew(options, order.crew_size, self.match.crew_window_s)
            if crew is None:
                why = (
                    f"no crew of {order.crew_size} arriving within "
                    f"{self.match.crew_window_s:.0f} s of each other among "
                    f"{len(options)} free feasible worker(s)"
                )
                out[i] = replace(decision, worker_id=None, reason=why)
                continue
            taken.update(crew.worker_ids)
            picked[order.id] = crew
            out[i] = replace(decision, worker_id=crew.worker_ids[0], reason=None)
        return out, picked, refills

    async def _within_teams(
        self,
        orders: Sequence[Order],
        jobs: Sequence[Job],
        index: CandidateIndex,
        per_job: list[np.ndarray],
    ) -> list[np.ndarray]:
        """Candidates (positions in ``index``) with each merchant's order limited to the
        merchant's staff: the nearest ``k`` of them within the radius holding the job's
        skills, whoever is nearer."""
        merchants = sorted({o.merchant_id for o in orders if o.merchant_id is not None})
        staff = await merchant_store.staff_of(self.stores.pool, merchants)
        out = list(per_job)
        for i, (order, job) in enumerate(zip(orders, jobs, strict=True)):
            if order.merchant_id is not None:
                out[i] = self._staff_near(index, staff.get(order.merchant_id, []), job)
        return out

    def _staff_near(self, index: CandidateIndex, staff: list[int], job: Job) -> np.ndarray:
        """Positions in ``index`` of the nearest of ``staff`` to the job holding its skills."""
        mine = np.flatnonzero(np.isin(index.worker_ids, np.array(staff, dtype=np.int64)))
        if not len(mine):
            return np.empty(0, dtype=np.int64)
        team = index.subset(mine)
        required = self.skills.required(job.required_skills)
        found, _ = team.nearest(job.lat, job.lng, self.match.k, self.match.radius_m, required)
        return np.asarray(mine[found], dtype=np.int64)

    async def _overflow(self, unserved: Sequence[Order], now: datetime) -> int:
        """Merchants' orders none of whose staff could take them for ``merchant_overflow_s``
        go to the platform's workers: the merchant is cleared (the next tick offers them to
        everyone), with an ``overflow`` order event saying why."""
        ids = [o.id for o in unserved if o.merchant_id is not None]
        if not ids:
            return 0
        since = await merchant_store.routed_since(self.stores.pool, ids)
        after = self.params.merchant_overflow_s
        moved = 0
        for order_id, routed_at in since.items():
            if not merchant_rules.overflow_due(routed_at, now, after):
                continue
            moved += await self._to_platform(
                order_id,
                f"none of merchant {{merchant}}'s staff could take it within {after} s: "
                "offered to the platform's workers",
                {},
            )
        if moved:
            log.info("overflowed %d merchant orders to the platform", moved)
        return moved

    async def _to_platform(self, order_id: int, why: str, data: dict[str, object]) -> int:
        """Hand a merchant's order still waiting for a worker to the platform's workers:
        the merchant is cleared and its rounds of offers start again, with an ``overflow``
        order event giving ``why`` (``{merchant}`` is the merchant's id). 1 if moved."""
        async with self.stores.pool.acquire() as conn, conn.transaction():
            locked = await store.get(conn, order_id, lock=True)
            if (
                locked is None
                or locked.merchant_id is None
                or locked.worker_id is not None
                or locked.status not in merchant_rules.ROUTABLE
            ):
                return 0
            await merchant_store.route_order(
                conn,
                locked,
                None,
                action="overflow",
                actor="system",
                actor_id=None,
                reason=why.replace("{merchant}", str(locked.merchant_id)),
                data=data,
            )
        return 1

    async def preview(self, order: Order, now: datetime) -> Decision:
        """What a tick would decide for this order alone, now, without offering or recording
        anything: the nearby available workers (retrieved as a tick does, including any
        holding an open offer; with ``chain_s`` on, the workers whose job on site ends
        soon too) with feasibility, ETA and every score term."""
        job = await order_job(self.stores, order, now=now, params=self.match)
        on_site: dict[int, chains.OnSite] = {}
        if self.match.chain_s > 0 and self.match.policy == "batch":  # as a tick does
            on_site = await chains.ending_soon(
                self.stores.pool, order.city_id, now, self.match.chain_s
            )
        live, _ = await self.available.refresh(order.city_id)
        await self.skills.refresh(self.stores.pool)
        index = live.index(
            exclude=np.array(sorted(on_site), dtype=np.int64), skills=self.skills.aligned(live)
        )
        candidates: list[Candidate] = []
        found = np.empty(0, dtype=np.int64)
        required = self.skills.required(job.required_skills)
        if len(index):
            found, _ = index.nearest(job.lat, job.lng, self.match.k, self.match.radius_m, required)
            if order.merchant_id is not None:  # within the merchant's team, as a tick does
                staff = await merchant_store.staff_of(self.stores.pool, [order.merchant_id])
                found = self._staff_near(index, staff[order.merchant_id], job)
        ids = index.worker_ids
        positions = {int(ids[i]): (float(index.lat[i]), float(index.lng[i])) for i in found}
        (chained,) = self._chained_near(
            [order],
            np.array([job.lat]),
            np.array([job.lng]),
            np.array([required], dtype=np.uint64),
            on_site,
        )
        positions.update({w: (on_site[w].lat, on_site[w].lng) for w in chained})
        if positions:
            cands = await load_candidates(
                self.stores,
                order.city_id,
                positions,
                now=now,
                customer_ids=[job.customer_id],
                chains={w: on_site[w].chain for w in chained},
            )
            candidates = [cands[w] for w in [*ids[found].tolist(), *chained] if w in cands]
        graph = await self.tracking.eta.graph_for(order.city_id)
        etas = self._etas(
            [job],
            [candidates],
            graph,
            self.tracking.eta_params,
            self._destinations_of(order.city_id),
        )
        now_s = int(now.timestamp())
        for c in candidates:
            if c.chain is not None and c.worker_id in etas[0]:
                etas[0][c.worker_id] = chained_eta_s(c, etas[0][c.worker_id], now_s)
        decide = decide_batch if self.match.policy == "batch" else decide_greedy
        return decide([job], [candidates], etas, now_s, self.match)[0]

    def _destinations_of(self, city_id: str) -> DestinationCache:
        """The city's kept reverse road searches, one per destination."""
        cache = self._destinations.get(city_id)
        if cache is None:
            cache = self._destinations[city_id] = DestinationCache()
        return cache

    @staticmethod
    def _etas(
        jobs: Sequence[Job],
        candidate_lists: Sequence[Sequence[Candidate]],
        graph: RoadGraph | None,
        params: EtaParams,
        destinations: DestinationCache,
    ) -> list[dict[int, float]]:
        """Road ETA of every (job, candidate) pair: candidates are snapped to the graph once
        per tick, then each job costs an array lookup and one reverse shortest-path search,
        run once per destination and kept between ticks (``destinations``)."""
        pool = {c.worker_id: c for cl in candidate_lists for c in cl}
        if not pool:
            return [{} for _ in jobs]
        workers = list(pool)
        lat = np.array([pool[w].lat for w in workers])
        lng = np.array([pool[w].lng for w in workers])
        column = {w: i for i, w in enumerate(workers)}
        if graph is not None:
            # Every job's candidates in one pass (eta_many_jobs: eta_many's floats, job by
            # job), each job's reverse road search kept between ticks by ``destinations``.
            snapped = graph.nearest_nodes(lat, lng)
            ids = [[c.worker_id for c in cl] for cl in candidate_lists]
            pos = np.array([column[w] for row in ids for w in row], dtype=np.int64)
            served = [(job, len(row)) for job, row in zip(jobs, ids, strict=True) if row]
            secs_all = eta_many_jobs(
                [destinations.get(graph, job.lat, job.lng) for job, _ in served],
                [n for _, n in served],
                snapped[0][pos],
                snapped[1][pos],
                lat[pos],
                lng[pos],
                params,
            ).tolist()
            rows: list[dict[int, float]] = []
            start = 0
            for row in ids:
                end = start + len(row)
                rows.append(dict(zip(row, secs_all[start:end], strict=True)))
                start = end
            return rows
        return [
            {
                c.worker_id: straight_eta_s(
                    haversine_m(
                        float(lat[column[c.worker_id]]),
                        float(lng[column[c.worker_id]]),
                        job.lat,
                        job.lng,
                    ),
                    params,
                )
                for c in cl
            }
            for job, cl in zip(jobs, candidate_lists, strict=True)
        ]

    def _picks(
        self, job: Job, decision: Decision, etas: dict[int, float]
    ) -> list[tuple[int, float | None, float | None]]:
        """Whom to offer: the chosen worker, or in grab mode the best few feasible ones."""
        if decision.worker_id is None:
            return []
        chosen = [decision.worker_id]
        if self.offer.mode == "grab":
            ranked = sorted(
                (c for c in decision.candidates if c.feasible and c.breakdown is not None),
                key=lambda c: (c.breakdown.total if c.breakdown else 0.0, c.worker_id),
            )
            chosen = [decision.worker_id] + [
                c.worker_id for c in ranked if c.worker_id != decision.worker_id
            ]
            chosen = chosen[: self.offer.grab_candidates]
        return [(w, etas.get(w), None) for w in chosen]

    async def _record(self, decisions: Sequence[Decision]) -> None:
        """Keep every decision with its candidates and score terms (the "why", replayable).

        The JSON goes to PostgreSQL as text, cast to jsonb there: parsing it into Python
        objects for the pool's jsonb codec to serialise again cost ~300 ms of CPU for a
        tick of 500 decisions × 24 candidates (measured: 378 against 73 ms of client CPU,
        with ``to_json``), and the stored jsonb is the same."""
        await self.stores.pool.executemany(
            "INSERT INTO dispatch_decisions (order_id, policy, worker_id, decision) "
            "VALUES ($1, $2, $3, $4::text::jsonb)",
            [(d.order_id, self.match.policy, d.worker_id, d.to_json().decode()) for d in decisions],
        )
