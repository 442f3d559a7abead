"""Every route × every role (base roles and role templates) × own / other merchant / other
city: the answer each caller gets (issue 18).

The expectation is a small model written here, not the code under test:

- the gate: a caller passes when the route lists one of their base roles, or a grant of
  theirs holds the route's permission (a city's grant never holds a platform-only one);
  otherwise 403;
- the object: past the gate, an object (order, worker, team, merchant, city) outside the
  caller's scope is 404 — the same as an object that does not exist (a platform-wide
  grant reaches every object);
- otherwise the route answers what it answers (2xx, or a 409/422 of its own rules), never
  401, 403 or 404, and never a 5xx.

Own objects belong to city A and merchant M1; "other merchant" to M2 (also in city A);
"other city" to city B and its merchant M3. The fixture orders are cancelled, so that an
action a caller may take answers 409 and the fixtures stay as they are for the next cell.
The number of cells checked is printed in the test session's summary (tests/conftest.py).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from api.app import endpoints
from api.routing import Endpoint
from catalog import service as catalog_service
from catalog import store as catalog_store
from dispatch import store as dispatch_store
from doorstep.stores import Stores
from permissions.rules import PLATFORM_ONLY, TEMPLATES
from tests.access import licence, login, square
from tests.helpers import Account, MakeUser
from workforce import store as workforce_store

CELLS = {"checked": 0}  # read by tests/conftest.py's terminal summary

EPS = endpoints()
# Logging out voids the caller's token: walked last.
EPS = sorted(EPS, key=lambda ep: ep.path == "/v1/auth/logout")

PARAM = re.compile(r"{([a-z_]+)}")
SCOPED_PARAMS = frozenset({"order_id", "worker_id", "team_id", "merchant_id", "city_id"})
# Back-office routes of one merchant: a city's operators do not run a merchant's business.
MERCHANT_ONLY = re.compile(r"^/v1/merchants/\{merchant_id\}/(staff|services|orders)")

TARGETS = ("own", "other_merchant", "other_city")
# Routes that name a worker in the query or the body rather than the path: walked over the
# three targets like a worker in the path (the target's worker is put in the request).
WORKER_IN_REQUEST = frozenset({"GET /v1/training/practicals", "POST /v1/training/practicals"})


@dataclass
class Place:
    """The objects of one target: a city, a merchant, its team, a worker, an order."""

    city: str
    merchant: int
    team: int
    worker: int
    certificate: int
    order: int
    cert_kind: str


@dataclass
class Principal:
    """A caller: base roles, the permissions of their grants, and their scope."""

    name: str
    account: Account
    base: frozenset[str]
    perms: frozenset[str] = frozenset()
    cities: frozenset[str] = frozenset()
    merchants: frozenset[int] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)
    platform: bool = False  # a platform-wide grant: its permissions reach every object


@dataclass
class World:
    """The fixtures of the walk."""

    places: dict[str, Place]
    principals: list[Principal]
    service: str
    victim: int
    skill: str


async def _place(
    stores: Stores,
    make_user: MakeUser,
    *,
    city: str,
    merchant: Account,
    service: str,
    customer: int,
    cert_kind: str,
) -> Place:
    pool = stores.pool
    await pool.execute(
        "INSERT INTO merchants (id, name, city_id, licence_number, status) "
        "VALUES ($1, $2, $3, $4, 'approved')",
        merchant.id,
        f"商家{merchant.id}",
        city,
        licence(),
    )
    team = await workforce_store.insert_team(
        pool, name=f"团队{merchant.id}", city_id=city, merchant_id=merchant.id, upsert=False
    )
    worker = await make_user("worker")
    await workforce_store.upsert_worker(
        pool,
        user_id=worker.id,
        city_id=city,
        skills=(),
        home_lat=22.5,
        home_lng=114.0,
        team_id=team,
    )
    cert = await pool.fetchval(
        "INSERT INTO worker_certificates (worker_id, kind, number, issued_on, expires_on) "
        "VALUES ($1, $2, $3, '2024-01-01', '2034-01-01') RETURNING id",
        worker.id,
        cert_kind,
        secrets.token_hex(6),
    )
    await pool.execute(
        "INSERT INTO merchant_services (merchant_id, service_code, price_minor) VALUES ($1,$2,$3)",
        merchant.id,
        service,
        10000,
    )
    async with pool.acquire() as conn:
        order = await dispatch_store.insert(
            conn,
            city_id=city,
            customer_id=customer,
            service_code=service,
            kind="instant",
            status="cancelled",
            lat=22.5,
            lng=114.0,
            duration_min=60,
            price_minor=10000,
            currency="CNY",
            start_code="123456",
            merchant_id=merchant.id,
        )
    return Place(city, merchant.id, team, worker.id, cert, order.id, cert_kind)


@pytest.fixture(scope="module")
async def world(
    stores: Stores, client: httpx.AsyncClient, make_user: MakeUser, admin: Account
) -> World:
    """Cities A and B, merchants M1, M2 (A) and M3 (B) with a worker, a certificate and a
    cancelled order each; one caller per base role and per role template."""
    tag = secrets.token_hex(3)
    cities = {}
    for key, (lat, lng) in {"a": (30.60, 104.00), "b": (30.70, 104.10)}.items():
        city = catalog_service.build_city(
            id=f"acc-{key}-{tag}",
            name_zh=f"城{key}",
            name_en=f"City {key}",
            timezone="Asia/Shanghai",
            currency="CNY",
            service_area=square(lat, lng),
            crs="wgs84",
        )
        await catalog_store.write_city(stores.pool, city, upsert=True)
        cities[key] = city.id
    service = f"acc_{tag}"
    await stores.pool.execute(
        "INSERT INTO categories (code, name_zh, name_en) VALUES ($1, '保洁', 'Cleaning')", service
    )
    await stores.pool.execute(
        "INSERT INTO services (code, category, name_zh, name_en, price_minor, currency, "
        "duration_min, instant, scheduled) VALUES ($1, $1, '保洁', 'Cleaning', 10000, 'CNY', 60, "
        "true, true)",
        service,
    )
    cert_kind = f"acc_{tag}"
    await stores.pool.execute(
        "INSERT INTO certificate_kinds (code, name_zh, name_en, validity_years) "
        "VALUES ($1, '证', 'Cert', 5)",
        cert_kind,
    )
    customer = await make_user("customer")
    m1, m2, m3 = [await make_user("merchant") for _ in range(3)]
    places = {
        "own": await _place(
            stores,
            make_user,
            city=cities["a"],
            merchant=m1,
            service=service,
            customer=customer.id,
            cert_kind=cert_kind,
        ),
        "other_merchant": await _place(
            stores,
            make_user,
            city=cities["a"],
            merchant=m2,
            service=service,
            customer=customer.id,
            cert_kind=cert_kind,
        ),
        "other_city": await _place(
            stores,
            make_user,
            city=cities["b"],
            merchant=m3,
            service=service,
            customer=customer.id,
            cert_kind=cert_kind,
        ),
    }
    own = places["own"]
    principals = [
        # an admin of its own: the walk logs its callers out at the end
        Principal("admin", await make_user("admin"), frozenset({"admin"})),
        Principal("dispatcher", await make_user("dispatcher"), frozenset({"dispatcher"})),
        Principal("customer", await make_user("customer"), frozenset({"customer"})),
        Principal("worker", await make_user("worker"), frozenset({"worker"})),
        Principal("merchant", m1, frozenset({"merchant"}), merchants=frozenset({own.merchant})),
    ]
    grants = [
        (name, f"merchant:{own.merchant}" if "merchant" in t.scopes else f"city:{own.city}")
        for name, t in TEMPLATES.items()
    ]
    grants.append(("finance", "platform"))  # the one template whose money is platform-only
    for name, scope in grants:
        template = TEMPLATES[name]
        holder = await make_user("customer")
        r = await client.post(
            "/v1/grants",
            headers=admin.auth,
            json={"user_id": holder.id, "role": name, "scope": scope},
        )
        assert r.status_code == 201, r.text
        account = await login(client, holder)
        principals.append(
            Principal(
                f"{name}@{scope.split(':')[0]}",
                account,
                frozenset({"customer"}),
                # a city's or a merchant's grant does not carry a platform-only permission
                perms=frozenset(template.permissions)
                - (frozenset() if scope == "platform" else PLATFORM_ONLY),
                platform=scope == "platform",
                cities=frozenset({own.city}) if scope.startswith("city:") else frozenset(),
                merchants=frozenset({own.merchant})
                if scope.startswith("merchant:")
                else frozenset(),
            )
        )
    victim = await make_user("customer")
    await stores.pool.execute(
        "INSERT INTO skills (code, name_zh, name_en) VALUES ($1, '保洁', 'Cleaning')", service
    )
    return World(places, principals, service, victim.id, service)


def _values(world: World, place: Place) -> dict[str, str]:
    return {
        "city_id": place.city,
        "merchant_id": str(place.merchant),
        "team_id": str(place.team),
        "worker_id": str(place.worker),
        "certificate_id": str(place.certificate),
        "order_id": str(place.order),
        "service_code": world.service,
        "on_date": (date.today() + timedelta(days=3)).isoformat(),
        "user_id": str(world.victim),
        "role_name": "no_such_role",
    }


def _params(ep: Endpoint) -> set[str]:
    """The route's scoped parameters: its path's, and a worker named in the request."""
    params = set(PARAM.findall(ep.path))
    if f"{ep.method} {ep.path}" in WORKER_IN_REQUEST:
        params.add("worker_id")
    return params


def _url(ep: Endpoint, values: dict[str, str]) -> str:
    url = PARAM.sub(lambda m: values.get(m.group(1), str(2**40)), ep.path)
    if f"{ep.method} {ep.path}" in WORKER_IN_REQUEST and ep.method == "GET":
        url += f"?user_id={values['worker_id']}"
    return url


def _body(ep: Endpoint, place: Place, skill: str) -> Any:
    """A body that passes validation, so that the scope decides the answer."""
    today = date.today().isoformat()
    bodies: dict[str, Any] = {
        "POST /v1/training/practicals": {
            "user_id": place.worker,
            "skill": skill,
            "passed": True,
            "score": 80,
        },
        "POST /v1/orders/{order_id}/assign": {"worker_id": place.worker, "reason": "矩阵"},
        "POST /v1/orders/{order_id}/crew/assign": {"worker_ids": [place.worker], "reason": "矩阵"},
        "POST /v1/orders/{order_id}/crew/replace": {
            "out_worker_id": place.worker,
            "in_worker_id": place.worker,
            "reason": "矩阵",
        },
        "POST /v1/orders/{order_id}/unassign": {"reason": "矩阵"},
        "POST /v1/orders/{order_id}/pin": {"pinned": False, "reason": "矩阵"},
        "POST /v1/orders/{order_id}/time-left": {"minutes_left": 30},
        "POST /v1/orders/{order_id}/exclude": {"worker_id": place.worker, "reason": "矩阵"},
        "POST /v1/orders/{order_id}/start/unlock": {"reason": "矩阵"},
        "POST /v1/orders/{order_id}/start": {"start_code": "000000"},
        "POST /v1/orders/{order_id}/rating": {"stars": 5},
        "POST /v1/orders/{order_id}/reschedule": {
            "window_start": "2030-01-07T09:00:00+08:00",
            "window_end": "2030-01-07T11:00:00+08:00",
        },
        "PUT /v1/cities/{city_id}/dispatch": {"paused": False, "reason": "矩阵"},
        "POST /v1/cities/{city_id}/plans/replan": {"date": today, "reason": "矩阵"},
        "PUT /v1/workers/{worker_id}/availability": {"windows": []},
        "PUT /v1/workers/{worker_id}/availability/exceptions/{on_date}": {"available": False},
        "PUT /v1/workers/{worker_id}/certificates/{certificate_id}/status": {"status": "pending"},
        "PATCH /v1/workers/{worker_id}": {},
        "POST /v1/workers/{worker_id}/certificates": {
            "kind": place.cert_kind,
            "number": secrets.token_hex(6),
            "issued_on": "2024-01-01",
            "expires_on": "2034-01-01",
        },
        "POST /v1/merchants/{merchant_id}/review": {"approve": False, "reason": "矩阵"},
        "POST /v1/merchants/{merchant_id}/staff": {"worker_id": place.worker},
        "PUT /v1/merchants/{merchant_id}/services/{service_code}": {"price_minor": 10000},
        "POST /v1/merchants/{merchant_id}/orders/{order_id}/assign": {"worker_id": place.worker},
        "PUT /v1/orders/{order_id}/merchant": {"merchant_id": place.merchant},
        "PUT /v1/cities/{city_id}/prices/{service_code}": {"price_minor": None},
        "POST /v1/orders/{order_id}/pay": {"provider": "wechat", "channel": "native"},
        "PUT /v1/orders/{order_id}/rating": {"stars": 5},
        "POST /v1/ratings/{order_id}/hide": {"reason": "矩阵测试"},
        "POST /v1/orders/{order_id}/refunds": {
            "out_refund_no": f"RMX{secrets.token_hex(4)}",
            "amount_fen": 100,
        },
        "POST /v1/orders/{order_id}/rating/reply": {"text": "矩阵"},
        "POST /v1/orders/{order_id}/extras": {
            "kind": "addon",
            "items": [{"name": "矩阵", "amount_fen": 100}],
        },
        "POST /v1/coupons/claim": {"template_id": 2**40},
        "PUT /v1/orders/{order_id}/checkout": {},
        "POST /v1/admin/coupon-templates": {
            "name_zh": "矩阵券",
            "name_en": "Matrix",
            "kind": "amount",
            "amount_fen": 100,
            "valid_days": 1,
            "total_stock": 0,
            "claimable": False,
            "cities": [place.city],
        },
        "PATCH /v1/admin/coupon-templates/{template_id}": {},
        "POST /v1/admin/coupon-templates/{template_id}/grants": {"user_ids": [2**40]},
        "POST /v1/workers/{worker_id}/certificates/{certificate_id}/renewal": {
            "number": secrets.token_hex(6),
            "issued_on": "2025-01-01",
            "expires_on": "2035-01-01",
            "file_id": 2**40,
        },
    }
    return bodies.get(f"{ep.method} {ep.path}", {})


def gate(p: Principal, ep: Endpoint) -> bool:
    """The model of who passes a route's gate."""
    return ep.public or bool(p.base & ep.roles) or ep.permission in p.perms


