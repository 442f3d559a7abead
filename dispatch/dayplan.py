"""Day plans, the pure part: a city's day (workers, jobs) → the planner's problem, and back.

No I/O. Times are seconds since the plan's *epoch*: local midnight of the plan's date in
the city's time zone. The I/O that gathers a :class:`DayInputs` is in
``dispatch/plan_inputs.py``; the runtime that plans, stores and pushes is
``dispatch/plans.py``.

How a worker's day becomes a :class:`PlanWorker`:

- **shift**: from the start of their first availability window on that date (weekly
  pattern, or the date's exception) to the end of the last one — today, not before now;
  a window that runs to 24:00 goes on into the next date's window that starts at 00:00
  (an overnight shift, :func:`overnight`), as far as the day's jobs may need it;
- **the neighbouring days** (an overnight job, issue 20): a worker whose previous day's
  plan has them on a job after midnight is free from its end there (``free_from_s``,
  starting at its address); a worker whose next day's plan has them at a stop before
  their shift here ends must be there by its planned arrival (``next_stop``: the route
  ends at that address by then). Each plan keeps the other's promises;
- **breaks**: the gaps between two availability windows of the same day are breaks
  that start exactly when the gap starts and last as long as it (availability has no
  separate break field);
- **skills**: their skills plus ``cert:<kind>`` for each certificate verified and valid
  on that date (a service's required certificates become ``cert:<kind>`` job skills);
- **start**: their home base, or on a day under way (today; yesterday after midnight)
  their live position when it is fresh; the route
  ends at the last job (``end_node`` None: going home is not planned).

A merchant's order (routed to a merchant, issue 18) goes to the merchant's staff only: it
needs a skill token ``merchant:<id>`` that the workers on the merchant's teams have. When
none of them can take it and the merchant's overflow rule says so, the runtime hands it to
the platform (``dispatch/plans.py``) and plans it again without the token.

A job a worker holds (assigned or later) is *started*: fixed first on their route.
A crew order (``crew_size`` > 1, docs/dispatch.md#crews) is one job per member, each fixed
to that member (planner id ``<order>.<worker>``): held by its crew, every member's time is
taken; booked but not assigned yet, the crew the booking reserved (:func:`fit_crew`) keeps
it at the common start the plan gave it.
A pinned order with a worker is fixed to that worker. A worker excluded from an order
(they rejected it, were unassigned from it, or a dispatcher excluded them) is kept away
with an extra skill token ``order:<id>`` that every other worker has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from matching.planner import (
    Insertion,
    Plan,
    PlanBreak,
    PlanJob,
    PlanProblem,
    PlanWorker,
    Route,
    Stop,
)
from matching.route_timing import Visit, schedule

Point = tuple[float, float]
# points → (travel seconds, metres), both square int64 matrices
TravelFn = Callable[[Sequence[Point]], tuple[np.ndarray, np.ndarray]]
Edge = tuple[int, Point]  # seconds since the plan's epoch, and where
NEW_JOB = "new"
OPEN_END_S = 2 * 86400  # a started job may run on as long as it takes


@dataclass(frozen=True, slots=True)
class DayPlanParams:
    """How day plans behave (section ``[plans]``)."""

    enabled: bool = True  # scheduled orders go by day plans; the instant engine leaves them
    release_ahead_s: int = 3600  # a planned job is assigned to its worker this long before arrival
    slot_window_min: int = 60  # the arrival windows the slots endpoint offers are this long
    slot_step_min: int = 60  # ... and start this often
    continuity_penalty_s: int = 1800  # cost (seconds of travel) of a recurring job not kept
    keep_versions: int = 20  # older versions of a city's day plan are deleted
    live_max_age_s: int = 600  # a worker heard from this recently is online: planned from
    # their live position, and their next job may be released to them
    check_every_s: int = 60  # how often the engine looks for open orders missing from a plan

    def __post_init__(self) -> None:
        if self.release_ahead_s < 0:
            raise ValueError("plans.release_ahead_s must be >= 0")
        if not 15 <= self.slot_window_min <= 720:
            raise ValueError("plans.slot_window_min must be between 15 and 720")
        if not 15 <= self.slot_step_min <= 720:
            raise ValueError("plans.slot_step_min must be between 15 and 720")
        if self.continuity_penalty_s < 0:
            raise ValueError("plans.continuity_penalty_s must be >= 0")
        if self.keep_versions < 1:
            raise ValueError("plans.keep_versions must be >= 1")
        if self.live_max_age_s < 1:
            raise ValueError("plans.live_max_age_s must be >= 1")
        if self.check_every_s < 1:
            raise ValueError("plans.check_every_s must be >= 1")


@dataclass(frozen=True, slots=True)
class WorkerDay:
    """One worker's day as the planner needs it."""

    worker_id: int
    skills: frozenset[str]
    windows: tuple[tuple[int, int], ...]  # availability that day, seconds since the epoch
    start: Point
    merchant_id: int | None = None  # on a team of this merchant: may serve its orders
    # the previous day's plan has them on a job after midnight: free from then (and
    # ``start`` is that job's address)
    free_from_s: int | None = None
    # the next day's plan has them at a stop before this day's shift ends: there by then
    next_stop: tuple[int, Point] | None = None


