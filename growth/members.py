"""Membership (会员): a customer's level from the points earned over the rolling window
(``growth/levels.py`` holds the rules), checked when points are earned and by the daily
job; a change is stored, written as a ``member.level_changed`` event (the notifications
consumer tells the customer), and a level's monthly coupon pack is issued once per
customer, month and level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from doorstep.db import Tx
from doorstep.stores import Stores
from events import store as events_store
from events.types import MemberLevelChanged, aggregate_key
from growth import levels as lv
from growth import members_store as ms
from growth.levels import Level, MembershipParams
from growth.rules import TemplateSpec

if TYPE_CHECKING:
    from growth.service import Growth

log = logging.getLogger("doorstep.growth")
BATCH = 200


@dataclass(frozen=True, slots=True)
class Checked:
    """What a check did: the level, its change (up, down or None), coupons issued."""

    level: Level
    change: str | None
    issued: int


def pack_spec(level: Level, i: int) -> TemplateSpec:
    """The system template of a level's pack item: not claimable, issued by the job."""
    item = level.pack[i]
    yuan = f"{item.amount_fen / 100:g}"
    return TemplateSpec(
        name_zh=f"{level.name_zh}月券 {yuan}元",
        name_en=f"{level.name_en} monthly ¥{yuan}",
        kind="amount",
        amount_fen=item.amount_fen,
        min_spend_fen=item.min_spend_fen,
        valid_days=item.valid_days,
        total_stock=10_000_000,
        per_user_limit=100,
        claimable=False,
    )


class Members:
    """Membership of a process (one per ``Growth``)."""

    def __init__(self, stores: Stores, params: MembershipParams, growth: Growth) -> None:
        self.stores = stores
        self.params = params
        self.growth = growth

    async def level_now(self, tx: Tx, customer_id: int, now: datetime) -> Level:
        """The level the points over the window give now."""
        points = await ms.points_since(tx, customer_id, lv.window_start(now, self.params))
        return lv.level_for(points, self.params)

    async def check(self, tx: Tx, customer_id: int, now: datetime) -> Checked:
        """In the caller's transaction: compute the level, store a change with its event,
        issue this month's pack of the level if not issued yet."""
        await ms.lock_customer(tx, customer_id)
        points = await ms.points_since(tx, customer_id, lv.window_start(now, self.params))
        level = lv.level_for(points, self.params)
        row = await ms.membership(tx, customer_id, lock=True)
        change = lv.change(row.level if row else None, level, self.params)
        moved = row is None or row.level != level.code
        await ms.save(
            tx,
            ms.MembershipRow(
                customer_id=customer_id,
                level=level.code,
                points_12m=points,
                since=now if moved or row is None else row.since,
                checked_at=now,
            ),
        )
        if change is not None:
            old = row.level if row else self.params.ladder[0].code
            await events_store.append(
                tx,
                "member.level_changed",
                aggregate_key("member", customer_id),
                MemberLevelChanged(
                    customer_id=customer_id,
                    old_level=old,
                    new_level=level.code,
                    direction=change,
                    name_zh=level.name_zh,
                    name_en=level.name_en,
                    points=points,
                    at=now,
                ),
            )
            log.info(
                "customer %s: level %s -> %s (%s points)", customer_id, old, level.code, points
            )
        issued = await self._pack(tx, customer_id, level, now)
        return Checked(level, change, issued)

    async def _pack(self, tx: Tx, customer_id: int, level: Level, now: datetime) -> int:
        """This month's pack of the level, the coupons not issued yet."""
        month = lv.month_of(now)
        made = 0
        for i, _n, key in lv.pack_keys(customer_id, month, level):
            if await tx.fetchval("SELECT 1 FROM coupons WHERE source_key = $1", key):
                continue
            template_id = await ms.system_template(tx, lv.system_key(level, i), pack_spec(level, i))
            coupon_id, why = await self.growth._issue(
                tx,
                template_id,
                customer_id,
                source="member",
                now=now,
                source_key=key,
                per_user=False,
            )
            if coupon_id is not None:
                made += 1
            elif why != "issued_before":
                log.warning("pack coupon %s not issued to %s: %s", key, customer_id, why)
        return made

    async def run(self, now: datetime) -> tuple[int, int]:
        """The daily job: every customer who may be due a change or a pack is checked, each
        in a transaction of their own. (customers checked, coupons issued)."""
        checked = issued = 0
        after = 0
        since = lv.window_start(now, self.params)
        while True:
            ids = await ms.due_for_check(self.stores.pool, since, BATCH, after)
            if not ids:
                return checked, issued
            for customer_id in ids:
                async with self.stores.pool.acquire() as conn, conn.transaction():
                    done = await self.check(conn, customer_id, now)
                checked += 1
                issued += done.issued
            after = ids[-1]

    async def status(self, customer_id: int, now: datetime) -> dict[str, Any]:
        """What the customer's app shows: level, progress, benefits, this month's pack."""
        async with self.stores.pool.acquire() as conn:
            points = await ms.points_since(conn, customer_id, lv.window_start(now, self.params))
            row = await ms.membership(conn, customer_id)
            pack = await ms.pack_coupons(conn, customer_id, lv.month_of(now))
        p = lv.progress(points, self.params)
        return {
            "level": _level_view(p.level),
            "points": points,
            "window_days": self.params.window_days,
            "since": row.since if row is not None and row.level == p.level.code else None,
            "next_level": _level_view(p.next_level) if p.next_level else None,
            "points_to_next": p.points_to_next,
            "progress_bps": p.share_bps,
            "levels": [_level_view(x) for x in self.params.ladder],
            "month": lv.month_of(now),
            "pack_coupons": pack,
        }


def _level_view(level: Level) -> dict[str, Any]:
    return {
        "code": level.code,
        "name_zh": level.name_zh,
        "name_en": level.name_en,
        "min_points": level.min_points,
        "multiplier_bps": level.multiplier_bps,
        "pack": [
            {
                "amount_fen": x.amount_fen,
                "min_spend_fen": x.min_spend_fen,
                "valid_days": x.valid_days,
                "count": x.count,
            }
            for x in level.pack
        ],
    }
