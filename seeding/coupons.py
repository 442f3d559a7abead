"""The demo's two coupon templates (docs/growth.md): written once, by name."""

from __future__ import annotations

from datetime import UTC, datetime

from doorstep.db import Tx
from growth import rules, store

DEMO_TEMPLATES: tuple[rules.TemplateSpec, ...] = (
    rules.TemplateSpec(
        name_zh="新人立减20元",
        name_en="¥20 off your first order",
        kind="amount",
        amount_fen=2000,
        min_spend_fen=10000,
        valid_days=30,
        total_stock=100_000,
        per_user_limit=1,
    ),
    rules.TemplateSpec(
        name_zh="保洁85折",
        name_en="15% off cleaning",
        kind="percent",
        percent_off=15,
        cap_fen=5000,
        categories=("cleaning",),
        valid_days=14,
        total_stock=10_000,
        per_user_limit=2,
    ),
)


async def seed_coupons(conn: Tx) -> int:
    """The demo templates not there yet (claimable in the app); how many were written."""
    written = 0
    for spec in DEMO_TEMPLATES:
        if await conn.fetchval("SELECT 1 FROM coupon_templates WHERE name_zh = $1", spec.name_zh):
            continue
        await store.insert_template(conn, rules.check_template(spec, now=datetime.now(UTC)), None)
        written += 1
    return written
