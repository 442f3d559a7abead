"""Number masking: the temporary number an order's customer and worker call each other
through (docs/privacy.md)."""

from __future__ import annotations

from api.routing import Ctx, Router
from privacy.service import Contact, contact

router = Router("privacy")


@router.get(
    "/v1/orders/{order_id}/contact",
    perm="privacy.read",
    errors={409: "the job is not under way (no masked number now)"},
    roles=frozenset({"customer", "worker"}),
    returns=Contact,
    summary="The masked number that reaches the job's other party, valid during the job",
)
async def order_contact(ctx: Ctx) -> Contact:
    return await contact(ctx.stores.pool, ctx.path_int("order_id"), ctx.user.user_id)
