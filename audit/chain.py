"""The audit log's hash chain. Pure: canonical content, hashes, and the verification.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
content (its fields as JSON with sorted keys, the time in ISO 8601 UTC). Changing an
entry breaks its own hash; recomputing that hash breaks the next entry's link; removing
an entry leaves a gap in ``seq``; removing the tail leaves the log short of its head
(``audit_head``, moved in the same transaction as each append). :func:`verify` names the
first entry at fault and what is wrong with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64  # the previous hash of the first entry


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit entry as stored."""

    seq: int
    at: datetime
    actor_id: int | None
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def canonical(
    seq: int, at: datetime, actor_id: int | None, action: str, subject: str, detail: dict[str, Any]
) -> bytes:
    """The bytes an entry's hash covers (besides the previous hash)."""
    return orjson.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(),
            "actor_id": actor_id,
            "action": action,
            "subject": subject,
            "detail": detail,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def link(prev_hash: str, content: bytes) -> str:
    """The hash of an entry with ``content`` following ``prev_hash``."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + content).hexdigest()


def entry_hash(e: Entry, prev_hash: str) -> str:
    """What ``e``'s hash must be if it follows ``prev_hash``."""
    return link(prev_hash, canonical(e.seq, e.at, e.actor_id, e.action, e.subject, e.detail))


@dataclass(frozen=True, slots=True)
class Finding:
    """What is wrong with the log: the entry at fault (its ``seq``) and why."""

    seq: int
    problem: str  # changed | missing | relinked | tail_removed | head_missing
    message: str


@dataclass(frozen=True, slots=True)
class Report:
    """The verification's outcome: how many entries were checked, the last link, and
    the first fault found (None: the chain holds)."""

    checked: int
    last_seq: int
    last_hash: str
    finding: Finding | None

    @property
    def ok(self) -> bool:
        """True if nothing is wrong."""
        return self.finding is None


def verify(entries: Iterable[Entry], head: tuple[int, str] | None) -> Report:
    """Check the chain in ``seq`` order against the head; stop at the first fault."""
    prev_seq, prev_hash, checked = 0, GENESIS, 0
    for e in entries:
        if e.seq != prev_seq + 1:
            gone = (
                f"entry {prev_seq + 1} is missing"
                if e.seq == prev_seq + 2
                else f"entries {prev_seq + 1}–{e.seq - 1} are missing"
            )
            return Report(
                checked,
                prev_seq,
                prev_hash,
                Finding(
                    prev_seq + 1,
                    "missing",
                    f"{gone} (deleted): the log jumps from {prev_seq} to {e.seq}",
                ),
            )
        if e.prev_hash != prev_hash:
            return Report(
                checked,
                prev_seq,
                prev_hash,
                Finding(
                    e.seq,
                    "relinked",
                    f"entry {e.seq} does not follow entry {prev_seq}: its previous hash is not "
                    f"entry {prev_seq}'s hash (entry {prev_seq} was changed and its hash recomputed, "
                    f"or entry {e.seq} was rewritten)",
                ),
            )
        if entry_hash(e, prev_hash) != e.hash:
            return Report(
                checked,
                prev_seq,
                prev_hash,
                Finding(
                    e.seq,
                    "changed",
                    f"entry {e.seq} ({e.action} on {e.subject}) was changed: its content no "
                    "longer matches its hash",
                ),
            )
        prev_seq, prev_hash = e.seq, e.hash
        checked += 1
    if head is None:
        if checked:
            return Report(
                checked,
                prev_seq,
                prev_hash,
                Finding(prev_seq, "head_missing", "the chain's head record is missing (deleted)"),
            )
        return Report(0, 0, GENESIS, None)
    head_seq, head_hash = head
    if head_seq > prev_seq:
        return Report(
            checked,
            prev_seq,
            prev_hash,
            Finding(
                prev_seq + 1,
                "tail_removed",
                f"the log ends at entry {prev_seq} but its head is entry {head_seq}: "
                f"entries {prev_seq + 1}–{head_seq} were deleted",
            ),
        )
    if head_seq != prev_seq or head_hash != prev_hash:
        return Report(
            checked,
            prev_seq,
            prev_hash,
            Finding(
                head_seq,
                "changed",
                f"the head (entry {head_seq}) does not match the log's last entry {prev_seq}",
            ),
        )
    return Report(checked, prev_seq, prev_hash, None)
