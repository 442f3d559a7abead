"""How the demo's services are paid (docs/payments.md): the big cleaning jobs are 一口价
(prepaid: paid at booking, where checkout suggests a coupon); the rest stay paid after
the service, the default. A mode an operator set since is kept."""

from __future__ import annotations

from doorstep.db import Tx

DEMO_PREPAID: tuple[str, ...] = ("daily_cleaning_3h", "deep_cleaning", "move_in_cleaning")


async def seed_pay_modes(conn: Tx) -> int:
    """Prepaid for :data:`DEMO_PREPAID` where the service has no pay mode yet; how many set."""
    written = 0
    for code in DEMO_PREPAID:
        status = await conn.execute(
            "INSERT INTO service_payment (service_code, pay_mode, deposit_fen, "
            "inspection_fee_fen) VALUES ($1, 'prepaid', 0, 0) "
            "ON CONFLICT (service_code) DO NOTHING",
            code,
        )
        written += status.endswith(" 1")
    return written
