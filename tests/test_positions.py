"""A worker's live hash read through tracking/positions.py: what the ingest script writes
reads back typed, and a missing or partial hash reads as None instead of failing."""

from __future__ import annotations

import ast
import secrets
from pathlib import Path

import pytest

from doorstep.stores import Stores
from tracking import positions
from tracking.ingest import IngestParams, IngestWriter
from tracking.positions import FIELDS, Position, WorkerLive
from tracking.redis_pipe import RedisPipe


def _reply(**fields: str) -> list[bytes | None]:
    """An HMGET reply for FIELDS with the given fields set."""
    return [fields[f].encode() if f in fields else None for f in FIELDS]


def test_a_missing_hash_parses_as_none() -> None:
    """Every field missing (no hash in Redis) parses as None, not as an empty worker."""
    assert positions.parse([None] * len(FIELDS)) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"seq": "12"},  # a batch that moved only the seq
        {"pref": "unavailable"},  # the worker paused before any fix
        {"state": "available", "lat": "22.53", "lng": "114.02"},  # no ts
        {"lat": "abc", "lng": "114.02", "ts": "1700000000000", "acc": "5"},
        {"lat": "", "lng": "", "ts": "", "acc": "", "seq": "3"},
        {"lat": "nan", "lng": "114.02", "ts": "1700000000000", "acc": "5"},
        {"lat": "22.53", "lng": "114.02", "ts": "17e11", "acc": "5"},
    ],
)
def test_a_partial_or_garbled_hash_has_no_position(fields: dict[str, str]) -> None:
    """A hash without a whole, parsable fix reads with position None (no exception)."""
    live = positions.parse(_reply(**fields))
    assert live is not None
    assert live.position is None


def test_a_whole_hash_parses_every_field() -> None:
    """A hash as the ingest writes it parses into its typed fields."""
    live = positions.parse(
        _reply(
            lat="22.5312345",
            lng="114.0212345",
            ts="1700000000123",
            acc="7.5",
            state="busy",
            stale="0",
            seq="42",
            pref="available",
            seen="1700000000200",
        )
    )
    assert live == WorkerLive(
        position=Position(lat=22.5312345, lng=114.0212345, ts_ms=1700000000123, accuracy_m=7.5),
        state="busy",
        stale=False,
        seq=42,
        pref="available",
        seen_ms=1700000000200,
    )


@pytest.mark.parametrize(
    ("state", "stale", "shown"),
    [
        ("available", "1", "stale"),
        ("available", "0", "available"),
        ("offline", "1", "offline"),
        (None, "1", "offline"),
        (None, None, "offline"),
    ],
)
def test_the_shown_state(state: str | None, stale: str | None, shown: str) -> None:
    """Silent past the limit shows as stale unless offline; unknown shows as offline."""
    fields = {"seq": "1"}
    if state is not None:
        fields["state"] = state
    if stale is not None:
        fields["stale"] = stale
    live = positions.parse(_reply(**fields))
    assert live is not None
    assert live.shown_state == shown


async def test_what_the_ingest_writes_reads_back(stores: Stores) -> None:
    """A fix written by the ingest script reads back as its Position; a seq-only write,
    a pref-only hash and an unknown worker read as no position, no position and absent."""
    city = f"pos-{secrets.token_hex(3)}"
    redis, keys = stores.redis, stores.keys
    writer = IngestWriter(RedisPipe(stores.redis_url), keys, IngestParams(flush_interval_ms=0))
    try:
        await writer.submit(
            city,
            1,
            seq=5,
            state="available",
            last=(22.5312345, 114.0212345, 1_700_000_000_123, 7.5, 1.2, ""),
            trail=[],
        )
        await writer.submit(city, 2, seq=9, state="available", last=None, trail=[])
        await redis.hset(keys.worker_state(city, 3), "pref", "unavailable")

        one = await positions.read_one(redis, keys, city, 1)
        assert one is not None
        assert one.position == Position(
            lat=22.5312345, lng=114.0212345, ts_ms=1_700_000_000_123, accuracy_m=7.5
        )
        assert (one.state, one.stale, one.seq) == ("available", False, 5)
        assert one.seen_ms is not None

        many = await positions.read_many(redis, keys, city, [1, 2, 3, 4])
        assert sorted(many) == [1, 2, 3]
        assert many[1] == one
        assert (many[2].position, many[2].seq) == (None, 9)
        assert (many[3].position, many[3].pref) == (None, "unavailable")
        assert await positions.read_position(redis, keys, city, 2) is None
        assert await positions.read_position(redis, keys, city, 4) is None
        assert await positions.read_one(redis, keys, city, 4) is None
        assert await positions.read_many(redis, keys, city, []) == {}
    finally:
        await writer.drain()
        await writer.close()
        await redis.delete(*(keys.worker_state(city, w) for w in (1, 2, 3)))
        await redis.delete(*(keys.trail(city, w) for w in (1, 2, 3)))
        await redis.delete(*(keys.geo(city, s) for s in ("available", "busy", "unavailable")))
        await redis.delete(keys.presence(city))


def test_the_worker_hash_is_read_in_one_module() -> None:
    """Outside tests, ``Keys.worker_state`` is used only by tracking/positions.py (every
    read) and tracking/service.py (writing the worker's chosen availability)."""
    root = Path(__file__).resolve().parent.parent
    allowed = {"tracking/positions.py", "tracking/service.py", "doorstep/keys.py"}
    users = set()
    for path in sorted(root.glob("*/**/*.py")):
        if path.relative_to(root).parts[0] in ("tests", ".venv"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr == "worker_state") or (
                isinstance(node, ast.FunctionDef) and node.name == "worker_state"
            ):
                users.add(str(path.relative_to(root)))
    assert users - allowed == set()
    assert "tracking/positions.py" in users
