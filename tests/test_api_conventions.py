"""Conventions every route keeps, checked by walking the declared endpoints."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.app import create_app, endpoints
from api.routing import Endpoint
from doorstep.settings import Settings
from tests.helpers import METRICS_AUTH, Account, MakeUser

ROLES = ("customer", "worker", "merchant", "dispatcher", "admin", "finance")
EPS = endpoints()
PRIVATE = [ep for ep in EPS if not ep.public]
WITH_BODY = [ep for ep in EPS if ep.body is not None]


def _id(ep: Endpoint) -> str:
    return f"{ep.method} {ep.path}"


def _url(ep: Endpoint) -> str:
    """The endpoint's path with plausible values in its parameters."""
    values = {"city_id": "shenzhen", "service_code": "daily_cleaning_2h", "on_date": "2030-01-07"}
    return re.sub(r"{([a-z_]+)}", lambda m: values.get(m.group(1), "1"), ep.path)


@pytest.fixture(scope="module")
async def by_role(make_user: MakeUser) -> dict[str, Account]:
    """One account per role."""
    return {role: await make_user(role) for role in ROLES}


def test_every_route_is_declared_with_roles_and_documented(settings: Settings) -> None:
    """The app serves exactly the declared endpoints and /openapi.json documents each with its roles."""
    import orjson

    app = create_app(settings)
    from api.routing import PathRoute

    served = {
        (ep.method, r.path) for r in app.routes if isinstance(r, PathRoute) for ep in r.endpoints
    }
    declared = {(ep.method, ep.path) for ep in EPS}
    assert served == declared
    doc = orjson.loads(app.state.openapi)
    for ep in EPS:
        op = doc["paths"][ep.path][ep.method.lower()]
        assert op["x-roles"] == (sorted(ep.roles) if ep.roles else ["public"])
        assert op["summary"]


