"""The worker location socket over a real uvicorn server, real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from doorstep.stores import Stores
from tests.helpers import METRICS_AUTH, Account, MakeUser
from tests.live import closed_code, open_worker, recv

LAT, LNG = 22.530, 114.010


def fix(seq: int, *, dlat: float = 0.0, ts_ms: int | None = None, **extra: Any) -> dict[str, Any]:
    """A plausible fix ``seq`` seconds into a walk north."""
    return {
        "seq": seq,
        "ts_ms": ts_ms if ts_ms is not None else int(time.time() * 1000),
        "lat": LAT + dlat,
        "lng": LNG,
        "accuracy_m": 8.0,
        **extra,
    }


async def test_fixes_are_acked_and_indexed(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """A fix is acked by seq and lands in the geo index, the last-fix hash and the trail stream."""
    ws, hello = await open_worker(live_app[0], worker_account)
    assert hello["resume_seq"] == 0
    assert hello["state"] == "available"
    sent = fix(1)
    await ws.send(orjson.dumps({"type": "fix", **sent}).decode())
    ack = await recv(ws)
    assert ack == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}
    keys, redis, w = stores.keys, stores.redis, worker_account.id
    pos = await redis.geopos(keys.geo(live_city, "available"), str(w))
    assert pos[0] is not None
    assert pos[0][1] == pytest.approx(LAT, abs=1e-5)
    state = await redis.hgetall(keys.worker_state(live_city, w))
    assert state[b"seq"] == b"1"
    assert state[b"state"] == b"available"
    entries = await redis.xrange(keys.trail(live_city, w))
    assert entries is not None
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields is not None
    assert fields[b"seq"] == b"1"
    [point] = orjson.loads(fields[b"pts"])
    assert point[0] == pytest.approx(LAT, abs=1e-7)
    assert point[2] == sent["ts_ms"]
    await ws.close()


async def test_batches_resume_and_duplicates(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """A batch acks its highest seq; after a reconnect the app resumes and resent fixes count once."""
    ws, _ = await open_worker(live_app[0], worker_account)
    batch = [fix(s, dlat=s * 1e-4) for s in range(1, 6)]
    await ws.send(orjson.dumps({"type": "fixes", "fixes": batch}).decode())
    assert (await recv(ws))["seq"] == 5
    await ws.close()
    ws, hello = await open_worker(live_app[0], worker_account)
    assert hello["resume_seq"] == 5
    resent = [*batch[2:], fix(6, dlat=6e-4)]  # the app did not see the ack for 3..5
    await ws.send(orjson.dumps({"type": "fixes", "fixes": resent}).decode())
    ack = await recv(ws)
    assert ack["seq"] == 6
    assert ack["accepted"] == 1
    assert ack["rejected"] == [{"seq": s, "reason": "duplicate"} for s in (3, 4, 5)]
    await ws.close()


async def test_rejections_are_reported_in_the_ack(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """Bad fixes are rejected by reason in the ack, and the ack still moves past them."""
    ws, _ = await open_worker(live_app[0], worker_account)
    now = int(time.time() * 1000)
    frames = [
        fix(1, ts_ms=now),
        fix(2, ts_ms=now + 3_600_000),
        {**fix(3), "accuracy_m": 900.0},
        fix(4, dlat=0.5, ts_ms=now + 1000),
        {**fix(5), "lat": 95.0},
    ]
    await ws.send(orjson.dumps({"type": "fixes", "fixes": frames}).decode())
    ack = await recv(ws)
    assert ack["seq"] == 5
    assert ack["accepted"] == 1
    assert [r["reason"] for r in ack["rejected"]] == [
        "future",
        "low_accuracy",
        "impossible_speed",
        "out_of_range",
    ]
    await ws.close()


async def test_a_rejected_fix_does_not_move_the_worker_sequence(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """A far seq rejected as impossible_speed, 2^53 or a jump leaves the sequence: later fixes count, resume stays."""
    ws, _ = await open_worker(live_app[0], worker_account)
    now = int(time.time() * 1000)
    await ws.send(orjson.dumps({"type": "fix", **fix(1, ts_ms=now - 2000)}).decode())
    assert (await recv(ws))["seq"] == 1
    # 50 km in a second: a GPS jump, with a seq far ahead (but within the jump rule)
    await ws.send(
        orjson.dumps({"type": "fix", **fix(90_000, dlat=0.45, ts_ms=now - 1000)}).decode()
    )
    ack = await recv(ws)
    assert ack["rejected"] == [{"seq": 90_000, "reason": "impossible_speed"}]
    await ws.send(orjson.dumps({"type": "fix", **fix(2**53, dlat=1e-4, ts_ms=now)}).decode())
    ack = await recv(ws)
    assert ack["rejected"] == [{"seq": 2**53, "reason": "seq_too_large"}]
    await ws.send(orjson.dumps({"type": "fix", **fix(10**9, dlat=1e-4, ts_ms=now)}).decode())
    ack = await recv(ws)
    assert ack["rejected"] == [{"seq": 10**9, "reason": "seq_jump"}]
    await ws.send(orjson.dumps({"type": "fix", **fix(2, dlat=2e-4, ts_ms=now)}).decode())
    ack = await recv(ws)
    assert (ack["accepted"], ack["rejected"]) == (1, [])
    state = await stores.redis.hgetall(stores.keys.worker_state(live_city, worker_account.id))
    assert state[b"seq"] == b"2"
    assert float(state[b"lat"]) == pytest.approx(LAT + 2e-4, abs=1e-6)
    await ws.close()
    ws, hello = await open_worker(live_app[0], worker_account)
    assert hello["resume_seq"] == 2
    # the resumed track still knows the time: a jump right after reconnecting is refused
    await ws.send(orjson.dumps({"type": "fix", **fix(10**9, dlat=3e-4)}).decode())
    ack = await recv(ws)
    assert ack["rejected"] == [{"seq": 10**9, "reason": "seq_jump"}]
    await ws.send(orjson.dumps({"type": "fix", **fix(3, dlat=3e-4)}).decode())
    assert (await recv(ws))["accepted"] == 1
    await ws.close()


async def test_a_fix_outside_the_workers_city_is_refused(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """A first fix at 85.05 N 179.99 E is refused as outside_city: not indexed, seq unmoved."""
    ws, _ = await open_worker(live_app[0], worker_account)
    far = {**fix(7), "lat": 85.05, "lng": 179.99}
    await ws.send(orjson.dumps({"type": "fix", **far}).decode())
    ack = await recv(ws)
    assert ack["accepted"] == 0
    assert ack["rejected"] == [{"seq": 7, "reason": "outside_city"}]
    keys, redis, w = stores.keys, stores.redis, worker_account.id
    assert await redis.geopos(keys.geo(live_city, "available"), str(w)) == [None]
    assert await redis.hget(keys.worker_state(live_city, w), "lat") is None
    await ws.send(orjson.dumps({"type": "fix", **fix(1)}).decode())
    ack = await recv(ws)
    assert (ack["seq"], ack["accepted"]) == (7, 1)
    await ws.close()
    ws, hello = await open_worker(live_app[0], worker_account)
    assert hello["resume_seq"] == 1
    await ws.close()


async def test_offline_backlog_is_archived_but_does_not_move_the_live_position(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """A backlog from an hour offline is accepted and archived in order but never shown as live."""
    ws, _ = await open_worker(live_app[0], worker_account)
    now = int(time.time() * 1000)
    backlog = [fix(s, dlat=s * 1e-5, ts_ms=now - 3_600_000 + s * 1000) for s in range(1, 11)]
    await ws.send(orjson.dumps({"type": "fixes", "fixes": backlog}).decode())
    ack = await recv(ws)
    assert ack == {"type": "ack", "seq": 10, "accepted": 10, "rejected": []}
    key = stores.keys.worker_state(live_city, worker_account.id)
    assert await stores.redis.hget(key, "lat") is None  # an hour-old position is not live
    await ws.send(orjson.dumps({"type": "fix", **fix(11, dlat=2e-4, ts_ms=now)}).decode())
    assert (await recv(ws))["accepted"] == 1
    assert await stores.redis.hget(key, "ts") == str(now).encode()
    await ws.close()
    await live_app[1].state.tracking.archiver.flush()
    seqs = await stores.pool.fetch(
        "SELECT seq FROM trail_points WHERE worker_id = $1 ORDER BY ts", worker_account.id
    )
    assert [r["seq"] for r in seqs] == list(range(1, 12))


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ("not json", "invalid_frame", None),
        ('{"type": "teleport"}', "unknown_type", "type"),
        ('{"fixes": []}', "invalid_frame", "type"),
        (
            '{"type": "fixes", "fixes": [{"seq": 1, "ts_ms": 1, "lng": 114.0, "accuracy_m": 5}]}',
            "missing_field",
            "fixes[0].lat",
        ),
        (
            '{"type": "fix", "seq": "one", "ts_ms": 1, "lat": 1, "lng": 1, "accuracy_m": 5}',
            "invalid_field",
            "seq",
        ),
        ('{"type": "ping", "extra": true}', "unknown_field", "extra"),
        ('{"type": "state", "state": "sleeping"}', "invalid_field", "state"),
        ('{"type": "state", "state": "avail\\u0000able"}', "invalid_field", None),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(
    live_app: tuple[str, Any], worker_account: Account, frame: str, code: str, field: str | None
) -> None:
    """Each kind of bad frame is answered with an error frame naming the problem; then ping still works."""
    ws, _ = await open_worker(live_app[0], worker_account)
    await ws.send(frame)
    error = await recv(ws)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["field"] == field
    await ws.send('{"type": "ping"}')
    assert (await recv(ws)) == {"type": "pong"}
    await ws.close()


async def test_binary_and_oversized_frames_close_with_documented_codes(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """A binary frame closes with 1003, a frame over the limit with 1009, each after an error frame."""
    ws, _ = await open_worker(live_app[0], worker_account)
    await ws.send(b"\x00\x01")
    assert (await recv(ws))["code"] == "binary_frame"
    assert await closed_code(ws) == 1003
    ws, _ = await open_worker(live_app[0], worker_account)
    await ws.send('{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
    assert (await recv(ws))["code"] == "frame_too_large"
    assert await closed_code(ws) == 1009


async def test_a_flood_is_rate_limited_then_closed(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """Past the frame rate the server answers rate_limited; a flood that goes on is closed with 1008."""
    ws, _ = await open_worker(live_app[0], worker_account)
    codes: list[str] = []

    async def flood() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for _ in range(20):
                await ws.send('{"type": "ping"}')
            while True:
                try:
                    frame = orjson.loads(await asyncio.wait_for(ws.recv(), 0.05))
                except TimeoutError:
                    break
                if frame["type"] == "error":
                    codes.append(frame["code"])

    with pytest.raises(ConnectionClosed) as info:
        await flood()
    assert "rate_limited" in codes
    assert codes[-1] == "flood"
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1008


async def test_a_newer_connection_replaces_the_older(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """One live socket per worker: the older one is closed with 4001 when a newer one connects."""
    first, _ = await open_worker(live_app[0], worker_account)
    second, _ = await open_worker(live_app[0], worker_account)
    assert await closed_code(first) == 4001
    await second.send('{"type": "ping"}')
    assert (await recv(second)) == {"type": "pong"}
    await second.close()


async def test_state_changes_move_the_worker_between_geo_sets(
    live_app: tuple[str, Any], worker_account: Account, stores: Stores, live_city: str
) -> None:
    """Pausing moves the worker to the unavailable set; disconnecting takes them out of the index."""
    ws, _ = await open_worker(live_app[0], worker_account)
    await ws.send(orjson.dumps({"type": "fix", **fix(1)}).decode())
    await recv(ws)
    keys, redis, w = stores.keys, stores.redis, str(worker_account.id)
    await ws.send('{"type": "state", "state": "unavailable"}')
    assert (await recv(ws)) == {"type": "state", "state": "unavailable"}
    assert await redis.zscore(keys.geo(live_city, "available"), w) is None
    assert await redis.zscore(keys.geo(live_city, "unavailable"), w) is not None
    await ws.close()
    for _ in range(400):
        if await redis.zscore(keys.geo(live_city, "unavailable"), w) is None:
            break
        await asyncio.sleep(0.05)
    assert await redis.zscore(keys.geo(live_city, "unavailable"), w) is None
    assert await redis.hget(keys.worker_state(live_city, int(w)), "state") == b"offline"
    ws, hello = await open_worker(live_app[0], worker_account)
    assert hello["state"] == "unavailable"  # the worker's choice is remembered
    await ws.close()


async def test_a_state_message_after_fixes_in_flight_is_taken_once(
    live_app: tuple[str, Any], worker_account: Account
) -> None:
    """A state message queued behind a group of fixes is counted (and rate-limited) once, and
    answered after the group's ack."""
    counters = live_app[1].state.tracking.counters
    ws, _ = await open_worker(live_app[0], worker_account)
    frames_before = counters.frames
    now = int(time.time() * 1000)
    await ws.send(orjson.dumps({"type": "fix", **fix(1, ts_ms=now - 2000)}).decode())
    await ws.send(orjson.dumps({"type": "fix", **fix(2, dlat=2e-4, ts_ms=now - 1000)}).decode())
    await ws.send('{"type": "state", "state": "unavailable"}')
    got = [await recv(ws) for _ in range(2)]
    while got[-1]["type"] == "ack":
        got.append(await recv(ws))
    assert [g["type"] for g in got][-1] == "state"
    assert max(g["seq"] for g in got if g["type"] == "ack") == 2
    assert counters.frames - frames_before == 3
    await ws.close()


