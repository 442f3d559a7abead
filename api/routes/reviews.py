"""Reviews beyond the first rating (which is in orders.py): read, edit, reply, hide,
per-service aggregates, and the worker's public profile. docs/reviews.md."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import msgspec
from starlette.responses import Response

from api.bodies import Input
from api.routing import PUBLIC, Ctx, QueryParam, Router
from catalog import service as catalog_service
from dispatch import ratings
from dispatch.errors import OrderNotFound
from dispatch.models import Rating
from dispatch.review_rules import ReviewInput, ReviewParams, ReviewSummary

router = Router("reviews")
CUSTOMER = frozenset({"customer"})
WORKER = frozenset({"worker"})
PARTIES = frozenset({"customer", "worker", "dispatcher", "admin"})
STAFF = frozenset({"dispatcher", "admin"})
# Moderators: admins, and the holders of ``reviews.moderate`` (customer service, a city's
# operator) for the orders their grant's scope reaches.
MODERATORS = frozenset({"admin"})

Score = Annotated[int, msgspec.Meta(ge=1, le=5)]
FileId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class ReviewIn(Input):
    """The whole review: overall stars, dimensions (1–5 each, optional), text, tags from
    the fixed list (GET /v1/reviews/tags), photos (your review_photo file ids)."""

    stars: Score
    text: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    quality: Score | None = None
    attitude: Score | None = None
    punctuality: Score | None = None
    tags: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=20)]], msgspec.Meta(max_length=20)
    ] = msgspec.field(default_factory=list)
    photos: Annotated[list[FileId], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )

    def review(self) -> ReviewInput:
        """The pure rules' shape."""
        return ReviewInput(
            self.stars,
            self.text,
            self.quality,
            self.attitude,
            self.punctuality,
            tuple(self.tags),
            tuple(self.photos),
        )


class ReplyIn(Input):
    """The worker's one reply."""

    text: Annotated[str, msgspec.Meta(max_length=500)]


class HideIn(Input):
    """Why a moderator hides the review (kept with it)."""

    reason: Annotated[str, msgspec.Meta(max_length=200)]


class ProfileIn(Input):
    """The worker's public profile: a photo (an ``avatar`` file of theirs) and the date
    they started the trade (years of experience are counted from it)."""

    photo_file_id: FileId | None = None
    working_since: date | None = None


class Tags(msgspec.Struct):
    """The fixed tag list."""

    positive: list[str]
    negative: list[str]


def params(ctx: Ctx) -> ReviewParams:
    """The ``[reviews]`` params the app was started with."""
    found: ReviewParams = ctx.request.app.state.review_params
    return found


@router.get(
    "/v1/reviews/tags",
    roles=PUBLIC,
    returns=Tags,
    summary="The fixed list of review tags (positive and negative)",
)
async def tags(ctx: Ctx) -> Tags:
    from dispatch.review_rules import NEGATIVE_TAGS, POSITIVE_TAGS

    return Tags(list(POSITIVE_TAGS), list(NEGATIVE_TAGS))


@router.get(
    "/v1/orders/{order_id}/rating",
    perm="reviews.read",
    roles=PARTIES,
    returns=Rating | None,
    summary="The order's rating, null if not rated yet (its customer, its worker, or staff; 404 for others)",
)
async def get_rating(ctx: Ctx) -> Rating | Response:
    order_id = ctx.path_int("order_id")
    found = await ratings.rating_of(
        ctx.stores.pool,
        order_id,
        user_id=ctx.user.user_id,
        staff=ctx.has_role(*STAFF) or (ctx.scope is not None and await ctx.reaches_order(order_id)),
        params=params(ctx),
    )
    # Not rated yet: a JSON null (a bare None would be a 204 without a body).
    return found if found is not None else Response(b"null", media_type="application/json")


@router.put(
    "/v1/orders/{order_id}/rating",
    perm="reviews.write",
    errors={
        409: "the edit window is over (`edit_window_closed`), the worker replied, or it is hidden",
        422: "a score out of 1–5, an unknown tag, a photo not yours or not an image",
    },
    roles=CUSTOMER,
    body=ReviewIn,
    returns=Rating,
    summary="Edit my review within the edit window (the worker's rating moves with it)",
)
async def edit_rating(ctx: Ctx, body: ReviewIn) -> Rating:
    return await ratings.edit(
        ctx.stores,
        ctx.path_int("order_id"),
        ctx.user.user_id,
        body.review(),
        params=params(ctx),
        now=ctx.now,
    )


@router.post(
    "/v1/orders/{order_id}/rating/reply",
    perm="reviews.write",
    errors={409: "replied already (`already_replied`)", 422: "a blank reply"},
    roles=WORKER,
    body=ReplyIn,
    returns=Rating,
    status=201,
    summary="The order's worker replies to its review, once",
)
async def reply(ctx: Ctx, body: ReplyIn) -> Rating:
    return await ratings.reply(
        ctx.stores,
        ctx.path_int("order_id"),
        ctx.user.user_id,
        body.text,
        params=params(ctx),
        now=ctx.now,
    )


@router.post(
    "/v1/ratings/{order_id}/hide",
    perm="reviews.moderate",
    errors={409: "hidden already (`already_hidden`)", 422: "a blank or one-character reason"},
    roles=MODERATORS,
    body=HideIn,
    returns=Rating,
    summary="Hide a review with a reason: out of lists, aggregates and the worker's rating",
)
async def hide(ctx: Ctx, body: HideIn) -> Rating:
    order_id = ctx.path_int("order_id")
    if not await ctx.reaches_order(order_id):
        raise OrderNotFound(f"no order {order_id}", field="order_id")
    return await ratings.hide(
        ctx.stores,
        order_id,
        ctx.user.user_id,
        body.reason,
        params=params(ctx),
        now=ctx.now,
    )


@router.get(
    "/v1/services/{service_code}/reviews/summary",
    roles=PUBLIC,
    returns=ReviewSummary,
    summary="A service's review aggregates: count, average, per-dimension averages, tag counts",
)
async def service_summary(ctx: Ctx) -> ReviewSummary:
    code = ctx.path_str("service_code")
    await catalog_service.get_service(ctx.stores.pool, code)  # 404 for an unknown service
    return await ratings.summary(ctx.stores.pool, service_code=code)


@router.get(
    "/v1/me/reviews",
    perm="reviews.read",
    roles=WORKER,
    returns=list[Rating],
    query=(QueryParam("limit", int, "1..100, default 30"),),
    summary="The worker's own reviews, newest first, with order ids (to reply to)",
)
async def my_reviews(ctx: Ctx) -> list[Rating]:
    return await ratings.of_worker(
        ctx.stores.pool,
        ctx.user.user_id,
        limit=ctx.query_int("limit", 30, ge=1, le=100),
        params=params(ctx),
    )


@router.put(
    "/v1/workers/me/profile",
    perm="reviews.write",
    errors={
        404: "the photo is not an avatar file of yours",
        409: "the photo is attached elsewhere",
    },
    roles=WORKER,
    body=ProfileIn,
    status=204,
    summary="Set my public photo and the date I started the trade (shown on my card)",
)
async def set_profile(ctx: Ctx, body: ProfileIn) -> None:
    await ratings.set_profile(
        ctx.stores,
        ctx.user.user_id,
        photo_file_id=body.photo_file_id,
        working_since=body.working_since,
        now=ctx.now,
    )
