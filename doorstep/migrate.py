"""Ordered plain-SQL migrations, recorded in ``schema_migrations``.

Files live in ``doorstep/migrations/NNNN_name.sql`` and are applied in number order,
each in its own transaction. A PostgreSQL advisory lock serialises concurrent
runners, so two processes migrating at once apply each file exactly once. An applied
file whose text changed since is an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from doorstep.db import Tx
from doorstep.errors import Conflict

_LOCK_KEY = 0x646F6F7273746570 & 0x7FFFFFFFFFFFFFFF  # "doorstep"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Conflict):
    """The database's recorded migrations disagree with the files."""

    code = "migration_mismatch"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    """Every migration shipped with the package, in order; duplicates are an error."""
    found: dict[int, Migration] = {}
    for entry in resources.files("doorstep.migrations").iterdir():
        m = _NAME.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two migrations numbered {version:04d}")
        found[version] = Migration(version, m.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(conn: Tx, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations; return those applied by this call."""
    migrations = discover() if migrations is None else migrations
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        recorded = {r["version"]: (r["name"], r["checksum"]) for r in rows}
        known = {m.version for m in migrations}
        unknown = sorted(set(recorded) - known)
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this version of doorstep does not know; "
                "is it newer than this code?"
            )
        for m in migrations:
            if m.version in recorded:
                name, checksum = recorded[m.version]
                if checksum != m.checksum:
                    raise MigrationError(
                        f"migration {m.version:04d}_{name} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied_now.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