def reaches(p: Principal, ep: Endpoint, place: Place) -> bool:
    """The model of whether a caller past the gate sees the route's objects: the admin
    and dispatcher roles everywhere; a grant in its cities or merchant; the merchant role
    its own merchant; customers and workers only their own (none of the fixtures)."""
    params = _params(ep)
    if ep.public or not params & (SCOPED_PARAMS | {"user_id"}):
        return True
    if p.base & ep.roles & {"admin", "dispatcher"}:
        return True
    if ep.permission in p.perms and p.platform:
        return True
    if ep.permission in p.perms:
        cities, merchants = p.cities, p.merchants
    elif "merchant" in p.base & ep.roles:
        cities, merchants = frozenset(), p.merchants
    else:
        return False
    if "user_id" in params:  # accounts belong to no city: staff of any city see them
        return bool(cities)
    if MERCHANT_ONLY.match(ep.path):
        return place.merchant in merchants
    if ep.path.startswith("/v1/cities/"):
        return place.city in cities
    return place.city in cities or place.merchant in merchants


# Public routes that check a signature of their own (the SMS gateway's receipts).
OWN_AUTH = frozenset({"POST /v1/sms/receipts"})

# Routes whose in-scope answer is 404 by their own rule, with the reason.
IN_SCOPE_404 = {
    "DELETE /v1/workers/{worker_id}/availability/exceptions/{on_date}": "no exception set",
    "DELETE /v1/merchants/{merchant_id}/staff/{worker_id}": "removed by an earlier caller",
    "POST /v1/ratings/{order_id}/hide": "the fixture orders are not rated",
}


