"""Domain events: the outbox, the relay's order and retries, dead letters, takeover."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest

from doorstep.db import Tx
from doorstep.settings import Settings
from doorstep.stores import Stores
from events import probe
from events import store as events_store
from events.errors import BadPayload, UnknownEventType
from events.relay import Consumer, Relay, _Role, in_runs
from events.rules import DeliveryParams, after_failure
from events.types import (
    AccountChanged,
    Event,
    Probe,
    aggregate_key,
    check_types,
    decode_payload,
    encode_payload,
)
from tests.helpers import Account

FAST = DeliveryParams(
    batch=50, poll_s=0.05, backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=3, lease_retry_s=0.1
)


@pytest.fixture(scope="module", autouse=True)
async def effects_table(stores: Stores) -> None:
    """The table the tests' consumers write their effects to."""
    await stores.pool.execute(
        "CREATE TABLE IF NOT EXISTS test_event_effects (n bigserial PRIMARY KEY, "
        "consumer text NOT NULL, event_id bigint NOT NULL, aggregate text NOT NULL, "
        "probe text NOT NULL)"
    )


class Recorder:
    """A consumer of probe events that records each effect, and fails on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fail: dict[str, int] = {}  # probe → failures still to give (-1: forever)
        self.calls = 0

    async def handle(self, tx: Tx, event: Event) -> None:
        payload = event.payload
        assert isinstance(payload, Probe)
        self.calls += 1
        await tx.execute(
            "INSERT INTO test_event_effects (consumer, event_id, aggregate, probe) "
            "VALUES ($1, $2, $3, $4)",
            self.name,
            event.id,
            event.aggregate,
            payload.probe,
        )
        if payload.hold_ms:
            await asyncio.sleep(payload.hold_ms / 1000)
        left = self.fail.get(payload.probe, 0)
        if left:
            self.fail[payload.probe] = left - 1 if left > 0 else -1
            raise RuntimeError(f"consumer {self.name} refuses {payload.probe}")

    def consumer(self) -> Consumer:
        return Consumer(self.name, frozenset({"system.probe"}), self.handle)


def _name() -> str:
    return f"test-{secrets.token_hex(4)}"


async def _append(stores: Stores, aggregate: str, probe_text: str, hold_ms: int = 0) -> int:
    async with stores.pool.acquire() as conn, conn.transaction():
        return await events_store.append(
            conn, "system.probe", aggregate, Probe(probe=probe_text, hold_ms=hold_ms)
        )


async def _effects(stores: Stores, consumer: str) -> list[tuple[int, str, str]]:
    rows = await stores.pool.fetch(
        "SELECT event_id, aggregate, probe FROM test_event_effects WHERE consumer = $1 ORDER BY n",
        consumer,
    )
    return [(r["event_id"], r["aggregate"], r["probe"]) for r in rows]


async def _started(stores: Stores, consumer: str) -> bool:
    """Whether the consumer has a cursor: it started (a new one starts at the head)."""
    return bool(
        await stores.pool.fetchval("SELECT 1 FROM event_cursors WHERE consumer = $1", consumer)
    )


async def _until(check: Any, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def relay_of(stores: Stores, settings: Settings) -> AsyncIterator[Any]:
    """Start relays with given consumers; all stopped at the end."""
    started: list[Relay] = []

    def start(*consumers: Consumer, params: DeliveryParams = FAST) -> Relay:
        assert settings.database_url is not None
        relay = Relay(stores.pool, settings.database_url, list(consumers), params)
        relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.stop()


def test_unknown_types_and_wrong_payloads_are_refused() -> None:
    """An unknown type, or a payload of another type's class or shape, is a named error."""
    with pytest.raises(UnknownEventType) as e:
        encode_payload("order.teleported", Probe(probe="x"))
    assert e.value.field == "type"
    with pytest.raises(BadPayload):
        encode_payload("system.probe", AccountChanged(1, [], "active", None, datetime.now(UTC)))
    with pytest.raises(BadPayload) as bad:
        decode_payload("system.probe", {"probe": "x", "extra": 1})
    assert bad.value.field == "payload"
    with pytest.raises(BadPayload):
        Probe(probe="x", hold_ms=99_999)
    with pytest.raises(UnknownEventType):
        check_types({"system.probe", "nope"})
    with pytest.raises(BadPayload):
        aggregate_key("or:der", 1)


