"""Roles, grants and their audit (admins); what the caller may do (everyone)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.bodies import Input
from api.routing import ANY_ROLE, Ctx, QueryParam, Router
from permissions import service, store
from permissions.errors import RoleNotFound
from permissions.models import AuditEntry, Grant, Held, Role
from permissions.rules import PERMISSIONS, acts_platform_wide

router = Router("permissions")
ADMIN = frozenset({"admin"})
RoleName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{2,39}$")]
ScopeRef = Annotated[
    str, msgspec.Meta(pattern=r"^(platform|city:[a-z][a-z0-9_-]{0,39}|merchant:[1-9][0-9]{0,18})$")
]


class PermissionOut(msgspec.Struct):
    """A named permission."""

    name: str
    description: str


class RoleIn(Input):
    """A role made of named permissions, grantable with the listed kinds of scope."""

    name: RoleName
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    permissions: Annotated[list[str], msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[
        list[Literal["platform", "city", "merchant"]], msgspec.Meta(min_length=1, max_length=3)
    ]


class GrantIn(Input):
    """Give a user a role in a scope: ``platform``, ``city:<id>`` or ``merchant:<id>``."""

    user_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    role: RoleName
    scope: ScopeRef


class MyPermissions(msgspec.Struct):
    """What the caller may do: base roles, grants, and each permission with its scopes."""

    user_id: int
    roles: list[str]
    grants: list[Grant]
    permissions: list[Held]


@router.get(
    "/v1/permissions",
    perm="self",
    roles=ANY_ROLE,
    returns=list[PermissionOut],
    summary="Every named permission a route can need",
)
async def list_permissions(ctx: Ctx) -> list[PermissionOut]:
    return [PermissionOut(n, d) for n, d in PERMISSIONS.items()]


@router.get(
    "/v1/roles",
    perm="roles.read",
    roles=ADMIN,
    returns=list[Role],
    summary="The role templates and the roles admins made",
)
async def list_roles(ctx: Ctx) -> list[Role]:
    base: list[Role] = ctx.request.app.state.base_roles
    return [*base, *await service.roles(ctx.stores)]


@router.post(
    "/v1/roles",
    errors={409: "a role of that name exists", 422: "an unknown permission or a built-in name"},
    perm="roles.edit",
    roles=ADMIN,
    body=RoleIn,
    returns=Role,
    status=201,
    summary="Make a role of named permissions (audited)",
)
async def create_role(ctx: Ctx, body: RoleIn) -> Role:
    return await service.create_role(
        ctx.stores,
        actor_id=ctx.user.user_id,
        name=body.name,
        title=body.title.strip(),
        permissions=body.permissions,
        scopes=list(body.scopes),
    )


@router.delete(
    "/v1/roles/{role_name}",
    errors={409: "the role is still granted"},
    perm="roles.edit",
    roles=ADMIN,
    summary="Delete a role an admin made, once nobody holds it (audited)",
)
async def delete_role(ctx: Ctx) -> None:
    await service.delete_role(ctx.stores, actor_id=ctx.user.user_id, name=ctx.path_str("role_name"))


@router.get(
    "/v1/grants",
    perm="roles.read",
    roles=ADMIN,
    returns=list[Grant],
    query=(
        QueryParam("user_id", int, "only this user's", ge=1, le=2**62),
        QueryParam(
            "revoked", str, "include revoked grants: yes or no (default)", choices=("yes", "no")
        ),
    ),
    summary="Grants, oldest first",
)
async def list_grants(ctx: Ctx) -> list[Grant]:
    raw = ctx.request.query_params.get("user_id")
    user_id = ctx.query_int("user_id", 1, ge=1, le=2**62) if raw is not None else None
    revoked = ctx.query_str("revoked", choices=frozenset({"yes", "no"})) == "yes"
    return await store.grants(ctx.stores.pool, user_id=user_id, live_only=not revoked)


@router.post(
    "/v1/grants",
    errors={
        404: "no such user or role",
        409: "the user holds the role in that scope already",
        422: "the role is not granted with that kind of scope",
    },
    perm="roles.grant",
    roles=ADMIN,
    body=GrantIn,
    returns=Grant,
    status=201,
    summary="Grant a role in a scope (audited; the user's older tokens stop working)",
)
async def create_grant(ctx: Ctx, body: GrantIn) -> Grant:
    return await service.grant(
        ctx.stores,
        actor_id=ctx.user.user_id,
        user_id=body.user_id,
        role=body.role,
        scope=body.scope,
        token_ttl_s=ctx.policy.access_ttl_s,
        now=ctx.now,
    )


@router.delete(
    "/v1/grants/{grant_id}",
    perm="roles.grant",
    roles=ADMIN,
    returns=Grant,
    summary="Revoke a grant (audited; takes effect at once: the user's tokens are refused)",
)
async def revoke_grant(ctx: Ctx) -> Grant:
    return await service.revoke(
        ctx.stores,
        actor_id=ctx.user.user_id,
        grant_id=ctx.path_int("grant_id"),
        token_ttl_s=ctx.policy.access_ttl_s,
        now=ctx.now,
    )


@router.get(
    "/v1/permission-audit",
    perm="roles.read",
    roles=ADMIN,
    returns=list[AuditEntry],
    query=(
        QueryParam("user_id", int, "only about this user", ge=1, le=2**62),
        QueryParam("limit", int, "1–500 (default 100)", ge=1, le=500),
    ),
    summary="Every grant, revoke, role change and merchant review, newest first",
)
async def audit_log(ctx: Ctx) -> list[AuditEntry]:
    raw = ctx.request.query_params.get("user_id")
    user_id = ctx.query_int("user_id", 1, ge=1, le=2**62) if raw is not None else None
    return await store.audit_log(
        ctx.stores.pool, user_id=user_id, limit=ctx.query_int("limit", 100, ge=1, le=500)
    )


@router.get(
    "/v1/me/permissions",
    perm="self",
    roles=ANY_ROLE,
    returns=MyPermissions,
    summary="What the caller may do, and where: each permission with its scopes and source",
)
async def my_permissions(ctx: Ctx) -> MyPermissions:
    base: dict[str, tuple[str, ...]] = ctx.request.app.state.base_permissions
    user = ctx.user
    scopes: dict[str, set[str]] = {}
    via: dict[str, set[str]] = {}
    for role in user.roles:
        # As api/routing.scope_for: a staff base role (admin, dispatcher, finance,
        # reviewer, …) acts platform-wide; customers and workers on their own data.
        if role == "merchant":
            ref = f"merchant:{user.user_id}"
        else:
            ref = "platform" if acts_platform_wide(role) else "own"
        for perm in base.get(role, ()):
            scopes.setdefault(perm, set()).add(ref)
            via.setdefault(perm, set()).add(role)
    grants = await store.grants(ctx.stores.pool, user_id=user.user_id)
    for perm, refs in user.perm_map().items():  # what this token carries
        scopes.setdefault(perm, set()).update(refs)
    for g in grants:
        try:
            template = await service.role_template(ctx.stores, g.role)
        except RoleNotFound:
            continue
        for perm in template.permissions:
            via.setdefault(perm, set()).add(g.role)
    held = [
        Held(p, tuple(sorted(scopes[p])), tuple(sorted(via.get(p, ())))) for p in sorted(scopes)
    ]
    return MyPermissions(user.user_id, list(user.roles), grants, held)
