"""The engine's copy of a city's available workers, kept current from Redis.

Every script that writes a city's ``geo:available`` set (``tracking/scripts.py``) appends,
in the same atomic call, one entry to the city's change log ``geo:available:log`` (a
Redis stream capped at :data:`tracking.scripts.LOG_CAP` entries): ``a`` = ``lng,lat,worker,…``
added or moved, ``r`` = ``worker,…`` removed. :class:`AvailableWorkers` holds one
:class:`matching.live_index.LiveWorkers` per city and, each tick, reads only the log's new
entries instead of the whole set (176 ms at 100k workers; see benchmarks/matching.py).

It stays exactly the set, across processes and restarts:

- A snapshot reads the set *and* the log's ``entries-added`` counter and last id in one
  script, so the entries after that id are exactly the changes after the read.
- Each read returns the log's ``entries-added`` and length with the new entries. If more
  entries were added since our cursor than the log still holds (trimmed while this
  process was not reading: it lost or never had the lease, or it was slow), or fewer
  than we already consumed (Redis lost its data or was restored from an older
  snapshot), the copy is rebuilt from the set. Redis stays rebuildable hot state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, cast

import msgspec
import numpy as np
import redis.asyncio as aioredis

from doorstep.keys import Keys
from matching.index import decode_geohash
from matching.live_index import LiveWorkers

READ_COUNT: Final = 1000  # log entries per read call

# KEYS[1] the set, KEYS[2] its log. Returns {entries-added, last-generated-id, packed set}.
SNAPSHOT = """
local added, last = 0, '0-0'
if redis.call('EXISTS', KEYS[2]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {added, last, table.concat(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), ',')}
"""

# KEYS[1] the log, ARGV[1] the cursor (last id read), ARGV[2] count.
# Returns {entries-added, length, entries after the cursor}.
READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, {}} end
local added, length = 0, 0
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'length' then length = info[i + 1] end
end
return {added, length, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
"""


def parse_snapshot(packed: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, lat and lng from ``member,score,member,score,…`` of a geo set."""
    if not packed:
        return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    values = np.fromstring(packed.decode(), sep=",", dtype=np.float64)
    ids = values[0::2].astype(np.int64)
    lat, lng = decode_geohash(values[1::2])
    return ids, lat, lng


_NUMBERS = msgspec.json.Decoder(list[float])


def parse_numbers(text: bytes) -> np.ndarray:
    """``1.5,2,-3.25,…`` as float64, as ``np.fromstring(…, sep=",")`` reads it.

    Read as a JSON array (msgspec: ~50 ns a number, where ``np.fromstring`` took ~220:
    a tick of 40k moves logs 120k numbers, 26 against 6 ms of CPU); both round
    correctly, so the floats are the same. Text that is not JSON (``nan``, ``.5``,
    ``1e400``), or holds ``-0`` (which JSON reads as the integer 0, losing the sign), is
    read by ``np.fromstring`` as before."""
    if b"-0," not in text and not text.endswith(b"-0"):
        try:
            return np.array(_NUMBERS.decode(b"[" + text + b"]"), dtype=np.float64)
        except msgspec.DecodeError:
            pass
    return np.fromstring(text.decode(), sep=",", dtype=np.float64)


def parse_entries(entries: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The changes of log entries, in order: ids, lat and lng (NaN: removed)."""
    parts: list[np.ndarray] = []  # lng, lat, worker, lng, lat, worker, …
    for _, fields in entries:
        values = dict(zip(fields[0::2], fields[1::2], strict=True))
        added, removed = values.get(b"a", b""), values.get(b"r", b"")
        if removed:
            gone = parse_numbers(removed)
            triples = np.full((len(gone), 3), np.nan)
            triples[:, 2] = gone
            parts.append(triples.ravel())
        if added:
            parts.append(parse_numbers(added))
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
    flat = np.concatenate(parts)
    lng, lat, ids = flat[0::3], flat[1::3], flat[2::3]
    return ids.astype(np.int64), lat, lng


@dataclass
class _City:
    live: LiveWorkers = field(default_factory=LiveWorkers)
    cursor: bytes = b"0-0"
    consumed: int = 0  # log entries ever added up to the cursor
    loaded: bool = False


@dataclass
class RefreshReport:
    """What one refresh did (for the tick's report and the benchmark)."""

    rebuilt: bool = False
    entries: int = 0
    changes: int = 0


class AvailableWorkers:
    """Per city, the available workers and their positions, current to the last refresh."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._snapshot = redis.register_script(SNAPSHOT)
        self._read = redis.register_script(READ)
        self._cities: dict[str, _City] = {}
        self.rebuilds = 0

    def _log_key(self, city_id: str) -> str:
        return self._keys.geo(city_id, "available:log")

    async def rebuild(self, city_id: str) -> None:
        """Read the whole set again (at start, and whenever the log cannot be trusted)."""
        state = self._cities.setdefault(city_id, _City())
        added, last, packed = cast(
            list[Any],
            await self._snapshot(
                keys=[self._keys.geo(city_id, "available"), self._log_key(city_id)]
            ),
        )
        state.live.reset(*parse_snapshot(packed))
        state.cursor = last if isinstance(last, bytes) else str(last).encode()
        state.consumed = int(added)
        state.loaded = True
        self.rebuilds += 1

    async def refresh(self, city_id: str) -> tuple[LiveWorkers, RefreshReport]:
        """Apply the log's new entries (or rebuild when entries were lost)."""
        state = self._cities.setdefault(city_id, _City())
        report = RefreshReport()
        if not state.loaded:
            await self.rebuild(city_id)
            report.rebuilt = True
            return state.live, report
        while True:
            added, length, entries = cast(
                list[Any],
                await self._read(keys=[self._log_key(city_id)], args=[state.cursor, READ_COUNT]),
            )
            unread = int(added) - state.consumed
            if unread < 0 or unread > int(length):
                await self.rebuild(city_id)
                report.rebuilt = True
                return state.live, report
            if entries:
                report.changes += state.live.apply(*parse_entries(entries))
                report.entries += len(entries)
                state.cursor = entries[-1][0]
                state.consumed += len(entries)
            if len(entries) < READ_COUNT:
                return state.live, report

    def forget(self, city_id: str) -> None:
        """Drop a city's copy (the next refresh rebuilds it)."""
        self._cities.pop(city_id, None)