@pytest.mark.parametrize("ep", PRIVATE, ids=_id)
async def test_private_route_needs_a_token(client: httpx.AsyncClient, ep: Endpoint) -> None:
    """Without a token every non-public route answers 401 naming the authorization header."""
    r = await client.request(ep.method, _url(ep), json={})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["field"] == "authorization"
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("ep", PRIVATE, ids=_id)
async def test_private_route_rejects_a_forged_token(
    client: httpx.AsyncClient, ep: Endpoint
) -> None:
    """A token signed with another key is refused with 401 invalid_token."""
    import jwt

    forged = jwt.encode(
        {
            "sub": "1",
            "roles": list(ROLES),
            "jti": "x",
            "typ": "access",
            "exp": 4102444800,
            "iss": "doorstep",
        },
        "not-our-key-" * 4,
        algorithm="HS256",
    )
    r = await client.request(
        ep.method, _url(ep), json={}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("ep", [ep for ep in PRIVATE if set(ROLES) - ep.roles], ids=_id)
async def test_wrong_role_is_forbidden(
    client: httpx.AsyncClient, by_role: dict[str, Account], ep: Endpoint
) -> None:
    """Every role an endpoint does not list gets 403, before the body is even read."""
    for role in sorted(set(ROLES) - ep.roles):
        r = await client.request(
            ep.method,
            _url(ep),
            content=b"not json",
            headers=by_role[role].auth | {"content-type": "application/json"},
        )
        assert r.status_code == 403, (role, r.text)
        assert r.json()["error"]["code"] == "forbidden"


def _caller(ep: Endpoint, by_role: dict[str, Account]) -> dict[str, str]:
    if ep.public:
        return {}
    role = "admin" if "admin" in ep.roles else sorted(ep.roles)[0]
    return by_role[role].auth


@pytest.mark.parametrize("ep", WITH_BODY, ids=_id)
async def test_body_must_be_json(
    client: httpx.AsyncClient, by_role: dict[str, Account], ep: Endpoint
) -> None:
    """Malformed JSON is 400 invalid_json; a non-JSON content type is 415."""
    auth = _caller(ep, by_role)
    r = await client.request(
        ep.method,
        _url(ep),
        content=b"{not json",
        headers=auth | {"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
    r = await client.request(
        ep.method,
        _url(ep),
        content=b"a=1",
        headers=auth | {"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["error"]["field"] == "content-type"


@pytest.mark.parametrize("ep", WITH_BODY, ids=_id)
async def test_body_size_is_limited(
    client: httpx.AsyncClient, by_role: dict[str, Account], settings: Settings, ep: Endpoint
) -> None:
    """A body over the limit is 413, whether or not Content-Length announces it."""
    big = b'{"x": "' + b"a" * settings.max_body_bytes + b'"}'
    auth = _caller(ep, by_role) | {"content-type": "application/json"}
    r = await client.request(ep.method, _url(ep), content=big, headers=auth)
    assert r.status_code == 413

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    chunked = await client.request(ep.method, _url(ep), content=stream(), headers=auth)
    assert chunked.status_code == 413


@pytest.mark.parametrize("ep", WITH_BODY, ids=_id)
async def test_unknown_field_is_rejected_and_named(
    client: httpx.AsyncClient, by_role: dict[str, Account], ep: Endpoint
) -> None:
    """An unknown field is 422 unknown_field naming it (or a missing field is named first)."""
    r = await client.request(
        ep.method, _url(ep), json={"surprise_field": 1}, headers=_caller(ep, by_role)
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] in ("unknown_field", "missing_field")
    assert error["field"]
    if error["code"] == "unknown_field":
        assert error["field"] == "surprise_field"


@pytest.mark.parametrize("ep", WITH_BODY, ids=_id)
async def test_wrong_type_is_rejected_and_named(
    client: httpx.AsyncClient, by_role: dict[str, Account], ep: Endpoint
) -> None:
    """A body of the wrong JSON type is 422 and says what was expected."""
    r = await client.request(ep.method, _url(ep), json=[1, 2, 3], headers=_caller(ep, by_role))
    assert r.status_code == 422, r.text
    assert "expected `object`" in r.json()["error"]["message"]


async def test_field_paths_name_nested_fields(client: httpx.AsyncClient, admin: Account) -> None:
    """A wrong type deep in the body names the full path of the field."""
    body: dict[str, Any] = {
        "code": "x_service",
        "category": "cleaning",
        "name_zh": "测",
        "name_en": "t",
        "price_minor": 100,
        "duration_min": 60,
        "instant": True,
        "scheduled": True,
        "checklist": [{"zh": "一", "en": 5}],
    }
    r = await client.post("/v1/services", json=body, headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "checklist[0].en"
    body["checklist"] = []
    body["price_minor"] = "100"
    r = await client.post("/v1/services", json=body, headers=admin.auth)
    assert r.json()["error"] == {
        "code": "invalid_field",
        "field": "price_minor",
        "message": "expected `int`, got `str`",
    }


async def test_an_integral_float_is_an_integer(client: httpx.AsyncClient, admin: Account) -> None:
    """JSON has one number type: 3.0 fills an integer field (as the OpenAPI schema says),
    3.5 is still refused naming the field."""
    import secrets

    body = {"code": f"c_{secrets.token_hex(3)}", "name_zh": "测", "name_en": "t", "sort": 3.0}
    r = await client.post("/v1/categories", json=body | {"sort": 3.5}, headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "sort"
    r = await client.post("/v1/categories", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    assert r.json()["sort"] == 3


async def test_unknown_route_and_method_are_json_errors(client: httpx.AsyncClient) -> None:
    """404 and 405 come in the same JSON error shape as every other error."""
    r = await client.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_such_route"
    r = await client.delete("/v1/cities")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_a_wrong_method_lists_every_method_of_the_path(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """OPTIONS or DELETE on a path with GET and POST endpoints is 405 with Allow naming both."""
    for method in ("OPTIONS", "DELETE", "PATCH"):
        r = await client.request(method, "/v1/orders", headers=admin.auth)
        assert r.status_code == 405, (method, r.text)
        assert r.headers["allow"] == "GET, HEAD, POST"
        assert r.json()["error"]["code"] == "method_not_allowed"
    r = await client.request("OPTIONS", "/v1/cities/shenzhen")
    assert r.headers["allow"] == "GET, HEAD, PUT"


@pytest.mark.parametrize("ep", EPS, ids=_id)
async def test_unknown_query_parameter_is_rejected_and_named(
    client: httpx.AsyncClient, by_role: dict[str, Account], ep: Endpoint
) -> None:
    """Every route refuses a query parameter it does not declare: 422 naming it, before its
    handler runs (a misspelt filter must not silently return everything)."""
    r = await client.request(
        ep.method, _url(ep) + "?surprise_param=1", json={}, headers=_caller(ep, by_role)
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "unknown_query_parameter"
    assert r.json()["error"]["field"] == "surprise_param"


async def test_query_parameters_are_checked_by_their_declaration(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """A filter that is not declared, given twice, missing when required, or out of its
    bounds is a 422 naming it; the declared ones still work."""
    r = await client.get("/v1/services?q=x&min_price=100&colour=red")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unknown_query_parameter"
    assert r.json()["error"]["field"] == "colour"
    assert "accepted: " in r.json()["error"]["message"]
    r = await client.get("/v1/services?max_price=-1")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "max_price")
    r = await client.get("/v1/services?lat=91&lng=114")
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_coordinate")
    assert (await client.get("/v1/services?category=cleaning&q=x")).status_code == 200
    r = await client.get("/v1/users?limit=5&limit=6", headers=admin.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "limit")
    r = await client.get("/v1/locate?lat=22.5")
    assert (r.status_code, r.json()["error"]["field"]) == (422, "lng")
    r = await client.get("/v1/orders?limit=201", headers=admin.auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "limit")
    r = await client.get("/v1/overrides?city_id=a%00b", headers=admin.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "nul_character")


def test_openapi_declares_what_the_routes_check(settings: Settings) -> None:
    """Ids in paths are integers from 1, required query parameters are required, tuples are
    OpenAPI 3.1 arrays, and login, refresh and creates document their 401/429/409."""
    import orjson

    doc = orjson.loads(create_app(settings).state.openapi)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path" and p["name"].endswith("_id") and p["name"] != "city_id":
                    assert p["schema"]["type"] == "integer", (path, p)
                    assert p["schema"]["minimum"] == 1, (path, p)
            assert "503" in op["responses"], path

    def arrays_of_items(node: Any) -> list[Any]:
        if isinstance(node, dict):
            found = [node] if isinstance(node.get("items"), list) else []
            return found + [x for v in node.values() for x in arrays_of_items(v)]
        if isinstance(node, list):
            return [x for v in node for x in arrays_of_items(v)]
        return []

    assert arrays_of_items(doc) == []
    assert doc["components"]["schemas"]["City"]["properties"]["bbox"] == {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 4,
        "maxItems": 4,
    }
    locate = {p["name"]: p for p in doc["paths"]["/v1/locate"]["get"]["parameters"]}
    assert locate["lat"]["required"]
    assert locate["lng"]["required"]
    assert not locate["crs"]["required"]
    assert locate["crs"]["schema"]["enum"] == ["wgs84", "gcj02"]
    assert {"401", "429"} <= set(doc["paths"]["/v1/auth/login"]["post"]["responses"])
    assert "401" in doc["paths"]["/v1/auth/refresh"]["post"]["responses"]
    for path in ("/v1/users", "/v1/cities", "/v1/services", "/v1/workers", "/v1/categories"):
        assert "409" in doc["paths"][path]["post"]["responses"], path


def test_tuples_become_openapi_31_arrays() -> None:
    """A draft-7 tuple (an ``items`` array) becomes ``prefixItems``, or an array of one
    type with a fixed length when all its items agree."""
    from api.openapi import tuples_as_prefix_items

    mixed = {"type": "array", "items": [{"type": "number"}, {"type": "string"}]}
    assert tuples_as_prefix_items(mixed) == {
        "type": "array",
        "prefixItems": [{"type": "number"}, {"type": "string"}],
        "items": False,
        "minItems": 2,
        "maxItems": 2,
    }
    same = {"type": "array", "items": [{"type": "number"}] * 3}
    assert tuples_as_prefix_items(same) == {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 3,
        "maxItems": 3,
    }


async def test_bad_path_parameter_is_named(client: httpx.AsyncClient, admin: Account) -> None:
    """A non-numeric id in the path is a 422 naming the parameter, not a 500."""
    r = await client.get("/v1/users/abc", headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "user_id"


async def test_bad_query_parameter_is_named(client: httpx.AsyncClient, admin: Account) -> None:
    """Query parameters are checked too, with the parameter named."""
    r = await client.get("/v1/users?limit=0", headers=admin.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "limit"
    r = await client.get("/v1/users?role=king", headers=admin.auth)
    assert r.json()["error"]["field"] == "role"


async def test_health_readiness_metrics_and_docs(client: httpx.AsyncClient) -> None:
    """/healthz and /readyz answer 200 with real stores; /metrics counts each request (three more, three more counted); /docs is HTML."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
    metrics = (await client.get("/metrics", headers=METRICS_AUTH)).text
    line = 'doorstep_http_requests_total{method="GET",route="/readyz",status="200"}'
    assert line in metrics
    before = _sample(metrics, line)
    for _ in range(3):
        assert (await client.get("/readyz")).status_code == 200
    assert _sample((await client.get("/metrics", headers=METRICS_AUTH)).text, line) == before + 3
    docs = await client.get("/docs")
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text


def _sample(metrics: str, name: str) -> float:
    """The value of one sample line of a /metrics page."""
    return float(next(x for x in metrics.splitlines() if x.startswith(name + " ")).split()[-1])


async def test_readyz_is_503_when_a_store_is_down(settings: Settings) -> None:
    """With Redis unreachable /readyz answers 503 and says which store is down."""
    from dataclasses import replace

    from doorstep.embedded import free_port
    from doorstep.stores import Stores

    broken = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    stores = await Stores.open(broken)
    try:
        app = create_app(broken, stores)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.get("/readyz")
    finally:
        await stores.close()
    assert r.status_code == 503
    assert r.json()["postgres"] == "ok"
    assert r.json()["redis"].startswith("down")


def test_the_shipped_params_file_loads_and_a_typo_is_refused(tmp_path: Any) -> None:
    """params/doorstep.toml loads into every table; an unknown table or key is a named error."""
    from pathlib import Path

    from api.app import Tuning
    from doorstep.params import ParamsError

    tuning = Tuning.load(Path(__file__).parent.parent / "params" / "doorstep.toml")
    assert tuning.offers.mode == "direct"
    assert tuning.presence.stale_after_s == 30.0
    bad = tmp_path / "bad.toml"
    bad.write_text("[offer]\nttl_s = 10\n")
    with pytest.raises(ParamsError) as info:
        Tuning.load(bad)
    assert info.value.field == "offer"
    bad.write_text("[offers]\nttl = 10\n")
    with pytest.raises(ParamsError) as info:
        Tuning.load(bad)
    assert info.value.field == "offers.ttl"


def test_the_shipped_params_file_holds_the_defaults_in_code() -> None:
    """Every table of params/doorstep.toml says what the code does with no file at all."""
    from pathlib import Path

    from api.app import Tuning

    assert Tuning.load(Path(__file__).parent.parent / "params" / "doorstep.toml") == Tuning.load(
        None
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("interval_s = 0.0", "interval_s must be within 0.01..60, got 0.0"),
        ("max_buffered = 0", "max_buffered must be >= 1, got 0"),
        ("batch_rows = 600000", "batch_rows must be within 1..max_buffered (500000), got 600000"),
    ],
)
def test_a_bad_archive_param_is_refused_by_name(tmp_path: Any, table: str, message: str) -> None:
    """An [archive] value out of range stops start-up with a message naming the key, its rule and the value."""
    from api.app import Tuning
    from doorstep.params import ParamsError

    bad = tmp_path / "bad.toml"
    bad.write_text(f"[archive]\n{table}\n")
    with pytest.raises(ParamsError) as info:
        Tuning.load(bad)
    assert info.value.field == "archive"
    assert message in str(info.value)