@pytest.mark.timeout(900)  # one test walks every cell (~4,700 requests)
async def test_every_route_every_role_every_scope(
    client: httpx.AsyncClient, world: World, stores: Stores
) -> None:
    """Each cell answers as the model says: 403 at the gate, 404 outside the scope, else the
    route's own answer (never 401/403/404 nor a 5xx)."""
    failures: list[str] = []
    for ep in EPS:
        params = _params(ep)
        targets = TARGETS if params & SCOPED_PARAMS else ("own",)
        for p in world.principals:
            for target in targets:
                place = world.places[target]
                url = _url(ep, _values(world, place))
                r = await client.request(
                    ep.method, url, json=_body(ep, place, world.skill), headers=p.account.auth
                )
                CELLS["checked"] += 1
                key = f"{ep.method} {ep.path}"
                cell = f"{key} as {p.name} on {target}: {r.status_code} {r.text[:160]}"
                if r.status_code >= 500:
                    failures.append(cell)
                elif not gate(p, ep):
                    if r.status_code != 403:
                        failures.append(f"want 403; {cell}")
                elif not reaches(p, ep, place):
                    if r.status_code != 404:
                        failures.append(f"want 404; {cell}")
                elif (r.status_code in (401, 403) and key not in OWN_AUTH) or (
                    r.status_code == 404 and params & SCOPED_PARAMS and key not in IN_SCOPE_404
                ):
                    failures.append(f"want the route's answer; {cell}")
                if (
                    key == "DELETE /v1/merchants/{merchant_id}/staff/{worker_id}"
                    and r.status_code == 204
                ):
                    await stores.pool.execute(
                        "UPDATE workers SET team_id = $2 WHERE user_id = $1",
                        place.worker,
                        place.team,
                    )
    assert not failures, f"{len(failures)} cells wrong:\n" + "\n".join(failures[:80])
