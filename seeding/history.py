"""A past year of orders drawn from the simulator's demand model, for analytics.

Pure and vectorised (numpy): the same arguments give equal arrays, and a million orders
take a few seconds. The demand model is the simulator's (``simulations.demand``):

- **When**: the hour of day follows the LaDe hourly curve (``lade_curve``); across
  days, volume grows linearly over the span (``growth``) and weekends get
  ``weekend_boost`` more.
- **Where**: every customer has a home drawn from the default scenario's hot-spot
  mixture (Gaussian blobs around 车公庙, 香蜜湖, 下沙, 竹子林, and ``background_share``
  anywhere), snapped to a road node inside the service area and moved up to 20 m
  off it; an order is at its customer's home.
- **What**: services by the scenario's weights (the others in the catalog at
  ``other_service_weight``; none longer than a 12-hour day); scheduled at ``scheduled_share`` where the service allows;
  cancelled at ``cancel_share`` (half before a worker was assigned, half after);
  ratings at ``rating_share`` with the model's star shares.
- **Who**: customers join over the span (the pool grows from 15 % to all of them), and
  earlier customers order more often, so there are new and repeat customers every day.

What the simulator decides at run time (who is assigned, travel) is drawn here from
plain distributions: assignment after a log-normal delay (median 45 s), travel 8–25
minutes, service time the catalogue's ±15 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from simulations.demand import DOOR_OFFSET_M, M_PER_DEG_LAT, STAR_SHARES, STARS
from simulations.scenario import Demand

F = npt.NDArray[np.float64]
I = npt.NDArray[np.int64]  # noqa: E741
B = npt.NDArray[np.bool_]

COMPLETED, CANCELLED, FAILED = 0, 1, 2
MAX_DURATION_MIN = 720  # longer services (a 26-day 月嫂 booking) are left out of the mix


@dataclass(frozen=True, slots=True)
class ServiceOption:
    """A bookable service as the generator needs it."""

    code: str
    price_minor: int
    duration_min: int
    instant: bool
    scheduled: bool


@dataclass(frozen=True, slots=True)
class HistoryParams:
    """The shape of the history (defaults: the simulator's default scenario)."""

    growth: float = 0.6  # last day / first day volume, minus 1 (linear in between)
    weekend_boost: float = 0.15
    customers_per_order: float = 1 / 12
    other_service_weight: float = 0.4
    failed_share: float = 0.01


@dataclass(frozen=True, slots=True)
class History:
    """Every order of the history as columns (times: UTC epoch seconds, NaN = never)."""

    created_s: F
    customer: I  # index into the customers
    service: I  # index into the services
    lat: F
    lng: F
    scheduled: B
    window_start_s: F
    window_end_s: F
    status: I  # COMPLETED, CANCELLED or FAILED
    assigned_s: F
    en_route_s: F
    arrived_s: F
    completed_s: F
    ended_s: F  # when the order reached its final status
    worker: I  # index into the workers, -1 if none
    stars: I  # 0 if not rated
    rated_s: F
    start_code: I
    customers: int
    workers: int

    @property
    def n(self) -> int:
        """How many orders."""
        return len(self.created_s)

    def first_order_s(self) -> F:
        """Each customer's first booking (NaN for a customer who never booked)."""
        first = np.full(self.customers, np.nan)
        order = np.argsort(self.created_s, kind="stable")[::-1]
        first[self.customer[order]] = self.created_s[order]  # the last write is the earliest
        return first


def day_weights(days: list[date], params: HistoryParams) -> F:
    """Relative volume per day: linear growth and a weekend boost."""
    n = len(days)
    trend = 1.0 + params.growth * (np.arange(n) / max(1, n - 1))
    weekend = np.array([1.0 + params.weekend_boost if d.weekday() >= 5 else 1.0 for d in days])
    w: F = trend * weekend
    out: F = w / w.sum()
    return out


def workers_needed(orders: int, days: int, busy_h_per_order: float) -> int:
    """Enough workers to be busy about 60 % of their 11 h a day (see history_load)."""
    return max(10, math.ceil(orders / max(1, days) * busy_h_per_order / 6.6))


def generate(
    *,
    orders: int,
    first_day: date,
    days: int,
    timezone: str,
    sites_lat: F,
    sites_lng: F,
    services: list[ServiceOption],
    curve: tuple[float, ...],
    seed: int,
    demand: Demand | None = None,
    params: HistoryParams | None = None,
) -> History:
    """``orders`` bookings over ``days`` local days from ``first_day`` in ``timezone``."""
    if orders < 1 or days < 1:
        raise ValueError("orders and days must be at least 1")
    if not services:
        raise ValueError("services: at least one bookable service")
    if len(sites_lat) == 0:
        raise ValueError("sites: no road node inside the service area")
    d = demand or Demand(orders_per_min=1.0)
    p = params or HistoryParams()
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(timezone)

    # When: per-day counts, hour by the curve, second uniform within the hour.
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    counts = rng.multinomial(orders, day_weights(day_list, p))
    midnight = np.array(
        [
            datetime(x.year, x.month, x.day, tzinfo=zone).astimezone(UTC).timestamp()
            for x in day_list
        ]
    )
    day_of = np.repeat(np.arange(days), counts)
    hour_p = np.asarray(curve, dtype=np.float64)
    hour = rng.choice(24, size=orders, p=hour_p / hour_p.sum())
    created = midnight[day_of] + hour * 3600.0 + rng.random(orders) * 3600.0
    created.sort()
    day_of.sort()

    # Who: a growing pool, early customers more often.
    n_customers = max(50, round(orders * p.customers_per_order))
    frac = day_of / max(1, days - 1)
    pool = np.ceil(n_customers * (0.15 + 0.85 * frac))
    customer = np.minimum((pool * rng.random(orders) ** 1.6).astype(np.int64), n_customers - 1)

    # Where: homes from the hot-spot mixture, snapped to road nodes, doors off the road.
    ref = float(np.mean(sites_lat))
    kx = M_PER_DEG_LAT * math.cos(math.radians(ref))
    tree = cKDTree(np.column_stack([sites_lat * M_PER_DEG_LAT, sites_lng * kx]))
    spots = d.hotspots
    w = np.array([h.weight for h in spots], dtype=np.float64)
    pick = rng.choice(len(spots), size=n_customers, p=w / w.sum())
    s_lat = np.array([h.lat for h in spots])[pick]
    s_lng = np.array([h.lng for h in spots])[pick]
    s_sd = np.array([h.sd_m for h in spots])[pick]
    want_y = s_lat * M_PER_DEG_LAT + rng.normal(0, 1, n_customers) * s_sd
    want_x = s_lng * kx + rng.normal(0, 1, n_customers) * s_sd
    _, node = tree.query(np.column_stack([want_y, want_x]))
    anywhere = rng.random(n_customers) < d.background_share
    node = np.where(anywhere, rng.integers(len(sites_lat), size=n_customers), node)
    r = DOOR_OFFSET_M * np.sqrt(rng.random(n_customers))
    a = rng.random(n_customers) * 2 * np.pi
    home_lat = sites_lat[node] + r * np.sin(a) / M_PER_DEG_LAT
    home_lng = sites_lng[node] + r * np.cos(a) / kx

    # What: the scenario's service mix.
    mix = {s.code: s.weight for s in d.services}
    sw = np.array(
        [
            0.0 if s.duration_min > MAX_DURATION_MIN else mix.get(s.code, p.other_service_weight)
            for s in services
        ],
        dtype=np.float64,
    )
    if not sw.sum() > 0:
        raise ValueError(f"services: none of at most {MAX_DURATION_MIN} minutes")
    service = rng.choice(len(services), size=orders, p=sw / sw.sum())
    can_instant = np.array([s.instant for s in services])[service]
    can_sched = np.array([s.scheduled for s in services])[service]
    scheduled = can_sched & (~can_instant | (rng.random(orders) < d.scheduled_share))
    lead = rng.uniform(d.scheduled_lead_min[0], d.scheduled_lead_min[1], size=orders) * 60
    length = rng.uniform(d.scheduled_window_min[0], d.scheduled_window_min[1], size=orders) * 60
    w_start = np.where(scheduled, created + lead, np.nan)
    w_end = np.where(scheduled, w_start + length, np.nan)

    # Outcome.
    u = rng.random(orders)
    status = np.full(orders, COMPLETED, dtype=np.int64)
    status[u < d.cancel_share] = CANCELLED
    status[(u >= d.cancel_share) & (u < d.cancel_share + p.failed_share)] = FAILED
    cancel_early = (status == CANCELLED) & (rng.random(orders) < 0.5)
    assign_delay = np.minimum(rng.lognormal(math.log(45.0), 0.8, orders), 900.0)
    assigned = np.where((status == FAILED) | cancel_early, np.nan, created + assign_delay)
    travel = rng.uniform(8, 25, orders) * 60
    on_time = w_start + np.clip(rng.normal(0, 300, orders), -600, 900)
    arrive = np.where(
        scheduled, np.maximum(on_time, assigned + 30 + travel), assigned + 30 + travel
    )
    en_route = arrive - travel
    durations = np.array([s.duration_min for s in services], dtype=np.float64)[service] * 60
    done = arrive + durations * rng.uniform(0.85, 1.15, orders)
    ok = status == COMPLETED
    patience = rng.uniform(d.patience_min[0], d.patience_min[1], size=orders) * 60
    ended = np.where(
        ok,
        done,
        np.where(
            status == FAILED,
            created + 600,
            np.where(cancel_early, created + patience, assigned + 60),
        ),
    )
    busy_h = float((sw / sw.sum()) @ np.array([s.duration_min for s in services])) / 60 + 0.4
    n_workers = workers_needed(orders, days, busy_h)
    worker = np.where(np.isnan(assigned), -1, rng.integers(n_workers, size=orders))
    rates = ok & (rng.random(orders) < d.rating_share)
    stars = np.where(rates, np.asarray(STARS)[rng.choice(5, size=orders, p=STAR_SHARES)], 0)
    rated = np.where(rates, done + rng.uniform(300, 7200, orders), np.nan)
    nan = np.full(orders, np.nan)
    return History(
        created_s=created,
        customer=customer,
        service=service.astype(np.int64),
        lat=home_lat[customer],
        lng=home_lng[customer],
        scheduled=scheduled,
        window_start_s=w_start,
        window_end_s=w_end,
        status=status,
        assigned_s=assigned,
        en_route_s=np.where(ok, en_route, nan),
        arrived_s=np.where(ok, arrive, nan),
        completed_s=np.where(ok, done, nan),
        ended_s=ended,
        worker=worker.astype(np.int64),
        stars=stars.astype(np.int64),
        rated_s=rated,
        start_code=rng.integers(0, 10**6, size=orders),
        customers=n_customers,
        workers=n_workers,
    )
