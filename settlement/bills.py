"""Where a provider's daily trade bill comes from (a Protocol), and the sandboxes' bills.

The sandboxes' bills are written (WeChat's by :mod:`settlement.tradebill`, Alipay's by
:mod:`settlement.alipay_bill`) from what each sandbox itself holds as paid and refunded —
the provider's side, not our ledger — so that a payment our ledger missed (a lost
notification) or booked wrongly shows as a difference.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol


class BillSource(Protocol):
    """A provider's daily trade bills."""

    async def trade_bill(self, day: date) -> bytes:
        """The bill file of a local day, as the provider serves it."""
        ...

    async def close(self) -> None:
        """Release its connections."""
        ...
