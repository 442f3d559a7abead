"""Per-city road graphs and the ETA calibration learned from observed arrivals.

The learned histograms (:mod:`tracking.eta_calibration`) live in Redis, one hash per city
(``Keys.eta_buckets``), and are hot state that can be rebuilt: every trip they hold is an
order in PostgreSQL (``en_route_at``, ``arrived_at``, ``eta_predicted_s``), so a missing
hash, or one of another layout (``Keys.eta_layout``), is rebuilt from the city's latest
arrivals before it is read or added to. :meth:`EtaStore.learn` adds one trip under WATCH
(the pure ``add`` does the arithmetic; a retry on a concurrent write) and marks the order
learned, so an event delivered twice counts once. Each process keeps the city's hourly
calibration in memory (ETAs are computed on every live fix) and rereads the hash every
``EtaParams.refresh_s`` (:meth:`EtaStore.refresh_due`, from the tracking sweep loop), so
arrivals learned by any process reach every process within that time.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import WatchError

from catalog import store as catalog_store
from doorstep.keys import Keys
from geo.roadgraph import RoadGraph, graph_for_bbox
from tracking import eta_calibration as cal
from tracking.eta import EtaParams
from tracking.eta_calibration import EtaCalibration

log = logging.getLogger("doorstep.tracking.eta")

REBUILD_TRIPS = 50_000  # the latest arrivals a rebuild reads (24 hours x 5 bands x 500 is 60k)
LEARNED_TTL_S = 7 * 86_400  # how long an order's trip stays marked as learned


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class EtaStore:
    """Road graphs per city, and the learned ETA range per city, hour and trip band."""

    def __init__(
        self, pool: asyncpg.Pool[Any], redis: Redis, keys: Keys, params: EtaParams
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._keys = keys
        self._params = params
        self._graphs: dict[str, RoadGraph | None] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._cal: dict[str, dict[int, EtaCalibration]] = {}
        self._read_at: dict[str, float] = {}  # monotonic time of the last read, per city

    async def graph_for(self, city_id: str) -> RoadGraph | None:
        """The road graph covering the city's service area, if one is bundled."""
        if city_id not in self._graphs:
            city = await catalog_store.city(self._pool, city_id)
            graph = None
            if city is not None:
                self._zones[city_id] = ZoneInfo(city.timezone)
                graph = graph_for_bbox(tuple(city.bbox))  # type: ignore[arg-type]
            self._graphs[city_id] = graph
            try:
                await self.refresh(city_id)
            except Exception:  # a graph without its calibration is still a road ETA
                log.exception("could not read the ETA calibration of %s", city_id)
        return self._graphs[city_id]

    def local_hour(self, city_id: str, ts_ms: int) -> int:
        """The hour of day in the city's time zone."""
        zone = self._zones.get(city_id, ZoneInfo("Asia/Shanghai"))
        return datetime.fromtimestamp(ts_ms / 1000, zone).hour

    def stats_for(self, city_id: str, ts_ms: int) -> EtaCalibration:
        """The learned ETA range of the city at that hour (empty: the prior applies)."""
        return self._cal.get(city_id, {}).get(self.local_hour(city_id, ts_ms), EtaCalibration())

    async def refresh(self, city_id: str) -> dict[int, EtaCalibration]:
        """Reread the city's learned buckets (rebuilding them first if Redis lost them)."""
        self._read_at[city_id] = time.monotonic()
        layout = _text(await self._redis.get(self._keys.eta_layout(city_id)))
        if layout != cal.layout(self._params):
            await self.rebuild(city_id)
        raw = await self._redis.hgetall(self._keys.eta_buckets(city_id))
        buckets: dict[cal.Bucket, cal.Counts] = {}
        for field, value in raw.items():
            bucket = cal.parse_field(field)
            counts = cal.parse_counts(value, self._params)
            if bucket is not None and counts is not None:
                buckets[bucket] = counts
        self._cal[city_id] = hours = cal.calibrate(buckets, self._params)
        return hours

    async def refresh_due(self) -> None:
        """Reread every known city whose calibration is older than ``refresh_s``."""
        now = time.monotonic()
        for city_id, at in list(self._read_at.items()):
            if now - at >= self._params.refresh_s:
                await self.refresh(city_id)

    async def rebuild(self, city_id: str) -> int:
        """Recompute the city's buckets from its latest arrivals in PostgreSQL; the trips
        folded in. Another process's rebuild landing first wins (same orders, same sums)."""
        zone = self._zones.get(city_id, ZoneInfo("Asia/Shanghai"))
        rows = await self._pool.fetch(
            "SELECT en_route_at, extract(epoch FROM arrived_at - en_route_at) AS observed_s, "
            "eta_predicted_s FROM orders WHERE city_id = $1 AND arrived_at IS NOT NULL "
            "AND en_route_at IS NOT NULL AND arrived_at >= en_route_at AND eta_predicted_s > 0 "
            "ORDER BY arrived_at DESC LIMIT $2",
            city_id,
            REBUILD_TRIPS,
        )
        trips = [
            (r["en_route_at"].astimezone(zone).hour, float(r["observed_s"]), r["eta_predicted_s"])
            for r in reversed(rows)
        ]
        buckets = cal.rebuild(trips, self._params)
        layout_key, buckets_key = self._keys.eta_layout(city_id), self._keys.eta_buckets(city_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(layout_key)
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(buckets_key)
                if buckets:
                    pipe.hset(
                        buckets_key,
                        mapping={
                            cal.bucket_field(b): cal.encode_counts(c) for b, c in buckets.items()
                        },
                    )
                pipe.set(layout_key, cal.layout(self._params))
                await pipe.execute()
            except WatchError:
                pass
        log.info("rebuilt the ETA calibration of %s from %d trips", city_id, len(trips))
        return len(trips)

    async def learn(
        self,
        city_id: str,
        order_id: int,
        departed_ms: int,
        observed_s: float,
        predicted_s: float,
    ) -> EtaCalibration:
        """Fold one observed trip (departure time, seconds taken, road ETA at departure)
        into its hour and band, once per order; this process's calibration is reread."""
        await self.graph_for(city_id)
        if cal.learns_from(observed_s, predicted_s, self._params):
            hour = self.local_hour(city_id, departed_ms)
            await self._add(city_id, order_id, hour, observed_s, predicted_s)
        hours = await self.refresh(city_id)
        return hours[self.local_hour(city_id, departed_ms)]

    async def _add(
        self, city_id: str, order_id: int, hour: int, observed_s: float, predicted_s: float
    ) -> None:
        keys, params = self._keys, self._params
        layout_key, buckets_key = keys.eta_layout(city_id), keys.eta_buckets(city_id)
        learned_key = keys.eta_learned(city_id, order_id)
        field = cal.bucket_field((hour, cal.band_of(predicted_s, params)))
        for _ in range(50):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(layout_key, buckets_key, learned_key)
                    if _text(await pipe.get(layout_key)) != cal.layout(params):
                        await pipe.reset()  # type: ignore[no-untyped-call]
                        await self.rebuild(city_id)  # reads this trip's order too
                        await self._redis.set(learned_key, "1", ex=LEARNED_TTL_S)
                        return
                    if await pipe.exists(learned_key):
                        return
                    raw = await pipe.hget(buckets_key, field)
                    counts = (cal.parse_counts(raw, params) if raw else None) or cal.empty(params)
                    counts = cal.add(counts, observed_s, predicted_s, params)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(buckets_key, field, cal.encode_counts(counts))
                    pipe.set(learned_key, "1", ex=LEARNED_TTL_S)
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        log.warning("ETA trip of order %s not learned: the bucket kept changing", order_id)
