"""The engine's copy of a city's available workers (tracking/geo_log.py over
matching/live_index.py): kept current from the geo set's change log, on real Redis,
equal to the set after every kind of write, across processes, and rebuilt when the log
cannot be trusted."""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from doorstep.stores import Stores
from matching.live_index import LiveWorkers, last_change_per_worker
from tracking import scripts
from tracking.geo_log import AvailableWorkers, parse_entries, parse_numbers
from tracking.ingest import IngestParams, IngestWriter
from tracking.redis_pipe import RedisPipe

NAN = float("nan")


def as_dict(live: LiveWorkers) -> dict[int, tuple[float, float]]:
    """The copy as worker id -> (lat, lng), rounded to ~1 m (the set stores a geohash)."""
    ids, lat, lng = live.positions()
    return {
        int(w): (round(float(a), 5), round(float(b), 5))
        for w, a, b in zip(ids, lat, lng, strict=True)
    }


def assert_same(
    copy: dict[int, tuple[float, float]], geo_set: dict[int, tuple[float, float]]
) -> None:
    """Same workers, positions within 2e-5 degree (the set keeps a geohash cell's centre)."""
    assert sorted(copy) == sorted(geo_set)
    for w, (lat, lng) in copy.items():
        assert abs(lat - geo_set[w][0]) <= 2e-5
        assert abs(lng - geo_set[w][1]) <= 2e-5


def test_the_last_change_of_each_worker_wins() -> None:
    """Of a batch of changes in log order, each worker's last one is kept, sorted by id."""
    ids, lat, _lng = last_change_per_worker(
        np.array([5, 3, 5, 3, 9]),
        np.array([1.0, 2.0, NAN, 4.0, 5.0]),
        np.array([1.0, 2.0, NAN, 4.0, 5.0]),
    )
    assert ids.tolist() == [3, 5, 9]
    assert lat[0] == 4.0
    assert np.isnan(lat[1])
    assert lat[2] == 5.0


def test_live_workers_apply_adds_moves_and_removals() -> None:
    """New workers are added, known ones move or leave; removing an unknown changes nothing."""
    live = LiveWorkers()
    live.reset(np.array([7, 2]), np.array([22.5, 22.6]), np.array([114.0, 114.1]))
    live.apply(
        np.array([2, 11, 7, 4]),
        np.array([22.7, 22.8, NAN, NAN]),
        np.array([114.2, 114.3, NAN, NAN]),
    )
    assert as_dict(live) == {2: (22.7, 114.2), 11: (22.8, 114.3)}
    live.apply(np.array([7]), np.array([22.9]), np.array([114.4]))  # back, elsewhere
    assert as_dict(live) == {2: (22.7, 114.2), 7: (22.9, 114.4), 11: (22.8, 114.3)}
    index = live.index(exclude=np.array([11]))
    assert index.worker_ids.tolist() == [2, 7]


@pytest.fixture
async def city(stores: Stores) -> AsyncIterator[str]:
    """A fresh city id whose Redis keys are deleted afterwards."""
    city_id = f"glog-{secrets.token_hex(3)}"
    yield city_id
    keys = stores.keys
    found = [k async for k in stores.redis.scan_iter(match=keys.city_tag(city_id) + "*")]
    if found:
        await stores.redis.delete(*found)


