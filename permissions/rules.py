"""Pure rules of permissions: the catalogue, the role templates, scopes and what a token
carries. No I/O.

A route declares one permission (api/routing.py). A caller holds it two ways:

- by a *base role* of the account (``users.roles``: customer, worker, merchant,
  dispatcher, admin) that the route lists in ``roles=``, as before; admins and
  dispatchers act platform-wide, a merchant for their own merchant, customers and
  workers on their own data;
- by a *grant*: a role (a template below or one an admin made) given to a user with a
  scope — the platform, a city (``city:shenzhen``) or a merchant (``merchant:42``). The
  grants' permissions travel in the access token (``pms``), so a check costs nothing;
  granting or revoking bumps the user's token version (accounts/revocations.py), so a
  token with the old grants is refused at once, fail-closed, and the next refresh
  carries the new ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from permissions.errors import InvalidPermissionInput

ScopeKind = Literal["platform", "city", "merchant"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("platform", "city", "merchant")

#: Every named permission and what it allows (routes declare these; grants carry them).
PERMISSIONS: dict[str, str] = {
    "public": "anyone, without a token",
    "self": "one's own account, inbox, settings and files",
    "metrics.read": "scrape the Prometheus metrics",
    "users.create": "create accounts",
    "users.read": "look up accounts",
    "users.freeze": "freeze, close or reopen an account",
    "addresses.own": "a customer's own saved addresses",
    "addresses.read": "read a customer's address",
    "cities.edit": "create and change cities and their service areas",
    "catalog.edit": "create and change skills, certificate kinds, categories and services",
    "catalog.prices": "set a city's own prices for catalog services",
    "workers.create": "create worker accounts",
    "workers.read": "see workers and their certificates",
    "workers.edit": "change a worker's city, skills, home or team",
    "workers.schedule": "set a worker's availability",
    "workers.certificates": "register a worker's certificates",
    "workers.review": "verify or reject certificates and applications",
    "workers.track": "see a worker's position and trail",
    "teams.create": "create merchant teams",
    "teams.read": "see merchant teams",
    "orders.book": "book an order (a customer)",
    "orders.read": "see orders and their history",
    "orders.cancel": "cancel an order",
    "orders.reschedule": "move a scheduled order's window",
    "orders.override": "assign, unassign, pin or exclude; unlock a start",
    "orders.inspect": "see the matcher's decisions and candidates for an order",
    "orders.audit": "read the audit of overrides",
    "orders.work": "depart, arrive, start and complete a job",
    "orders.customer": "a customer's start code, share links and rating",
    "offers.respond": "a worker's offers: list, accept, reject",
    "dispatch.pause": "pause or resume automatic dispatch in a city",
    "dispatch.console": "the dispatcher's live city feed",
    "alerts.read": "see dispatch alerts",
    "alerts.resolve": "resolve dispatch alerts",
    "plans.own": "a worker's own day plan",
    "plans.read": "see workers' and cities' day plans",
    "plans.replan": "re-plan a city's day",
    "slots.read": "see bookable slots",
    "series.book": "book a recurring series",
    "series.read": "see a recurring series",
    "series.cancel": "cancel a recurring series",
    "sms.read": "read the SMS sent",
    "backbone.read": "see events, deliveries and jobs",
    "backbone.operate": "replay deliveries, probe, retry and cancel jobs",
    "analytics.read": "see dashboards and exports",
    "analytics.refresh": "rebuild the analytics rollups",
    "finance.read": "see wallets, settlements, withdrawals and an order's commission",
    "finance.withdrawals.review": "approve or reject withdrawals",
    "roles.read": "see roles, templates and grants",
    "roles.edit": "create and delete roles",
    "roles.grant": "grant and revoke roles",
    "merchants.apply": "apply as a merchant (business licence)",
    "merchants.read": "see merchants and their applications",
    "merchants.review": "approve or reject a merchant's application",
    "merchant.staff": "a merchant's staff: list, add, remove",
    "merchant.services": "a merchant's services and prices",
    "merchant.orders": "the orders routed to a merchant",
    "merchant.dispatch": "dispatch a merchant's orders to its staff, or overflow them",
    # Capabilities of later areas: their routes let in the base roles they list (admin,
    # finance, reviewer, dispatcher platform-wide; customers, workers and merchants for
    # their own data); the staff work among them is also granted (the templates below).
    "payments.read": "an order's payment, its breakdown and refunds",
    "payments.write": "pay, quote and add-ons on site, refunds, a service's pay mode",
    "settlement.read": "one's own wallet, earnings, settlements and withdrawals",
    "settlement.write": "withdraw from one's own wallet",
    "onboarding.read": "applications, documents, courses and exams",
    "onboarding.write": "apply, review applications and documents, take and set exams",
    "quality.read": "quality scores, rankings and discipline actions",
    "quality.write": "quality events, evaluations, rewards, penalties and appeals",
    "safety.read": "SOS and trail alerts, emergency contacts, address reveals, the audit chain",
    "safety.write": "raise an SOS, acknowledge and resolve alerts, emergency contacts",
    "privacy.read": "an order's masked number (the customer and its worker)",
    "reviews.read": "one's reviews, given or received; an order's review (staff)",
    "reviews.write": "edit a review, reply to one, a worker's profile",
    # Staff capabilities of the areas above, split from their own-data permissions so that
    # a grant reaches only staff work, each scoped to the grant's cities (issue 18 §6).
    "payments.refund": "refund (part of) an order's payment (after-sales, finance)",
    "finance.platform": "the platform's money: settlement runs, reconciliation with the "
    "providers' bills, commission rules (held through a platform-wide grant only)",
    "onboarding.review": "the review queue: applications, their documents, checks and decisions",
    "onboarding.assess": "practical assessments: record one, read a person's",
    "reviews.moderate": "hide a review with a reason (moderation)",
    "safety.alerts": "see a city's open SOS and trail alerts",
    "safety.alerts.handle": "acknowledge and resolve safety alerts",
    "aftersales.read": "after-sales tickets, their evidence, the queue, spot checks, insurance",
    "aftersales.write": "open and work tickets, resolve, rule disputes, claims, spot checks",
    # growth (docs/growth.md)
    "growth.own": "a customer's own coupons and points, and checkout with them",
    "growth.read": "see coupon templates and their stats (issued, used, cost)",
    "growth.write": "create and change coupon templates, grant coupons to customers",
}

#: Permissions about the whole platform's money or data, which no city or merchant can
#: own: a grant holds them only with the platform scope (a city-scoped grant of a role
#: that names them does not carry them: fail closed).
PLATFORM_ONLY: frozenset[str] = frozenset({"finance.platform"})

_PLATFORM_OR_CITY: tuple[ScopeKind, ...] = ("platform", "city")

_DISPATCHING = (
    "orders.read",
    "orders.cancel",
    "orders.reschedule",
    "orders.override",
    "orders.inspect",
    "orders.audit",
    "orders.work",
    "dispatch.pause",
    "dispatch.console",
    "alerts.read",
    "alerts.resolve",
    "workers.read",
    "workers.track",
    "teams.read",
    "plans.read",
    "plans.replan",
    "slots.read",
    "series.read",
    "series.cancel",
    "addresses.read",
    "users.read",
    "safety.alerts",
    "safety.alerts.handle",
)
_MERCHANT_DISPATCH = (
    "merchants.read",
    "merchant.orders",
    "merchant.dispatch",
    "workers.read",
    "workers.track",
    "teams.read",
    "plans.read",
)


@dataclass(frozen=True, slots=True)
class Template:
    """A role: its permissions and the kinds of scope it may be granted with."""

    name: str
    title_zh: str
    title_en: str
    permissions: tuple[str, ...]
    scopes: tuple[ScopeKind, ...]
    builtin: bool = True


#: The role templates an admin grants (with a scope). ``dispatcher`` is also a base role:
#: as a grant it is the same work limited to the grant's cities.
TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "finance",
            "财务",
            "Finance",
            (
                "finance.read",
                "finance.withdrawals.review",
                "finance.platform",
                "payments.read",
                "payments.refund",
                "orders.read",
                "analytics.read",
                "growth.read",
            ),
            _PLATFORM_OR_CITY,
        ),
        Template(
            "marketing",
            "营销",
            "Marketing",
            ("growth.read", "growth.write", "analytics.read", "users.read"),
            _PLATFORM_OR_CITY,
        ),
        Template(
            "reviewer",
            "审核员",
            "Reviewer",
            (
                "workers.read",
                "workers.review",
                "merchants.read",
                "merchants.review",
                "onboarding.review",
                "onboarding.assess",
                "quality.read",
                "quality.write",
            ),
            _PLATFORM_OR_CITY,
        ),
        Template(
            "customer_service",
            "客服",
            "Customer service",
            (
                "orders.read",
                "orders.cancel",
                "orders.reschedule",
                "orders.audit",
                "alerts.read",
                "users.read",
                "addresses.read",
                "series.read",
                "reviews.read",
                "reviews.moderate",
                "safety.alerts",
                "payments.read",
                "aftersales.read",
                "aftersales.write",
            ),
            _PLATFORM_OR_CITY,
        ),
        Template("dispatcher", "调度员", "Dispatcher", _DISPATCHING, _PLATFORM_OR_CITY),
        Template(
            "city_operator",
            "城市运营",
            "City operator",
            (
                *_DISPATCHING,
                "analytics.read",
                "catalog.prices",
                "workers.review",
                "merchants.read",
                "merchants.review",
                "onboarding.review",
                "onboarding.assess",
                "quality.read",
                "quality.write",
                "reviews.read",
                "reviews.moderate",
                "payments.read",
                "growth.read",
                "growth.write",
            ),
            ("city",),
        ),
        Template(
            "merchant_admin",
            "商家管理员",
            "Merchant admin",
            (*_MERCHANT_DISPATCH, "merchant.staff", "merchant.services", "workers.schedule"),
            ("merchant",),
        ),
        Template(
            "merchant_dispatcher",
            "商家调度",
            "Merchant dispatcher",
            _MERCHANT_DISPATCH,
            ("merchant",),
        ),
    )
}

#: The base roles of accounts (``users.roles``); their permissions are those of the
#: routes that list them (api/app.py derives them from the route table).
BASE_ROLES: tuple[str, ...] = ("admin", "customer", "dispatcher", "merchant", "worker")
#: Base roles that act on their own data (a customer's orders, a worker's jobs) or their
#: own merchant; every other base role — admin, dispatcher, and staff roles other
#: capabilities add to ``accounts.rules.Role`` (finance, reviewer) — acts platform-wide on
#: the routes that list it.
OWN_DATA_ROLES: frozenset[str] = frozenset({"customer", "worker", "merchant"})


def acts_platform_wide(role: str) -> bool:
    """True for a base role that acts platform-wide on the routes listing it."""
    return role not in OWN_DATA_ROLES


_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{2,39}$")
_CITY = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a caller may act: the whole platform, some cities, some merchants."""

    platform: bool = False
    cities: frozenset[str] = field(default_factory=frozenset)
    merchants: frozenset[int] = field(default_factory=frozenset)

    def has_city(self, city_id: str | None) -> bool:
        """True if the caller may act in ``city_id``."""
        return self.platform or (city_id is not None and city_id in self.cities)

    def has_merchant(self, merchant_id: int | None) -> bool:
        """True if the caller may act for ``merchant_id``."""
        return self.platform or (merchant_id is not None and merchant_id in self.merchants)

    @property
    def city_list(self) -> list[str] | None:
        """None for the platform, else the cities (for SQL ``= ANY``)."""
        return None if self.platform else sorted(self.cities)

    def union(self, other: Scope) -> Scope:
        """Both scopes."""
        return Scope(
            self.platform or other.platform,
            self.cities | other.cities,
            self.merchants | other.merchants,
        )

    def refs(self) -> list[str]:
        """As scope references: ``platform``, ``city:<id>``, ``merchant:<id>``."""
        out = ["platform"] if self.platform else []
        out += [f"city:{c}" for c in sorted(self.cities)]
        out += [f"merchant:{m}" for m in sorted(self.merchants)]
        return out


