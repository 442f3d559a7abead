"""Number masking: the temporary number an order's customer and worker call each other
through (docs/privacy.md)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from api.bodies import Input
from api.routing import ANY_ROLE, PUBLIC, Ctx, Router
from doorstep.errors import InvalidInput
from privacy import pipl
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


# --- PIPL: a person's export and deletion (docs/privacy.md) ------------------------------


class DeletionIn(Input):
    """Asking for deletion: ``confirm`` must be true (the page asks twice)."""

    confirm: bool


class CancelIn(Input):
    """The code the deletion request answered with."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


@router.get(
    "/v1/me/export",
    perm="self",
    roles=ANY_ROLE,
    returns=dict[str, Any],
    summary="Everything kept about the caller, as one JSON document (PIPL export)",
)
async def my_export(ctx: Ctx) -> dict[str, Any]:
    return await pipl.export(ctx.stores, ctx.user.user_id, now=ctx.now)


@router.post(
    "/v1/me/deletion",
    perm="self",
    roles=ANY_ROLE,
    body=DeletionIn,
    returns=pipl.DeletionAccepted,
    status=202,
    errors={
        409: "orders not over (`orders_open`), a staff or merchant account (`staff_account`), "
        "or a deletion pending already (`deletion_pending`)",
        422: "`confirm` is not true",
    },
    summary="Ask for the caller's account to be deleted: frozen now, anonymised after the "
    "cooling-off unless cancelled",
)
async def request_deletion(ctx: Ctx, body: DeletionIn) -> pipl.DeletionAccepted:
    if body.confirm is not True:
        raise InvalidInput("must be true to ask for deletion", field="confirm")
    return await pipl.request_deletion(ctx.stores, ctx.policy, ctx.user.user_id, now=ctx.now)


@router.post(
    "/v1/deletion/cancel",
    roles=PUBLIC,
    body=CancelIn,
    returns=pipl.DeletionCancelled,
    errors={404: "no pending deletion has this code (`deletion_not_found`)"},
    summary="Cancel a pending deletion with its code; the account is active again",
)
async def cancel_deletion(ctx: Ctx, body: CancelIn) -> pipl.DeletionCancelled:
    return await pipl.cancel_deletion(ctx.stores, body.code.strip(), now=ctx.now)
