"""Simulated phones: workers on the road and customers watching their orders.

They use only what a real app has: the REST API, the worker socket, the order socket and
share links (docs/protocol.md); a customer pays an order awaiting payment as the app does,
with the suggested coupon, on the WeChat Pay sandbox's pay page. A worker's phone keeps recording fixes while its
connection is down and uploads the backlog after the ``hello`` says where to resume; a
customer hands the start code to the worker at the door, as people do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from simulations.client import Api, ApiError, Session
from simulations.demand import Booking, WorkerPlan
from simulations.motion import GpsNoise, MotionParams, Router, Trip, plan_trip
from simulations.scenario import Scenario

log = logging.getLogger("simulations")

TERMINAL = frozenset({"completed", "cancelled", "failed"})
BEFORE_ARRIVAL = frozenset({"confirmed", "dispatching", "offered", "assigned", "en_route"})
MAX_FRAME_FIXES = 500
MAX_BACKLOG = 20_000
REJECT_REASONS = ("太远了 too far", "正在休息 on a break", "接不了这个活 not my kind of job")
NETWORK_ERRORS = (ConnectionClosed, InvalidHandshake, OSError, TimeoutError)


@dataclass
class OrderWatch:
    """What the simulator knows of one order it booked."""

    booking: Booking
    order_id: int
    customer: Session
    booked_at: float  # world time
    start_code: str
    crew_size: int = 1
    status: str = "confirmed"
    eta_at: float | None = None
    eta_p50_s: float | None = None
    eta_p90_s: float | None = None
    cancelled_by_customer: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class World:
    """What the agents of one run share."""

    api: Api
    scenario: Scenario
    router: Router
    tag: str  # this run's tag (idempotency keys)
    t0: float = field(default_factory=time.time)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    booking_closed: asyncio.Event = field(default_factory=asyncio.Event)
    watches: dict[int, OrderWatch] = field(default_factory=dict)
    workers: dict[int, WorkerAgent] = field(default_factory=dict)
    acks: list[tuple[float, float]] = field(default_factory=list)  # (world time, ms)
    lags: list[tuple[float, float]] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    socket_errors: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    fixes_sent: int = 0
    fixes_acked: int = 0
    open_watchers: int = 0  # order sockets open now

    def now(self) -> float:
        """Wall seconds since the run started."""
        return time.time() - self.t0

    async def sleep_until(self, t: float) -> bool:
        """Sleep until world time ``t``; False if the run is stopping first."""
        delay = t - self.now()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
        return not self.stopping.is_set()

    def problem(self, text: str) -> None:
        """Remember something unexpected (the first 200 go into the report)."""
        self.counts["problems"] += 1
        if len(self.problems) < 200:
            self.problems.append(f"{self.now():.1f}s {text}")
        log.debug(text)


def _uniform(rng: np.random.Generator, span: list[float]) -> float:
    return float(rng.uniform(span[0], span[1])) if span[1] > span[0] else float(span[0])


class WorkerAgent:
    """One worker and their phone."""

    def __init__(
        self, world: World, plan: WorkerPlan, session: Session, worker_id: int, *, gps: bool = True
    ) -> None:
        self.world = world
        self.plan = plan
        self.session = session
        self.id = worker_id
        spec = world.scenario.workers
        streams = np.random.SeedSequence(plan.seed).spawn(3)
        self.rng = np.random.default_rng(streams[0])
        self.trip_rng = np.random.default_rng(streams[1])
        self.noise = GpsNoise(np.random.default_rng(streams[2]))
        self.motion = MotionParams(
            spec.speed_factor,
            spec.speed_sd,
            spec.stop_share,
            (spec.stop_s[0], spec.stop_s[1]),
            spec.walk_mps,
        )
        self.gps = gps
        self.pos = (plan.start_lat, plan.start_lng)
        self.trip: Trip | None = None
        self.trip_t0 = 0.0
        self.ws: ClientConnection | None = None
        self.want_online = False
        self.offline_until = 0.0
        self.ending = False
        self.seq = 0
        self.pending: list[dict[str, Any]] = []
        self.sent_upto = 0
        self.hold_until = 0.0  # monotonic: send no fixes before (the server said wait)
        self.inflight: dict[int, tuple[float, int]] = {}  # last seq of a frame -> (sent, fixes)
        self.sent_ms: dict[int, float] = {}  # seq -> wall ms when last sent (fan-out lag)
        self.job_id: int | None = None
        self.job_task: asyncio.Task[None] | None = None
        # A chained job (接力单, docs/dispatch.md#chained-orders) accepted while on
        # ``job_id``: set off for it only once that one is done.
        self.next_id: int | None = None
        self.free = asyncio.Event()  # set while the worker holds no job
        self.free.set()
        self.arrived = asyncio.Event()
        self.answers: dict[int, asyncio.Task[None]] = {}
        self.first_connect = True
        # what the report needs
        self.shifts: list[tuple[float, float]] = []
        self.holding: list[tuple[float, float]] = []
        self.km = 0.0
        self.completed = 0
        self.earned = 0
        self.offers: Counter[str] = Counter()
        self.state = "off"  # off | idle | busy (for the progress line and time series)
        self._tasks: list[asyncio.Task[None]] = []

    # --- the day ---------------------------------------------------------------------

    async def run(self) -> None:
        """Work the planned shifts; lose the connection when planned."""
        drops = asyncio.create_task(self._drops(), name=f"drops-{self.id}")
        try:
            for on, off in self.plan.shifts:
                if not await self.world.sleep_until(on):
                    break
                await self.shift(off)
        finally:
            drops.cancel()
            await self.stop()

    async def shift(self, off: float) -> None:
        """One shift: online and available until ``off``, then finish the job and leave."""
        start = self.world.now()
        self.ending = False
        self.want_online = True
        self.state = "idle" if self.job_id is None else "busy"
        link = asyncio.create_task(self._link(), name=f"link-{self.id}")
        gps = asyncio.create_task(self._gps(), name=f"gps-{self.id}") if self.gps else None
        self._tasks = [t for t in (link, gps) if t is not None]
        try:
            await self.world.sleep_until(off)
            self.ending = True
            if self.job_task is not None:
                stop = asyncio.create_task(self.world.stopping.wait())
                free = asyncio.create_task(self.free.wait())
                await asyncio.wait({stop, free}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                free.cancel()
        finally:
            await self._leave()
            self.shifts.append((start, self.world.now()))

    async def _leave(self) -> None:
        """Off shift: say unavailable, close the socket, stop the GPS."""
        self.want_online = False
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(*NETWORK_ERRORS):
                await ws.send(orjson.dumps({"type": "state", "state": "unavailable"}).decode())
                await ws.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        self.ws = None
        self.state = "off"

    async def stop(self) -> None:
        """End of the run: drop everything."""
        self.next_id = None  # not taken up when the job in hand is cancelled below
        if self.job_task is not None:
            self.job_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.job_task
        for t in list(self.answers.values()):
            t.cancel()
        if self.want_online or self._tasks:
            await self._leave()

    async def _drops(self) -> None:
        for start, length in self.plan.disconnects:
            if not await self.world.sleep_until(start):
                return
            ws = self.ws
            if ws is None or not self.want_online:
                continue
            self.offline_until = self.world.now() + length
            self.world.counts["disconnects"] += 1
            ws.transport.abort()  # the network is gone: no close frame

    # --- the connection --------------------------------------------------------------

    async def _link(self) -> None:
        """Stay connected while on shift: connect, resume, read; reconnect after losses."""
        while self.want_online:
            wait = self.offline_until - self.world.now()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                ws = await self.world.api.connect("/v1/ws/worker", self.session)
            except (InvalidStatus, *NETWORK_ERRORS, ApiError) as e:
                self.world.problem(f"worker {self.id}: connect failed: {e!r}")
                await asyncio.sleep(2.0)
                continue
            try:
                hello = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if hello.get("type") != "hello":
                    self.world.problem(f"worker {self.id}: first frame {hello}")
                    await ws.close()
                    await asyncio.sleep(2.0)
                    continue
                self._resume(int(hello["resume_seq"]))
                self.ws = ws
                if not self.first_connect:
                    self.world.counts["reconnects"] += 1
                self.world.counts["connects"] += 1
                state = "unavailable" if self.ending else "available"
                await ws.send(orjson.dumps({"type": "state", "state": state}).decode())
                await self._flush()
                if self.first_connect:
                    self.first_connect = False
                    await self._resume_job()
                async for raw in ws:
                    await self._on_message(orjson.loads(raw))
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd is not None else None
                self.world.counts[f"worker_socket_closed:{code}"] += 1
                if code == 4001:
                    self.world.problem(f"worker {self.id}: replaced by another connection")
                    self.want_online = False
            except (OSError, TimeoutError) as e:
                self.world.problem(f"worker {self.id}: socket error {e!r}")
            finally:
                self.ws = None
                self.inflight.clear()
            if self.want_online and self.offline_until <= self.world.now():
                await asyncio.sleep(1.0)  # the server closed it: back off a little

    def _resume(self, resume_seq: int) -> None:
        """After ``hello``: drop what the server has, resend the rest from there."""
        self.pending = [f for f in self.pending if f["seq"] > resume_seq]
        self.sent_upto = resume_seq
        self.seq = max(self.seq, resume_seq)

    async def _resume_job(self) -> None:
        """A job left from before this run (the app shows it on start): carry on with it."""
        if self.job_id is not None:
            return
        try:
            orders = await self.world.api.call("GET", "/v1/orders?limit=5", session=self.session)
        except ApiError as e:
            self.world.problem(f"worker {self.id}: listing jobs failed: {e}")
            return
        # With a chained job two are held: the one furthest along first, the other next.
        steps = ("assigned", "en_route", "arrived", "in_service")
        held = sorted(
            (o for o in orders if o["status"] in steps),
            key=lambda o: (-steps.index(o["status"]), int(o["id"])),
        )
        if held:
            self.next_id = int(held[1]["id"]) if len(held) > 1 else None
            self._start_job(int(held[0]["id"]))

    async def _flush(self) -> None:
        """Send every recorded fix the server has not been sent since the last resume."""
        ws = self.ws
        if ws is None:
            return
        if time.monotonic() < self.hold_until:  # the server asked us to wait
            return
        todo = [f for f in self.pending if f["seq"] > self.sent_upto]
        now_ms = time.time() * 1000
        for i in range(0, len(todo), MAX_FRAME_FIXES):
            chunk = todo[i : i + MAX_FRAME_FIXES]
            frame = {"type": "fixes", "fixes": chunk}
            try:
                await ws.send(orjson.dumps(frame).decode())
            except ConnectionClosed:
                return
            last = chunk[-1]["seq"]
            self.sent_upto = last
            self.inflight[last] = (time.monotonic(), len(chunk))
            for f in chunk:
                self.sent_ms[f["seq"]] = now_ms
        if len(self.sent_ms) > 1024:
            for s in sorted(self.sent_ms)[:512]:
                del self.sent_ms[s]

    def _ack(self, msg: dict[str, Any]) -> None:
        seq = int(msg["seq"])
        now = time.monotonic()
        for last in [s for s in self.inflight if s <= seq]:
            sent, n = self.inflight.pop(last)
            if n == 1:  # a live fix (a backlog frame's time is the upload's, not a fix's)
                self.world.acks.append((self.world.now(), (now - sent) * 1000))
        before = len(self.pending)
        self.pending = [f for f in self.pending if f["seq"] > seq]
        self.world.fixes_acked += before - len(self.pending)
        for r in msg.get("rejected") or ():
            self.world.rejected[str(r.get("reason"))] += 1

    async def _gps(self) -> None:
        """A fix every ``fix_interval_s``, kept until acked."""
        interval = self.plan.fix_interval_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            lat, lng, speed, heading = self.truth()
            flat, flng, acc = self.noise.fix(lat, lng, now - last)
            last = now
            self.seq += 1
            fix: dict[str, Any] = {
                "seq": self.seq,
                "ts_ms": int(time.time() * 1000),
                "lat": round(flat, 7),
                "lng": round(flng, 7),
                "accuracy_m": acc,
            }
            if speed > 0.3:
                fix["speed_mps"] = round(speed, 2)
                if heading is not None:
                    fix["heading_deg"] = round(heading, 1)
            self.pending.append(fix)
            if len(self.pending) > MAX_BACKLOG:
                self.pending = self.pending[-MAX_BACKLOG:]
            self.world.fixes_sent += 1
            await self._flush()

    def truth(self) -> tuple[float, float, float, float | None]:
        """Where the worker really is now: on the trip, or standing still."""
        if self.trip is not None:
            return self.trip.at(time.time() - self.trip_t0)
        return self.pos[0], self.pos[1], 0.0, None

    # --- what the server says ----------------------------------------------------------

    async def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "ack":
            self._ack(msg)
        elif kind == "offer":
            self.offers["received"] += 1
            oid = int(msg["offer_id"])
            self.answers[oid] = asyncio.create_task(self._answer(msg), name=f"offer-{oid}")
        elif kind == "offer_withdrawn":
            task = self.answers.pop(int(msg["offer_id"]), None)
            if task is not None:
                task.cancel()
            self.offers["withdrawn:" + str(msg.get("reason", ""))[:40]] += 1
        elif kind == "job":
            self._on_job(msg)
        elif kind == "offer_result":
            if not msg.get("ok"):
                self.offers["reply_failed:" + str(msg.get("error", {}).get("code"))] += 1
        elif kind == "error":
            code = str(msg.get("code"))
            self.world.socket_errors[code] += 1
            if code in ("overloaded", "unavailable"):  # resend what is not acked, later
                wait_s = float(msg.get("retry_after_ms", 2000)) / 1000
                spread = 1 + (self.id % 8) / 16  # phones do not all come back at once
                self.hold_until = time.monotonic() + wait_s * spread
                self.sent_upto = 0
                self.inflight.clear()

    def _on_job(self, msg: dict[str, Any]) -> None:
        order_id, status = int(msg["order_id"]), str(msg["status"])
        if status == "assigned" and self.job_id is None:
            self._start_job(order_id)
        elif status == "assigned" and self.job_id != order_id and self.next_id is None:
            # A chained job, accepted while on the current one: taken up when it is done
            # (setting off now would be refused: 409 current_job_first).
            self.next_id = order_id
            self.world.counts["chained_held"] += 1
        elif status == "arrived" and self.job_id == order_id:
            self.arrived.set()
        elif status in ("withdrawn", "cancelled", "failed") and self.next_id == order_id:
            self.next_id = None
            self.world.counts[f"chained_{status}"] += 1
        elif status in ("withdrawn", "cancelled", "failed") and self.job_id == order_id:
            if self.job_task is not None:
                self.job_task.cancel()
            self.world.counts[f"jobs_{status}"] += 1

    async def _answer(self, offer: dict[str, Any]) -> None:
        oid = int(offer["offer_id"])
        spec = self.world.scenario.workers
        try:
            # A chained offer (it names the job in hand) is answered like any other, once:
            # a worker holds at most one job after the current one.
            chained = offer.get("after_order_id") is not None
            if chained:
                self.offers["chained_received"] += 1
            free = self.job_id is None or (
                chained and offer["after_order_id"] == self.job_id and self.next_id is None
            )
            busy = not free or self.ending
            u = float(self.rng.random())
            if not busy and u < spec.ignore_share:
                self.offers["ignored"] += 1
                return
            accept = not busy and u < spec.ignore_share + spec.accept_share
            await asyncio.sleep(_uniform(self.rng, spec.accept_delay_s))
            reply: dict[str, Any] = {"type": "offer_reply", "offer_id": oid, "accept": accept}
            if not accept:
                reason = "going off shift" if self.ending else None
                reply["reason"] = reason or REJECT_REASONS[int(self.rng.integers(3))]
            ws = self.ws
            if ws is None:
                self.offers["lost_offline"] += 1
                return
            await ws.send(orjson.dumps(reply).decode())
            self.offers["accepted" if accept else "rejected"] += 1
            if chained and accept:
                self.offers["chained_accepted"] += 1
        except ConnectionClosed:
            self.offers["lost_offline"] += 1
        finally:
            self.answers.pop(oid, None)

    # --- a job ---------------------------------------------------------------------

    def _start_job(self, order_id: int) -> None:
        self.job_id = order_id
        self.free.clear()
        self.arrived.clear()
        self.state = "busy"
        self.job_task = asyncio.create_task(self._job(order_id), name=f"job-{order_id}")

    async def _act(self, order_id: int, action: str, body: dict[str, Any] | None = None) -> None:
        await self.world.api.call(
            "POST", f"/v1/orders/{order_id}/{action}", session=self.session, json=body or {}
        )

    async def _job(self, order_id: int) -> None:
        world, spec = self.world, self.world.scenario.workers
        held_from = world.now()
        try:
            order = await world.api.call("GET", f"/v1/orders/{order_id}", session=self.session)
            status, door = order["status"], (float(order["lat"]), float(order["lng"]))
            # A crew job (docs/dispatch.md#crews): each member marks their own arrival (the
            # order's "arrived" may be a crew-mate's); the lead starts it once the whole
            # crew is there and completes it; the others stay until it is done.
            crew = len(order.get("crew") or []) > 1
            lead = not crew or order.get("worker_id") == self.id
            if status == "assigned":
                if order.get("window_start"):
                    trip = plan_trip(world.router, self.pos, door, self.trip_rng, self.motion)
                    start = datetime.fromisoformat(order["window_start"]).timestamp()
                    leave = start - world.t0 - trip.duration_s * 1.3 - 120
                    if not await world.sleep_until(leave):
                        return
                await self._act(order_id, "depart")
                status = "en_route"
            if status == "en_route":
                self.trip = plan_trip(world.router, self.pos, door, self.trip_rng, self.motion)
                self.trip_t0 = time.time()
                await asyncio.sleep(self.trip.duration_s)
                self._end_trip()
                manual = crew or self.rng.random() < spec.manual_arrive_share
                if not manual:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.arrived.wait(), 30)
                if not self.arrived.is_set():
                    try:
                        await self._act(order_id, "arrive")
                    except ApiError as e:  # the geofence got there first
                        if e.code != "illegal_transition":
                            raise
                    world.counts["arrived_by_hand"] += 1
                else:
                    world.counts["arrived_by_geofence"] += 1
                status = "arrived"
            if crew and not lead and status in ("arrived", "in_service"):
                await self._crew_mate(order_id)  # arrived again if the order says so
                return
            if status == "arrived":
                await asyncio.sleep(_uniform(self.rng, spec.start_delay_s))
                watch = world.watches.get(order_id)
                if watch is None:
                    world.problem(f"worker {self.id}: no start code known for order {order_id}")
                    return
                await self._start(order_id, watch.start_code, crew=crew)
                status = "in_service"
            if status == "in_service":
                minutes = float(order["duration_min"]) * float(self.rng.uniform(0.8, 1.2))
                on_site_s = minutes * 60 / world.scenario.time_scale
                if not crew:
                    await self._time_left(order_id, on_site_s)
                await asyncio.sleep(on_site_s)
                await self._act(order_id, "complete")
                self.completed += 1
                self.earned += int(order["price_minor"])
        except ApiError as e:
            if e.status not in (404, 409):  # 409/404: the job was taken away or cancelled
                world.problem(f"worker {self.id} order {order_id}: {e}")
        except asyncio.CancelledError:
            pass
        finally:
            self._end_trip()
            self.holding.append((held_from, world.now()))
            self.job_id = None
            self.job_task = None
            nxt, self.next_id = self.next_id, None
            if nxt is not None and not world.stopping.is_set():
                world.counts["chained_taken_up"] += 1
                self._start_job(nxt)  # the chained job: now the current one
            else:
                self.free.set()
                self.state = "idle" if self.want_online else "off"

    async def _time_left(self, order_id: int, wall_s: float) -> None:
        """Tell the server how long the job will really take (预计还需N分钟): the wall time
        on site, scaled by the scenario's ``time_scale``, in whole minutes (at least 1)."""
        minutes = min(600, max(1, round(wall_s / 60)))
        try:
            await self._act(order_id, "time-left", {"minutes_left": minutes})
            self.world.counts["time_left_reported"] += 1
        except ApiError as e:
            if e.status not in (404, 409):  # the job was taken away or ended meanwhile
                self.world.problem(f"worker {self.id} order {order_id}: time left: {e}")

    async def _start(self, order_id: int, code: str, *, crew: bool) -> None:
        """Enter the start code; a crew's lead waits (polling) for the crew to be there."""
        tries = 120 if crew else 1
        for i in range(tries):
            try:
                await self._act(order_id, "start", {"start_code": code})
                return
            except ApiError as e:
                if e.code != "crew_not_here" or i == tries - 1:
                    raise
                self.world.counts["crew_start_waited"] += 1
                await asyncio.sleep(2.0)

    async def _crew_mate(self, order_id: int) -> None:
        """A crew member who is not the lead: on site until the job is over."""
        world = self.world
        while True:
            order = await world.api.call("GET", f"/v1/orders/{order_id}", session=self.session)
            if order["status"] not in ("assigned", "en_route", "arrived", "in_service"):
                world.counts["crew_jobs_" + str(order["status"])] += 1
                return
            await asyncio.sleep(2.0)

    def _end_trip(self) -> None:
        """Stop wherever the trip has got to, and count the distance."""
        trip = self.trip
        if trip is None:
            return
        elapsed = time.time() - self.trip_t0
        lat, lng, _, _ = trip.at(elapsed)
        self.km += trip.distance_by(elapsed) / 1000
        self.pos = (lat, lng)
        self.trip = None