def test_backoff_grows_to_its_cap_then_dead_letters() -> None:
    """Failed deliveries wait 1, 2, 4 … s (capped), and the max_attempts-th failure is death."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    params = DeliveryParams(backoff_base_s=1, backoff_max_s=3, max_attempts=4)
    waits = [(after_failure(n, now=now, params=params)[1] or now) - now for n in (1, 2, 3)]
    assert [w.total_seconds() for w in waits] == [1, 2, 3]
    assert after_failure(4, now=now, params=params) == ("dead", None)


async def test_append_in_a_rolled_back_transaction_leaves_nothing(stores: Stores) -> None:
    """An event is stored only with the change it records: a rollback takes it away."""
    mark = secrets.token_hex(4)

    async def change_that_fails() -> None:
        async with stores.pool.acquire() as conn, conn.transaction():
            await events_store.append(conn, "system.probe", "probe:rb", Probe(probe=mark))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    assert not await stores.pool.fetchval(
        "SELECT count(*) FROM events WHERE payload->>'probe' = $1", mark
    )


async def test_every_event_is_handled_once_in_order_per_aggregate(
    stores: Stores, relay_of: Any
) -> None:
    """60 events over 4 aggregates: each handled exactly once, each aggregate's in append order."""
    rec = Recorder(_name())
    relay_of(rec.consumer())
    await asyncio.sleep(0.3)  # the consumer starts at the head: events from now on
    tag = secrets.token_hex(3)
    appended: dict[str, list[int]] = {}
    for i in range(60):
        agg = f"probe:{tag}-{i % 4}"
        appended.setdefault(agg, []).append(await _append(stores, agg, f"{tag}-{i}"))

    async def done() -> bool:
        return len(await _effects(stores, rec.name)) >= 60

    await _until(done)
    effects = await _effects(stores, rec.name)
    assert sorted(e[0] for e in effects) == sorted(i for ids in appended.values() for i in ids)
    for agg, ids in appended.items():
        assert [e[0] for e in effects if e[1] == agg] == ids


async def test_an_event_committed_after_a_later_numbered_one_is_not_skipped(
    stores: Stores, relay_of: Any
) -> None:
    """Ids are taken at insert, commits come later: a late commit of a low id is still delivered."""
    rec = Recorder(_name())
    relay_of(rec.consumer())
    await asyncio.sleep(0.3)
    tag = secrets.token_hex(3)
    slow = await stores.pool.acquire()
    tx = slow.transaction()
    await tx.start()
    early = await events_store.append(slow, "system.probe", f"probe:{tag}-a", Probe(probe="early"))
    late = await _append(stores, f"probe:{tag}-b", "late")  # higher id, committed first
    assert late > early

    async def late_seen() -> bool:
        return any(e[0] == late for e in await _effects(stores, rec.name))

    await _until(late_seen)
    await tx.commit()
    await stores.pool.release(slow)

    async def early_seen() -> bool:
        return any(e[0] == early for e in await _effects(stores, rec.name))

    await _until(early_seen)