@dataclass(frozen=True, slots=True)
class DayJob:
    """One order to plan (or, with ``order_id`` 0, a booking being considered)."""

    order_id: int
    lat: float
    lng: float
    service_s: int
    window: tuple[int, int]
    skills: frozenset[str] = frozenset()
    worker_id: int | None = None  # held by (started) or pinned to this worker
    started: bool = False
    excluded: frozenset[int] = frozenset()
    prefer_worker_id: int | None = None  # recurring bookings: keep the same worker
    merchant_id: int | None = None  # routed to this merchant: its staff only
    overflow_due: bool = False  # the merchant's overflow rule lets the platform take it
    member: int | None = None  # a crew order's visit by this member (planner id order.worker)


@dataclass(frozen=True, slots=True)
class DayInputs:
    """Everything a city's day plan depends on, read at one moment."""

    city_id: str
    day: date
    epoch: int  # unix seconds of local midnight
    now_s: int  # now, in seconds since the epoch (negative for a future day)
    workers: tuple[WorkerDay, ...]
    jobs: tuple[DayJob, ...]
    routes: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # stored plan's order
    version: int = 0  # the stored plan's version these inputs were read with (0: none)
    day_s: int = 86400  # the next local midnight, seconds since the epoch (23 or 25 h on DST days)
    # what the neighbouring days' stored plans promised, as read (plan_inputs.neighbours):
    # worker → (free from when, where; next day's first stop by when, where)
    neighbours: Mapping[int, tuple[Edge | None, Edge | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Built:
    """A problem and how its ids map back to workers and orders."""

    problem: PlanProblem
    new_job: PlanJob | None


def job_key(order_id: int, member: int | None = None) -> str:
    """The planner's id of an order (of one crew member's visit to it: ``<order>.<worker>``)."""
    base = str(order_id) if order_id else NEW_JOB
    return base if member is None else f"{base}.{member}"


def order_of(job_id: str) -> int:
    """The order id behind a planner job id (0 for the booking being considered)."""
    base = job_id.split(".", 1)[0]
    return 0 if base == NEW_JOB else int(base)


def required_skills(skills: Iterable[str], certificates: Iterable[str]) -> frozenset[str]:
    """What a service needs, as planner skills."""
    return frozenset(skills) | frozenset(f"cert:{c}" for c in certificates)


def remaining_windows(windows: Sequence[tuple[int, int]], now_s: int) -> list[tuple[int, int]]:
    """The parts of the windows that are not over yet."""
    return [(max(s, now_s), e) for s, e in sorted(windows) if e > now_s and e > max(s, now_s)]


def overnight(
    windows: Sequence[tuple[int, int]],
    next_windows: Sequence[tuple[int, int]],
    day_s: int,
    until_s: int,
) -> tuple[tuple[int, int], ...]:
    """A worker's windows for a day plan (seconds since its epoch): that date's windows
    (``windows``), and when one runs to midnight (``day_s``) and the next date's first
    window (``next_windows``, seconds since the next midnight) starts at 00:00, that
    window as its continuation — one overnight shift — cut at ``until_s`` (how far past
    midnight the day's jobs may run). Pure."""
    out = sorted(windows)
    follow = sorted(next_windows)
    if until_s > day_s and out and out[-1][1] == day_s and follow and follow[0][0] == 0:
        out[-1] = (out[-1][0], day_s + min(follow[0][1], until_s - day_s))
    return tuple(out)


def usable_windows(day: WorkerDay, now_s: int) -> list[tuple[int, int]]:
    """The parts of a worker's windows this plan may use: not over yet, not before the
    previous day's plan frees them, not after the next day's plan needs them."""
    start = now_s if day.free_from_s is None else max(now_s, day.free_from_s)
    windows = remaining_windows(day.windows, start)
    if day.next_stop is not None:
        by = day.next_stop[0]
        windows = [(s, min(e, by)) for s, e in windows if s < by]
    return windows


def _shift(day: WorkerDay, now_s: int) -> tuple[tuple[int, int], tuple[PlanBreak, ...]] | None:
    windows = usable_windows(day, now_s)
    if not windows:
        return None
    breaks = tuple(
        PlanBreak(earliest_s=a_end, latest_s=a_end, duration_s=b_start - a_end)
        for (_, a_end), (b_start, _) in itertools.pairwise(windows)
        if b_start > a_end
    )
    return (windows[0][0], windows[-1][1]), breaks


def build(
    inputs: DayInputs,
    travel: TravelFn,
    *,
    extra: DayJob | None = None,
    continuity_penalty_s: int = 0,
) -> Built:
    """The planner's problem for the day (plus ``extra``, a booking being considered)."""
    jobs = list(inputs.jobs)
    started = {j.worker_id: j for j in jobs if j.started and j.worker_id is not None}
    points: list[Point] = [w.start for w in inputs.workers]
    points += [(j.lat, j.lng) for j in jobs]
    if extra is not None:
        points.append((extra.lat, extra.lng))
    ends: dict[int, int] = {}  # worker → the node of the next day's stop they must reach
    for day in inputs.workers:
        if day.next_stop is not None:
            ends[day.worker_id] = len(points)
            points.append(day.next_stop[1])
    secs, metres = travel(points) if points else (np.zeros((0, 0), np.int64),) * 2
    n_w = len(inputs.workers)
    excluded_tokens: dict[int, set[str]] = {}
    everyone = {w.worker_id for w in inputs.workers}
    for j in [*jobs, *([extra] if extra else [])]:
        if j.excluded:
            for w in everyone - j.excluded:
                excluded_tokens.setdefault(w, set()).add(f"order:{j.order_id}")
    workers = []
    for i, day in enumerate(inputs.workers):
        shift = _shift(day, inputs.now_s)
        held = started.get(day.worker_id)
        if held is not None:
            node = n_w + jobs.index(held)
            must_end = max(inputs.now_s + int(secs[i, node]), held.window[0]) + held.service_s
            if day.worker_id in ends:  # and then on to the next day's first stop
                must_end += int(secs[node, ends[day.worker_id]])
            if shift is None:
                shift = ((inputs.now_s, must_end), ())
            else:
                shift = ((min(shift[0][0], inputs.now_s), max(shift[0][1], must_end)), shift[1])
        if shift is None:
            continue
        end = ends.get(day.worker_id)
        if end is not None and held is None and shift[0][0] + int(secs[i, end]) > shift[0][1]:
            continue  # cannot even get to the next day's first stop in time: nothing fits
        workers.append(
            PlanWorker(
                id=str(day.worker_id),
                start_node=i,
                end_node=end,
                shift=shift[0],
                skills=day.skills
                | frozenset(excluded_tokens.get(day.worker_id, ()))
                | _merchant_token(day.merchant_id),
                breaks=shift[1],
            )
        )
    plan_jobs = tuple(
        _plan_job(j, n_w + k, inputs, continuity_penalty_s) for k, j in enumerate(jobs)
    )
    new = (
        _plan_job(extra, n_w + len(jobs), inputs, continuity_penalty_s)
        if extra is not None
        else None
    )
    return Built(PlanProblem(secs, plan_jobs, tuple(workers), metres), new)


def _merchant_token(merchant_id: int | None) -> frozenset[str]:
    return frozenset({f"merchant:{merchant_id}"}) if merchant_id is not None else frozenset()


def _plan_job(j: DayJob, node: int, inputs: DayInputs, continuity_penalty_s: int) -> PlanJob:
    skills = j.skills | (frozenset({f"order:{j.order_id}"}) if j.excluded else frozenset())
    if j.worker_id is None:  # a held or pinned job stays with its worker whoever they are
        skills |= _merchant_token(j.merchant_id)
    window = (j.window[0], inputs.now_s + OPEN_END_S) if j.started else j.window
    return PlanJob(
        id=job_key(j.order_id, j.member),
        node=node,
        service_s=j.service_s,
        window=window,
        skills=skills,
        worker_id=str(j.worker_id) if j.worker_id is not None else None,
        started=j.started,
        prefer_worker_id=str(j.prefer_worker_id) if j.prefer_worker_id is not None else None,
        prefer_penalty=continuity_penalty_s if j.prefer_worker_id is not None else 0,
    )


# --- timing a fixed sequence ----------------------------------------------------------


def time_route(problem: PlanProblem, worker: PlanWorker, jobs: Sequence[PlanJob]) -> Route | None:
    """The times of ``jobs`` done in this order by ``worker``, or None if a window, the
    shift, a break or a skill is broken — the planner's own timing model
    (``matching.route_timing``), so stored times agree with what the planner computes."""
    if any(not j.skills <= worker.skills and not j.started for j in jobs):
        return None
    if any(j.worker_id not in (None, worker.id) for j in jobs):
        return None
    if not jobs:
        return Route(worker.id, (), 0, 0)
    travel = problem.travel_s
    dist = problem.distance_m if problem.distance_m is not None else travel
    visits, prev = [], worker.start_node
    travel_s = distance_m = 0
    for j in jobs:
        visits.append(Visit(j.window, j.service_s, int(travel[prev, j.node])))
        travel_s += int(travel[prev, j.node])
        distance_m += int(dist[prev, j.node])
        prev = j.node
    t0 = worker.shift[0]
    if jobs[0].started:  # as the planner does: the job under way keeps its start
        t0 = max(0, min(t0, jobs[0].window[0] - visits[0].travel_in_s))
    end = 0 if worker.end_node is None else int(travel[prev, worker.end_node])
    breaks = [(b.earliest_s, b.latest_s, b.duration_s) for b in worker.breaks]
    timing = schedule(t0, visits, end, worker.shift[1], breaks)
    if timing is None:
        return None
    stops = tuple(
        Stop(j.id, timing.arrivals[k], timing.starts[k], timing.departures[k], timing.slacks[k])
        for k, j in enumerate(jobs)
    )
    return Route(worker.id, stops, travel_s + end, distance_m, timing.breaks)


def current_plan(built: Built, routes: Mapping[int, Sequence[int]]) -> Plan:
    """The stored plan, re-timed against today's problem: stops of orders that are gone
    are left out, a held job goes first, and a stop that no longer fits is skipped."""
    by_id = {j.id: j for j in built.problem.jobs}
    out = []
    for w in built.problem.workers:
        wanted = [
            job_key(o, int(w.id)) if job_key(o, int(w.id)) in by_id else job_key(o)
            for o in routes.get(int(w.id), ())
        ]
        held = [j for j in built.problem.jobs if j.started and j.worker_id == w.id]
        seq: list[PlanJob] = list(held)
        for key in wanted:
            job = by_id.get(key)
            if job is None or job in seq or job.started:
                continue
            if time_route(built.problem, w, [*seq, job]) is not None:
                seq.append(job)
        route = time_route(built.problem, w, seq) or Route(w.id, (), 0, 0)
        out.append(route)
    return Plan(tuple(out), (), sum(r.travel_s for r in out))


def apply_insertion(built: Built, current: Plan, ins: Insertion) -> Plan:
    """``current`` with the booking being considered inserted where ``ins`` says."""
    assert built.new_job is not None
    by_id = {j.id: j for j in built.problem.jobs}
    by_id[built.new_job.id] = built.new_job
    workers = {w.id: w for w in built.problem.workers}
    routes = []
    for r in current.routes:
        if r.worker_id == ins.worker_id:
            seq = [by_id[s.job_id] for s in r.stops]
            seq.insert(ins.position, built.new_job)
            timed = time_route(built.problem, workers[r.worker_id], seq)
            if timed is None:  # the planner said it fits; keep its word on the new stop
                raise ValueError(f"insertion {ins} does not fit worker {r.worker_id}")
            r = timed
        routes.append(r)
    return Plan(tuple(routes), current.dropped, sum(r.travel_s for r in routes))


@dataclass(frozen=True, slots=True)
class CrewFit:
    """Where a crew booking fits: one insertion per member, all starting at ``start_s``."""

    start_s: int
    insertions: tuple[Insertion, ...]  # the lead (least added travel) first


def fit_crew(
    built: Built, current: Plan, options: Sequence[Insertion], crew_size: int
) -> CrewFit | None:
    """The crew of ``crew_size`` different workers who can all start the new job at one
    moment, the earliest such moment, then the least added travel; or None (pure).

    ``options`` are the new job's insertions (``matching.planner.insertions``). Each
    worker's insertion touches only their own route, so insertions of different workers
    fit together; the common start ``T`` is tried at each option's own start, and a
    worker counts if their route with the job held to start exactly at ``T`` still fits."""
    job = built.new_job
    assert job is not None
    workers = {w.id: w for w in built.problem.workers}
    by_id = {j.id: j for j in built.problem.jobs}
    routes = {r.worker_id: [by_id[s.job_id] for s in r.stops] for r in current.routes}
    for t in sorted({o.start_s for o in options}):
        fixed = replace(job, window=(t, t))
        crew: dict[str, Insertion] = {}
        for o in sorted(options, key=lambda o: (o.added_travel_s, o.worker_id, o.position)):
            if o.worker_id in crew or o.start_s > t:
                continue
            seq = list(routes.get(o.worker_id, []))
            seq.insert(o.position, replace(fixed, id=job_key(0, int(o.worker_id))))
            timed = time_route(built.problem, workers[o.worker_id], seq)
            if timed is None:
                continue
            stop = timed.stops[o.position]
            crew[o.worker_id] = replace(o, arrival_s=stop.arrival_s, start_s=stop.start_s)
            if len(crew) == crew_size:
                return CrewFit(t, tuple(crew.values()))
    return None


def apply_crew(built: Built, current: Plan, fit: CrewFit) -> Plan:
    """``current`` with the crew booking inserted into each member's route, every member's
    visit (planner id ``new.<worker>``) held to the crew's common start."""
    assert built.new_job is not None
    by_id = {j.id: j for j in built.problem.jobs}
    workers = {w.id: w for w in built.problem.workers}
    at = {i.worker_id: i for i in fit.insertions}
    routes = []
    for r in current.routes:
        ins = at.get(r.worker_id)
        if ins is not None:
            seq = [by_id[s.job_id] for s in r.stops]
            visit = replace(
                built.new_job,
                id=job_key(0, int(r.worker_id)),
                window=(fit.start_s, fit.start_s),
                worker_id=r.worker_id,
            )
            seq.insert(ins.position, visit)
            timed = time_route(built.problem, workers[r.worker_id], seq)
            if timed is None:
                raise ValueError(f"crew insertion {ins} does not fit worker {r.worker_id}")
            r = timed
        routes.append(r)
    return Plan(tuple(routes), current.dropped, sum(r.travel_s for r in routes))


def search_note(plan: Plan, time_limit_s: float) -> str:
    """What a stored plan's reason adds when the wall-clock cap, not the work budget,
    stopped its search ("" otherwise): such a plan may differ if solved again."""
    if plan.stopped_by != "time_limit":
        return ""
    search = plan.search
    note = (
        f"search cut by the {time_limit_s:g} s time cap at {search.budget_used:.0%} of its "
        "budget, so not reproducible"
    ).replace("%", " %")
    if search.repaired:
        note += f"; {search.repaired} jobs it left out were inserted after it"
    return note


# --- why a booking cannot be served ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why nobody (or one worker) can take a job: a stable code and a sentence."""

    code: str  # no_skilled_worker | not_working_then | fully_booked | excluded
    message: str


def _clock(s: int) -> str:
    days, rest = divmod(s, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return text + (f" (+{days} day)" if days else "")


def works_then(day: WorkerDay, job: DayJob, now_s: int) -> bool:
    """True if one availability window lets the job start in its window and finish inside."""
    return any(
        max(s, job.window[0]) <= job.window[1] and max(s, job.window[0]) + job.service_s <= e
        for s, e in remaining_windows(day.windows, now_s)
    )


def refusal(
    inputs: DayInputs, job: DayJob, *, worker_id: int | None = None, crew_size: int = 1
) -> Refusal:
    """Why ``job`` has no place in the day plan (for everyone, or for ``worker_id``); a
    crew job (``crew_size`` > 1) needs that many workers at each step."""
    when = f"{inputs.day.isoformat()} {_clock(job.window[0])}–{_clock(job.window[1])}"
    if crew_size > 1 and worker_id is None:
        return _crew_refusal(inputs, job, crew_size, when)
    pool = [w for w in inputs.workers if worker_id is None or w.worker_id == worker_id]
    who = "no worker" if worker_id is None else f"worker {worker_id}"
    if not pool:
        return Refusal("no_skilled_worker", f"{who} of {inputs.city_id} can be planned")
    skilled = [w for w in pool if job.skills <= w.skills]
    if not skilled:
        needs = ", ".join(sorted(job.skills)) or "nothing"
        return Refusal(
            "no_skilled_worker", f"{who} in {inputs.city_id} has what this service needs ({needs})"
        )
    allowed = [w for w in skilled if w.worker_id not in job.excluded]
    if not allowed:
        return Refusal("excluded", f"{who} may take this job: excluded")
    working = [w for w in allowed if works_then(w, job, inputs.now_s)]
    if not working:
        subject = "no qualified worker works" if worker_id is None else f"{who} does not work"
        return Refusal(
            "not_working_then",
            f"{subject} long enough to start and finish the job on {when}",
        )
    subject = (
        f"all {len(working)} qualified workers free then are fully booked"
        if worker_id is None
        else f"{who} is fully booked"
    )
    return Refusal("fully_booked", f"{subject} on {when} (their day plans leave no room)")


def _crew_refusal(inputs: DayInputs, job: DayJob, crew_size: int, when: str) -> Refusal:
    crew = f"; this service needs a crew of {crew_size}"
    skilled = [w for w in inputs.workers if job.skills <= w.skills]
    if len(skilled) < crew_size:
        needs = ", ".join(sorted(job.skills)) or "nothing"
        return Refusal(
            "no_skilled_worker",
            f"only {len(skilled)} worker(s) in {inputs.city_id} can be planned for this "
            f"service ({needs}){crew}",
        )
    allowed = [w for w in skilled if w.worker_id not in job.excluded]
    if len(allowed) < crew_size:
        return Refusal("excluded", f"only {len(allowed)} qualified worker(s) may take it{crew}")
    working = [w for w in allowed if works_then(w, job, inputs.now_s)]
    if len(working) < crew_size:
        return Refusal(
            "not_working_then",
            f"only {len(working)} qualified worker(s) work long enough to start and finish "
            f"the job on {when}{crew}",
        )
    return Refusal(
        "fully_booked",
        f"fewer than {crew_size} of the {len(working)} qualified workers free then can start "
        f"it together on {when} (their day plans leave no room){crew}",
    )


def instant_refusal(inputs: DayInputs, job: DayJob, *, crew_size: int = 1) -> Refusal | None:
    """Why nobody can serve an instant booking, or None: ``job.window`` is when it may
    start (now to now + the instant SLA). ``no_skilled_worker``: no worker of the city has
    what the service needs; ``not_working_now``: the qualified workers are not on shift
    long enough to start in time and finish. A crew job (``crew_size`` > 1) needs that
    many different workers, each qualified and on shift (docs/dispatch.md#crews)."""
    crew = f"; this service needs a crew of {crew_size}" if crew_size > 1 else ""
    if not inputs.workers:
        return Refusal("no_skilled_worker", f"no worker works in {inputs.city_id}")
    skilled = [w for w in inputs.workers if job.skills <= w.skills]
    if len(skilled) < crew_size or not skilled:
        needs = ", ".join(sorted(job.skills))
        who = f"only {len(skilled)} worker(s)" if skilled else "no worker"
        verb = "have" if skilled else "has"
        return Refusal(
            "no_skilled_worker",
            f"{who} in {inputs.city_id} {verb} what this service needs ({needs}){crew}",
        )
    working = sum(works_then(w, job, inputs.now_s) for w in skilled)
    if working < crew_size or not working:
        who = f"only {working}" if working else "none"
        verb = "is" if working <= 1 else "are"
        return Refusal(
            "not_working_now",
            f"{who} of the {len(skilled)} qualified workers {verb} on shift long enough to "
            f"start by {_clock(job.window[1])} and finish the job{crew}",
        )
    return None


# --- slots ------------------------------------------------------------------------------


def slot_grid(
    inputs: DayInputs, *, window_s: int, step_s: int, earliest_s: int
) -> list[tuple[int, int]]:
    """Candidate arrival windows over the hours anybody works that day, from ``earliest_s``;
    they open before the next midnight (a window opening after it is the next day's)."""
    spans = [w for d in inputs.workers for w in remaining_windows(d.windows, inputs.now_s)]
    if not spans:
        return []
    first = min(s for s, _ in spans)
    last = min(max(e for _, e in spans), inputs.day_s)
    start = -(-max(first, 0) // step_s) * step_s  # round up to the step
    out = []
    t = start
    while t < last:
        if t >= earliest_s:
            out.append((t, t + window_s))
        t += step_s
    return out
