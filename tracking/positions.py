"""A worker's live hash in Redis (``Keys.worker_state``), read and parsed in one place.

The Lua scripts (``tracking/scripts.py``) write it: the ingest sets ``lat``, ``lng``,
``ts``, ``acc``, ``spd``, ``hdg``, ``seq``, ``state``, ``seen`` and ``stale`` (or only
``seq`` for a batch with no live fix), a state change sets ``state``, the stale sweep
sets ``stale``; the worker's chosen availability is ``pref``. Every other reader —
dispatch, the dispatcher's board, the day plans, the sockets' snapshots, the position
endpoint, a worker's resume point — goes through :func:`read_one` or :func:`read_many`,
so that the field names and their parsing live here alone. A missing hash reads as
``None``; a hash without a whole fix (only ``seq`` or ``pref``, or a value that does not
parse) reads with ``position`` ``None``: neither is an error.

:func:`parse` does no I/O; the readers send one ``HMGET`` per worker, pipelined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from doorstep.keys import Keys

# The fields read, in the order :func:`parse` expects them.
FIELDS = ("lat", "lng", "ts", "acc", "state", "stale", "seq", "pref", "seen")


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's last accepted fix: WGS-84 degrees, device time, accuracy."""

    lat: float
    lng: float
    ts_ms: int
    accuracy_m: float


class WorkerLive(msgspec.Struct, frozen=True, kw_only=True):
    """What the live index holds of one worker.

    ``state``: the index state last written (``available``, ``busy``, ``unavailable``,
    ``offline``), ``None`` if never set; ``stale``: silent past the limit (the sweep took
    them out of the geo index); ``seq``: the last processed sequence number; ``pref``:
    the availability the worker chose; ``seen_ms``: server time of the last fix (it
    survives the stale sweep and disconnects, unlike presence).
    """

    position: Position | None
    state: str | None
    stale: bool
    seq: int | None
    pref: str | None
    seen_ms: int | None

    @property
    def shown_state(self) -> str:
        """The state as the console and the position endpoint show it: ``stale`` when
        silent past the limit (unless offline), ``offline`` when unknown."""
        if self.stale and self.state not in (None, "offline"):
            return "stale"
        return self.state or "offline"


def _text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    return value or None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse(values: Sequence[bytes | str | None]) -> WorkerLive | None:
    """The ``HMGET`` reply for :data:`FIELDS` → the worker's live state; ``None`` when the
    hash does not exist (every field missing). A field that is missing, empty or does not
    parse reads as ``None``; ``position`` needs ``lat``, ``lng`` and ``ts``."""
    if len(values) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} values (FIELDS), got {len(values)}")
    lat_, lng_, ts_, acc_, state, stale, seq_, pref, seen_ = (_text(v) for v in values)
    if all(v is None for v in (lat_, lng_, ts_, acc_, state, stale, seq_, pref, seen_)):
        return None
    lat, lng, ts = _float(lat_), _float(lng_), _int(ts_)
    position = (
        Position(lat=lat, lng=lng, ts_ms=ts, accuracy_m=_float(acc_) or 0.0)
        if lat is not None and lng is not None and ts is not None
        else None
    )
    return WorkerLive(
        position=position,
        state=state,
        stale=stale == "1",
        seq=_int(seq_),
        pref=pref,
        seen_ms=_int(seen_),
    )


async def read_one(redis: Redis, keys: Keys, city_id: str, worker_id: int) -> WorkerLive | None:
    """One worker's live state (``None``: nothing in the index)."""
    return parse(await redis.hmget(keys.worker_state(city_id, worker_id), FIELDS))


async def read_position(redis: Redis, keys: Keys, city_id: str, worker_id: int) -> Position | None:
    """One worker's last position (``None``: none known)."""
    live = await read_one(redis, keys, city_id, worker_id)
    return live.position if live is not None else None


async def read_many(
    redis: Redis, keys: Keys, city_id: str, worker_ids: Sequence[int]
) -> dict[int, WorkerLive]:
    """Many workers of one city in one pipelined round trip; those with nothing in the
    index are left out."""
    if not worker_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for w in worker_ids:
            pipe.hmget(keys.worker_state(city_id, w), FIELDS)
        replies = await pipe.execute()
    out = {}
    for w, reply in zip(worker_ids, replies, strict=True):
        live = parse(reply)
        if live is not None:
            out[w] = live
    return out


async def read_trail(
    redis: Redis, keys: Keys, city_id: str, worker_id: int, *, batches: int = 30
) -> list[tuple[float, float, int]]:
    """A worker's recent trail from the live stream (``Keys.trail``: one entry per write
    batch, its points as JSON ``[[lat, lng, ts, acc], ...]``): (lat, lng, ts_ms), oldest
    first, from the last ``batches`` entries."""
    entries = await redis.xrevrange(keys.trail(city_id, worker_id), count=batches)
    points: list[tuple[float, float, int]] = []
    for _, fields in reversed(entries or []):
        raw = (fields or {}).get(b"pts") or (fields or {}).get("pts")
        if not raw:
            continue
        try:
            for p in msgspec.json.decode(raw):
                points.append((float(p[0]), float(p[1]), int(p[2])))
        except (msgspec.DecodeError, TypeError, ValueError, IndexError):
            continue  # a malformed entry costs its points, not the trail
    return points