async def test_a_failing_event_is_retried_and_holds_back_only_its_aggregate(
    stores: Stores, relay_of: Any
) -> None:
    """A failing event is parked and retried; its aggregate's later events wait behind it,
    other aggregates' events go on; in the end the aggregate's order is kept."""
    rec = Recorder(_name())
    relay_of(rec.consumer())
    await asyncio.sleep(0.3)
    tag = secrets.token_hex(3)
    rec.fail[f"{tag}-a1"] = 2
    a1 = await _append(stores, f"probe:{tag}-a", f"{tag}-a1")
    a2 = await _append(stores, f"probe:{tag}-a", f"{tag}-a2")
    b1 = await _append(stores, f"probe:{tag}-b", f"{tag}-b1")

    async def done() -> bool:
        return {a1, a2, b1} <= {e[0] for e in await _effects(stores, rec.name)}

    await _until(done)
    effects = await _effects(stores, rec.name)
    # Effects of failed attempts were rolled back: one row per event.
    assert [e[0] for e in effects].count(a1) == 1
    order = [e[0] for e in effects if e[0] in (a1, a2, b1)]
    assert order.index(b1) < order.index(a1) < order.index(a2)
    assert rec.calls >= 5  # a1 three times, a2 and b1 once (plus a batch's first try)
    assert not await events_store.blocked_aggregates(stores.pool, rec.name)