@pytest.mark.parametrize("roles", [(), ("customer",), ("worker",)])
async def test_socket_authentication_and_roles(
    live_app: tuple[str, Any], make_user: MakeUser, roles: tuple[str, ...]
) -> None:
    """No token closes with 4401, a customer's with 4403, a worker without a profile with 4404."""
    headers = {}
    if roles:
        headers = (await make_user(*roles)).auth
    ws = await connect(f"ws://{live_app[0]}/v1/ws/worker", additional_headers=headers)
    error = await recv(ws)
    expected = {
        (): ("unauthenticated", 4401),
        ("customer",): ("forbidden", 4403),
        ("worker",): ("worker_not_found", 4404),
    }[roles]
    assert error["code"] == expected[0]
    assert await closed_code(ws) == expected[1]


async def test_trail_and_position_endpoints(
    live_app: tuple[str, Any], worker_account: Account, make_user: MakeUser, client: Any
) -> None:
    """The archived trail and the live position are served to staff and the worker, not to customers."""
    ws, _ = await open_worker(live_app[0], worker_account)
    batch = [
        fix(s, dlat=s * 2e-4, ts_ms=int(time.time() * 1000) - (10 - s) * 1000) for s in range(1, 6)
    ]
    await ws.send(orjson.dumps({"type": "fixes", "fixes": batch}).decode())
    await recv(ws)
    await live_app[1].state.tracking.archiver.flush()
    dispatcher = await make_user("dispatcher")
    r = await client.get(f"/v1/workers/{worker_account.id}/trail", headers=dispatcher.auth)
    assert r.status_code == 200
    assert [p["seq"] for p in r.json()] == [1, 2, 3, 4, 5]
    r = await client.get(f"/v1/workers/{worker_account.id}/position", headers=worker_account.auth)
    assert r.json()["state"] == "available"
    assert r.json()["seq"] == 5
    customer = await make_user("customer")
    r = await client.get(f"/v1/workers/{worker_account.id}/trail", headers=customer.auth)
    assert r.status_code == 403
    r = await client.get(
        f"/v1/workers/{worker_account.id}/trail?from=yesterday", headers=dispatcher.auth
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "from"
    await ws.close()


async def test_every_stage_is_counted_on_metrics(
    live_app: tuple[str, Any], worker_account: Account, client: Any
) -> None:
    """/metrics shows fixes received, accepted, rejected by reason, indexed and archived."""
    ws, _ = await open_worker(live_app[0], worker_account)
    frames = [fix(1), fix(1), {**fix(2), "accuracy_m": 900.0}]
    await ws.send(orjson.dumps({"type": "fixes", "fixes": frames}).decode())
    await recv(ws)
    await ws.close()
    await live_app[1].state.tracking.archiver.flush()
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("doorstep_") and " " in line
    }
    assert values["doorstep_fixes_received_total"] >= 3
    assert values['doorstep_fixes_rejected_total{reason="duplicate"}'] >= 1
    assert values['doorstep_fixes_rejected_total{reason="low_accuracy"}'] >= 1
    assert values["doorstep_fixes_indexed_total"] >= 1
    assert values["doorstep_trail_archived_total"] >= 1