PLATFORM = Scope(platform=True)
NOWHERE = Scope()


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks, for domain packages: the user and their scope on the route (None for a
    customer or a worker acting on their own data)."""

    user_id: int
    scope: Scope | None

    @property
    def platform(self) -> bool:
        """True if the caller acts platform-wide."""
        return self.scope is not None and self.scope.platform


def parse_scope(ref: str, field_name: str = "scope") -> tuple[ScopeKind, str | int | None]:
    """``platform`` | ``city:<city id>`` | ``merchant:<merchant id>``."""
    if ref == "platform":
        return "platform", None
    kind, _, ident = ref.partition(":")
    if kind == "city" and _CITY.match(ident):
        return "city", ident
    if kind == "merchant" and ident.isascii() and ident.isdigit() and 1 <= int(ident) < 2**63:
        return "merchant", int(ident)
    raise InvalidPermissionInput(
        "must be 'platform', 'city:<city id>' or 'merchant:<merchant id>'", field=field_name
    )


def scope_of_refs(refs: Iterable[str]) -> Scope:
    """The union of scope references (unknown ones ignored: fail closed)."""
    platform, cities, merchants = False, set(), set()
    for ref in refs:
        try:
            kind, ident = parse_scope(ref)
        except InvalidPermissionInput:
            continue
        if kind == "platform":
            platform = True
        elif kind == "city":
            cities.add(str(ident))
        else:
            merchants.add(int(str(ident)))
    return Scope(platform, frozenset(cities), frozenset(merchants))


def check_role_name(name: str, field_name: str = "name") -> str:
    """A new role's name: lower-case, 3–40 characters, not a template's or a base role's."""
    if not _ROLE_NAME.match(name):
        raise InvalidPermissionInput(
            "must be 3–40 characters: a lower-case letter, then letters, digits or _",
            field=field_name,
        )
    if name in TEMPLATES or name in BASE_ROLES:
        raise InvalidPermissionInput(
            f"{name!r} is a built-in role; choose another name", field=field_name
        )
    return name


