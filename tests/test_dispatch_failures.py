"""Issue 20 §3, the known failures of dispatch: a decline's cooldown instead of an exclusion
for good, instant bookings nobody can serve refused at booking, and instant jobs that would
make a planned scheduled job late."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson

from dispatch import offers
from dispatch import store as dispatch_store
from dispatch.candidates import order_job, order_jobs
from dispatch.dayplan import DayInputs, DayJob, WorkerDay, instant_refusal
from dispatch.engine import Engine
from dispatch.offers import OfferParams
from doorstep.stores import Stores
from matching.params import MatchParams
from tests.helpers import Account, MakeUser
from tests.live import EngineCity, book_here, make_worker, next_of, online, status_of
from workforce import store as workforce_store
from workforce.models import Window

H = 3600


# ---- pure: who could serve an instant booking -------------------------------------------


def _inputs(workers: list[WorkerDay], now_s: int) -> DayInputs:
    return DayInputs("c", date(2030, 1, 7), 0, now_s, tuple(workers), ())


def test_instant_refusal_names_the_rule() -> None:
    """Nobody with the skill: no_skilled_worker; skilled but off shift: not_working_now; else None."""
    now = 10 * H
    job = DayJob(0, 0.0, 0.0, 2 * H, (now, now + H), frozenset({"deep"}))
    plain = WorkerDay(1, frozenset(), ((0, 24 * H),), (0.0, 0.0))
    later = WorkerDay(2, frozenset({"deep"}), ((14 * H, 18 * H),), (0.0, 0.0))
    short = WorkerDay(3, frozenset({"deep"}), ((8 * H, 11 * H),), (0.0, 0.0))
    soon = WorkerDay(4, frozenset({"deep"}), ((10 * H + 1800, 18 * H),), (0.0, 0.0))
    nobody = instant_refusal(_inputs([], now), job)
    assert nobody is not None
    assert nobody.message == "no worker works in c"
    no_one = instant_refusal(_inputs([plain], now), job)
    assert no_one is not None
    assert no_one.code == "no_skilled_worker"
    off = instant_refusal(_inputs([plain, later, short], now), job)
    assert off is not None
    assert off.code == "not_working_now"
    assert "2 qualified workers" in off.message
    assert instant_refusal(_inputs([plain, later, short, soon], now), job) is None


# ---- the cooldown -----------------------------------------------------------------------


async def test_a_timed_out_worker_gets_the_order_again_after_the_cooldown(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """The only worker lets an offer time out: kept away for the cooldown, then offered again."""
    a = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], a, (engine_city.here[0] + 0.001, engine_city.here[1]))
    order = await book_here(
        client, customer := await make_user("customer"), instant_service, engine_city.here
    )
    app_engine: Engine = live_app[1].state.engine
    engine = Engine(
        stores,
        live_app[1].state.tracking,
        match=app_engine.match,
        offer=OfferParams(ttl_s=5, max_attempts=5, cooldown_s=10),
        engine=app_engine.params,
    )
    now = datetime.now(UTC)
    assert (await engine.tick(engine_city.id, now)).offered == 1
    await next_of(ws, "offer")
    report = await engine.tick(engine_city.id, now + timedelta(seconds=6))
    assert (report.expired, report.offered) == (1, 0)  # in its cooldown
    assert await status_of(stores, order["id"]) == "dispatching"
    report = await engine.tick(engine_city.id, now + timedelta(seconds=17))
    assert report.offered == 1  # the cooldown is over: the order does not stick
    again = await next_of(ws, "offer")
    assert again["order_id"] == order["id"]
    assert customer.id != a.id
    await ws.close()


async def test_a_decline_sets_a_cooldown_and_a_dispatchers_exclusion_stays_for_good(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """A rejection's exclusion ends after [offers] cooldown_s; a dispatcher's later exclusion has no end."""
    a = await make_worker(stores, client, engine_city.id)
    ws = await online(live_app[0], a, (engine_city.here[0] + 0.001, engine_city.here[1]))
    order = await book_here(client, await make_user("customer"), instant_service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    before = datetime.now(UTC)
    await engine.tick(engine_city.id, before)
    offer = await next_of(ws, "offer")
    r = await client.post(
        f"/v1/offers/{offer['offer_id']}/reject", headers=a.auth, json={"reason": "too far"}
    )
    assert r.status_code == 204
    until = await stores.pool.fetchval(
        "SELECT until FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        order["id"],
        a.id,
    )
    cooldown = timedelta(seconds=engine.offer.cooldown_s)
    assert before + cooldown <= until <= datetime.now(UTC) + cooldown
    dispatcher = await make_user("dispatcher")
    r = await client.post(
        f"/v1/orders/{order['id']}/exclude",
        headers=dispatcher.auth,
        json={"worker_id": a.id, "reason": "customer asked"},
    )
    assert r.status_code == 200, r.text
    until = await stores.pool.fetchval(
        "SELECT until FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        order["id"],
        a.id,
    )
    assert until is None
    await ws.close()


# ---- instant bookings nobody can serve ---------------------------------------------------


async def _service(client: httpx.AsyncClient, admin: Account, skill: str | None) -> str:
    tag = secrets.token_hex(3)
    r = await client.post(
        "/v1/categories",
        headers=admin.auth,
        json={"code": f"cat_{tag}", "name_zh": "深度保洁", "name_en": "Deep cleaning"},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = {
        "code": f"svc_{tag}",
        "category": f"cat_{tag}",
        "name_zh": "深度保洁",
        "name_en": "Deep cleaning",
        "price_minor": 30000,
        "duration_min": 60,
        "instant": True,
        "scheduled": True,
    }
    if skill:
        r = await client.post(
            "/v1/skills",
            headers=admin.auth,
            json={"code": skill, "name_zh": "深度保洁", "name_en": "Deep cleaning"},
        )
        assert r.status_code == 201, r.text
        body["required_skills"] = [skill]
    r = await client.post("/v1/services", headers=admin.auth, json=body)
    assert r.status_code == 201, r.text
    return f"svc_{tag}"


async def test_an_instant_booking_nobody_has_the_skill_for_is_refused_at_booking(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
) -> None:
    """No worker of the city has the skill: 409 nobody_can_serve, rule no_skilled_worker, nothing stored."""
    await make_worker(stores, client, engine_city.id)  # on shift, without the skill
    service = await _service(client, admin, f"deep_{secrets.token_hex(2)}")
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": service, "lat": engine_city.here[0], "lng": engine_city.here[1]},
    )
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("nobody_can_serve", "service_code")
    assert error["details"]["rule"] == "no_skilled_worker"
    assert "no_skilled_worker" in error["message"]
    assert error["details"]["next_slots"] == []  # nobody, on any day
    count = await stores.pool.fetchval(
        "SELECT count(*) FROM orders WHERE customer_id = $1", customer.id
    )
    assert count == 0


async def test_an_instant_booking_when_nobody_is_on_shift_offers_the_next_slots(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
) -> None:
    """The only skilled worker starts tomorrow: 409 not_working_now with tomorrow's bookable windows."""
    skill = f"deep_{secrets.token_hex(2)}"
    worker = await make_worker(stores, client, engine_city.id, skills=(skill,))
    tomorrow = (datetime.now(UTC) + timedelta(hours=8) + timedelta(days=1)).date()  # Shanghai
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, worker.id, (Window(tomorrow.weekday(), 9 * 60, 17 * 60),)
        )
    service = await _service(client, admin, skill)
    customer = await make_user("customer")
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={"service_code": service, "lat": engine_city.here[0], "lng": engine_city.here[1]},
    )
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["details"]["rule"] == "not_working_now"
    slots = error["details"]["next_slots"]
    assert 1 <= len(slots) <= 3
    first = datetime.fromisoformat(slots[0]["window_start"])
    assert first.date() == tomorrow
    assert 9 <= first.hour < 17
    assert slots[0]["window_start"] in error["message"]
    r = await client.post(  # the slot offered is bookable
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": service,
            "lat": engine_city.here[0],
            "lng": engine_city.here[1],
            "window_start": slots[0]["window_start"],
            "window_end": slots[0]["window_end"],
        },
    )
    assert r.status_code == 201, r.text
    assert orjson.loads(r.content)["kind"] == "scheduled"


