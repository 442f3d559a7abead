"""Ratings (reviews): after completion the customer rates the job once; the worker's rating
moves. The author may edit within a window, the worker may reply once, a moderator may hide
it (a hidden review counts nowhere: lists, aggregates and the worker's rating). Rules in
:mod:`dispatch.review_rules`; docs/reviews.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from dispatch import review_rules as rules
from dispatch import store
from dispatch.errors import DispatchError, InvalidOrder, OrderNotFound
from dispatch.models import Badge, Rating, Review, WorkerCard
from dispatch.review_rules import ReviewInput, ReviewParams, ReviewSummary, Totals
from doorstep.db import Conn, Tx
from doorstep.errors import Conflict, NotFound
from doorstep.stores import Stores
from files import service as files_service
from files import store as files_store
from files.content import IMAGE_TYPES
from files.models import Caller, StoredFile
from files.purposes import MB, STAFF, register_purpose

_RATING_COLUMNS = (
    "order_id, worker_id, customer_id, stars, text, created_at, quality, attitude, punctuality, "
    "tags, photo_ids, edited_at, reply, replied_at, hidden_at, hidden_reason"
)


async def review_photo_readers(caller: Caller, file: StoredFile, db: Conn) -> bool:
    """Anyone signed in once the photo is on a visible review; staff always."""
    if STAFF.intersection(caller.roles):
        return True
    if file.attached_to is None or not file.attached_to.startswith("review:"):
        return False
    order_id = int(file.attached_to.removeprefix("review:"))
    hidden = await db.fetchval("SELECT hidden_at FROM ratings WHERE order_id = $1", order_id)
    return hidden is None


# Reviews own the review_photo purpose: public (to the signed-in) once on a visible review.
register_purpose(
    rules.PHOTO_PURPOSE,
    media_types=IMAGE_TYPES,
    max_bytes=10 * MB,
    may_read=review_photo_readers,
    max_edge_px=2048,
    uploaders=frozenset({"customer"}),
)


class AlreadyRated(Conflict, DispatchError):
    """The order has a rating already."""

    code = "already_rated"


class RatingNotFound(NotFound, DispatchError):
    """No rating on that order (or not one the caller may see)."""

    code = "rating_not_found"


def _rating(r: asyncpg.Record | None, params: ReviewParams) -> Rating:
    assert r is not None
    return Rating(
        order_id=r["order_id"],
        worker_id=r["worker_id"],
        stars=r["stars"],
        text=r["text"],
        created_at=r["created_at"],
        quality=r["quality"],
        attitude=r["attitude"],
        punctuality=r["punctuality"],
        tags=tuple(r["tags"]),
        photos=tuple(r["photo_ids"]),
        edited_at=r["edited_at"],
        editable_until=r["created_at"] + timedelta(seconds=params.edit_window_s),
        reply=r["reply"],
        replied_at=r["replied_at"],
        hidden=r["hidden_at"] is not None,
        hidden_reason=r["hidden_reason"],
    )


def _now(now: float | None) -> float:
    return datetime.now(UTC).timestamp() if now is None else now


async def _check_photos(
    tx: Tx, photos: tuple[int, ...], author: int, keep: tuple[int, ...]
) -> None:
    """Each new photo is the author's unattached review_photo image (422 naming photos[i])."""
    for i, file_id in enumerate(photos):
        if file_id in keep:
            continue
        f = await files_store.file_by_id(tx, file_id)
        rules.check_photo(
            i,
            file_owner=None if f is None else f.owner_id,
            purpose=None if f is None else f.purpose,
            media_type=None if f is None else f.media_type,
            author=author,
        )
        if f is not None and f.attached_to is not None:
            raise rules.InvalidReview(
                f"photo {file_id} is attached to {f.attached_to} already", field=f"photos[{i}]"
            )


async def _attach(tx: Tx, order_id: int, author: int, attach: list[int], now: float) -> None:
    for file_id in attach:
        await files_service.attach(
            tx,
            file_id=file_id,
            owner_id=author,
            purpose=rules.PHOTO_PURPOSE,
            ref=f"review:{order_id}",
            now=int(now),
        )


