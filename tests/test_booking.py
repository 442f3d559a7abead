"""Booking: scheduled-window rules (pure) and POST /v1/orders with its errors and Idempotency-Key."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from dispatch.booking import BookingParams, canonical_request, check_window
from dispatch.errors import InvalidOrder
from doorstep.stores import Stores
from tests.helpers import Account, MakeUser, new_phone
from tests.live import DEST
from tests.planning import tomorrow_at

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
PARAMS = BookingParams()
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
DETAIL = "景田北街3号 5栋1203"


def _naive(dt: datetime) -> datetime:
    return dt.replace(tzinfo=None)


@pytest.mark.parametrize(
    ("start", "end", "field", "message"),
    [
        (NOW - H, NOW, "window_start", "is in the past; book at least 30 minutes ahead"),
        (NOW - M, NOW + H, "window_start", "is in the past"),
        (NOW + 29 * M, NOW + 90 * M, "window_start", "is less than 30 minutes away"),
        (NOW + 5 * M, NOW + 2 * H, "window_start", "is less than 30 minutes away"),
        (NOW + 30 * D + M, NOW + 30 * D + 2 * H, "window_start", "is beyond the booking horizon"),
        (NOW + H, NOW + H + 29 * M, "window_end", "must be at least 30 minutes after"),
        (NOW + H, NOW + H, "window_end", "must be at least 30 minutes after"),
        (NOW + 2 * H, NOW + H, "window_end", "must be at least 30 minutes after"),
        (NOW + H, NOW + 13 * H + M, "window_end", "a window may be at most 720 minutes long"),
        (_naive(NOW + H), _naive(NOW + 3 * H), "window_start", "must include a UTC offset"),
        (_naive(NOW + H), NOW + 3 * H, "window_start", "must include a UTC offset"),
        (NOW + H, _naive(NOW + 3 * H), "window_end", "must include a UTC offset"),
    ],
    ids=[
        "past",
        "started-a-minute-ago",
        "inside-lead-time",
        "just-ahead",
        "beyond-horizon",
        "too-short",
        "empty",
        "ends-before-start",
        "too-long",
        "both-naive",
        "naive-start",
        "naive-end",
    ],
)
def test_bad_windows_name_the_field(
    start: datetime, end: datetime, field: str, message: str
) -> None:
    """A window in the past, inside the lead time, beyond the horizon, too short, too long or without an offset names the offending field."""
    with pytest.raises(InvalidOrder) as error:
        check_window(start, end, now=NOW, params=PARAMS)
    assert error.value.field == field
    assert error.value.code == "invalid_order"
    assert message in error.value.message


CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (NOW + 30 * M, NOW + 60 * M),  # exactly the lead time and the shortest window
        (NOW + 30 * D, NOW + 30 * D + 12 * H),  # the horizon and the longest window
        ((NOW + 2 * H).astimezone(CST), (NOW + 4 * H).astimezone(CST)),  # another offset
    ],
    ids=["lead-and-min", "horizon-and-max", "utc+8"],
)
def test_windows_on_the_limits_are_accepted(start: datetime, end: datetime) -> None:
    """The limits are inclusive, and any UTC offset is fine."""
    check_window(start, end, now=NOW, params=PARAMS)


def test_params_follow_the_settings() -> None:
    """Other booking parameters change the limits; nonsensical ones are refused."""
    params = BookingParams(min_lead_min=0, horizon_days=1, min_window_min=15, max_window_min=60)
    check_window(NOW, NOW + 15 * M, now=NOW, params=params)
    with pytest.raises(InvalidOrder) as error:
        check_window(NOW + 2 * D, NOW + 2 * D + H, now=NOW, params=params)
    assert error.value.field == "window_start"
    with pytest.raises(ValueError, match="booking params"):
        BookingParams(min_window_min=90, max_window_min=60)


# ---- over HTTP ----------------------------------------------------------------------------


async def _service(
    client: httpx.AsyncClient, admin: Account, *, instant: bool, scheduled: bool
) -> str:
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"bk_{tag}", "name_zh": "维修", "name_en": "Repairs"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/services",
        headers=admin.auth,
        json={
            "code": f"bk_{tag}",
            "category": f"bk_{tag}",
            "name_zh": "上门维修",
            "name_en": "Repair visit",
            "price_minor": 20000,
            "duration_min": 60,
            "instant": instant,
            "scheduled": scheduled,
        },
    )
    assert r.status_code == 201, r.text
    return f"bk_{tag}"


@pytest.fixture(scope="module")
async def scheduled_only(client: httpx.AsyncClient, admin: Account) -> str:
    """A service booked ahead only."""
    return await _service(client, admin, instant=False, scheduled=True)


@pytest.fixture(scope="module")
async def instant_only(client: httpx.AsyncClient, admin: Account) -> str:
    """A service booked for now only."""
    return await _service(client, admin, instant=True, scheduled=False)


def _window(start_in: timedelta, length: timedelta = 2 * H) -> dict[str, str]:
    start = datetime.now(UTC) + start_in
    return {"window_start": start.isoformat(), "window_end": (start + length).isoformat()}


def _bookable_window() -> dict[str, str]:
    """Tomorrow 10:00–12:00 local: inside the live city's working hours whatever the time
    of day the suite runs (a window two hours from now runs past midnight in the evening)."""
    start = tomorrow_at("10:00")
    return {"window_start": start.isoformat(), "window_end": (start + 2 * H).isoformat()}


def _error(r: httpx.Response) -> tuple[int, str, str | None]:
    error: dict[str, Any] = r.json()["error"]
    return r.status_code, error["code"], error["field"]


async def _count(stores: Stores, customer_id: int) -> int:
    n: int = await stores.pool.fetchval(
        "SELECT count(*) FROM orders WHERE customer_id = $1", customer_id
    )
    return n


async def test_a_scheduled_booking(
    client: httpx.AsyncClient, make_user: MakeUser, scheduled_only: str, live_city: str
) -> None:
    """A scheduled-only service booked with a valid window is a confirmed scheduled order in the city at the point."""
    customer = await make_user("customer")
    window = _bookable_window()
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": scheduled_only, "lat": DEST[0], "lng": DEST[1], **window},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["kind"], order["status"], order["city_id"]) == (
        "scheduled",
        "confirmed",
        live_city,
    )
    assert datetime.fromisoformat(order["window_start"]) == datetime.fromisoformat(
        window["window_start"]
    )
    assert order["price_minor"] == 20000
    assert order["contact_phone"] == customer.phone  # defaults to the customer's own
    assert len(order["start_code"]) == 6
    assert order["start_code"].isdigit()


@pytest.mark.parametrize(
    ("case", "status", "code", "field"),
    [
        ("unknown-service", 404, "not_found", "service_code"),
        ("scheduled-only-now", 422, "invalid_order", "window_start"),
        ("instant-only-with-window", 422, "invalid_order", "window_start"),
        ("end-without-start", 422, "invalid_order", "window_end"),
        ("start-without-end", 422, "invalid_order", "window_end"),
        ("window-in-the-past", 422, "invalid_order", "window_start"),
        ("window-inside-lead-time", 422, "invalid_order", "window_start"),
        ("window-beyond-horizon", 422, "invalid_order", "window_start"),
        ("window-too-short", 422, "invalid_order", "window_end"),
        ("window-too-long", 422, "invalid_order", "window_end"),
        ("naive-window", 422, "invalid_order", "window_start"),
        ("outside-every-area", 422, "invalid_order", "lat"),
        ("lat-91", 422, "invalid_coordinate", "lat"),
        ("lng-181", 422, "invalid_coordinate", "lng"),
        ("no-place", 422, "invalid_order", "address_id"),
        ("unknown-field", 422, "unknown_field", "where"),
    ],
)
async def test_booking_errors(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    scheduled_only: str,
    instant_only: str,
    case: str,
    status: int,
    code: str,
    field: str,
) -> None:
    """Each bad booking is refused with its status, code and field, and creates no order."""
    point: dict[str, Any] = {"lat": DEST[0], "lng": DEST[1]}
    naive_start = (datetime.now() + 2 * H).replace(microsecond=0)
    bodies: dict[str, dict[str, Any]] = {
        "unknown-service": {"service_code": f"nope_{secrets.token_hex(3)}", **point},
        "scheduled-only-now": {"service_code": scheduled_only, **point},
        "instant-only-with-window": {"service_code": instant_only, **point, **_window(2 * H)},
        "end-without-start": {
            "service_code": instant_service,
            **point,
            "window_end": _window(2 * H)["window_end"],
        },
        "start-without-end": {
            "service_code": scheduled_only,
            **point,
            "window_start": _window(2 * H)["window_start"],
        },
        "window-in-the-past": {"service_code": scheduled_only, **point, **_window(-3 * H)},
        "window-inside-lead-time": {"service_code": scheduled_only, **point, **_window(10 * M)},
        "window-beyond-horizon": {"service_code": scheduled_only, **point, **_window(31 * D)},
        "window-too-short": {"service_code": scheduled_only, **point, **_window(2 * H, 10 * M)},
        "window-too-long": {"service_code": scheduled_only, **point, **_window(2 * H, 13 * H)},
        "naive-window": {
            "service_code": scheduled_only,
            **point,
            "window_start": naive_start.isoformat(),
            "window_end": (naive_start + 2 * H).isoformat(),
        },
        "outside-every-area": {"service_code": instant_service, "lat": 0.0, "lng": 0.0},
        "lat-91": {"service_code": instant_service, "lat": 91.0, "lng": DEST[1]},
        "lng-181": {"service_code": instant_service, "lat": DEST[0], "lng": 181.0},
        "no-place": {"service_code": instant_service, "lat": DEST[0]},
        "unknown-field": {"service_code": instant_service, **point, "where": "home"},
    }
    customer = await make_user("customer")
    r = await client.post("/v1/orders", headers=customer.auth, json=bodies[case])
    assert _error(r) == (status, code, field), r.text
    assert await _count(stores, customer.id) == 0


async def _address(
    client: httpx.AsyncClient, customer: Account, at: tuple[float, float] = DEST
) -> dict[str, Any]:
    r = await client.post(
        "/v1/me/addresses",
        headers=customer.auth,
        json={
            "label": "家",
            "lat": at[0],
            "lng": at[1],
            "detail": "福田区景田北街8号 2栋301",
            "contact_name": "王女士",
            "contact_phone": new_phone(),
        },
    )
    assert r.status_code == 201, r.text
    address: dict[str, Any] = r.json()
    return address


async def test_booking_at_a_saved_address_copies_it(
    client: httpx.AsyncClient, make_user: MakeUser, instant_service: str, live_city: str
) -> None:
    """address_id of one's own address places the order there with its detail and contact phone."""
    customer = await make_user("customer")
    address = await _address(client, customer)
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": instant_service, "address_id": address["id"]},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["address_id"] == address["id"]
    assert (order["lat"], order["lng"]) == (address["lat"], address["lng"])
    assert order["address_detail"] == address["detail"]
    assert order["contact_phone"] == address["contact_phone"]
    assert order["city_id"] == live_city
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": instant_service,
            "address_id": address["id"],
            "address_detail": "  门口左转  ",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["address_detail"] == "门口左转"  # the booking's own detail wins, trimmed


