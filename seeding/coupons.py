"""The demo's coupons (docs/growth.md): two templates customers claim in the app, and a
campaign — 老客回馈, a template granted by the platform to every demo customer once.
Written once, by name; each grant once per customer (its ``source_key``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from doorstep.db import Tx
from growth import rules, store
from growth.service import Growth

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

# The campaign: granted, not claimable (an operator's POST …/grants does the same).
DEMO_GRANT = rules.TemplateSpec(
    name_zh="老客回馈满150减30",
    name_en="¥30 off ¥150, thanks for staying",
    kind="amount",
    amount_fen=3000,
    min_spend_fen=15000,
    valid_days=30,
    total_stock=100_000,
    per_user_limit=1,
    claimable=False,
)


async def _template_id(conn: Tx, spec: rules.TemplateSpec, now: datetime) -> tuple[int, bool]:
    """The id of the template named ``spec.name_zh`` (written if missing), and whether new."""
    found = await conn.fetchval("SELECT id FROM coupon_templates WHERE name_zh = $1", spec.name_zh)
    if found is not None:
        return int(found), False
    row = await store.insert_template(conn, rules.check_template(spec, now=now), None)
    return row.id, True


async def seed_coupons(conn: Tx, growth: Growth, customer_ids: Iterable[int]) -> tuple[int, int]:
    """The demo templates not there yet, and the campaign's coupon to each demo customer
    who never had one: (templates written, coupons granted)."""
    now = datetime.now(UTC)
    written = 0
    for spec in DEMO_TEMPLATES:
        written += (await _template_id(conn, spec, now))[1]
    grant_id, new = await _template_id(conn, DEMO_GRANT, now)
    written += new
    granted = 0
    for customer_id in customer_ids:
        coupon_id = await growth.issue_once(
            conn, grant_id, customer_id, key=f"demo-grant:{grant_id}:{customer_id}", now=now
        )
        granted += coupon_id is not None
    return written, granted
