"""A worker's busy/available state converges to what dispatch says, whatever the order in
which job reloads, state changes and the batched writes of fixes finish."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from doorstep.stores import Stores
from tracking.fixes import Track
from tracking.ingest import IngestWriter
from tracking.jobs import JobInfo
from tracking.protocol import FixIn
from tracking.redis_pipe import RedisPipe
from tracking.service import Tracking
from tracking.session import WorkerSession

LAT, LNG = 22.530, 114.010


class Sock:
    """A registered socket as Tracking sees one: nothing goes anywhere."""

    def __init__(self) -> None:
        self.conn_id = secrets.token_hex(6)

    async def send(self, payload: bytes) -> None:
        """Nothing goes anywhere."""

    async def close(self, code: int, reason: str) -> None:
        """Nothing to close."""


class GatedRedis:
    """A TCP relay to the real Redis whose client-to-Redis direction can be held: what a
    client sends while the gate is shut reaches Redis when it opens."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.open = asyncio.Event()
        self.open.set()
        self.server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        """Listen; returns the Redis URL to connect through the relay."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        parts = urlsplit(self.url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def stop(self) -> None:
        """Stop listening and drop the relayed connections."""
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for w in self._writers:
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(self.url)
        up_reader, up_writer = await asyncio.open_connection(
            parts.hostname or "127.0.0.1", parts.port or 6379
        )
        self._writers += [writer, up_writer]
        for pump in (self._pump(reader, up_writer, True), self._pump(up_reader, writer, False)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, gated: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if gated:
                    await self.open.wait()
                dst.write(data)
                await dst.drain()


@pytest.fixture
async def gated(stores: Stores) -> AsyncIterator[GatedRedis]:
    """A gated relay to this run's Redis."""
    relay = GatedRedis(stores.redis_url)
    yield relay
    relay.open.set()
    await relay.stop()


def some_worker() -> tuple[int, str]:
    """A worker id and a city no other test uses."""
    return 2_000_000_000 + secrets.randbelow(10**8), f"nocity-{secrets.token_hex(3)}"


def fix(seq: int, now_ms: int) -> FixIn:
    """A fix a few metres along, a second after the one before."""
    return FixIn(
        seq=seq, ts_ms=now_ms - 20_000 + seq * 1000, lat=LAT + seq * 2e-5, lng=LNG, accuracy_m=8.0
    )


async def index_state(stores: Stores, city: str, worker: int) -> list[str]:
    """The geo sets of the city that hold the worker."""
    found = []
    for state in ("available", "busy", "unavailable"):
        if await stores.redis.zscore(stores.keys.geo(city, state), str(worker)) is not None:
            found.append(state)
    return found


async def gated_tracking(stores: Stores, gated: GatedRedis) -> Tracking:
    """A Tracking whose fix writer goes through the gated relay."""
    t = Tracking(stores)
    await t.writer.close()
    t.writer = IngestWriter(RedisPipe(await gated.start()), stores.keys)
    return t


