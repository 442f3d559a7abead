"""Reviews: the pure rules. No I/O; ``now`` comes in as an argument.

A review is the customer's rating of a completed order: overall stars (1–5), three
dimensions (quality, attitude, punctuality: 1–5 each, optional so that the older
stars-only form keeps working), text, photos (``review_photo`` files of the author)
and tags from a fixed list. The author may edit it within ``edit_window_s`` of the
first rating; the order's worker may reply once; a moderator may hide it with a
reason. Hidden reviews count nowhere: not in public lists, not in aggregates, not in
the worker's rating (one rule everywhere, see docs/reviews.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from dispatch.errors import DispatchError
from doorstep.errors import Conflict, InvalidInput

DIMENSIONS: tuple[str, ...] = ("quality", "attitude", "punctuality")
POSITIVE_TAGS: tuple[str, ...] = ("准时", "专业", "细心", "态度好", "干净整洁", "效率高")
NEGATIVE_TAGS: tuple[str, ...] = ("迟到", "不专业", "态度差", "不整洁", "乱收费", "未完成")
TAGS: tuple[str, ...] = POSITIVE_TAGS + NEGATIVE_TAGS
PHOTO_PURPOSE = "review_photo"


class InvalidReview(InvalidInput, DispatchError):
    """A review field breaks a rule (the field and the rule are named)."""

    code = "invalid_review"


class EditWindowClosed(Conflict, DispatchError):
    """The author's edit window is over."""

    code = "edit_window_closed"


class AlreadyReplied(Conflict, DispatchError):
    """The worker replied to this review already (one reply)."""

    code = "already_replied"


@dataclass(frozen=True, slots=True)
class ReviewParams:
    """Section ``[reviews]`` of the params file."""

    # The author may edit a review this long after first sending it (24 h).
    edit_window_s: float = 86400.0
    # At most this many photos and tags on one review.
    max_photos: int = 6
    max_tags: int = 5
    # The newest visible reviews shown on a worker's card.
    card_reviews: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.edit_window_s <= 30 * 86400:
            raise ValueError("edit_window_s must be between 0 and 2592000 (30 days)")
        if not 0 <= self.max_photos <= 20:
            raise ValueError("max_photos must be between 0 and 20")
        if not 0 <= self.max_tags <= len(TAGS):
            raise ValueError(f"max_tags must be between 0 and {len(TAGS)}")
        if not 1 <= self.card_reviews <= 50:
            raise ValueError("card_reviews must be between 1 and 50")


@dataclass(frozen=True, slots=True)
class ReviewInput:
    """What the author sends (a new review, or the whole review again on an edit)."""

    stars: int
    text: str = ""
    quality: int | None = None
    attitude: int | None = None
    punctuality: int | None = None
    tags: tuple[str, ...] = ()
    photos: tuple[int, ...] = ()


def check_review(r: ReviewInput, params: ReviewParams) -> ReviewInput:
    """The review with its text stripped and its tags and photos de-duplicated (order
    kept); :class:`InvalidReview` naming the field and the rule otherwise."""
    for name, value in (("stars", r.stars), *((d, getattr(r, d)) for d in DIMENSIONS)):
        if value is not None and not (isinstance(value, int) and 1 <= value <= 5):
            raise InvalidReview("must be a whole number from 1 to 5", field=name)
    text = r.text.strip()
    if len(text) > 2000:
        raise InvalidReview("at most 2000 characters", field="text")
    tags = tuple(dict.fromkeys(r.tags))
    for i, tag in enumerate(tags):
        if tag not in TAGS:
            raise InvalidReview(
                f"unknown tag {tag!r}; one of {', '.join(TAGS)}", field=f"tags[{i}]"
            )
    if len(tags) > params.max_tags:
        raise InvalidReview(f"at most {params.max_tags} tags", field="tags")
    photos = tuple(dict.fromkeys(r.photos))
    if len(photos) > params.max_photos:
        raise InvalidReview(f"at most {params.max_photos} photos", field="photos")
    return ReviewInput(r.stars, text, r.quality, r.attitude, r.punctuality, tags, photos)


