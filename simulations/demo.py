"""A small live city for ``doorstep demo``: workers moving, orders every few seconds.

It runs until it is stopped, as a child process of ``doorstep demo`` (which starts it
once the server answers and stops it on Ctrl-C/SIGTERM). Workers come online as their
accounts are ready (created once; a later demo on the same data logs them in), then a
customer books an order every few seconds at a hot spot of Futian. Once an order has a
worker, the customer asks for a share link and a tracking URL is printed
(``/track/{order_id}?share=<token>``), a fresh one every few minutes.
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
from simulations.client import Api, ApiError
from simulations.demand import plan
from simulations.motion import Router
from simulations.runner import (
    SetupError,
    check_services,
    city_sites,
    customer_account,
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


async def _status(world: World) -> None:
    while await world.sleep_until(world.now() + STATUS_EVERY_S):
        online = sum(1 for a in world.workers.values() if a.ws is not None)
        busy = sum(1 for a in world.workers.values() if a.state == "busy")
        served = sum(1 for w in world.watches.values() if w.status == "completed")
        open_ = sum(1 for w in world.watches.values() if not w.done.is_set())
        _say(f"{online} workers online ({busy} on a job), {open_} orders open, {served} served")


async def run_demo(base_url: str, admin_phone: str, admin_password: str, public_url: str) -> None:
    """Run the demo city until cancelled."""
    scenario = demo_scenario()
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
            asyncio.create_task(_status(world)),
        ]
        customers = [
            await customer_account(api, scenario, c.index, kind=6) for c in the_plan.customers
        ]
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
