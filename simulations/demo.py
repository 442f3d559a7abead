"""A small live city for ``doorstep demo``: workers moving, orders every few seconds.

It runs until it is stopped, as a child process of ``doorstep demo`` (which starts it
once the server answers and stops it on Ctrl-C/SIGTERM). Workers come online as their
accounts are ready (created once, certified for housekeeping; a later demo on the same
data logs them in), the customers claim the claimable coupons in the app, then a customer
books an order every few seconds at a hot spot of Futian. Some bookings are 开荒保洁, a
crew of three for a window (the console shows the crew offered and assigned); the
prepaid (一口价) services are paid at once with the coupon checkout suggests (the ledger's
subsidy). Once an order has a worker, the customer asks for a share link and a tracking
URL is printed (``/track/{order_id}?share=<token>``), a fresh one every few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from importlib import resources
from pathlib import Path

import msgspec

from geo.roadgraph import load_futian_graph
from simulations.agents import CustomerAgent, OrderWatch, WorkerAgent, World
from simulations.client import Api, ApiError, Session
from simulations.demand import plan
from simulations.motion import Router
from simulations.runner import (
    PASSWORD,
    SetupError,
    bounded,
    check_services,
    city_sites,
    customer_account,
    phone,
    worker_account,
)
from simulations.scenario import Scenario, load_scenario

LINK_EVERY_S = 300.0
STATUS_EVERY_S = 60.0


def demo_scenario() -> Scenario:
    """The bundled demo scenario (``simulations/scenarios/demo.toml``)."""
    path = resources.files("simulations").joinpath("scenarios/demo.toml")
    return load_scenario(Path(str(path)))


def _say(text: str) -> None:
    print(f"  [demo city] {text}", flush=True)


async def wait_ready(api: Api, timeout_s: float = 120.0) -> None:
    """Until ``/readyz`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if (await api.http.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.5)
    raise SetupError(f"{api.base_url} did not become ready within {timeout_s:.0f} s")


async def _links(world: World, public: str) -> None:
    """Print a tracking link for an order that has a worker, now and then."""
    printed: set[int] = set()
    while not world.stopping.is_set():
        watch: OrderWatch | None = next(
            (
                w
                for w in world.watches.values()
                if w.status in ("assigned", "en_route") and w.order_id not in printed
            ),
            None,
        )
        if watch is None:
            await asyncio.sleep(2.0)
            continue
        try:
            link = await world.api.call(
                "POST", f"/v1/orders/{watch.order_id}/share", session=watch.customer
            )
        except ApiError:
            await asyncio.sleep(2.0)
            continue
        printed.add(watch.order_id)
        _say(
            f"watch order {watch.order_id} arrive: {public}/track/{watch.order_id}?share={link['token']}"
        )
        await world.sleep_until(world.now() + LINK_EVERY_S)


async def _crews(world: World, public: str) -> None:
    """Say when a crew order has its crew, with a member's worker-app login, now and then."""
    printed: set[int] = set()
    while not world.stopping.is_set():
        watch = next(
            (
                w
                for w in world.watches.values()
                if w.crew_size > 1
                and w.status in ("assigned", "en_route")
                and w.order_id not in printed
            ),
            None,
        )
        if watch is None:
            await asyncio.sleep(2.0)
            continue
        printed.add(watch.order_id)
        try:
            order = await world.api.call(
                "GET", f"/v1/orders/{watch.order_id}", session=watch.customer
            )
        except ApiError:
            continue
        crew = [int(w) for w in order.get("crew") or []]
        mate = next((world.workers[w] for w in crew[1:] if w in world.workers), None)
        if mate is None:
            continue
        login = phone(5, world.scenario, mate.plan.index)
        _say(
            f"crew order {watch.order_id} ({watch.booking.service_code}) has its crew of "
            f"{len(crew)}: see the crew job in the worker app {public}/worker as {login} "
            f"(password {PASSWORD}; it takes that simulated worker's place)"
        )
        await world.sleep_until(world.now() + LINK_EVERY_S)


async def claim_coupons(api: Api, customer: Session) -> int:
    """Claim every coupon the customer may still claim (the app's 领券); how many."""
    claimed = 0
    for t in await api.call("GET", "/v1/coupons/claimable", session=customer):
        for _ in range(max(0, int(t["per_user_limit"]) - int(t["held"]))):
            try:
                await api.call(
                    "POST", "/v1/coupons/claim", session=customer, json={"template_id": t["id"]}
                )
            except ApiError as e:
                if e.status != 409:  # out of stock or the limit reached meanwhile
                    raise
                break
            claimed += 1
    return claimed


async def _status(world: World) -> None:
    while await world.sleep_until(world.now() + STATUS_EVERY_S):
        online = sum(1 for a in world.workers.values() if a.ws is not None)
        busy = sum(1 for a in world.workers.values() if a.state == "busy")
        served = sum(1 for w in world.watches.values() if w.status == "completed")
        open_ = sum(1 for w in world.watches.values() if not w.done.is_set())
        c = world.counts
        _say(
            f"{online} workers online ({busy} on a job), {open_} orders open, {served} served; "
            f"{c['booked_crew']} crew orders booked, {c['paid']} paid up front "
            f"({c['paid_with_coupon']} with a coupon)"
        )


async def run_demo(
    base_url: str,
    admin_phone: str,
    admin_password: str,
    public_url: str,
    scenario: Scenario | None = None,
) -> None:
    """Run the demo city (``scenario``: the bundled demo's by default) until cancelled."""
    scenario = scenario or demo_scenario()
    api = Api(base_url)
    world: World | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_ready(api)
        admin = await api.login(admin_phone, admin_password)
        sites = await city_sites(api, scenario.city)
        await check_services(api, scenario)
        the_plan = plan(scenario, sites)
        world = World(
            api=api,
            scenario=scenario,
            router=Router(load_futian_graph()),
            tag=f"demo-{int(time.time())}",
        )
        _say(
            f"{scenario.workers.count} workers coming online, an order every "
            f"{60 / scenario.demand.orders_per_min:.0f} s or so; dispatcher console: "
            f"{public_url}/console?city={scenario.city} (log in as {admin_phone})"
        )
        sem = asyncio.Semaphore(4)

        async def start_worker(i: int) -> None:
            assert world is not None
            p = the_plan.workers[i]
            async with sem:
                session, wid = await worker_account(api, admin, scenario, p, kind=5)
            agent = WorkerAgent(world, p, session, wid)
            world.workers[wid] = agent
            await agent.run()

        tasks = [asyncio.create_task(start_worker(i)) for i in range(len(the_plan.workers))]
        tasks += [
            asyncio.create_task(_links(world, public_url)),
            asyncio.create_task(_crews(world, public_url)),
            asyncio.create_task(_status(world)),
        ]
        customers = await bounded(
            (customer_account(api, scenario, c.index, kind=6) for c in the_plan.customers), 4
        )
        claimed = sum(await bounded((claim_coupons(api, s) for s in customers), 4))
        _say(
            f"{len(customers)} customers, {claimed} coupons claimed in the app; prepaid "
            "orders are paid with the suggested coupon"
        )
        shoppers = [CustomerAgent(world, s) for s in customers]
        world.t0 = time.time()  # bookings from now on
        for b in the_plan.bookings:
            if not await world.sleep_until(b.at_s):
                break
            tasks.append(asyncio.create_task(shoppers[b.customer].run(b)))
    finally:
        if world is not None:
            world.stopping.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()


def main(argv: list[str]) -> int:
    """``python -m simulations.demo URL [PUBLIC_URL]`` (what ``doorstep demo`` starts)."""
    from seeding.load import ADMIN_PHONE, DEMO_PASSWORD

    url = argv[0]
    public = argv[1] if len(argv) > 1 else url
    try:
        asyncio.run(run_demo(url, ADMIN_PHONE, DEMO_PASSWORD, public))
    except KeyboardInterrupt:
        return 0
    except (SetupError, ApiError, msgspec.ValidationError) as e:
        print(f"  [demo city] stopped: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