def check_photo(
    index: int, *, file_owner: int | None, purpose: str | None, media_type: str | None, author: int
) -> None:
    """A review photo must be an image the author uploaded for ``review_photo``
    (``file_owner`` None: no such file). 422 naming ``photos[i]`` otherwise."""
    where = f"photos[{index}]"
    if file_owner is None or file_owner != author:
        raise InvalidReview(
            "no such photo of yours; upload it first (purpose review_photo)", field=where
        )
    if media_type is None or not media_type.startswith("image/"):
        raise InvalidReview(f"must be an image, not {media_type}", field=where)
    if purpose != PHOTO_PURPOSE:
        raise InvalidReview(
            f"must be a file uploaded for {PHOTO_PURPOSE}, not {purpose}", field=where
        )


def check_edit_window(created_at: datetime, now: float, params: ReviewParams) -> None:
    """:class:`EditWindowClosed` once ``edit_window_s`` passed since the review was sent."""
    age = now - created_at.timestamp()
    if age > params.edit_window_s:
        hours = params.edit_window_s / 3600
        raise EditWindowClosed(
            f"a review may be edited within {hours:g} h of sending it; this one is older",
            field="order_id",
        )


def check_reply(text: str) -> str:
    """The reply stripped: 1..500 characters."""
    out = text.strip()
    if not 1 <= len(out) <= 500:
        raise InvalidReview("must be 1 to 500 characters (blank does not count)", field="text")
    return out


def check_hide_reason(reason: str) -> str:
    """A moderator's reason stripped: 2..200 characters."""
    out = reason.strip()
    if not 2 <= len(out) <= 200:
        raise InvalidReview("must be 2 to 200 characters saying why", field="reason")
    return out


def check_working_since(working_since: date | None, today: date) -> date | None:
    """The date a worker started the trade: not in the future, not before 1950."""
    if working_since is not None and not date(1950, 1, 1) <= working_since <= today:
        raise InvalidReview(f"must be a date from 1950-01-01 to {today}", field="working_since")
    return working_since


def years_of_experience(working_since: date | None, today: date) -> int | None:
    """Whole years since the worker started the trade; None if unknown (omitted)."""
    if working_since is None or working_since > today:
        return None
    years = today.year - working_since.year
    if (today.month, today.day) < (working_since.month, working_since.day):
        years -= 1
    return years


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over visible reviews, as the store counts them (or :func:`totals` does)."""

    count: int = 0
    stars_sum: int = 0
    dim_sums: dict[str, int] = field(default_factory=dict)
    dim_counts: dict[str, int] = field(default_factory=dict)
    tag_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReviewSummary:
    """Aggregates of the visible reviews of a service or a worker."""

    count: int
    average: float | None  # overall stars, 2 decimals; None with no reviews
    dimensions: dict[str, float | None]  # quality/attitude/punctuality → average or None
    dimension_counts: dict[str, int]  # how many reviews rated each dimension
    tags: dict[str, int]  # tag → count, most used first (fixed-list order on ties)


def totals(reviews: Iterable[ReviewInput]) -> Totals:
    """Sum ``reviews`` (the visible ones) the way the store's SQL does."""
    count = stars = 0
    dim_sums: Counter[str] = Counter()
    dim_counts: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    for r in reviews:
        count += 1
        stars += r.stars
        for d in DIMENSIONS:
            v = getattr(r, d)
            if v is not None:
                dim_sums[d] += v
                dim_counts[d] += 1
        tags.update(dict.fromkeys(r.tags, 1))
    return Totals(count, stars, dict(dim_sums), dict(dim_counts), dict(tags))


def summarize(t: Totals) -> ReviewSummary:
    """Averages (2 decimals) and tag counts from sums; tags not on the list are dropped."""
    dims: dict[str, float | None] = {}
    for d in DIMENSIONS:
        n = t.dim_counts.get(d, 0)
        dims[d] = round(t.dim_sums.get(d, 0) / n, 2) if n else None
    order = {tag: i for i, tag in enumerate(TAGS)}
    tags = sorted(
        ((k, v) for k, v in t.tag_counts.items() if k in order and v > 0),
        key=lambda kv: (-kv[1], order[kv[0]]),
    )
    return ReviewSummary(
        count=t.count,
        average=round(t.stars_sum / t.count, 2) if t.count else None,
        dimensions=dims,
        dimension_counts={d: t.dim_counts.get(d, 0) for d in DIMENSIONS},
        tags=dict(tags),
    )


def stars_delta(old: int, new: int) -> int:
    """What an edit adds to the worker's rating sum (the count stays)."""
    return new - old


def changed_photos(old: Sequence[int], new: Sequence[int]) -> tuple[list[int], list[int]]:
    """(photos to attach, photos to detach) when a review's photos go from old to new."""
    return [p for p in new if p not in old], [p for p in old if p not in new]
