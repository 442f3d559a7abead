"""Reading the record of address reveals (``address_reveals``): which worker was shown a
customer's exact address and phone, when. Written by ``service.audit_reveal`` (and
chained in the audit log); read by admins (``GET /v1/admin/reveals``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from doorstep.db import Conn


@dataclass(frozen=True, slots=True)
class Reveal:
    """One reveal: the order, the worker shown it, when, what."""

    id: int
    order_id: int
    worker_id: int
    worker_name: str | None
    customer_id: int
    at: datetime
    what: str


async def list_reveals(
    db: Conn,
    *,
    order_id: int | None,
    worker_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[Reveal]:
    """Reveals, newest first, filtered by order and/or worker; ``before_id`` pages."""
    rows = await db.fetch(
        "SELECT r.id, r.order_id, r.worker_id, u.name AS worker_name, o.customer_id, r.at, r.what "
        "FROM address_reveals r JOIN orders o ON o.id = r.order_id "
        "LEFT JOIN users u ON u.id = r.worker_id "
        "WHERE ($1::bigint IS NULL OR r.order_id = $1) AND ($2::bigint IS NULL OR r.worker_id = $2) "
        "AND ($3::bigint IS NULL OR r.id < $3) ORDER BY r.id DESC LIMIT $4",
        order_id,
        worker_id,
        before_id,
        limit,
    )
    return [Reveal(**dict(r)) for r in rows]