class Writes:
    """The three scripts that write a city's geo sets, as the server calls them."""

    def __init__(self, stores: Stores, city: str) -> None:
        self.stores, self.city = stores, city
        self.writer = IngestWriter(
            RedisPipe(stores.redis_url), stores.keys, IngestParams(flush_interval_ms=0)
        )
        self.set_state_script = stores.redis.register_script(scripts.SET_STATE)
        self.sweep_script = stores.redis.register_script(scripts.SWEEP_STALE)
        self.seq: dict[int, int] = {}

    async def fix(self, worker: int, lat: float, lng: float, state: str = "available") -> None:
        """One fix from the worker, through the ingest script."""
        self.seq[worker] = self.seq.get(worker, 0) + 1
        await self.writer.submit(
            self.city,
            worker,
            seq=self.seq[worker],
            state=state,
            last=(lat, lng, 1_700_000_000_000 + self.seq[worker], 5.0, 0.0, ""),
            trail=[],
        )

    async def set_state(self, worker: int, state: str) -> None:
        """A state change (available, busy, unavailable, offline), as tracking.service does."""
        keys = self.stores.keys
        await self.set_state_script(
            keys=[keys.presence(self.city)], args=[keys.city_tag(self.city), worker, state]
        )

    async def sweep(self, cutoff_ms: int) -> list[int]:
        """The stale sweep: workers with no fix since ``cutoff_ms`` leave every geo set."""
        keys = self.stores.keys
        ids = await self.sweep_script(
            keys=[keys.presence(self.city)], args=[keys.city_tag(self.city), cutoff_ms]
        )
        return [int(i) for i in ids]

    async def available_set(self) -> dict[int, tuple[float, float]]:
        """What the geo set itself holds, read whole."""
        fresh = AvailableWorkers(self.stores.redis, self.stores.keys)
        await fresh.rebuild(self.city)
        live, _ = await fresh.refresh(self.city)
        return as_dict(live)

    async def close(self) -> None:
        await self.writer.drain()
        await self.writer.close()


@pytest.fixture
async def writes(stores: Stores, city: str) -> AsyncIterator[Writes]:
    """The city's writers."""
    w = Writes(stores, city)
    yield w
    await w.close()


async def test_fixes_state_changes_and_the_sweep_reach_the_copy(
    stores: Stores, city: str, writes: Writes
) -> None:
    """Each write of the set reaches the copy from the log alone: a fix adds or moves a
    worker, a busy fix or a state change removes them, going available again brings them
    back, the stale sweep removes them; the copy equals the set after each step."""
    available = AvailableWorkers(stores.redis, stores.keys)
    live, report = await available.refresh(city)
    assert report.rebuilt
    assert len(live) == 0
    await writes.fix(1, 22.54, 114.05)
    await writes.fix(2, 22.55, 114.06)
    await writes.fix(3, 22.56, 114.07, state="busy")
    await writes.writer.drain()
    live, report = await available.refresh(city)
    assert not report.rebuilt
    assert as_dict(live) == {1: (22.54, 114.05), 2: (22.55, 114.06)}
    assert_same(as_dict(live), await writes.available_set())

    await writes.fix(1, 22.541, 114.051)  # moved
    await writes.fix(2, 22.55, 114.06, state="busy")  # took a job: out
    await writes.writer.drain()
    live, report = await available.refresh(city)
    assert not report.rebuilt
    assert as_dict(live) == {1: (22.541, 114.051)}

    await writes.set_state(2, "available")  # finished the job
    await writes.set_state(1, "offline")  # signed off
    live, _ = await available.refresh(city)
    assert as_dict(live) == {2: (22.55, 114.06)}
    assert_same(as_dict(live), await writes.available_set())

    await writes.fix(4, 22.57, 114.08)
    await writes.writer.drain()
    swept = await writes.sweep(2**62)  # a cutoff after every fix: all of them go stale
    assert sorted(swept) == [2, 3, 4]  # 1 signed off, so it left presence already
    live, report = await available.refresh(city)
    assert not report.rebuilt
    assert as_dict(live) == {}
    assert available.rebuilds == 1


async def test_two_processes_agree_with_the_set_under_random_writes(
    stores: Stores, city: str, writes: Writes
) -> None:
    """Two copies (two engine processes) fed by the same log, one refreshing after every
    batch and one only at the end, both equal the set after 40 random batches of fixes,
    busy fixes and state changes of 60 workers."""
    rng = random.Random(20)
    first = AvailableWorkers(stores.redis, stores.keys)
    second = AvailableWorkers(stores.redis, stores.keys)
    await first.refresh(city)
    await second.refresh(city)
    for _ in range(40):
        for _ in range(rng.randint(1, 30)):
            worker = rng.randint(1, 60)
            roll = rng.random()
            if roll < 0.7:
                state = "available" if rng.random() < 0.8 else "busy"
                await writes.fix(
                    worker, 22.5 + rng.random() * 0.1, 114.0 + rng.random() * 0.1, state
                )
            else:
                await writes.writer.drain()  # state changes apply after queued fixes
                await writes.set_state(
                    worker, rng.choice(["available", "busy", "unavailable", "offline"])
                )
        await writes.writer.drain()
        live, report = await first.refresh(city)
        assert not report.rebuilt
        assert_same(as_dict(live), await writes.available_set())
    live, report = await second.refresh(city)
    assert not report.rebuilt
    assert_same(as_dict(live), await writes.available_set())
    assert first.rebuilds == second.rebuilds == 1


