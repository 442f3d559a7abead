"""Per-city road graphs and the ETA statistics learned from observed arrivals.

The statistics live in PostgreSQL (``eta_stats``, one row per city and local hour) and
are cached in the process; ``learn`` folds one trip in under a row lock.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from catalog import store as catalog_store
from doorstep.db import Tx
from geo.roadgraph import RoadGraph, graph_for_bbox
from tracking.eta import EtaParams, EtaStats
from tracking.eta import update as update_stats

log = logging.getLogger("doorstep.tracking.eta")


class EtaStore:
    """Road graphs per city, and the learned ETA bias per city and hour."""

    def __init__(self, pool: asyncpg.Pool[Any], params: EtaParams) -> None:
        self._pool = pool
        self._params = params
        self._graphs: dict[str, RoadGraph | None] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._stats: dict[tuple[str, int], EtaStats] = {}

    async def graph_for(self, city_id: str) -> RoadGraph | None:
        """The road graph covering the city's service area, if one is bundled."""
        if city_id not in self._graphs:
            city = await catalog_store.city(self._pool, city_id)
            graph = None
            if city is not None:
                self._zones[city_id] = ZoneInfo(city.timezone)
                graph = graph_for_bbox(tuple(city.bbox))  # type: ignore[arg-type]
            self._graphs[city_id] = graph
            await self.load_stats(city_id)
        return self._graphs[city_id]

    def local_hour(self, city_id: str, ts_ms: int) -> int:
        """The hour of day in the city's time zone."""
        zone = self._zones.get(city_id, ZoneInfo("Asia/Shanghai"))
        return datetime.fromtimestamp(ts_ms / 1000, zone).hour

    def stats_for(self, city_id: str, ts_ms: int) -> EtaStats:
        """The learned ETA bias for the city at that hour (prior until learned)."""
        return self._stats.get((city_id, self.local_hour(city_id, ts_ms)), EtaStats())

    async def load_stats(self, city_id: str) -> None:
        """Read the city's learned ETA statistics."""
        rows = await self._pool.fetch(
            "SELECT hour, n, mean_log_ratio, var_log_ratio FROM eta_stats WHERE city_id = $1",
            city_id,
        )
        for r in rows:
            self._stats[(city_id, r["hour"])] = EtaStats(
                r["n"], r["mean_log_ratio"], r["var_log_ratio"]
            )

    async def learn(
        self,
        city_id: str,
        ts_ms: int,
        observed_s: float,
        predicted_s: float,
        *,
        db: Tx | None = None,
    ) -> EtaStats:
        """Fold one observed trip into the city-hour's ETA statistics (and store them), in
        ``db``'s transaction if given (the eta-learning consumer's: exactly once)."""
        await self.graph_for(city_id)
        hour = self.local_hour(city_id, ts_ms)
        if db is not None:
            stats = await self._learn(db, city_id, hour, observed_s, predicted_s)
        else:
            async with self._pool.acquire() as conn, conn.transaction():
                stats = await self._learn(conn, city_id, hour, observed_s, predicted_s)
        self._stats[(city_id, hour)] = stats
        return stats

    async def _learn(
        self, conn: Tx, city_id: str, hour: int, observed_s: float, predicted_s: float
    ) -> EtaStats:
        row = await conn.fetchrow(
            "SELECT n, mean_log_ratio, var_log_ratio FROM eta_stats "
            "WHERE city_id = $1 AND hour = $2 FOR UPDATE",
            city_id,
            hour,
        )
        stats = (
            EtaStats(row["n"], row["mean_log_ratio"], row["var_log_ratio"]) if row else EtaStats()
        )
        stats = update_stats(stats, observed_s, predicted_s, self._params)
        await conn.execute(
            "INSERT INTO eta_stats (city_id, hour, n, mean_log_ratio, var_log_ratio) "
            "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (city_id, hour) DO UPDATE SET n = EXCLUDED.n, "
            "mean_log_ratio = EXCLUDED.mean_log_ratio, var_log_ratio = EXCLUDED.var_log_ratio, "
            "updated_at = now()",
            city_id,
            hour,
            stats.n,
            stats.mean_log_ratio,
            stats.var_log_ratio,
        )
        return stats