class CustomerAgent:
    """A customer's bookings: book, watch live, maybe cancel, rate."""

    def __init__(self, world: World, session: Session, *, extra_watchers: int = 0) -> None:
        self.world = world
        self.session = session
        self.extra_watchers = extra_watchers

    async def book(self, b: Booking) -> OrderWatch | None:
        """Place the booking now; None if the server refused it."""
        world = self.world
        body: dict[str, Any] = {
            "service_code": b.service_code,
            "lat": round(b.lat, 7),
            "lng": round(b.lng, 7),
            "address_detail": f"模拟小区 {b.customer % 40 + 1}栋 {b.index % 30 + 1}01",
        }
        if b.scheduled:
            start = datetime.now(UTC) + timedelta(seconds=b.lead_s)
            body["window_start"] = start.isoformat()
            body["window_end"] = (start + timedelta(seconds=b.window_s)).isoformat()
        try:
            order = await world.api.call(
                "POST",
                "/v1/orders",
                session=self.session,
                json=body,
                headers={"Idempotency-Key": f"{world.tag}-{b.index}"},
            )
        except ApiError as e:
            world.counts["booking_refused"] += 1
            world.problem(f"booking {b.index} refused: {e}")
            return None
        watch = OrderWatch(
            booking=b,
            order_id=int(order["id"]),
            customer=self.session,
            booked_at=world.now(),
            start_code=str(order["start_code"]),
            crew_size=int(order.get("crew_size", 1)),
        )
        world.watches[watch.order_id] = watch
        world.counts["booked"] += 1
        if watch.crew_size > 1:
            world.counts["booked_crew"] += 1
        if order["status"] == "awaiting_payment":
            await self.pay(watch)
        return watch

    async def pay(self, watch: OrderWatch) -> None:
        """Pay what is due now as the customer's app does (docs/growth.md#checkout): the
        suggested coupon applied, a WeChat Native trade, and 确认支付 on the sandbox's pay
        page. An order left unpaid is closed by the server after ``close_after_s``."""
        world, oid = self.world, watch.order_id
        try:
            checkout = await world.api.call(
                "GET", f"/v1/orders/{oid}/checkout", session=self.session
            )
            coupon = checkout.get("suggested_coupon_id") if checkout.get("open") else None
            if coupon is not None:
                await world.api.call(
                    "PUT",
                    f"/v1/orders/{oid}/checkout",
                    session=self.session,
                    json={"coupon_id": coupon, "points": 0},
                )
            trade = await world.api.call(
                "POST",
                f"/v1/orders/{oid}/pay",
                session=self.session,
                json={"provider": "wechat", "channel": "native"},
            )
            page = urlsplit(str(trade["prepay"]["pay_url"]))
            confirm = await world.api.http.post(
                f"{page.scheme}://{page.netloc}/sandbox/pay",
                json={"out_trade_no": trade["out_trade_no"], "outcome": "success"},
            )
        except (ApiError, KeyError, httpx.HTTPError) as e:
            world.problem(f"paying order {oid}: {e!r}")
            return
        if confirm.status_code != 200:
            world.problem(f"paying order {oid}: the pay page answered {confirm.status_code}")
            return
        world.counts["paid"] += 1
        if coupon is not None:
            world.counts["paid_with_coupon"] += 1

    async def run(self, b: Booking) -> None:
        """The whole life of one booking, from the customer's side."""
        world = self.world
        if not await world.sleep_until(b.at_s):
            return
        watch = await self.book(b)
        if watch is None:
            return
        await self.follow(watch)

    async def follow(self, watch: OrderWatch) -> None:
        """Watch until the order ends (cancel if planned), then rate."""
        world, b = self.world, watch.booking
        extra = self.extra_watchers + (1 if b.share_link else 0)
        tasks = [asyncio.create_task(self._watch(watch, primary=True))]
        if extra:
            try:
                link = await world.api.call(
                    "POST", f"/v1/orders/{watch.order_id}/share", session=self.session
                )
                for _ in range(extra):
                    tasks.append(asyncio.create_task(self._watch(watch, share=link["token"])))
            except ApiError as e:
                world.problem(f"share link for order {watch.order_id}: {e}")
        if b.cancel_after_s is not None:
            tasks.append(asyncio.create_task(self._maybe_cancel(watch, b.cancel_after_s)))
        stop = asyncio.create_task(world.stopping.wait())
        done = asyncio.create_task(watch.done.wait())
        try:
            await asyncio.wait({done, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            done.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if watch.status == "completed" and b.stars is not None and not world.stopping.is_set():
            try:
                await world.api.call(
                    "POST",
                    f"/v1/orders/{watch.order_id}/rating",
                    session=self.session,
                    json={"stars": b.stars, "text": "模拟评价"},
                )
                world.counts["rated"] += 1
            except ApiError as e:
                world.problem(f"rating order {watch.order_id}: {e}")

    async def _maybe_cancel(self, watch: OrderWatch, after_s: float) -> None:
        if not await self.world.sleep_until(watch.booked_at + after_s):
            return
        if watch.status not in BEFORE_ARRIVAL:
            return
        try:
            await self.world.api.call(
                "POST",
                f"/v1/orders/{watch.order_id}/cancel",
                session=self.session,
                json={"reason": "等太久了 waited too long"},
            )
            watch.cancelled_by_customer = True
        except ApiError as e:
            if e.status != 409:
                self.world.problem(f"cancel order {watch.order_id}: {e}")

    async def _watch(self, watch: OrderWatch, *, primary: bool = False, share: str = "") -> None:
        """An order socket: the customer's own (``primary``: it tracks the status) or a
        share-link viewer's. Reconnects a few times if the connection drops."""
        world = self.world
        path = f"/v1/ws/orders/{watch.order_id}" + (f"?share={share}" if share else "")
        failures = 0
        while not watch.done.is_set() and failures < 5:
            try:
                ws = await world.api.connect(path, None if share else self.session)
            except (InvalidStatus, *NETWORK_ERRORS, ApiError) as e:
                failures += 1
                world.problem(f"order socket {watch.order_id}: {e!r}")
                await asyncio.sleep(1.0)
                continue
            world.counts["watchers_opened"] += 1
            world.open_watchers += 1
            try:
                async for raw in ws:
                    self._on_frame(watch, orjson.loads(raw), primary)
                    if watch.done.is_set():
                        break
            except ConnectionClosed:
                failures += 1
            finally:
                world.open_watchers -= 1
                with contextlib.suppress(*NETWORK_ERRORS):
                    await ws.close()

    def _on_frame(self, watch: OrderWatch, m: dict[str, Any], primary: bool) -> None:
        world = self.world
        kind = m.get("type")
        if kind == "position":
            recv_ms = time.time() * 1000
            agent = world.workers.get(int(m["worker_id"]))
            sent = agent.sent_ms.get(int(m["seq"])) if agent is not None else None
            world.lags.append((world.now(), recv_ms - (sent if sent is not None else m["ts_ms"])))
            eta = m.get("eta")
            if primary and eta and watch.status == "en_route" and watch.eta_at is None:
                watch.eta_at = world.now()
                watch.eta_p50_s, watch.eta_p90_s = float(eta["p50_s"]), float(eta["p90_s"])
        elif primary and kind in ("status", "snapshot"):
            status = m["status"] if kind == "status" else m["order"]["status"]
            watch.status = status
            if status in TERMINAL:
                watch.done.set()
