"""The ingest's own Redis connection (tracking/redis_pipe.py) and the writer on it, against
real Valkey servers of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hiredis
import pytest
from redis.asyncio import Redis

from doorstep.embedded import EmbeddedServer, free_port, start_valkey
from doorstep.keys import Keys
from tracking.ingest import IngestParams, IngestWriter
from tracking.redis_pipe import PipeScript, RedisPipe


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[tuple[int, list[EmbeddedServer]]]:
    """A Valkey of the test's own (port, and the servers started on it, to stop)."""
    port = free_port()
    servers = [start_valkey(tmp_path / "first", port=port)]
    try:
        yield port, servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
async def pipe(valkey: tuple[int, list[EmbeddedServer]]) -> AsyncIterator[RedisPipe]:
    """A connected pipe to that Valkey."""
    p = RedisPipe(f"redis://127.0.0.1:{valkey[0]}/0")
    await p.connect()
    try:
        yield p
    finally:
        await p.close()


async def test_replies_come_back_in_order_to_their_callbacks(pipe: RedisPipe) -> None:
    """A hundred pipelined INCRs written at once reach their callbacks in order, 1 to 100."""
    got: list[Any] = []
    done = asyncio.get_running_loop().create_future()
    for i in range(100):
        pipe.send(("INCR", "counter"), got.append)
        if i == 99:
            pipe.send(("PING",), lambda reply: done.set_result(reply))
    assert await asyncio.wait_for(done, 5) == b"PONG"
    assert got == list(range(1, 101))


async def test_the_url_selects_the_database(valkey: tuple[int, list[EmbeddedServer]]) -> None:
    """A pipe on redis://…/3 writes in database 3, not 0."""
    pipe = RedisPipe(f"redis://127.0.0.1:{valkey[0]}/3")
    await pipe.connect()
    client = Redis.from_url(f"redis://127.0.0.1:{valkey[0]}/3")
    try:
        assert await pipe.request(("SET", "where", "three")) == b"OK"
        assert await client.get("where") == b"three"
    finally:
        await client.aclose()
        await pipe.close()


async def test_a_flushed_script_is_sent_again_with_eval(pipe: RedisPipe) -> None:
    """After SCRIPT FLUSH, EVALSHA's NOSCRIPT is answered by running the script with EVAL."""
    script = PipeScript("return ARGV[1] .. KEYS[1]")
    first: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    script.run(pipe, ["k"], ["v"], first.set_result)
    assert await first == b"vk"
    assert await pipe.request(("SCRIPT", "FLUSH")) == b"OK"
    again: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    script.run(pipe, ["k2"], ["w"], again.set_result)
    assert await again == b"wk2"


async def test_a_refused_command_is_a_reply_error(pipe: RedisPipe) -> None:
    """A command Redis refuses comes back to its callback as hiredis.ReplyError, not raised."""
    reply = await pipe.request(("NOSUCHCOMMAND", "x"))
    assert isinstance(reply, hiredis.ReplyError)
    assert await pipe.request(("PING",)) == b"PONG"  # the connection carries on


async def test_losing_redis_fails_waiting_commands_and_reconnects(
    valkey: tuple[int, list[EmbeddedServer]], tmp_path: Path
) -> None:
    """When Redis dies, waiting callbacks get an error and sends are refused; it reconnects once back."""
    port, servers = valkey
    pipe = RedisPipe(f"redis://127.0.0.1:{port}/0")
    await pipe.connect()
    try:
        waiting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pipe.send(("BLPOP", "never", "5"), waiting.set_result)
        servers[0].stop()
        assert isinstance(await asyncio.wait_for(waiting, 5), ConnectionError)
        assert not pipe.connected
        refused: list[Any] = []
        pipe.send(("PING",), refused.append)
        assert isinstance(refused[0], ConnectionError)
        with pytest.raises(ConnectionRefusedError):
            await pipe.connect()
        servers.append(start_valkey(tmp_path / "second", port=port))
        await pipe.connect()
        assert await pipe.request(("PING",)) == b"PONG"
    finally:
        await pipe.close()


async def test_a_redis_that_stops_answering_fails_the_batch_after_the_timeout(
    valkey: tuple[int, list[EmbeddedServer]],
) -> None:
    """A batch unanswered within write_timeout_ms fails its waiters; the next one is written."""
    port, _ = valkey
    keys = Keys("pipe-test:")
    writer = IngestWriter(
        RedisPipe(f"redis://127.0.0.1:{port}/0"),
        keys,
        IngestParams(flush_interval_ms=0, write_timeout_ms=300),
    )
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        outcomes: list[BaseException | None] = []
        await writer.submit(
            "c1", 7, seq=1, state="available", last=None, trail=[], waiter=outcomes.append
        )
        assert outcomes == [None]
        assert await client.client_pause(1500)  # Redis goes silent for 1.5 s
        future = writer.submit(
            "c1", 7, seq=2, state="available", last=None, trail=[], waiter=outcomes.append
        )
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(future, 5)
        assert isinstance(outcomes[1], ConnectionError)
        await asyncio.sleep(1.5)  # the pause is over
        await writer.submit(
            "c1", 7, seq=3, state="available", last=None, trail=[], waiter=outcomes.append
        )
        assert outcomes[2] is None
        assert await client.hget(keys.worker_state("c1", 7), "seq") == b"3"
    finally:
        await writer.drain()
        await writer.close()
        await client.aclose()


async def test_the_end_of_a_closed_connection_does_not_touch_its_successor(
    pipe: RedisPipe,
) -> None:
    """A connection that ends after the pipe has reconnected neither fails nor unplugs the new one."""
    before: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pipe.send(("SET", "big", b"x" * 256_000_000), before.set_result)  # slow to flush
    old = pipe._conn
    assert old is not None
    await pipe.close()  # the old connection ends only when its buffer is written
    assert isinstance(await before, ConnectionError)
    await pipe.connect()
    assert await pipe.request(("PING",)) == b"PONG"
    assert old._transport is not None  # the old one has not ended yet: the case under test
    for _ in range(200):  # up to 10 s for the old one to end
        if old._transport is None:
            break
        await asyncio.sleep(0.05)
    assert old._transport is None
    assert pipe.connected
    assert await asyncio.wait_for(pipe.request(("PING",)), 5) == b"PONG"


async def test_a_barrier_resolves_once_earlier_writes_are_in_redis(
    valkey: tuple[int, list[EmbeddedServer]],
) -> None:
    """writer.barrier() resolves at once with nothing pending, else after earlier writes land."""
    port, _ = valkey
    keys = Keys("pipe-test:")
    writer = IngestWriter(RedisPipe(f"redis://127.0.0.1:{port}/0"), keys, IngestParams())
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        assert writer.barrier().done()  # nothing submitted: nothing to wait for
        for worker in range(1, 4):  # the first batch goes out, the others wait for it
            writer.submit("c1", worker, seq=5, state="available", last=None, trail=[])
            await asyncio.sleep(0)
        barrier = writer.barrier()
        assert not barrier.done()
        await asyncio.wait_for(barrier, 5)
        seqs = [await client.hget(keys.worker_state("c1", w), "seq") for w in range(1, 4)]
        assert seqs == [b"5", b"5", b"5"]
    finally:
        await writer.close()
        await client.aclose()