# The workers a rating counts for: its worker and, for a crew order, every member of the
# crew (docs/dispatch.md#crews: one rating of the order applies to each member).
_RATED = (
    "(user_id = $1 OR user_id IN (SELECT c.worker_id FROM order_crew c WHERE c.order_id = $3 "
    "AND c.released_at IS NULL))"
)
# A worker's ratings: rated as the order's worker, or as a member of its crew.
_BY_WORKER = (
    "(r.worker_id = $2 OR r.order_id IN (SELECT c.order_id FROM order_crew c "
    "WHERE c.worker_id = $2 AND c.released_at IS NULL))"
)


async def _crew_holds(db: Conn, order_id: int, worker_id: int) -> bool:
    """True if the worker is a member of the order's crew."""
    found = await db.fetchval(
        "SELECT 1 FROM order_crew WHERE order_id = $1 AND worker_id = $2 AND released_at IS NULL",
        order_id,
        worker_id,
    )
    return found is not None


async def rate(
    stores: Stores,
    order_id: int,
    customer_id: int,
    stars: int,
    text: str,
    *,
    review: ReviewInput | None = None,
    params: ReviewParams | None = None,
    now: float | None = None,
) -> Rating:
    """Store the rating and fold it into the worker's sum and count, atomically (a crew
    order's: into each member's).

    ``review`` carries the dimensions, tags and photos (``stars``/``text`` alone: the
    older form)."""
    params = params or ReviewParams()
    at = _now(now)
    r = rules.check_review(review or ReviewInput(stars, text), params)
    async with stores.pool.acquire() as conn, conn.transaction():
        order = await store.get(conn, order_id, lock=True)
        if order is None or order.customer_id != customer_id:
            raise OrderNotFound(f"no order {order_id}", field="order_id")
        if order.status != "completed" or order.worker_id is None:
            raise InvalidOrder(
                f"only a completed order can be rated; this one is {order.status}", field="order_id"
            )
        if await conn.fetchval("SELECT 1 FROM ratings WHERE order_id = $1", order_id):
            raise AlreadyRated("this order is rated already; edit it instead", field="order_id")
        await _check_photos(conn, r.photos, customer_id, ())
        row = await conn.fetchrow(
            "INSERT INTO ratings (order_id, worker_id, customer_id, stars, text, quality, attitude, "
            "punctuality, tags, photo_ids, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (order_id) DO NOTHING "
            f"RETURNING {_RATING_COLUMNS}",
            order_id,
            order.worker_id,
            customer_id,
            r.stars,
            r.text,
            r.quality,
            r.attitude,
            r.punctuality,
            list(r.tags),
            list(r.photos),
            datetime.fromtimestamp(at, UTC),
        )
        if row is None:
            raise AlreadyRated("this order is rated already; edit it instead", field="order_id")
        await _attach(conn, order_id, customer_id, list(r.photos), at)
        await conn.execute(
            "UPDATE workers SET rating_sum = rating_sum + $2, rating_count = rating_count + 1, "
            f"updated_at = now() WHERE {_RATED}",
            order.worker_id,
            r.stars,
            order_id,
        )
    return _rating(row, params)


async def _own_rating(conn: Tx, order_id: int, customer_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_RATING_COLUMNS} FROM ratings WHERE order_id = $1 FOR UPDATE", order_id
    )
    if row is None or row["customer_id"] != customer_id:
        raise RatingNotFound(f"no rating of yours on order {order_id}", field="order_id")
    found: asyncpg.Record = row
    return found


