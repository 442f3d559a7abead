"""Shared set-up for the crew tests: a crew order held (or finished) by a given crew, paid
through a real ledger entry, and a merchant's staff member. Real PostgreSQL, no fakes:
the rows are what dispatch and payments write (docs/dispatch.md#crews)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx

from accounts import service as accounts
from doorstep.stores import Stores
from ledger import rules as lr
from ledger import store as ledger
from ledger.rules import Entry, credit, debit
from tests.helpers import PASSWORD, Account, new_phone
from workforce import store as workforce_store
from workforce.models import Window

START_CODE = "123456"


async def crew_order(
    stores: Stores,
    *,
    city: str,
    service: str,
    customer: int,
    crew: Sequence[int],
    at: tuple[float, float] = (22.53, 114.01),
    price_fen: int = 60000,
    completed: bool = False,
    paid: bool = False,
) -> int:
    """A crew order held by ``crew`` (the first the lead: ``orders.worker_id``, seat 0),
    ``assigned`` and nobody there yet; or, ``completed``, finished by that crew (every
    member arrived). ``paid``: ``price_fen`` captured into the order's funds, the entry
    payments posts (no commission snapshot: a test takes it, or the order.paid consumer)."""
    now = datetime.now(UTC)
    async with stores.pool.acquire() as conn, conn.transaction():
        order_id = int(
            await conn.fetchval(
                "INSERT INTO orders (city_id, customer_id, service_code, kind, status, lat, lng, "
                "duration_min, price_minor, currency, worker_id, start_code, completed_at, "
                "en_route_at, crew_size) VALUES ($1, $2, $3, 'instant', $4, $5, $6, 120, $7, "
                "'CNY', $8, $9, $10, $11, $12) RETURNING id",
                city,
                customer,
                service,
                "completed" if completed else "assigned",
                at[0],
                at[1],
                price_fen,
                crew[0],
                START_CODE,
                now if completed else None,
                now - timedelta(hours=3) if completed else None,
                len(crew),
            )
        )
        await conn.executemany(
            "INSERT INTO order_crew (order_id, worker_id, seat, arrived_at) VALUES ($1, $2, $3, $4)",
            [
                (order_id, w, seat, now - timedelta(hours=2) if completed else None)
                for seat, w in enumerate(crew)
            ],
        )
        if paid:
            await ledger.post(
                conn,
                Entry(
                    key=f"wechat:pay:T{order_id}-{secrets.token_hex(3)}",
                    kind="payment.captured",
                    order_id=order_id,
                    lines=(
                        debit(lr.gateway("wechat"), price_fen),
                        credit(lr.order_funds(order_id), price_fen),
                    ),
                    data={"out_trade_no": f"P{order_id}"},
                ),
            )
    return order_id


async def merchant_staff(
    stores: Stores, client: httpx.AsyncClient, city: str, *, merchant: int | None = None
) -> tuple[int, Account]:
    """A worker of ``city`` on a merchant's team, available around the clock, logged in;
    and that merchant (a new one with a team of its own unless ``merchant`` is given)."""
    if merchant is None:
        owner = await accounts.create_user(
            stores, phone=new_phone(), name="好帮手家政", password=PASSWORD, roles=["merchant"]
        )
        merchant = owner.id
    team_id = await stores.pool.fetchval(
        "INSERT INTO teams (name, city_id, merchant_id) VALUES ($1, $2, $3) RETURNING id",
        f"team-{merchant}-{secrets.token_hex(3)}",
        city,
        merchant,
    )
    phone = new_phone()
    user = await accounts.create_user(
        stores, phone=phone, name="孙师傅", password=PASSWORD, roles=["worker"]
    )
    await workforce_store.upsert_worker(
        stores.pool,
        user_id=user.id,
        city_id=city,
        skills=(),
        home_lat=22.5,
        home_lng=114.0,
        team_id=team_id,
    )
    async with stores.pool.acquire() as conn, conn.transaction():
        await workforce_store.replace_availability(
            conn, user.id, tuple(Window(d, 0, 1440) for d in range(7))
        )
    r = await client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    body = r.json()
    return merchant, Account(
        user.id, phone, user.roles, body["access_token"], body["refresh_token"]
    )