async def let_through_when_waiting(
    t: Tracking,
    gated: GatedRedis,
    monkeypatch: pytest.MonkeyPatch,
    change: Coroutine[Any, Any, Any],
) -> asyncio.Task[Any]:
    """Start the state ``change`` and let the held batch reach Redis once the change ends
    or starts waiting for the writes submitted before it (what the fix does)."""
    waits = asyncio.Event()
    real_barrier = t.writer.barrier

    def barrier() -> asyncio.Future[None]:
        waits.set()
        return real_barrier()

    monkeypatch.setattr(t.writer, "barrier", barrier)
    task = asyncio.create_task(change)
    waiting = asyncio.create_task(waits.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    gated.open.set()
    return task


async def connected(t: Tracking, w: int, city: str, sock: Sock) -> tuple[WorkerSession, int]:
    """Worker ``w`` connected on ``sock`` (available) with one fix written: the session and
    that fix's time (ms)."""
    session = WorkerSession(w, city, "available", Track(), t.fix_params, t.socket_params)
    await t.claim(w, sock, session)
    now = int(time.time() * 1000)
    await t.submit(session, session.fixes([fix(1, now)], now), now)
    return session, now


async def test_a_job_read_from_before_the_completion_cannot_set_the_worker_busy_again(
    stores: Stores,
) -> None:
    """A reload whose read began before the job ended, finishing after the completion's reload, leaves the worker available."""
    t = Tracking(stores)
    w, city = some_worker()
    holds = [True]  # what dispatch's database says: the worker holds a job
    reads = [0]
    first_read, finish_first = asyncio.Event(), asyncio.Event()

    async def job_source(worker_id: int) -> JobInfo | None:
        reads[0] += 1
        held = holds[0]
        if reads[0] == 2:  # the slow read (e.g. a socket's connect): held up after reading
            first_read.set()
            await finish_first.wait()
        return (
            JobInfo(order_id=1, city_id=city, lat=LAT, lng=LNG, status="in_service")
            if held
            else None
        )

    t.job_source = job_source
    try:
        session, _ = await connected(t, w, city, Sock())
        await t.load_job(w)  # read 1: busy with the job
        assert await index_state(stores, city, w) == ["busy"]
        slow = asyncio.create_task(t.load_job(w))  # read 2 sees the job, then stalls
        await first_read.wait()
        holds[0] = False  # the completion commits
        changed = asyncio.create_task(t.load_job(w))  # the completion's reload (live-push)
        await asyncio.sleep(0)  # it reads (and sets the state) or waits its turn
        finish_first.set()
        await asyncio.gather(slow, changed)
        assert (session.state, await index_state(stores, city, w)) == ("available", ["available"])
        assert t.active_job(w) is None
    finally:
        await stores.redis.delete(stores.keys.worker_socket(w))
        await t.writer.close()


async def test_a_fix_written_after_the_completion_does_not_set_the_worker_busy_again(
    stores: Stores, gated: GatedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fix taken while busy whose batched write reaches Redis after the completion's state change leaves the worker available."""
    t = await gated_tracking(stores, gated)
    w, city = some_worker()
    holds = [True]

    async def job_source(worker_id: int) -> JobInfo | None:
        if holds[0]:
            return JobInfo(order_id=1, city_id=city, lat=LAT, lng=LNG, status="in_service")
        return None

    t.job_source = job_source
    try:
        session, now = await connected(t, w, city, Sock())
        await t.load_job(w)
        assert await index_state(stores, city, w) == ["busy"]
        gated.open.clear()  # the writer's next batch is held on its way to Redis
        written = t.submit(session, session.fixes([fix(2, now)], now), now)  # taken while busy
        holds[0] = False  # the completion commits
        # the completion's reload; the held batch (state busy) reaches Redis during it
        changed = await let_through_when_waiting(t, gated, monkeypatch, t.load_job(w))
        await asyncio.gather(changed, written)
        assert (session.state, await index_state(stores, city, w)) == ("available", ["available"])
    finally:
        monkeypatch.undo()
        gated.open.set()
        await stores.redis.delete(stores.keys.worker_socket(w))
        await t.writer.close()


async def test_a_fix_written_after_the_socket_closed_does_not_put_the_worker_back(
    stores: Stores, gated: GatedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fix whose batched write reaches Redis after the worker's socket closed leaves them out of the index (offline)."""
    t = await gated_tracking(stores, gated)
    w, city = some_worker()
    sock = Sock()
    try:
        session, now = await connected(t, w, city, sock)
        assert await index_state(stores, city, w) == ["available"]
        gated.open.clear()  # the writer's next batch is held on its way to Redis
        written = t.submit(session, session.fixes([fix(2, now)], now), now)
        # the socket closed; the held batch (state available) reaches Redis meanwhile
        closed = await let_through_when_waiting(
            t, gated, monkeypatch, t.went_offline(session, sock)
        )
        await asyncio.gather(closed, written)
        assert await index_state(stores, city, w) == []
    finally:
        monkeypatch.undo()
        gated.open.set()
        await stores.redis.delete(stores.keys.worker_socket(w))
        await t.writer.close()