async def edit(
    stores: Stores,
    order_id: int,
    customer_id: int,
    review: ReviewInput,
    *,
    params: ReviewParams | None = None,
    now: float | None = None,
) -> Rating:
    """The author replaces their review within the edit window; the worker's rating sum moves
    by the difference in the same transaction (not at all if the review is hidden)."""
    params = params or ReviewParams()
    at = _now(now)
    r = rules.check_review(review, params)
    async with stores.pool.acquire() as conn, conn.transaction():
        old = await _own_rating(conn, order_id, customer_id)
        rules.check_edit_window(old["created_at"], at, params)
        if old["hidden_at"] is not None:
            raise rules.EditWindowClosed(
                "a hidden review cannot be edited (a moderator hid it)", field="order_id"
            )
        if old["reply"] is not None:
            raise rules.EditWindowClosed(
                "the worker replied already; the review is fixed now", field="order_id"
            )
        kept = tuple(old["photo_ids"])
        await _check_photos(conn, r.photos, customer_id, kept)
        attach, detach = rules.changed_photos(kept, r.photos)
        for file_id in detach:
            await files_service.detach(conn, file_id=file_id, ref=f"review:{order_id}")
        await _attach(conn, order_id, customer_id, attach, at)
        row = await conn.fetchrow(
            "UPDATE ratings SET stars = $2, text = $3, quality = $4, attitude = $5, punctuality = $6, "
            f"tags = $7, photo_ids = $8, edited_at = $9 WHERE order_id = $1 RETURNING {_RATING_COLUMNS}",
            order_id,
            r.stars,
            r.text,
            r.quality,
            r.attitude,
            r.punctuality,
            list(r.tags),
            list(r.photos),
            datetime.fromtimestamp(at, UTC),
        )
        delta = rules.stars_delta(old["stars"], r.stars)
        if delta:
            await conn.execute(
                "UPDATE workers SET rating_sum = greatest(rating_sum + $2, 0), updated_at = now() "
                f"WHERE {_RATED}",
                old["worker_id"],
                delta,
                order_id,
            )
    return _rating(row, params)


async def reply(
    stores: Stores,
    order_id: int,
    worker_id: int,
    text: str,
    *,
    params: ReviewParams | None = None,
    now: float | None = None,
) -> Rating:
    """The order's worker (or any member of its crew) replies once (404 for anyone else:
    they may not know it exists)."""
    body = rules.check_reply(text)
    at = _now(now)
    async with stores.pool.acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            f"SELECT {_RATING_COLUMNS} FROM ratings WHERE order_id = $1 FOR UPDATE", order_id
        )
        if old is None or not (
            old["worker_id"] == worker_id or await _crew_holds(conn, order_id, worker_id)
        ):
            raise RatingNotFound(f"no rating of your job on order {order_id}", field="order_id")
        if old["reply"] is not None:
            raise rules.AlreadyReplied("you replied to this review already", field="order_id")
        row = await conn.fetchrow(
            "UPDATE ratings SET reply = $2, replied_at = $3 WHERE order_id = $1 "
            f"RETURNING {_RATING_COLUMNS}",
            order_id,
            body,
            datetime.fromtimestamp(at, UTC),
        )
    return _rating(row, params or ReviewParams())


async def hide(
    stores: Stores,
    order_id: int,
    moderator_id: int,
    reason: str,
    *,
    params: ReviewParams | None = None,
    now: float | None = None,
) -> Rating:
    """A moderator hides the review with a reason: it leaves public lists and aggregates,
    and its stars leave the worker's rating (same transaction). Hiding twice is a 409."""
    why = rules.check_hide_reason(reason)
    at = _now(now)
    async with stores.pool.acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            f"SELECT {_RATING_COLUMNS} FROM ratings WHERE order_id = $1 FOR UPDATE", order_id
        )
        if old is None:
            raise RatingNotFound(f"no rating on order {order_id}", field="order_id")
        if old["hidden_at"] is not None:
            raise AlreadyHidden("this review is hidden already", field="order_id")
        row = await conn.fetchrow(
            "UPDATE ratings SET hidden_at = $2, hidden_reason = $3, hidden_by = $4 "
            f"WHERE order_id = $1 RETURNING {_RATING_COLUMNS}",
            order_id,
            datetime.fromtimestamp(at, UTC),
            why,
            moderator_id,
        )
        await conn.execute(
            "UPDATE workers SET rating_sum = greatest(rating_sum - $2, 0), "
            "rating_count = greatest(rating_count - 1, 0), "
            f"updated_at = now() WHERE {_RATED}",
            old["worker_id"],
            old["stars"],
            order_id,
        )
    return _rating(row, params or ReviewParams())


class AlreadyHidden(Conflict, DispatchError):
    """The review is hidden already."""

    code = "already_hidden"


async def rating_of(
    db: Conn,
    order_id: int,
    *,
    user_id: int,
    staff: bool,
    params: ReviewParams | None = None,
) -> Rating | None:
    """The order's rating for its customer, its worker (a member of its crew) or staff;
    None if the order is not rated yet; 404 for an order the caller is no party to."""
    parties = await db.fetchrow("SELECT customer_id, worker_id FROM orders WHERE id = $1", order_id)
    member = await _crew_holds(db, order_id, user_id)
    if parties is None or not (
        staff or member or user_id in (parties["customer_id"], parties["worker_id"])
    ):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    row = await db.fetchrow(f"SELECT {_RATING_COLUMNS} FROM ratings WHERE order_id = $1", order_id)
    if row is None:
        return None
    if not (staff or member or user_id in (row["customer_id"], row["worker_id"])):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    return _rating(row, params or ReviewParams())


