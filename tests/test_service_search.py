"""GET /v1/services as a search (text, category, price range, city or point), the
reviews of a service and a worker's public card."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from dispatch.ratings import masked_customer, public_name
from doorstep.stores import Stores
from geo.coords import wgs84_to_gcj02
from tests.helpers import Account
from tests.live import EngineCity, make_worker


def _code() -> str:
    return f"s_{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
async def catalog(client: httpx.AsyncClient, admin: Account) -> dict[str, Any]:
    """A category and a skill of this module, and three services: two cleanings (¥100 and
    ¥200, the dearer one needing the skill) and a repair (¥150)."""
    tag = secrets.token_hex(3)
    made: dict[str, Any] = {"category": f"cat_{tag}", "skill": f"sk_{tag}", "word": f"词{tag}"}
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": made["category"], "name_zh": f"搜索{tag}", "name_en": f"Search {tag}"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/skills",
        headers=admin.auth,
        json={"code": made["skill"], "name_zh": "深度保洁", "name_en": "Deep"},
    )
    assert r.status_code == 201, r.text
    for key, name_zh, name_en, desc, price, skills in (
        ("cheap", f"日常保洁{tag}", "Daily Cleaning", "擦窗 拖地", 10_000, []),
        (
            "dear",
            f"深度保洁{tag}",
            "Deep Cleaning",
            f"厨房油污 {made['word']}",
            20_000,
            [made["skill"]],
        ),
        ("repair", f"水管维修{tag}", "Pipe repair", "换龙头", 15_000, []),
    ):
        made[key] = _code()
        r = await client.post(
            "/v1/services",
            headers=admin.auth,
            json={
                "code": made[key],
                "category": made["category"],
                "name_zh": name_zh,
                "name_en": name_en,
                "description_zh": desc,
                "price_minor": price,
                "duration_min": 60,
                "instant": True,
                "scheduled": False,
                "required_skills": skills,
            },
        )
        assert r.status_code == 201, r.text
    return made


async def _codes(client: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await client.get("/v1/services", params=params)
    assert r.status_code == 200, r.text
    return [s["code"] for s in r.json()]


async def test_text_search_matches_every_word_in_names_descriptions_and_category(
    client: httpx.AsyncClient, catalog: dict[str, Any]
) -> None:
    """Each word must appear (any case) in a name, a description or the category's name."""
    c = catalog
    mine = {c["cheap"], c["dear"], c["repair"]}
    assert set(await _codes(client, category=c["category"])) == mine
    assert set(await _codes(client, q="保洁", category=c["category"])) == {c["cheap"], c["dear"]}
    assert await _codes(client, q="cleaning DEEP", category=c["category"]) == [c["dear"]]
    assert await _codes(client, q=c["word"]) == [c["dear"]]  # in the description only
    assert set(await _codes(client, q=f"Search {c['category'][4:]}")) == mine  # category name
    assert await _codes(client, q="保洁 龙头", category=c["category"]) == []
    assert await _codes(client, q="100%_", category=c["category"]) == []  # LIKE signs are text


async def test_price_range_is_inclusive(client: httpx.AsyncClient, catalog: dict[str, Any]) -> None:
    """min_price and max_price (fen) keep services priced within, both ends included."""
    c = catalog
    got = await _codes(client, category=c["category"], min_price=10_000, max_price=15_000)
    assert set(got) == {c["cheap"], c["repair"]}
    assert await _codes(client, category=c["category"], min_price=15_001) == [c["dear"]]
    assert await _codes(client, category=c["category"], max_price=9_999) == []


async def test_city_and_point_keep_what_a_worker_there_can_do(
    client: httpx.AsyncClient,
    stores: Stores,
    catalog: dict[str, Any],
    engine_city: EngineCity,
) -> None:
    """city_id (or a point inside the city, GCJ-02 too) lists only services some worker of the city is skilled for."""
    c = catalog
    await make_worker(stores, client, engine_city.id)  # no skills
    cheap_only = {c["cheap"], c["repair"]}
    assert set(await _codes(client, category=c["category"], city_id=engine_city.id)) == cheap_only
    lat, lng = engine_city.here
    assert set(await _codes(client, category=c["category"], lat=lat, lng=lng)) == cheap_only
    await make_worker(stores, client, engine_city.id, skills=(c["skill"],))
    everything = {c["cheap"], c["dear"], c["repair"]}
    assert set(await _codes(client, category=c["category"], city_id=engine_city.id)) == everything
    glat, glng = wgs84_to_gcj02(lat, lng)
    got = await _codes(client, category=c["category"], lat=glat, lng=glng, crs="gcj02")
    assert set(got) == everything
    assert await _codes(client, category=c["category"], lat=0.5, lng=0.5) == []  # nobody there


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"min_price": 300, "max_price": 200}, 422, "max_price"),
        ({"min_price": "abc"}, 422, "min_price"),
        ({"max_price": -1}, 422, "max_price"),
        ({"q": "x" * 101}, 422, "q"),
        ({"lat": 22.5}, 422, "lng"),
        ({"lat": "north", "lng": 114.0}, 422, "lat"),
        ({"lat": 95, "lng": 114.0}, 422, "lat"),
        ({"lat": 22.5, "lng": 114.0, "crs": "bd09"}, 422, "crs"),
        ({"lat": 22.5, "lng": 114.0, "city_id": "shenzhen"}, 422, "lat"),
        ({"city_id": "no-such-city"}, 404, "city_id"),
    ],
)
async def test_bad_search_names_the_parameter(
    client: httpx.AsyncClient, params: dict[str, Any], status: int, field: str
) -> None:
    """A bad search parameter is a 4xx naming it."""
    r = await client.get("/v1/services", params=params)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field


async def test_reviews_and_card_of_unknown_things_are_404(
    client: httpx.AsyncClient, catalog: dict[str, Any]
) -> None:
    """Reviews of an unknown service and the card of an unknown worker are 404; a new service has none."""
    r = await client.get("/v1/services/no_such_service/reviews")
    assert (r.status_code, r.json()["error"]["field"]) == (404, "service_code")
    r = await client.get("/v1/workers/999999999/card")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "worker_not_found")
    r = await client.get(f"/v1/services/{catalog['cheap']}/reviews")
    assert (r.status_code, r.json()) == (200, [])


def test_public_names_hide_the_full_name() -> None:
    """Customers see a worker as surname + 师傅 and a reviewer as the first character + **."""
    assert public_name("王小明") == "王师傅"
    assert masked_customer("陈女士") == "陈**"
    assert masked_customer("") == "?**"
