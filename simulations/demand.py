"""Seeded demand and workforce plans. Pure: the same scenario and seed give equal plans.

Everything random about *what happens* in a run is drawn here, up front, from one
``numpy.random.Generator`` per stream (customers, bookings, workers), so a run's demand
does not depend on how fast the server answers. What the server does with it (who gets
which job, and when) is the experiment.

- **When**: bookings are a non-homogeneous Poisson process in wall-clock time. The rate
  follows the hourly curve (LaDe order times, ``simulations/data/lade_hourly.json``) at
  the simulated hour, scaled so that the mean over the run is ``orders_per_min``.
- **Where**: every customer has a home address: near a hot spot (a Gaussian blob) or,
  for ``background_share`` of them, anywhere in the area; a booking is at its
  customer's home. Addresses are road-graph nodes inside the service area moved up to
  20 m off the road (doors are near roads, not on them).
- **What**: a service by weight; scheduled (only if the window ends 10 minutes before
  the run does; always for a service marked ``always_scheduled``) or instant; whether
  the customer will cancel (and after how long without a worker at the door), rate
  (stars), share a link.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from simulations.scenario import Hotspot, Scenario

FloatArray = npt.NDArray[np.float64]
M_PER_DEG_LAT = 111_320.0
DOOR_OFFSET_M = 20.0
STARS = (5, 4, 3, 2, 1)
STAR_SHARES = (0.72, 0.18, 0.06, 0.02, 0.02)


@cache
def lade_curve() -> tuple[float, ...]:
    """Orders per hour of day in the LaDe-P sample (24 counts; see data/SOURCES.md)."""
    raw = resources.files("simulations.data").joinpath("lade_hourly.json").read_text("utf-8")
    counts = json.loads(raw)["accept_time_by_hour"]
    if len(counts) != 24:
        raise ValueError("lade_hourly.json: accept_time_by_hour must have 24 counts")
    return tuple(float(c) for c in counts)


def hourly_weight(curve: tuple[float, ...], hour: float) -> float:
    """The curve at a (fractional, possibly > 24) hour: linear between hour midpoints."""
    x = (hour - 0.5) % 24
    i = math.floor(x)
    f = x - i
    return curve[i] * (1 - f) + curve[(i + 1) % 24] * f


def rate_profile(scenario: Scenario, curve: tuple[float, ...], step_s: float = 10.0) -> FloatArray:
    """Bookings per wall second over the run, one value per ``step_s`` (the mean is
    ``orders_per_min / 60``)."""
    n = max(1, math.ceil(scenario.duration_s / step_s))
    mids = (np.arange(n) + 0.5) * step_s
    w = np.array([hourly_weight(curve, scenario.sim_hour(float(t))) for t in mids])
    if not w.sum() > 0:
        raise ValueError(
            "the demand curve is zero over the whole run: move start_hour into the day"
        )
    rate: FloatArray = w / w.mean() * scenario.demand.orders_per_min / 60.0
    return rate


class Sites:
    """Where doors can be: road-graph nodes inside the service area (WGS-84 degrees)."""

    def __init__(self, lat: FloatArray, lng: FloatArray) -> None:
        if len(lat) == 0 or len(lat) != len(lng):
            raise ValueError("Sites needs at least one node, lat and lng of equal length")
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lng = np.asarray(lng, dtype=np.float64)
        self.ref_lat = float(self.lat.mean())
        self.kx = M_PER_DEG_LAT * math.cos(math.radians(self.ref_lat))
        self._tree = cKDTree(np.column_stack([self.lat * M_PER_DEG_LAT, self.lng * self.kx]))

    def nearest(self, lat: float, lng: float) -> int:
        """The index of the node nearest to a point."""
        _, i = self._tree.query([lat * M_PER_DEG_LAT, lng * self.kx])
        return int(i)

    def node_near(self, rng: np.random.Generator, spot: Hotspot | None) -> int:
        """A node near a hot spot (Gaussian, ``sd_m``), or anywhere for ``None``."""
        if spot is None:
            return int(rng.integers(len(self.lat)))
        dy, dx = rng.normal(0.0, spot.sd_m, size=2)
        return self.nearest(spot.lat + dy / M_PER_DEG_LAT, spot.lng + dx / self.kx)

    def door(self, rng: np.random.Generator, node: int) -> tuple[float, float]:
        """A door up to :data:`DOOR_OFFSET_M` from a node."""
        r = DOOR_OFFSET_M * math.sqrt(float(rng.random()))
        a = float(rng.random()) * 2 * math.pi
        return (
            float(self.lat[node]) + r * math.sin(a) / M_PER_DEG_LAT,
            float(self.lng[node]) + r * math.cos(a) / self.kx,
        )

    def place(self, rng: np.random.Generator, hotspots: list[Hotspot], background: float) -> int:
        """A node drawn from the hot-spot mixture (``background`` share anywhere)."""
        if not hotspots or rng.random() < background:
            return self.node_near(rng, None)
        weights = np.array([h.weight for h in hotspots])
        spot = hotspots[int(rng.choice(len(hotspots), p=weights / weights.sum()))]
        return self.node_near(rng, spot)


@dataclass(frozen=True, slots=True)
class Customer:
    """A simulated customer and their home."""

    index: int
    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class Booking:
    """One booking the simulator will place."""

    index: int
    at_s: float  # wall seconds after the run starts
    customer: int
    service_code: str
    lat: float
    lng: float
    scheduled: bool
    lead_s: float  # scheduled: the window starts this long after booking (wall)
    window_s: float  # scheduled: the window's length (wall)
    cancel_after_s: float | None  # cancel if no worker is at the door by then
    stars: int | None  # rating after completion, or none
    share_link: bool  # also watched through a share link


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One simulated worker's day: where they start, when they work, when they lose signal."""

    index: int
    start_lat: float
    start_lng: float
    shifts: tuple[tuple[float, float], ...]  # wall seconds [on, off) after the run starts
    disconnects: tuple[tuple[float, float], ...]  # wall seconds (start, length)
    fix_interval_s: float
    seed: int  # the worker's own stream (offers, delays, GPS noise, traffic)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything drawn for a run."""

    customers: tuple[Customer, ...]
    bookings: tuple[Booking, ...]
    workers: tuple[WorkerPlan, ...]