async def of_worker(
    db: Conn, worker_id: int, *, limit: int = 30, params: ReviewParams | None = None
) -> list[Rating]:
    """The worker's own reviews (their crews' too), newest first, hidden ones too
    (flagged): what they may reply to."""
    rows = await db.fetch(
        f"SELECT {_RATING_COLUMNS} FROM ratings r WHERE {_BY_WORKER.replace('$2', '$1')} "
        "ORDER BY created_at DESC, order_id DESC LIMIT $2",
        worker_id,
        limit,
    )
    return [_rating(r, params or ReviewParams()) for r in rows]


class WorkerNotFound(NotFound, DispatchError):
    """No worker with that id."""

    code = "worker_not_found"


def public_name(full_name: str) -> str:
    """How customers see a worker: the surname and 师傅 (王师傅), never the full name."""
    return full_name[:1] + "师傅"


def masked_customer(full_name: str) -> str:
    """A reviewer as others see them: the first character, then ``**``."""
    return (full_name[:1] or "?") + "**"


async def reviews(
    db: Conn, *, service_code: str | None = None, worker_id: int | None = None, limit: int = 20
) -> list[Review]:
    """The newest visible ratings of a service or a worker (or all), newest first."""
    rows = await db.fetch(
        "SELECT r.stars, r.text, r.created_at, o.service_code, r.worker_id, r.quality, r.attitude, "
        "r.punctuality, r.tags, r.photo_ids, r.reply, r.replied_at, r.edited_at, "
        "wu.name AS worker_name, cu.name AS customer_name "
        "FROM ratings r JOIN orders o ON o.id = r.order_id "
        "JOIN users wu ON wu.id = r.worker_id JOIN users cu ON cu.id = r.customer_id "
        "WHERE r.hidden_at IS NULL "
        f"AND ($1::text IS NULL OR o.service_code = $1) AND ($2::bigint IS NULL OR {_BY_WORKER}) "
        "ORDER BY r.created_at DESC, r.order_id DESC LIMIT $3",
        service_code,
        worker_id,
        limit,
    )
    return [
        Review(
            stars=r["stars"],
            text=r["text"],
            created_at=r["created_at"],
            service_code=r["service_code"],
            worker_id=r["worker_id"],
            worker_name=public_name(r["worker_name"]),
            customer_name=masked_customer(r["customer_name"]),
            quality=r["quality"],
            attitude=r["attitude"],
            punctuality=r["punctuality"],
            tags=tuple(r["tags"]),
            photos=tuple(r["photo_ids"]),
            reply=r["reply"],
            replied_at=r["replied_at"],
            edited_at=r["edited_at"],
        )
        for r in rows
    ]


async def summary(
    db: Conn, *, service_code: str | None = None, worker_id: int | None = None
) -> ReviewSummary:
    """Aggregates of the visible reviews of a service or a worker (summed here, averaged by
    :func:`dispatch.review_rules.summarize`)."""
    where = (
        "FROM ratings r JOIN orders o ON o.id = r.order_id WHERE r.hidden_at IS NULL "
        f"AND ($1::text IS NULL OR o.service_code = $1) AND ($2::bigint IS NULL OR {_BY_WORKER})"
    )
    dims = ", ".join(
        f"coalesce(sum(r.{d}), 0) AS {d}_sum, count(r.{d}) AS {d}_n" for d in rules.DIMENSIONS
    )
    row = await db.fetchrow(
        f"SELECT count(*) AS n, coalesce(sum(r.stars), 0) AS stars, {dims} {where}",
        service_code,
        worker_id,
    )
    tags = await db.fetch(
        f"SELECT t.tag, count(*) AS n FROM (SELECT unnest(r.tags) AS tag {where}) t GROUP BY t.tag",
        service_code,
        worker_id,
    )
    assert row is not None
    return rules.summarize(
        Totals(
            count=int(row["n"]),
            stars_sum=int(row["stars"]),
            dim_sums={d: int(row[f"{d}_sum"]) for d in rules.DIMENSIONS},
            dim_counts={d: int(row[f"{d}_n"]) for d in rules.DIMENSIONS},
            tag_counts={t["tag"]: int(t["n"]) for t in tags},
        )
    )