@pytest.mark.parametrize("whose", ["another-customer", "nobody"])
async def test_booking_at_an_address_not_ones_own(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    whose: str,
) -> None:
    """An address of another customer (or none at all) is refused at address_id, revealing nothing."""
    customer, other = await make_user("customer"), await make_user("customer")
    address_id = (await _address(client, other))["id"] if whose == "another-customer" else 2**62
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": instant_service, "address_id": address_id},
    )
    assert _error(r) == (422, "invalid_order", "address_id")
    assert r.json()["error"]["message"] == f"no address {address_id} of yours"
    assert await _count(stores, customer.id) == 0


async def test_a_saved_address_outside_every_area(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, instant_service: str
) -> None:
    """An address outside every service area is refused when saved (422 outside_service_area), not first at booking."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/me/addresses",
        headers=customer.auth,
        json={"label": "家", "lat": 0.0, "lng": 0.0, "detail": "福田区景田北街8号"},
    )
    assert _error(r) == (422, "outside_service_area", "lat")
    saved = await stores.pool.fetchval(
        "SELECT count(*) FROM addresses WHERE user_id = $1", customer.id
    )
    assert saved == 0


@pytest.mark.parametrize("role", ["dispatcher", "admin", "worker", "merchant"])
async def test_only_customers_book(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, instant_service: str, role: str
) -> None:
    """Staff, workers and merchants cannot book (403)."""
    user = await make_user(role)
    r = await client.post(
        "/v1/orders",
        headers=user.auth,
        json={"service_code": instant_service, "lat": DEST[0], "lng": DEST[1]},
    )
    assert _error(r) == (403, "forbidden", None)
    assert await _count(stores, user.id) == 0


def _instant(service: str) -> dict[str, Any]:
    return {"service_code": service, "lat": DEST[0], "lng": DEST[1], "address_detail": DETAIL}


async def test_idempotency_key_replays_the_booking(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, instant_service: str
) -> None:
    """The same Idempotency-Key twice is 201 then 200 with the same order, and one order row with one history."""
    customer = await make_user("customer")
    key = {"Idempotency-Key": secrets.token_hex(16), **customer.auth}
    first = await client.post("/v1/orders", headers=key, json=_instant(instant_service))
    assert first.status_code == 201, first.text
    again = await client.post("/v1/orders", headers=key, json=_instant(instant_service))
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await _count(stores, customer.id) == 1
    events = await client.get(f"/v1/orders/{first.json()['id']}/events", headers=customer.auth)
    assert [e["action"] for e in events.json()] == ["book", "confirm"]
    other = await client.post("/v1/orders", headers=customer.auth, json=_instant(instant_service))
    assert other.status_code == 201  # no key: a new order
    assert await _count(stores, customer.id) == 2


async def test_idempotency_key_is_per_customer(
    client: httpx.AsyncClient, make_user: MakeUser, instant_service: str
) -> None:
    """Two customers using the same key get two orders."""
    key = secrets.token_hex(16)
    ids = []
    for _ in range(2):
        customer = await make_user("customer")
        r = await client.post(
            "/v1/orders",
            headers={"Idempotency-Key": key, **customer.auth},
            json=_instant(instant_service),
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert ids[0] != ids[1]


async def test_idempotency_key_for_another_service_conflicts(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    instant_only: str,
) -> None:
    """The same Idempotency-Key for another service is 422 idempotency_key_reused and books nothing."""
    customer = await make_user("customer")
    key = {"Idempotency-Key": secrets.token_hex(16), **customer.auth}
    r = await client.post("/v1/orders", headers=key, json=_instant(instant_service))
    assert r.status_code == 201, r.text
    r = await client.post("/v1/orders", headers=key, json=_instant(instant_only))
    assert _error(r) == (422, "idempotency_key_reused", "idempotency-key")
    assert await _count(stores, customer.id) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"notes": "another note"},
        {"address_detail": "另一个门牌"},
        {"lat": DEST[0] + 0.001},
        {"contact_phone": "13912345678"},
        {"crs": "gcj02"},
    ],
)
async def test_idempotency_key_with_another_body_is_refused(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    change: dict[str, Any],
) -> None:
    """A key reused with the same service but any other field changed is 422 idempotency_key_reused; the same body again still replays."""
    customer = await make_user("customer")
    key = {"Idempotency-Key": secrets.token_hex(16), **customer.auth}
    first = await client.post("/v1/orders", headers=key, json=_instant(instant_service))
    assert first.status_code == 201, first.text
    r = await client.post("/v1/orders", headers=key, json={**_instant(instant_service), **change})
    assert _error(r) == (422, "idempotency_key_reused", "idempotency-key")
    again = await client.post("/v1/orders", headers=key, json=_instant(instant_service))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert await _count(stores, customer.id) == 1


async def test_idempotency_fingerprint_ignores_key_order_and_offsets(
    client: httpx.AsyncClient, make_user: MakeUser, scheduled_only: str
) -> None:
    """The same window written with another UTC offset, fields in another order, is the same request (200)."""
    customer = await make_user("customer")
    key = {"Idempotency-Key": secrets.token_hex(16), **customer.auth}
    window = _bookable_window()
    body = {"service_code": scheduled_only, "lat": DEST[0], "lng": DEST[1], **window}
    first = await client.post("/v1/orders", headers=key, json=body)
    assert first.status_code == 201, first.text
    cn = timezone(timedelta(hours=8))
    shuffled = dict(reversed(list(body.items())))
    for name in ("window_start", "window_end"):
        shuffled[name] = datetime.fromisoformat(window[name]).astimezone(cn).isoformat()
    again = await client.post("/v1/orders", headers=key, json=shuffled)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


async def test_the_stored_fingerprint_is_keyed_and_an_older_plain_one_still_replays(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, scheduled_only: str
) -> None:
    """The request's fingerprint is stored keyed (not a plain SHA-256 one could guess a phone
    back from); an order stored with the older plain hash still replays its request (200)
    and refuses another (422)."""
    customer = await make_user("customer")
    key = {"Idempotency-Key": secrets.token_hex(16), **customer.auth}
    window = _bookable_window()
    body: dict[str, object] = {
        "service_code": scheduled_only,
        "lat": DEST[0],
        "lng": DEST[1],
        "contact_phone": new_phone(),
        **window,
    }
    first = await client.post("/v1/orders", headers=key, json=body)
    assert first.status_code == 201, first.text
    order_id = first.json()["id"]
    stored = await stores.pool.fetchval(
        "SELECT idempotency_fingerprint FROM orders WHERE id = $1", order_id
    )
    assert stored.startswith("k1:")
    assert len(stored) == 3 + 64
    request = {
        "service_code": scheduled_only,
        "address_id": None,
        "lat": DEST[0],
        "lng": DEST[1],
        "crs": "wgs84",
        "address_detail": "",
        "contact_phone": body["contact_phone"],
        "window_start": datetime.fromisoformat(window["window_start"]),
        "window_end": datetime.fromisoformat(window["window_end"]),
        "notes": "",
        "series_id": None,
    }
    plain = hashlib.sha256(canonical_request(request)).hexdigest()
    assert plain not in stored
    await stores.pool.execute(
        "UPDATE orders SET idempotency_fingerprint = $2 WHERE id = $1", order_id, plain
    )
    again = await client.post("/v1/orders", headers=key, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == order_id
    other = await client.post("/v1/orders", headers=key, json={**body, "notes": "另一个"})
    assert _error(other) == (422, "idempotency_key_reused", "idempotency-key"), other.text


@pytest.mark.parametrize(("length", "status"), [(0, 422), (1, 201), (100, 201), (101, 422)])
async def test_idempotency_key_length(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
    length: int,
    status: int,
) -> None:
    """A key of 1–100 characters is taken; an empty or longer one is 422 at idempotency-key."""
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers={"Idempotency-Key": "k" * length, **customer.auth},
        json=_instant(instant_service),
    )
    assert r.status_code == status, r.text
    if status == 422:
        assert _error(r) == (422, "invalid_field", "idempotency-key")
    assert await _count(stores, customer.id) == (1 if status == 201 else 0)


async def test_idempotency_key_at_the_same_time(
    client: httpx.AsyncClient, make_user: MakeUser, stores: Stores, instant_service: str
) -> None:
    """Two simultaneous bookings with one key make one order: one 201 and one 200 with the same id."""
    customer = await make_user("customer")
    for _ in range(3):
        key = {"Idempotency-Key": secrets.token_hex(16), **customer.auth}
        before = await _count(stores, customer.id)
        a, b = await asyncio.gather(
            client.post("/v1/orders", headers=key, json=_instant(instant_service)),
            client.post("/v1/orders", headers=key, json=_instant(instant_service)),
        )
        assert sorted([a.status_code, b.status_code]) == [200, 201], (a.text, b.text)
        assert a.json()["id"] == b.json()["id"]
        assert await _count(stores, customer.id) == before + 1