# ---- instant jobs and day plans ----------------------------------------------------------


async def test_an_instant_job_that_would_make_a_planned_job_late_goes_to_someone_else(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    admin: Account,
    stores: Stores,
    instant_service: str,
) -> None:
    """The nearer worker is planned for a scheduled job the 2-hour instant job would make late: the farther one gets the offer, and the decision says why."""
    from tests.live import SettledPlans
    from tests.planning import make_service, planned_worker, soon_today

    plans = SettledPlans(live_app[1])
    scheduled = await make_service(client, admin)
    planned = await planned_worker(stores, client, engine_city.id, engine_city.here)
    customer = await make_user("customer")
    start = soon_today(75, 60)
    r = await client.post(
        "/v1/orders",
        headers=customer.auth,
        json={
            "service_code": scheduled,
            "lat": engine_city.here[0],
            "lng": engine_city.here[1],
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(minutes=50)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    booked = r.json()
    await plans.idle()
    free = await make_worker(stores, client, engine_city.id)
    ws_planned = await online(live_app[0], planned, engine_city.here)
    ws_free = await online(live_app[0], free, (engine_city.here[0] + 0.004, engine_city.here[1]))
    order = await book_here(client, customer, instant_service, engine_city.here)
    engine: Engine = live_app[1].state.engine
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.released == 0  # the planned job is not due yet
    offer = await next_of(ws_free, "offer")
    assert offer["order_id"] == order["id"]
    (decision,) = [d for d in report.decisions if d.order_id == order["id"]]
    assert decision.worker_id == free.id
    (mine,) = [c for c in decision.candidates if c.worker_id == planned.id]
    assert mine.why_not is not None
    assert mine.why_not.startswith(f"planned job: would be late for planned order {booked['id']}")
    await ws_planned.close()
    await ws_free.close()


# ---- active reassignment (§4) -------------------------------------------------------------


def test_a_job_predicted_late_or_gone_quiet_is_judged_by_how_far_it_is() -> None:
    """Not set off and late even by p50, or silent: reassign; late only by p90, set off, or pinned: alert; in time: nothing."""
    from dispatch.at_risk import judge

    base: dict[str, Any] = {
        "now_s": 1000.0,
        "deadline_s": 1600.0,
        "fix_age_s": 5.0,
        "stale_s": 180.0,
    }
    assert judge(status="assigned", p50_s=300.0, p90_s=500.0, **base) is None
    sure = judge(status="assigned", p50_s=700.0, p90_s=900.0, **base)
    assert sure is not None
    assert (sure.kind, sure.action) == ("late_predicted", "reassign")
    assert "the p90 5 min past the deadline" in sure.reason
    maybe = judge(status="assigned", p50_s=500.0, p90_s=700.0, **base)
    assert maybe is not None
    assert maybe.action == "alert"
    moving = judge(status="en_route", p50_s=700.0, p90_s=900.0, **base)
    assert moving is not None
    assert moving.action == "alert"
    pinned = judge(status="assigned", p50_s=700.0, p90_s=900.0, pinned=True, **base)
    assert pinned is not None
    assert pinned.action == "alert"
    quiet = judge(status="assigned", p50_s=None, p90_s=None, **{**base, "fix_age_s": 400.0})
    assert quiet is not None
    assert (quiet.kind, quiet.action) == ("worker_stale", "reassign")
    assert "400 s ago" in quiet.reason
    never = judge(status="en_route", p50_s=None, p90_s=None, **{**base, "fix_age_s": None})
    assert never is not None
    assert (never.kind, never.action) == ("worker_stale", "alert")


async def test_an_assigned_worker_predicted_to_miss_is_replaced_and_one_en_route_is_alerted(
    live_app: tuple[str, Any],
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """Instant SLA 60 s, worker 2 km away: not set off, the job goes back to dispatch with the reason; en route, the dispatchers get a late_predicted alert."""
    from dataclasses import replace

    far = (engine_city.here[0] + 0.018, engine_city.here[1])  # ~2 km: ~450 s by the fallback
    a = await make_worker(stores, client, engine_city.id)
    b = await make_worker(stores, client, engine_city.id)
    ws_a = await online(live_app[0], a, far)
    ws_b = await online(live_app[0], b, far)
    customer, dispatcher = await make_user("customer"), await make_user("dispatcher")
    first = await book_here(client, customer, instant_service, engine_city.here)
    second = await book_here(client, customer, instant_service, engine_city.here)
    for order, worker in ((first, a), (second, b)):
        r = await client.post(
            f"/v1/orders/{order['id']}/assign",
            headers=dispatcher.auth,
            json={"worker_id": worker.id, "reason": "test"},
        )
        assert r.status_code == 200, r.text
    r = await client.post(f"/v1/orders/{second['id']}/depart", headers=b.auth, json={})
    assert r.status_code == 200, r.text
    app_engine: Engine = live_app[1].state.engine
    engine = Engine(
        stores,
        live_app[1].state.tracking,
        match=replace(app_engine.match, instant_sla_s=60),
        offer=app_engine.offer,
        engine=app_engine.params,
    )
    report = await engine.tick(engine_city.id, datetime.now(UTC))
    assert report.at_risk == {"reassign": 1, "alert": 1}
    events = (await client.get(f"/v1/orders/{first['id']}/events", headers=customer.auth)).json()
    unassign = next(e for e in events if e["action"] == "unassign")
    assert unassign["reason"].startswith("reassigned: predicted to miss the window")
    until = await stores.pool.fetchval(
        "SELECT until FROM order_exclusions WHERE order_id = $1 AND worker_id = $2",
        first["id"],
        a.id,
    )
    assert until is not None  # a cooldown, not for good
    kinds = await stores.pool.fetch(
        "SELECT kind, message FROM dispatch_alerts WHERE order_id = $1", second["id"]
    )
    assert [r["kind"] for r in kinds] == ["late_predicted"]
    assert "predicted to miss the window" in kinds[0]["message"]
    assert await status_of(stores, second["id"]) == "en_route"
    again = await engine.tick(engine_city.id, datetime.now(UTC))
    assert again.at_risk == {}  # not before risk_every_s
    await ws_a.close()
    await ws_b.close()


async def test_a_ticks_jobs_read_together_equal_each_order_read_alone(
    engine_city: EngineCity,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    stores: Stores,
    instant_service: str,
) -> None:
    """order_jobs (one query for every order's exclusions, each service once) gives the same
    Jobs as order_job per order: a cooldown in force, one over and one for good."""
    a = await make_worker(stores, client, engine_city.id)
    b = await make_worker(stores, client, engine_city.id)
    customer = await make_user("customer")
    first = await book_here(client, customer, instant_service, engine_city.here)
    second = await book_here(client, customer, instant_service, engine_city.here)
    third = await book_here(client, customer, instant_service, engine_city.here)
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        for order_id, worker, until in (
            (first["id"], a.id, now + timedelta(minutes=3)),  # in its cooldown
            (first["id"], b.id, None),  # for good
            (second["id"], a.id, now - timedelta(minutes=1)),  # cooldown over
        ):
            await offers.exclude(
                conn, order_id, worker, reason="test", actor="system", actor_id=None, until=until
            )
    loaded = [await dispatch_store.get(stores.pool, o["id"]) for o in (first, second, third)]
    orders = [o for o in loaded if o is not None]
    params = MatchParams()
    together = await order_jobs(stores, orders, now=now, params=params)
    alone = [await order_job(stores, o, now=now, params=params) for o in orders]
    assert together == alone
    assert [j.excluded_worker_ids for j in together] == [
        frozenset({a.id, b.id}),
        frozenset(),
        frozenset(),
    ]