async def badges(db: Conn, worker_id: int, now: float) -> list[Badge]:
    """The worker's verified certificates valid today (in their city): kinds only."""
    rows = await db.fetch(
        "SELECT DISTINCT k.code, k.name_zh, k.name_en FROM worker_certificates c "
        "JOIN certificate_kinds k ON k.code = c.kind JOIN workers w ON w.user_id = c.worker_id "
        "JOIN cities ci ON ci.id = w.city_id WHERE c.worker_id = $1 AND c.status = 'verified' "
        "AND c.issued_on <= (to_timestamp($2) AT TIME ZONE ci.timezone)::date "
        "AND c.expires_on >= (to_timestamp($2) AT TIME ZONE ci.timezone)::date ORDER BY k.code",
        worker_id,
        now,
    )
    return [Badge(kind=r["code"], name_zh=r["name_zh"], name_en=r["name_en"]) for r in rows]


async def worker_card(
    db: Conn, worker_id: int, *, now: float | None = None, params: ReviewParams | None = None
) -> WorkerCard:
    """A worker's public profile with their newest reviews; 404 if there is no such worker.

    ``rating``/``rating_count`` are the worker's running sums (hidden reviews taken out at
    hiding): they move exactly with the visible reviews (seeded workers also carry a
    history from before the platform)."""
    params = params or ReviewParams()
    at = _now(now)
    row = await db.fetchrow(
        "SELECT w.user_id, u.name, w.city_id, w.skills, w.rating_sum, w.rating_count, "
        "w.photo_file_id, w.working_since, (to_timestamp($2) AT TIME ZONE ci.timezone)::date AS today, "
        "(SELECT count(*) FROM orders o WHERE o.worker_id = w.user_id AND o.status = 'completed') "
        "AS completed FROM workers w JOIN users u ON u.id = w.user_id "
        "JOIN cities ci ON ci.id = w.city_id WHERE w.user_id = $1",
        worker_id,
        at,
    )
    if row is None:
        raise WorkerNotFound(f"no worker {worker_id}", field="worker_id")
    count = int(row["rating_count"])
    agg = await summary(db, worker_id=worker_id)
    return WorkerCard(
        id=row["user_id"],
        name=public_name(row["name"]),
        city_id=row["city_id"],
        skills=tuple(row["skills"]),
        rating=round(row["rating_sum"] / count, 2) if count else None,
        rating_count=count,
        completed_jobs=int(row["completed"]),
        reviews=tuple(await reviews(db, worker_id=worker_id, limit=params.card_reviews)),
        photo_file_id=row["photo_file_id"],
        years_experience=rules.years_of_experience(row["working_since"], row["today"]),
        badges=tuple(await badges(db, worker_id, at)),
        dimensions=agg.dimensions,
        tags=agg.tags,
    )


async def set_profile(
    stores: Stores,
    worker_id: int,
    *,
    photo_file_id: int | None,
    working_since: date | None,
    now: float | None = None,
) -> None:
    """The worker's public photo (an ``avatar`` file of theirs, attached to ``worker:<id>``;
    the old one detached) and the date they started the trade."""
    at = _now(now)
    rules.check_working_since(working_since, datetime.fromtimestamp(at, UTC).date())
    async with stores.pool.acquire() as conn, conn.transaction():
        old = await conn.fetchval(
            # NO KEY: offers, plans and assignments that reference the worker go on
            "SELECT photo_file_id FROM workers WHERE user_id = $1 FOR NO KEY UPDATE",
            worker_id,
        )
        ref = f"worker:{worker_id}"
        if old is not None and old != photo_file_id:
            await files_service.detach(conn, file_id=old, ref=ref)
        if photo_file_id is not None and photo_file_id != old:
            await files_service.attach(
                conn,
                file_id=photo_file_id,
                owner_id=worker_id,
                purpose="avatar",
                ref=ref,
                now=int(at),
            )
        await conn.execute(
            "UPDATE workers SET photo_file_id = $2, working_since = $3, updated_at = now() "
            "WHERE user_id = $1",
            worker_id,
            photo_file_id,
            working_since,
        )
