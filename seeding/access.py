"""Demo seeding for issue 18: the demo city's first merchant team as an approved merchant
(licence, services at its prices, a merchant dispatcher on its staff) and a second city
run by a city operator. Additive and idempotent, inside the seed's transaction.

The second city is ``chengdu``: if seeding has made it already (a real second city with
its own catalog and people) it is used as it is; otherwise a minimal one is written (a
square in Jinjiang district, no workers) so that the operator has a city to run.
"""

from __future__ import annotations

import random

from catalog import service as catalog_service
from catalog import store as catalog_store
from doorstep.db import Tx
from merchants.rules import check_digit, price_range

SECOND_CITY = "chengdu"
CITY_OPERATOR_PHONE = "13800000004"
MERCHANT_DISPATCHER_PHONE = "13800000003"
_CODE = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_JINJIANG = {  # a 4 km square in Chengdu's Jinjiang district, WGS-84
    "type": "Polygon",
    "coordinates": [
        [[104.06, 30.63], [104.10, 30.63], [104.10, 30.67], [104.06, 30.67], [104.06, 30.63]]
    ],
}


def licence_for(merchant_phone: str) -> str:
    """A valid unified social credit code, the same for the same merchant."""
    rng = random.Random(merchant_phone)
    first = "914403" + "".join(rng.choice(_CODE) for _ in range(11))
    return first + check_digit(first)


async def _grant(tx: Tx, user_id: int, role: str, scope: str) -> None:
    made = await tx.fetchval(
        "INSERT INTO role_grants (user_id, role, scope) SELECT $1, $2, $3 WHERE NOT EXISTS "
        "(SELECT 1 FROM role_grants WHERE user_id = $1 AND role = $2 AND scope = $3 "
        "AND revoked_at IS NULL) RETURNING id",
        user_id,
        role,
        scope,
    )
    if made is not None:
        await tx.execute(
            "INSERT INTO permission_audit (action, user_id, role, scope, detail) "
            "VALUES ('grant', $1, $2, $3, '{\"by\": \"seed\"}')",
            user_id,
            role,
            scope,
        )


async def seed_access(
    tx: Tx,
    *,
    city_id: str,
    merchant_id: int,
    merchant_name: str,
    merchant_phone: str,
    operator_id: int,
    dispatcher_id: int,
) -> None:
    """The merchant approved with its services, its dispatcher, the second city and its operator."""
    await tx.execute(
        "INSERT INTO merchants (id, name, city_id, licence_number, status, reviewed_at) "
        "VALUES ($1, $2, $3, $4, 'approved', now()) ON CONFLICT (id) DO NOTHING",
        merchant_id,
        merchant_name,
        city_id,
        licence_for(merchant_phone),
    )
    services = await tx.fetch(
        "SELECT code, price_minor FROM services WHERE category = 'cleaning' AND active "
        "ORDER BY code LIMIT 3"
    )
    for s in services:
        low, _ = price_range(s["price_minor"])
        await tx.execute(
            "INSERT INTO merchant_services (merchant_id, service_code, price_minor) "
            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            merchant_id,
            s["code"],
            max(low, s["price_minor"] * 9 // 10),  # 10% under the catalog
        )
    await _grant(tx, dispatcher_id, "merchant_dispatcher", f"merchant:{merchant_id}")
    if await catalog_store.city(tx, SECOND_CITY) is None:
        city = catalog_service.build_city(
            id=SECOND_CITY,
            name_zh="成都",
            name_en="Chengdu",
            timezone="Asia/Shanghai",
            currency="CNY",
            service_area=_JINJIANG,
            crs="wgs84",
        )
        await catalog_store.write_city(tx, city, upsert=False)
    await _grant(tx, operator_id, "city_operator", f"city:{SECOND_CITY}")