async def test_dead_letters_are_listed_and_replayed_by_an_admin(
    stores: Stores, relay_of: Any, client: httpx.AsyncClient, admin: Account
) -> None:
    """After max_attempts a delivery is dead: an admin lists it and replays it, and then it lands."""
    rec = Recorder(_name())
    relay_of(rec.consumer())
    await asyncio.sleep(0.3)
    tag = secrets.token_hex(3)
    rec.fail[f"{tag}-x"] = -1
    dead_id = await _append(stores, f"probe:{tag}", f"{tag}-x")
    after_it = await _append(stores, f"probe:{tag}", f"{tag}-y")

    async def dead() -> bool:
        rows = await events_store.list_parked(
            stores.pool, state="dead", consumer=rec.name, after_id=0, limit=10
        )
        return any(r.event_id == dead_id for r in rows)

    await _until(dead)

    async def later_done() -> bool:  # a dead event no longer holds its aggregate back
        return any(e[0] == after_it for e in await _effects(stores, rec.name))

    await _until(later_done)
    r = await client.get("/v1/admin/events/deliveries?state=dead&limit=500", headers=admin.auth)
    assert r.status_code == 200, r.text
    row = next(d for d in r.json() if d["event_id"] == dead_id and d["consumer"] == rec.name)
    assert row["attempts"] == 3
    assert "refuses" in row["last_error"]
    r = await client.get("/v1/admin/events/deliveries?consumer=nobody", headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "consumer"
    rec.fail.pop(f"{tag}-x")
    r = await client.post(f"/v1/admin/events/deliveries/{row['id']}/replay", headers=admin.auth)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "pending"

    async def replayed() -> bool:
        return any(e[0] == dead_id for e in await _effects(stores, rec.name))

    await _until(replayed)
    again = await client.post(f"/v1/admin/events/deliveries/{row['id']}/replay", headers=admin.auth)
    assert again.status_code == 404


async def test_one_process_holds_a_consumer_and_another_takes_over_without_duplicates(
    stores: Stores, relay_of: Any, settings: Settings
) -> None:
    """Two relays with one consumer: one holds it; when it crashes mid-batch the other takes
    over, and every event's effect is there exactly once."""
    name = _name()
    first, second = Recorder(name), Recorder(name)
    one = relay_of(first.consumer())
    await asyncio.sleep(0.3)
    two = relay_of(second.consumer())
    await asyncio.sleep(0.3)
    assert name in one.held()
    assert name not in two.held()
    tag = secrets.token_hex(3)
    ids = [
        await _append(stores, f"probe:{tag}-{i % 3}", f"{tag}-{i}", hold_ms=30) for i in range(40)
    ]

    async def some() -> bool:
        return first.calls >= 5

    await _until(some)
    # A crash: the relay's task dies and its connection (holding the lease) is cut.
    assert one._task is not None
    assert one._conn is not None
    one._conn.terminate()
    one._task.cancel()
    await one._drop_roles()

    async def all_done() -> bool:
        return set(ids) <= {e[0] for e in await _effects(stores, name)}

    await _until(all_done, 30)
    effects = [e[0] for e in await _effects(stores, name) if e[0] in ids]
    assert sorted(effects) == sorted(ids)  # none lost, none twice
    assert second.calls > 0


async def test_the_probe_answers_with_its_delivery(
    client: httpx.AsyncClient, admin: Account, make_user: Any
) -> None:
    """POST /v1/admin/events/probe sends a probe through the app's relay and reports its lag."""
    r = await client.post("/v1/admin/events/probe", headers=admin.auth, json={"timeout_s": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["delivered"] is True
    assert body["lag_ms"] >= 0
    customer = await make_user("customer")
    r = await client.post("/v1/admin/events/probe", headers=customer.auth, json={})
    assert r.status_code == 403
    r = await client.post("/v1/admin/events/probe", headers=admin.auth, json={"timeout_s": 99})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "timeout_s"


async def test_an_aggregates_events_read_back_in_order(
    client: httpx.AsyncClient, admin: Account, stores: Stores
) -> None:
    """GET /v1/admin/events?aggregate= lists an aggregate's events; a bad aggregate is a 422."""
    tag = secrets.token_hex(3)
    ids = [await _append(stores, f"probe:{tag}", f"{tag}-{i}") for i in range(3)]
    r = await client.get(f"/v1/admin/events?aggregate=probe:{tag}", headers=admin.auth)
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == ids
    r = await client.get("/v1/admin/events?aggregate=nocolon", headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "aggregate"
    r = await client.get("/v1/admin/events", headers=admin.auth)
    assert r.status_code == 422


async def test_probe_send_helper_and_wait(stores: Stores, relay_of: Any) -> None:
    """probe.send appends a probe that the probe consumer records once (wait_handled sees it)."""
    async with stores.pool.acquire() as conn, conn.transaction():
        event_id = await probe.send(conn, f"t-{secrets.token_hex(3)}")
    relay_of(probe.consumer())
    assert await probe.wait_handled(stores.pool, event_id, timeout_s=10) is not None
    n = await stores.pool.fetchval(
        "SELECT count(*) FROM event_probes WHERE event_id = $1", event_id
    )
    assert n == 1


async def test_after_commit_sees_only_committed_effects_and_rollbacks_are_forgotten(
    stores: Stores, relay_of: Any
) -> None:
    """A consumer's committed() runs after its transaction commits (its effects are
    visible then) and aborted() after one rolls back: what a failing first try stored is
    never announced, the retry's effect is, once."""
    recorder = Recorder(_name())
    pending: list[int] = []
    announced: list[tuple[int, bool]] = []

    async def handle(tx: Tx, event: Event) -> None:
        await recorder.handle(tx, event)
        pending.append(event.id)

    async def committed() -> None:
        for event_id in pending:
            visible = await stores.pool.fetchval(
                "SELECT count(*) FROM test_event_effects WHERE consumer = $1 AND event_id = $2",
                recorder.name,
                event_id,
            )
            announced.append((event_id, visible == 1))
        pending.clear()

    recorder.fail["flaky"] = 1
    consumer = Consumer(
        recorder.name,
        frozenset({"system.probe"}),
        handle,
        committed=committed,
        aborted=pending.clear,
    )
    relay_of(consumer)

    await _until(
        lambda: _started(stores, recorder.name), 30
    )  # a new consumer starts at the head: append after that
    aggregate = f"test:{secrets.token_hex(3)}"
    first = await _append(stores, aggregate, "steady")
    flaky = await _append(stores, aggregate, "flaky")

    async def both_announced() -> bool:
        return {e for e, _ in announced} >= {first, flaky}

    await _until(both_announced, 30)
    assert all(visible for _, visible in announced)  # never before the commit
    assert sorted(e for e, _ in announced) == sorted({first, flaky})  # each once
    assert recorder.calls >= 3  # the flaky one's failed try was rolled back and forgotten


async def test_a_batch_handlers_writes_commit_with_the_cursor_and_roll_back_with_it(
    stores: Stores, relay_of: Any
) -> None:
    """A consumer's handle_batch gets a batch's events at once in one transaction with its
    cursor: when it fails its writes roll back with the cursor, the events go one by one
    through handle, and each event's effect is stored once."""
    recorder = Recorder(_name())
    batches: list[list[int]] = []
    fail_once = [True]

    async def handle_batch(tx: Tx, events: list[Event]) -> None:
        batches.append([e.id for e in events])
        await tx.executemany(
            "INSERT INTO test_event_effects (consumer, event_id, aggregate, probe) "
            "VALUES ($1, $2, $3, $4)",
            [(recorder.name, e.id, e.aggregate, "batch") for e in events],
        )
        if fail_once[0] and len(events) > 1:
            fail_once[0] = False
            raise RuntimeError("the batch fails after writing")

    consumer = Consumer(
        recorder.name, frozenset({"system.probe"}), recorder.handle, handle_batch=handle_batch
    )
    relay_of(consumer)

    await _until(lambda: _started(stores, recorder.name), 30)
    tag = secrets.token_hex(3)
    async with stores.pool.acquire() as conn, conn.transaction():  # one batch
        ids = [
            await events_store.append(
                conn, "system.probe", f"probe:{tag}-{i % 3}", Probe(probe=f"{tag}-{i}")
            )
            for i in range(8)
        ]

    async def done() -> bool:
        return {e[0] for e in await _effects(stores, recorder.name)} >= set(ids)

    await _until(done)
    effects = await _effects(stores, recorder.name)
    assert sorted(e[0] for e in effects) == sorted(ids)  # once each: the batch's rolled back
    assert all(probe != "batch" for _, _, probe in effects)  # stored by handle, one by one
    assert batches[0] == ids  # the failed batch had them all, in order
    assert recorder.calls == len(ids)
    last = int(await stores.pool.fetchval("SELECT max(seq) FROM events WHERE id = ANY($1)", ids))

    async def cursor_moved() -> bool:
        return (await events_store.cursors(stores.pool))[recorder.name] >= last

    await _until(cursor_moved)


async def test_a_batch_handler_that_succeeds_stores_the_batch_once(
    stores: Stores, relay_of: Any
) -> None:
    """Events appended together reach handle_batch together; its writes and the cursor
    commit, and handle is not called."""
    recorder = Recorder(_name())
    batches: list[list[int]] = []

    async def handle_batch(tx: Tx, events: list[Event]) -> None:
        batches.append([e.id for e in events])
        await tx.executemany(
            "INSERT INTO test_event_effects (consumer, event_id, aggregate, probe) "
            "VALUES ($1, $2, $3, $4)",
            [(recorder.name, e.id, e.aggregate, "batch") for e in events],
        )

    relay_of(
        Consumer(
            recorder.name, frozenset({"system.probe"}), recorder.handle, handle_batch=handle_batch
        )
    )

    await _until(lambda: _started(stores, recorder.name), 30)
    tag = secrets.token_hex(3)
    async with stores.pool.acquire() as conn, conn.transaction():
        ids = [
            await events_store.append(conn, "system.probe", f"probe:{tag}", Probe(probe=str(i)))
            for i in range(5)
        ]

    async def done() -> bool:
        return {e[0] for e in await _effects(stores, recorder.name)} >= set(ids)

    await _until(done)
    assert [e[0] for e in await _effects(stores, recorder.name)] == ids
    assert ids in batches
    assert recorder.calls == 0


async def test_in_runs_hands_stretches_together_and_keeps_the_order() -> None:
    """in_runs: consecutive events of the given types go to the run handler together, the
    others one by one, all in seq order."""
    seen: list[tuple[str, list[int]]] = []

    def ev(i: int, t: str) -> Event:
        return Event(
            id=i,
            seq=i,
            type=t,
            aggregate=f"order:{i}",
            version=1,
            payload=Probe(probe=str(i)),
            occurred_at=datetime.now(UTC),
        )

    async def run(_tx: Tx, events: list[Event]) -> None:
        seen.append(("run", [e.id for e in events]))

    async def one(_tx: Tx, event: Event) -> None:
        seen.append(("one", [event.id]))

    events = [ev(1, "a"), ev(2, "a"), ev(3, "b"), ev(4, "a"), ev(5, "b"), ev(6, "b"), ev(7, "a")]
    await in_runs(cast(Tx, None), events, frozenset({"a"}), run, one)
    assert seen == [
        ("run", [1, 2]),
        ("one", [3]),
        ("run", [4]),
        ("one", [5]),
        ("one", [6]),
        ("run", [7]),
    ]


async def test_events_committed_within_gather_s_of_a_delivery_reach_the_consumer_as_one_batch(
    stores: Stores, relay_of: Any
) -> None:
    """After a delivery, events committed one by one within gather_s are handed over
    together in one batch (one transaction and cursor move), not one batch each."""
    recorder = Recorder(_name())
    batches: list[list[int]] = []

    async def handle_batch(tx: Tx, events: list[Event]) -> None:
        batches.append([e.id for e in events])

    relay_of(
        Consumer(
            recorder.name, frozenset({"system.probe"}), recorder.handle, handle_batch=handle_batch
        ),
        params=replace(FAST, gather_s=3.0),
    )

    await _until(lambda: _started(stores, recorder.name), 30)
    tag = secrets.token_hex(3)
    first = await _append(stores, f"probe:{tag}", "first")

    async def delivered(n: int) -> bool:
        return len(batches) >= n

    await _until(lambda: delivered(1))
    assert batches == [[first]]
    later = [await _append(stores, f"probe:{tag}", str(i)) for i in range(5)]
    await _until(lambda: delivered(2))
    assert batches[1] == later
    assert recorder.calls == 0


async def test_a_role_woken_as_it_is_stopped_stops(stores: Stores, settings: Settings) -> None:
    """A relay role waiting for its wake-up that is woken and cancelled in the same turn of the event loop stops (Python 3.11's wait_for lost that cancellation and stop() hung)."""
    assert settings.database_url is not None
    relay = Relay(stores.pool, settings.database_url, [], FAST)
    for turns in range(3):  # the wake-up 0, 1 or 2 turns of the loop before the cancel
        role = _Role("probe")

        async def waiting(role: _Role = role) -> None:
            while True:
                await relay._wait(role, 10.0)

        task = asyncio.create_task(waiting())
        await asyncio.sleep(0.01)
        role.wake.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert task in done, f"still running after the wake-up and cancel ({turns} turns)"
        assert task.cancelled()


async def test_a_background_consumer_gathers_for_background_gather_s_and_the_others_do_not(
    stores: Stores, relay_of: Any
) -> None:
    """With gather_s 0 and background_gather_s 3, events committed 50 ms apart reach a background consumer as one batch and another consumer of the same relay in several."""
    batches: dict[str, list[list[int]]] = {"bg": [], "fg": []}

    def consumer(key: str, background: bool) -> Consumer:
        recorder = Recorder(_name())

        async def handle_batch(tx: Tx, events: list[Event]) -> None:
            batches[key].append([e.id for e in events])

        return Consumer(
            recorder.name,
            frozenset({"system.probe"}),
            recorder.handle,
            handle_batch=handle_batch,
            background=background,
        )

    bg, fg = consumer("bg", True), consumer("fg", False)
    relay_of(bg, fg, params=replace(FAST, gather_s=0.0, background_gather_s=3.0))
    await _until(lambda: _started(stores, bg.name), 30)
    await _until(lambda: _started(stores, fg.name), 30)
    tag = secrets.token_hex(3)
    first = await _append(stores, f"probe:{tag}", "first")

    async def delivered(key: str, n: int) -> bool:
        return sum(len(b) for b in batches[key]) >= n

    await _until(lambda: delivered("bg", 1))
    later = []
    for i in range(5):
        await asyncio.sleep(0.05)
        later.append(await _append(stores, f"probe:{tag}", str(i)))
    await _until(lambda: delivered("bg", 6))
    await _until(lambda: delivered("fg", 6))
    assert batches["bg"] == [[first], later]
    assert len(batches["fg"]) >= 3
