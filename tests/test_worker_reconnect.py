"""A worker's newer socket replacing the older one, in one process and across two, while
the older one still has writes in flight: no state of one connection leaks into the other."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from accounts import service as accounts
from doorstep.stores import Stores
from tests.helpers import Account
from tests.live import closed_code, open_worker, recv
from tracking.fixes import Track
from tracking.jobs import JobInfo
from tracking.protocol import FixIn
from tracking.service import Tracking
from tracking.session import WorkerSession

LAT, LNG = 22.530, 114.010


def fixes_frame(seqs: range, t0: int) -> str:
    """A fixes frame with one fix per seq, 22 m apart, a second apart."""
    return orjson.dumps(
        {
            "type": "fixes",
            "fixes": [
                {
                    "seq": s,
                    "ts_ms": t0 + s * 1000,
                    "lat": LAT + s * 2e-4,
                    "lng": LNG,
                    "accuracy_m": 8.0,
                }
                for s in seqs
            ],
        }
    ).decode()


class Sock:
    """A registered socket as Tracking sees one: it only records how it was closed."""

    def __init__(self) -> None:
        self.conn_id = secrets.token_hex(6)
        self.closed: list[int] = []

    async def send(self, payload: bytes) -> None:
        """Nothing goes anywhere."""

    async def close(self, code: int, reason: str) -> None:
        """Remember the close code."""
        self.closed.append(code)


def new_session(t: Tracking, worker: int, city: str) -> WorkerSession:
    """A fresh session of ``worker`` in ``city``."""
    return WorkerSession(worker, city, "available", Track(), t.fix_params, t.socket_params)


def some_worker() -> tuple[int, str]:
    """A worker id and a city no other test uses."""
    return 2_000_000_000 + secrets.randbelow(10**8), f"nocity-{secrets.token_hex(3)}"


async def test_the_old_sockets_release_keeps_the_new_sockets_session(stores: Stores) -> None:
    """The old socket's release during the new one's claim keeps the new session (a worker with a job stays busy)."""
    t = Tracking(stores)
    w, city = some_worker()

    async def job_source(worker_id: int) -> JobInfo:
        return JobInfo(order_id=1, city_id=city, lat=LAT, lng=LNG, status="assigned")

    t.job_source = job_source
    try:
        a, b = Sock(), Sock()
        sb = new_session(t, w, city)
        await t.claim(w, a, new_session(t, w, city))
        claim_b = asyncio.create_task(t.claim(w, b, sb))
        await asyncio.sleep(0)  # B's claim now waits for its SET
        await asyncio.gather(claim_b, t.release(w, a))
        assert t.local_socket(w) is b
        await t.load_job(w)
        assert (t._sessions.get(w) is sb, sb.state) == (True, "busy")
    finally:
        await stores.redis.delete(stores.keys.worker_socket(w))
        await t.writer.close()


async def test_claims_answered_out_of_order_leave_one_live_socket(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two opens at once, the first reply handled late: the later claim is live here and in Redis, the earlier closed 4001."""
    t = Tracking(stores)
    w, city = some_worker()
    real_set = stores.redis.set
    calls = [0]

    async def slow_first_set(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        first = calls[0] == 1
        reply = await real_set(*args, **kw)
        if first:  # the first claim's reply is handled late
            await asyncio.sleep(0.1)
        return reply

    monkeypatch.setattr(stores.redis, "set", slow_first_set)
    a, b = Sock(), Sock()
    try:
        ta = asyncio.create_task(t.claim(w, a, new_session(t, w, city)))
        await asyncio.sleep(0)
        tb = asyncio.create_task(t.claim(w, b, new_session(t, w, city)))
        await asyncio.gather(ta, tb)
        monkeypatch.undo()
        holder: Any = await stores.redis.get(stores.keys.worker_socket(w))
        holder = holder.decode()
        assert (t.local_socket(w) is b, holder.endswith(b.conn_id), a.closed) == (
            True,
            True,
            [4001],
        )
    finally:
        monkeypatch.undo()
        await stores.redis.delete(stores.keys.worker_socket(w))
        await t.writer.close()


async def test_a_replaced_sockets_late_batch_does_not_move_the_worker_back(stores: Stores) -> None:
    """A replaced socket's late batch from another process leaves the newer socket's seq and position in Redis."""
    p1, p2 = Tracking(stores), Tracking(stores)
    w, city = some_worker()
    now = int(time.time() * 1000)

    def fix(s: int) -> FixIn:
        return FixIn(
            seq=s,
            ts_ms=now - 20_000 + s * 1000,
            lat=LAT + s * 2e-4,
            lng=LNG,
            accuracy_m=8.0,
            speed_mps=None,
            heading_deg=None,
            crs="wgs84",
        )

    try:
        sa, sb = new_session(p1, w, city), new_session(p2, w, city)
        sa.track = sb.track = Track(last_seq=4)
        late = sa.fixes([fix(5)], now)  # judged in process 1 before the reconnect
        newer = sb.fixes([fix(5), fix(6), fix(7), fix(8)], now)  # process 2, after hello 4
        await p2.submit(sb, newer, now)
        await p1.submit(sa, late, now)  # process 1's batch goes out late
        state: Any = await stores.redis.hmget(stores.keys.worker_state(city, w), ["seq", "lat"])
        assert (int(state[0]), round(float(state[1]), 4)) == (8, round(LAT + 16e-4, 4))
        trail: Any = await stores.redis.xrange(stores.keys.trail(city, w))
        assert [int(fields[b"seq"]) for _, fields in trail] == [8]
    finally:
        for t in (p1, p2):
            await t.writer.close()


async def test_fixes_the_old_socket_wrote_are_not_taken_again_after_a_reconnect(
    live_app: tuple[str, Any],
    worker_account: Account,
    stores: Stores,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixes the old socket takes while the new one opens are in hello's resume_seq: a resend is not archived twice."""
    address, app = live_app
    tracking: Tracking = app.state.tracking
    t0 = int(time.time() * 1000) - 60_000
    a, _ = await open_worker(address, worker_account)
    await a.send(fixes_frame(range(1, 4), t0))
    assert (await recv(a))["seq"] == 3

    opening = asyncio.Event()
    real_claim = tracking.claim

    async def slow_claim(*args: Any) -> None:
        opening.set()
        await asyncio.sleep(0.3)  # the old socket still takes frames meanwhile
        await real_claim(*args)

    monkeypatch.setattr(tracking, "claim", slow_claim)
    b_task = asyncio.create_task(open_worker(address, worker_account))
    await opening.wait()
    await a.send(fixes_frame(range(4, 7), t0))  # its ack may not reach the app
    b, hello = await b_task
    monkeypatch.undo()
    assert hello["resume_seq"] == 6
    await b.send(fixes_frame(range(4, 8), t0))  # the app resends what it saw no ack for
    ack = await recv(b)
    assert (ack["seq"], ack["accepted"]) == (7, 1)
    await tracking.archiver.flush()
    rows = await stores.pool.fetch(
        "SELECT seq FROM trail_points WHERE worker_id = $1 ORDER BY seq", worker_account.id
    )
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    await b.close()
    await a.close()


async def test_a_freeze_while_the_socket_opens_closes_it(
    live_app: tuple[str, Any],
    worker_account: Account,
    stores: Stores,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An account frozen while its worker socket opens (before it is registered) gets it closed with 4401."""
    address, app = live_app
    tracking: Tracking = app.state.tracking
    real_claim = tracking.claim

    async def freeze_first(*args: Any) -> None:
        await accounts.set_status(
            stores, app.state.policy, worker_account.id, "frozen", now=int(time.time())
        )
        await asyncio.sleep(0.2)  # the revocation reaches this process first
        await real_claim(*args)

    monkeypatch.setattr(tracking, "claim", freeze_first)
    ws = await asyncio.wait_for(
        connect(f"ws://{address}/v1/ws/worker", additional_headers=worker_account.auth), 5
    )
    try:
        assert await closed_code(ws) == 4401
    finally:
        monkeypatch.undo()
        await ws.close()


async def test_a_claim_in_another_process_returns_after_the_old_socket_is_closed(
    stores: Stores,
) -> None:
    """A claim returns once the other process holding the old socket has closed it (4001) and answered."""
    p1, p2 = Tracking(stores), Tracking(stores)
    await p1.start()
    await p2.start()
    w, city = some_worker()
    a, b = Sock(), Sock()
    try:
        await p1.claim(w, a, new_session(p1, w, city))
        await p2.claim(w, b, new_session(p2, w, city))
        assert (a.closed, p1.local_socket(w), p2.local_socket(w) is b) == ([4001], None, True)
    finally:
        await stores.redis.delete(stores.keys.worker_socket(w))
        await p1.stop()
        await p2.stop()


async def test_three_claims_at_once_leave_the_last_one_live(stores: Stores) -> None:
    """Three opens at once in one process: the last is live here and in Redis, the others closed 4001, no bookkeeping left."""
    t = Tracking(stores)
    w, city = some_worker()
    socks = [Sock(), Sock(), Sock()]
    try:
        await asyncio.gather(*(t.claim(w, s, new_session(t, w, city)) for s in socks))
        holder: Any = await stores.redis.get(stores.keys.worker_socket(w))
        assert holder.decode().endswith(socks[2].conn_id)
        assert t.local_socket(w) is socks[2]
        assert [s.closed for s in socks] == [[4001], [4001], []]
        assert t._claim_turns == {}
    finally:
        await stores.redis.delete(stores.keys.worker_socket(w))
        await t.writer.close()


async def test_held_back_feed_positions_go_out_in_chunks_and_all_of_them(stores: Stores) -> None:
    """The trailing feed pass sends every due held-back position, one message per chunk, and empties the queue."""
    t = Tracking(stores)
    city = f"nocity-{secrets.token_hex(3)}"
    pubsub = stores.redis.pubsub()
    await pubsub.subscribe(stores.keys.feed(city))
    now = int(time.time() * 1000)
    try:
        for w in range(1, 6):
            s = new_session(t, w, city)
            s.feed_pending = (LAT, LNG + w * 1e-4, now, 8.0, "", "")
            t._sessions[w] = s
            t._feed_pending[w] = s
        assert await t.send_trailing_feed(now, chunk=2) == 5
        messages: list[Any] = []
        deadline = time.monotonic() + 5
        while len(messages) < 3 and time.monotonic() < deadline:
            m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if m is not None:
                messages.append(orjson.loads(m["data"]))
        assert [[w["id"] for w in m["workers"]] for m in messages] == [[1, 2], [3, 4], [5]]
        assert t._feed_pending == {}
    finally:
        await pubsub.aclose()
        await t.writer.close()