async def test_a_trimmed_log_makes_the_copy_rebuild_from_the_set(
    stores: Stores, city: str, writes: Writes
) -> None:
    """Entries trimmed before this process read them (it lost the lease, or slept) are
    noticed: the copy is read whole again, and a worker who left meanwhile is not kept."""
    available = AvailableWorkers(stores.redis, stores.keys)
    await writes.fix(1, 22.54, 114.05)
    await writes.fix(2, 22.55, 114.06)
    await writes.writer.drain()
    live, _ = await available.refresh(city)
    assert set(as_dict(live)) == {1, 2}
    await writes.set_state(1, "busy")
    await writes.fix(3, 22.56, 114.07)
    await writes.writer.drain()
    await stores.redis.xtrim(stores.keys.geo(city, "available:log"), maxlen=0)
    live, report = await available.refresh(city)
    assert report.rebuilt
    assert as_dict(live) == {2: (22.55, 114.06), 3: (22.56, 114.07)}


async def test_redis_losing_its_data_makes_the_copy_rebuild(
    stores: Stores, city: str, writes: Writes
) -> None:
    """When the set and its log are gone (Redis restarted empty), the copy does not keep
    the workers it had: it is rebuilt, empty, and fills again from the next fixes."""
    available = AvailableWorkers(stores.redis, stores.keys)
    await writes.fix(1, 22.54, 114.05)
    await writes.writer.drain()
    live, _ = await available.refresh(city)
    assert set(as_dict(live)) == {1}
    keys = stores.keys
    await stores.redis.delete(keys.geo(city, "available"), keys.geo(city, "available:log"))
    live, report = await available.refresh(city)
    assert report.rebuilt
    assert as_dict(live) == {}
    await writes.fix(5, 22.55, 114.06)
    await writes.writer.drain()
    live, report = await available.refresh(city)
    assert not report.rebuilt
    assert as_dict(live) == {5: (22.55, 114.06)}


def _parse_entries_as_before(entries: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """parse_entries as it was: the whole batch as one string for np.fromstring."""
    parts: list[bytes] = []
    for _, fields in entries:
        values = dict(zip(fields[0::2], fields[1::2], strict=True))
        added, removed = values.get(b"a", b""), values.get(b"r", b"")
        if removed:
            parts.append(b"nan,nan," + removed.replace(b",", b",nan,nan,"))
        if added:
            parts.append(added)
    triples = np.fromstring(b",".join(parts).decode(), sep=",", dtype=np.float64)
    return triples[2::3].astype(np.int64), triples[1::3], triples[0::3]


def test_log_entries_parse_to_the_same_floats_as_before() -> None:
    """The log's entries (the ingest's %.7f, Lua's %.14g, -0, text JSON cannot read, removals
    between additions) give the changes np.fromstring gave, bit for bit and in order."""
    rng = random.Random(4)

    def added(fmt: str, n: int) -> bytes:
        return ",".join(
            f"{fmt % rng.uniform(113.9, 114.1)},{fmt % rng.uniform(22.5, 22.6)},"
            f"{rng.randint(1, 10**6)}"
            for _ in range(n)
        ).encode()

    entries: list[Any] = [
        (b"1-0", [b"a", added("%.7f", 500), b"r", b"17,18"]),
        (b"2-0", [b"a", b"", b"r", b"19"]),
        (b"3-0", [b"a", added("%.14g", 300), b"r", b""]),
        (b"4-0", [b"a", b"114.1,-0,20,.5,22.5,21", b"r", b""]),  # -0, and .5 (not JSON)
        (b"5-0", [b"a", b"-0.0,22.5,22,114,22.5,23", b"r", b"24"]),
        (b"6-0", [b"a", b"", b"r", b""]),
    ]
    got, want = parse_entries(entries), _parse_entries_as_before(entries)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        assert g.tobytes() == w.tobytes()
    assert parse_numbers(b"1,-0").tobytes() == np.array([1.0, -0.0]).tobytes()
    assert all(len(a) == 0 for a in parse_entries([(b"7-0", [b"a", b"", b"r", b""])]))
