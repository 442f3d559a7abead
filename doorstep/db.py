"""The PostgreSQL connection pool (asyncpg)."""

from __future__ import annotations

import re
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

# A connection or the pool: anything with execute/fetch. A string alias, because
# asyncpg's classes are generic only in its type stubs, not at run time.
Conn: TypeAlias = "asyncpg.Connection[Any] | asyncpg.Pool[Any] | PoolConnectionProxy[Any]"
# A single connection, as needed for a transaction.
Tx: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """A released connection's reset: nothing beyond what asyncpg always does (an open
    transaction rolled back, its listeners dropped). Its default runs
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` — a round trip on every
    release — for session state this code never leaves on a pooled connection: its
    advisory locks are transaction-scoped, it sets no session settings, cursors live in
    transactions, and LISTEN and the migrations' session lock use connections of their
    own (benchmarks/README.md, orders.py's *book_sql_noreset*; issue 17's notifications)."""


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool[Any]:
    """A pool whose connections decode json/jsonb with orjson."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
    )
    assert pool is not None
    return pool


_PASSWORD_PARAM = re.compile(r"(?i)(^|&)(password=)[^&]*")


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` query
    parameter, as asyncpg and redis-py accept), fit for a log line."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = _PASSWORD_PARAM.sub(r"\1\2***", query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    """The database a URL names (PostgreSQL's default is the user name; we require one)."""
    return urlsplit(url).path.lstrip("/")


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist; True if it was created."""
    name = database_name(url)
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()