def _streams(seed: int) -> tuple[np.random.Generator, ...]:
    children = np.random.SeedSequence(seed).spawn(3)
    return tuple(np.random.default_rng(s) for s in children)


def _uniform(rng: np.random.Generator, span: list[float]) -> float:
    return float(rng.uniform(span[0], span[1])) if span[1] > span[0] else float(span[0])


def customers(scenario: Scenario, sites: Sites, rng: np.random.Generator) -> list[Customer]:
    """Customers with homes drawn from the hot-spot mixture."""
    d = scenario.demand
    out = []
    for i in range(d.customers):
        node = sites.place(rng, d.hotspots, d.background_share)
        lat, lng = sites.door(rng, node)
        out.append(Customer(i, lat, lng))
    return out


def booking_times(
    scenario: Scenario, curve: tuple[float, ...], rng: np.random.Generator
) -> list[float]:
    """Booking instants (wall seconds) by thinning a Poisson process at the peak rate."""
    step = 10.0
    rate = rate_profile(scenario, curve, step)
    peak = float(rate.max())
    out: list[float] = []
    t = 0.0
    while True:
        t += float(rng.exponential(1.0 / peak))
        if t >= scenario.duration_s:
            return out
        if rng.random() * peak < rate[min(int(t // step), len(rate) - 1)]:
            out.append(t)


def bookings(
    scenario: Scenario,
    homes: list[Customer],
    curve: tuple[float, ...],
    rng: np.random.Generator,
) -> list[Booking]:
    """The bookings of a run, in time order."""
    d = scenario.demand
    weights = np.array([s.weight for s in d.services])
    weights = weights / weights.sum()
    last_window_end = scenario.duration_s + scenario.drain_min * 60 - 600
    out = []
    for i, at in enumerate(booking_times(scenario, curve, rng)):
        who = homes[int(rng.integers(len(homes)))]
        mix = d.services[int(rng.choice(len(weights), p=weights))]
        service = mix.code
        scheduled = bool(rng.random() < d.scheduled_share)
        lead = _uniform(rng, d.scheduled_lead_min) * 60
        window = _uniform(rng, d.scheduled_window_min) * 60
        # A window must end 10 minutes before the run does (to serve it in the drain);
        # a service booked only for a window is booked for one all the same.
        scheduled = mix.always_scheduled or (scheduled and at + lead + window <= last_window_end)
        lead, window = (lead, window) if scheduled else (0.0, 0.0)
        cancels = bool(rng.random() < d.cancel_share)
        patience = _uniform(rng, d.patience_min) * 60
        rates = bool(rng.random() < d.rating_share)
        stars = int(STARS[int(rng.choice(len(STARS), p=STAR_SHARES))])
        share = bool(rng.random() < d.share_link_share)
        out.append(
            Booking(
                index=i,
                at_s=round(at, 3),
                customer=who.index,
                service_code=service,
                lat=who.lat,
                lng=who.lng,
                scheduled=scheduled,
                lead_s=lead,
                window_s=window,
                cancel_after_s=(lead + patience) if cancels else None,
                stars=stars if rates else None,
                share_link=share,
            )
        )
    return out


def shift_intervals(
    scenario: Scenario, start_hour: float, end_hour: float
) -> list[tuple[float, float]]:
    """A daily shift as wall-second intervals within the run (bookings and drain)."""
    total = scenario.duration_s + scenario.drain_min * 60
    out = []
    for day in range(-1, math.ceil(total * scenario.time_scale / 86400) + 1):
        a = (start_hour + 24 * day - scenario.start_hour) * 3600 / scenario.time_scale
        b = (end_hour + 24 * day - scenario.start_hour) * 3600 / scenario.time_scale
        a, b = max(a, 0.0), min(b, total)
        if a < b:
            out.append((a, b))
    return out


def worker_plans(scenario: Scenario, sites: Sites, rng: np.random.Generator) -> list[WorkerPlan]:
    """Each worker's start, shifts, lost connections and own random stream."""
    w, d = scenario.workers, scenario.demand
    total = scenario.duration_s + scenario.drain_min * 60
    shares = np.array([s.share for s in w.shifts])
    out = []
    for i in range(w.count):
        if w.start == "hotspots":
            node = sites.place(rng, d.hotspots, d.background_share)
        else:
            node = sites.node_near(rng, None)
        shift = w.shifts[int(rng.choice(len(shares), p=shares / shares.sum()))]
        drops: list[tuple[float, float]] = []
        t = 0.0
        while w.disconnects_per_hour > 0:
            t += float(rng.exponential(3600.0 / w.disconnects_per_hour))
            if t >= total:
                break
            drops.append((round(t, 3), round(_uniform(rng, w.disconnect_s), 3)))
        out.append(
            WorkerPlan(
                index=i,
                start_lat=float(sites.lat[node]),
                start_lng=float(sites.lng[node]),
                shifts=tuple(shift_intervals(scenario, shift.start_hour, shift.end_hour)),
                disconnects=tuple(drops),
                fix_interval_s=round(_uniform(rng, w.fix_interval_s), 3),
                seed=int(rng.integers(2**63 - 1)),
            )
        )
    return out


def plan(scenario: Scenario, sites: Sites, curve: tuple[float, ...] | None = None) -> Plan:
    """The whole seeded plan of a run (``curve``: the hourly shape; default per scenario)."""
    if curve is None:
        curve = lade_curve() if scenario.demand.curve == "lade" else (1.0,) * 24
    c_rng, b_rng, w_rng = _streams(scenario.seed)
    homes = customers(scenario, sites, c_rng)
    return Plan(
        customers=tuple(homes),
        bookings=tuple(bookings(scenario, homes, curve, b_rng)),
        workers=tuple(worker_plans(scenario, sites, w_rng)),
    )