def check_permissions(names: list[str], field_name: str = "permissions") -> tuple[str, ...]:
    """Known permissions (not ``public`` or ``self``), at least one, sorted, unique."""
    if not names:
        raise InvalidPermissionInput("must name at least one permission", field=field_name)
    for i, name in enumerate(names):
        if name not in PERMISSIONS or name in ("public", "self"):
            raise InvalidPermissionInput(
                f"unknown permission {name!r}; see GET /v1/permissions", field=f"{field_name}[{i}]"
            )
    return tuple(sorted(set(names)))


def check_grant_scope(role: Template, ref: str, field_name: str = "scope") -> str:
    """A scope the role may be granted with."""
    kind, _ = parse_scope(ref, field_name)
    if kind not in role.scopes:
        raise InvalidPermissionInput(
            f"role {role.name!r} is granted with a scope of: {', '.join(role.scopes)}",
            field=field_name,
        )
    return ref


Claim = dict[str, list[str]]


def claim_of(grants: Iterable[tuple[Template, str]]) -> Claim:
    """What the access token carries: each permission with the scopes it is held in
    (a :data:`PLATFORM_ONLY` permission only from a platform-wide grant)."""
    out: dict[str, set[str]] = {}
    for role, ref in grants:
        for perm in role.permissions:
            if perm in PLATFORM_ONLY and ref != "platform":
                continue  # a city's or a merchant's grant does not carry it
            out.setdefault(perm, set()).add(ref)
    return {perm: sorted(refs) for perm, refs in sorted(out.items())}


def granted_scope(claim: Mapping[str, Iterable[str]], permission: str) -> Scope | None:
    """The scope in which a token's grants hold ``permission``, or None."""
    refs = claim.get(permission)
    if not refs:
        return None
    scope = scope_of_refs(refs)
    return None if scope == NOWHERE else scope


def base_role_permissions(
    routes: Iterable[tuple[frozenset[str], str]],
) -> dict[str, tuple[str, ...]]:
    """Each base role's permissions, from the routes' ``(roles, permission)``: a base role
    holds the permission of every route that lists it."""
    out: dict[str, set[str]] = {role: set() for role in BASE_ROLES}
    for roles, permission in routes:
        for role in roles:
            if role != "metrics":  # the scraper's token, not an account's role
                out.setdefault(role, set()).add(permission)
    return {role: tuple(sorted(perms)) for role, perms in out.items()}


def base_scope(role: str) -> str:
    """How far a base role reaches: ``platform``, ``merchant`` (its own) or ``own``."""
    if acts_platform_wide(role):
        return "platform"
    return "merchant" if role == "merchant" else "own"
